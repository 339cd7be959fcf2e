"""SMB2_CREATE_CONTEXT chains and the typed contexts of CREATE requests and
responses ([MS-SMB2] 2.2.13.2, 2.2.14.2).

A context is identified by its name (four ASCII bytes such as ``b"DH2Q"``,
or a 16-byte GUID in network byte order for the newer ones). Requests and
responses share names but not layouts (``DHnQ`` is 16 reserved bytes in a
request and 8 in a response), so a chain is decoded with the table of the
direction it travels: :func:`decode_create_contexts` ``(..., response=True)``.
Names this module does not know are kept as :class:`RawCreateContext`.

The lease context is one name for two layouts: v1 (32 bytes) and v2
(52 bytes, SMB 3.x); the DataLength tells them apart (2.2.13.2.10). The same
classes serve the request and the response lease (2.2.14.2.10/11).
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self, TypeVar

from smbfs.proto.codec import (
    Buffer,
    DecodeError,
    optional_buffer,
    pad_to,
    unpack,
)
from smbfs.proto.fileid import FileId

SMB2_CREATE_EA_BUFFER: Final = b"ExtA"
SMB2_CREATE_SD_BUFFER: Final = b"SecD"
SMB2_CREATE_DURABLE_HANDLE_REQUEST: Final = b"DHnQ"
SMB2_CREATE_DURABLE_HANDLE_RECONNECT: Final = b"DHnC"
SMB2_CREATE_ALLOCATION_SIZE: Final = b"AlSi"
SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST: Final = b"MxAc"
SMB2_CREATE_TIMEWARP_TOKEN: Final = b"TWrp"
SMB2_CREATE_QUERY_ON_DISK_ID: Final = b"QFid"
SMB2_CREATE_REQUEST_LEASE: Final = b"RqLs"
SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2: Final = b"DH2Q"
SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2: Final = b"DH2C"
# GUID-named contexts: the spec gives the 128-bit value "in network byte
# order", i.e. these are the wire bytes as written.
SMB2_CREATE_APP_INSTANCE_ID: Final = bytes.fromhex("45BCA66AEFA7F74A9008FA462E144D74")
SMB2_CREATE_APP_INSTANCE_VERSION: Final = bytes.fromhex("B982D0B73B56074FA07B524A8116A010")


class LeaseState(enum.IntFlag):
    """[MS-SMB2] 2.2.13.2.8 LeaseState."""

    SMB2_LEASE_NONE = 0x00
    SMB2_LEASE_READ_CACHING = 0x01
    SMB2_LEASE_HANDLE_CACHING = 0x02
    SMB2_LEASE_WRITE_CACHING = 0x04


class LeaseFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.13.2.8 / 2.2.13.2.10 / 2.2.14.2.10 Flags."""

    SMB2_LEASE_FLAG_BREAK_IN_PROGRESS = 0x02
    SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET = 0x04


class DurableHandleFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.13.2.11 Flags."""

    SMB2_DHANDLE_FLAG_PERSISTENT = 0x00000002


class CreateContext:
    """Base of the typed contexts: ``encode_data``/``decode_data`` handle the
    Data field only; the 16-byte context header, the name and the 8-byte
    alignment are handled by :func:`encode_create_contexts`."""

    NAME: ClassVar[bytes]

    @property
    def name(self) -> bytes:
        return self.NAME

    def encode_data(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        raise NotImplementedError


_U64: Final = struct.Struct("<Q")


@dataclass(slots=True)
class CreateEaBuffer(CreateContext):
    """[MS-SMB2] 2.2.13.2.1: a chain of FILE_FULL_EA_INFORMATION ([MS-FSCC]
    2.4.15) carried as bytes; smbfs.proto.fscc builds and parses it."""

    NAME: ClassVar[bytes] = SMB2_CREATE_EA_BUFFER

    ea_information: bytes = b""

    def encode_data(self) -> bytes:
        return self.ea_information

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        return cls(bytes(data))


@dataclass(slots=True)
class CreateSdBuffer(CreateContext):
    """[MS-SMB2] 2.2.13.2.2: a self-relative SECURITY_DESCRIPTOR as bytes."""

    NAME: ClassVar[bytes] = SMB2_CREATE_SD_BUFFER

    security_descriptor: bytes = b""

    def encode_data(self) -> bytes:
        return self.security_descriptor

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        return cls(bytes(data))


@dataclass(slots=True)
class CreateDurableHandleRequest(CreateContext):
    """[MS-SMB2] 2.2.13.2.3 DHnQ: 16 reserved bytes."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_REQUEST

    def encode_data(self) -> bytes:
        return bytes(16)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        if len(data) < 16:
            raise DecodeError(f"DHnQ request: {len(data)} bytes, expected 16")
        return cls()


@dataclass(slots=True)
class CreateDurableHandleResponse(CreateContext):
    """[MS-SMB2] 2.2.14.2.3 DHnQ response: 8 reserved bytes."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_REQUEST

    def encode_data(self) -> bytes:
        return bytes(8)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        if len(data) < 8:
            raise DecodeError(f"DHnQ response: {len(data)} bytes, expected 8")
        return cls()


@dataclass(slots=True)
class CreateDurableHandleReconnect(CreateContext):
    """[MS-SMB2] 2.2.13.2.4 DHnC: the FileId of the durable open."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_RECONNECT

    file_id: FileId = field(default_factory=lambda: FileId(0, 0))

    def encode_data(self) -> bytes:
        return self.file_id.to_bytes()

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        return cls(FileId.from_bytes(data, 0))


@dataclass(slots=True)
class CreateQueryMaximalAccessRequest(CreateContext):
    """[MS-SMB2] 2.2.13.2.5 MxAc: an optional FILETIME (DataLength 0 or 8)."""

    NAME: ClassVar[bytes] = SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST

    timestamp: int | None = None

    def encode_data(self) -> bytes:
        return b"" if self.timestamp is None else _U64.pack(self.timestamp)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        if len(data) == 0:
            return cls(None)
        (ts,) = unpack(_U64, data, 0, "MxAc request Timestamp")
        return cls(ts)


_MXAC_RESP: Final = struct.Struct("<II")  # QueryStatus, MaximalAccess


@dataclass(slots=True)
class CreateQueryMaximalAccessResponse(CreateContext):
    """[MS-SMB2] 2.2.14.2.5 MxAc response: an NTSTATUS and the access mask."""

    NAME: ClassVar[bytes] = SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST

    query_status: int = 0
    maximal_access: int = 0

    def encode_data(self) -> bytes:
        return _MXAC_RESP.pack(self.query_status, self.maximal_access)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        status, access = unpack(_MXAC_RESP, data, 0, "MxAc response")
        return cls(status, access)


@dataclass(slots=True)
class CreateAllocationSize(CreateContext):
    """[MS-SMB2] 2.2.13.2.6 AlSi."""

    NAME: ClassVar[bytes] = SMB2_CREATE_ALLOCATION_SIZE

    allocation_size: int = 0

    def encode_data(self) -> bytes:
        return _U64.pack(self.allocation_size)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        (size,) = unpack(_U64, data, 0, "AlSi AllocationSize")
        return cls(size)


@dataclass(slots=True)
class CreateTimewarpToken(CreateContext):
    """[MS-SMB2] 2.2.13.2.7 TWrp: the FILETIME of the snapshot to open."""

    NAME: ClassVar[bytes] = SMB2_CREATE_TIMEWARP_TOKEN

    timestamp: int = 0

    def encode_data(self) -> bytes:
        return _U64.pack(self.timestamp)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        (ts,) = unpack(_U64, data, 0, "TWrp Timestamp")
        return cls(ts)


@dataclass(slots=True)
class CreateQueryOnDiskIdRequest(CreateContext):
    """[MS-SMB2] 2.2.13.2.9 QFid: no data."""

    NAME: ClassVar[bytes] = SMB2_CREATE_QUERY_ON_DISK_ID

    def encode_data(self) -> bytes:
        return b""

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        return cls()


_QFID_RESP: Final = struct.Struct("<QQ16s")  # DiskFileId, VolumeId, Reserved


@dataclass(slots=True)
class CreateQueryOnDiskIdResponse(CreateContext):
    """[MS-SMB2] 2.2.14.2.9 QFid response: DiskFileId (the same value as
    FileInternalInformation) and VolumeId, usable as a stable inode number."""

    NAME: ClassVar[bytes] = SMB2_CREATE_QUERY_ON_DISK_ID

    disk_file_id: int = 0
    volume_id: int = 0

    def encode_data(self) -> bytes:
        return _QFID_RESP.pack(self.disk_file_id, self.volume_id, bytes(16))

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        disk_id, volume_id, _r = unpack(_QFID_RESP, data, 0, "QFid response")
        return cls(disk_id, volume_id)


# LeaseKey, LeaseState, LeaseFlags, LeaseDuration.
_LEASE_V1: Final = struct.Struct("<16sIIQ")
# ... then ParentLeaseKey, Epoch, Reserved.
_LEASE_V2: Final = struct.Struct("<16sIIQ16sHH")
assert _LEASE_V1.size == 32 and _LEASE_V2.size == 52


@dataclass(slots=True)
class CreateRequestLease(CreateContext):
    """[MS-SMB2] 2.2.13.2.8 RqLs v1 (SMB 2.1), also the 2.2.14.2.10 response.
    LeaseDuration is reserved (0)."""

    NAME: ClassVar[bytes] = SMB2_CREATE_REQUEST_LEASE

    lease_key: bytes = bytes(16)
    lease_state: int = 0
    lease_flags: int = 0
    lease_duration: int = 0

    def encode_data(self) -> bytes:
        return _LEASE_V1.pack(
            self.lease_key, self.lease_state, self.lease_flags, self.lease_duration
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        key, state, flags, duration = unpack(_LEASE_V1, data, 0, "RqLs v1")
        return cls(bytes(key), state, flags, duration)


@dataclass(slots=True)
class CreateRequestLeaseV2(CreateContext):
    """[MS-SMB2] 2.2.13.2.10 RqLs v2 (SMB 3.x), also the 2.2.14.2.11 response.
    ``epoch`` is the lease epoch the server bumps on each state change."""

    NAME: ClassVar[bytes] = SMB2_CREATE_REQUEST_LEASE

    lease_key: bytes = bytes(16)
    lease_state: int = 0
    flags: int = 0
    lease_duration: int = 0
    parent_lease_key: bytes = bytes(16)
    epoch: int = 0

    def encode_data(self) -> bytes:
        return _LEASE_V2.pack(
            self.lease_key, self.lease_state, self.flags, self.lease_duration,
            self.parent_lease_key, self.epoch, 0,
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        key, state, flags, duration, parent, epoch, _r = unpack(
            _LEASE_V2, data, 0, "RqLs v2"
        )
        return cls(bytes(key), state, flags, duration, bytes(parent), epoch)


# The response lease contexts have the request layouts (2.2.14.2.10/11).
CreateResponseLease = CreateRequestLease
CreateResponseLeaseV2 = CreateRequestLeaseV2


def _decode_lease(data: memoryview) -> CreateRequestLease | CreateRequestLeaseV2:
    """v1 or v2 by DataLength, as the server does (2.2.13.2.10)."""
    if len(data) >= _LEASE_V2.size:
        return CreateRequestLeaseV2.decode_data(data)
    if len(data) >= _LEASE_V1.size:
        return CreateRequestLease.decode_data(data)
    raise DecodeError(f"RqLs: {len(data)} bytes, expected 32 or 52")


# Timeout, Flags, Reserved, CreateGuid.
_DH2Q: Final = struct.Struct("<II8s16s")
assert _DH2Q.size == 32


@dataclass(slots=True)
class CreateDurableHandleRequestV2(CreateContext):
    """[MS-SMB2] 2.2.13.2.11 DH2Q. ``timeout`` in milliseconds (0: let the
    server choose); ``create_guid`` identifies the open across replays."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2

    timeout: int = 0
    flags: int = 0
    create_guid: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))

    def encode_data(self) -> bytes:
        return _DH2Q.pack(self.timeout, self.flags, bytes(8), self.create_guid.bytes_le)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        timeout, flags, _r, guid = unpack(_DH2Q, data, 0, "DH2Q request")
        return cls(timeout, flags, uuid.UUID(bytes_le=bytes(guid)))


_DH2Q_RESP: Final = struct.Struct("<II")  # Timeout, Flags


@dataclass(slots=True)
class CreateDurableHandleResponseV2(CreateContext):
    """[MS-SMB2] 2.2.14.2.12 DH2Q response: the timeout the server granted."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2

    timeout: int = 0
    flags: int = 0

    def encode_data(self) -> bytes:
        return _DH2Q_RESP.pack(self.timeout, self.flags)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        timeout, flags = unpack(_DH2Q_RESP, data, 0, "DH2Q response")
        return cls(timeout, flags)


_DH2C: Final = struct.Struct("<16s16sI")  # FileId, CreateGuid, Flags


@dataclass(slots=True)
class CreateDurableHandleReconnectV2(CreateContext):
    """[MS-SMB2] 2.2.13.2.12 DH2C."""

    NAME: ClassVar[bytes] = SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2

    file_id: FileId = field(default_factory=lambda: FileId(0, 0))
    create_guid: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))
    flags: int = 0

    def encode_data(self) -> bytes:
        return _DH2C.pack(self.file_id.to_bytes(), self.create_guid.bytes_le, self.flags)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        _fid, guid, flags = unpack(_DH2C, data, 0, "DH2C")
        return cls(FileId.from_bytes(data, 0), uuid.UUID(bytes_le=bytes(guid)), flags)


_APP_INSTANCE_ID: Final = struct.Struct("<HH16s")  # StructureSize, Reserved, AppInstanceId


@dataclass(slots=True)
class CreateAppInstanceId(CreateContext):
    """[MS-SMB2] 2.2.13.2.13 SMB2_CREATE_APP_INSTANCE_ID."""

    NAME: ClassVar[bytes] = SMB2_CREATE_APP_INSTANCE_ID
    STRUCTURE_SIZE: ClassVar[int] = 20

    app_instance_id: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))

    def encode_data(self) -> bytes:
        return _APP_INSTANCE_ID.pack(self.STRUCTURE_SIZE, 0, self.app_instance_id.bytes_le)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        _size, _r, guid = unpack(_APP_INSTANCE_ID, data, 0, "APP_INSTANCE_ID")
        return cls(uuid.UUID(bytes_le=bytes(guid)))


# StructureSize, Reserved, Padding, AppInstanceVersionHigh, AppInstanceVersionLow.
_APP_INSTANCE_VERSION: Final = struct.Struct("<HHIQQ")


@dataclass(slots=True)
class CreateAppInstanceVersion(CreateContext):
    """[MS-SMB2] 2.2.13.2.15 SMB2_CREATE_APP_INSTANCE_VERSION (3.1.1)."""

    NAME: ClassVar[bytes] = SMB2_CREATE_APP_INSTANCE_VERSION
    STRUCTURE_SIZE: ClassVar[int] = 24

    version_high: int = 0
    version_low: int = 0

    def encode_data(self) -> bytes:
        return _APP_INSTANCE_VERSION.pack(
            self.STRUCTURE_SIZE, 0, 0, self.version_high, self.version_low
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        _size, _r, _p, high, low = unpack(
            _APP_INSTANCE_VERSION, data, 0, "APP_INSTANCE_VERSION"
        )
        return cls(high, low)


@dataclass(slots=True)
class RawCreateContext:
    """A context this module does not interpret, kept byte for byte."""

    name: bytes
    data: bytes = b""

    def encode_data(self) -> bytes:
        return self.data


AnyCreateContext = CreateContext | RawCreateContext

_Decoder = Callable[[memoryview], CreateContext]

_REQUEST_DECODERS: Final[dict[bytes, _Decoder]] = {
    SMB2_CREATE_EA_BUFFER: CreateEaBuffer.decode_data,
    SMB2_CREATE_SD_BUFFER: CreateSdBuffer.decode_data,
    SMB2_CREATE_DURABLE_HANDLE_REQUEST: CreateDurableHandleRequest.decode_data,
    SMB2_CREATE_DURABLE_HANDLE_RECONNECT: CreateDurableHandleReconnect.decode_data,
    SMB2_CREATE_ALLOCATION_SIZE: CreateAllocationSize.decode_data,
    SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST: CreateQueryMaximalAccessRequest.decode_data,
    SMB2_CREATE_TIMEWARP_TOKEN: CreateTimewarpToken.decode_data,
    SMB2_CREATE_QUERY_ON_DISK_ID: CreateQueryOnDiskIdRequest.decode_data,
    SMB2_CREATE_REQUEST_LEASE: _decode_lease,
    SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2: CreateDurableHandleRequestV2.decode_data,
    SMB2_CREATE_DURABLE_HANDLE_RECONNECT_V2: CreateDurableHandleReconnectV2.decode_data,
    SMB2_CREATE_APP_INSTANCE_ID: CreateAppInstanceId.decode_data,
    SMB2_CREATE_APP_INSTANCE_VERSION: CreateAppInstanceVersion.decode_data,
}

_RESPONSE_DECODERS: Final[dict[bytes, _Decoder]] = {
    SMB2_CREATE_DURABLE_HANDLE_REQUEST: CreateDurableHandleResponse.decode_data,
    SMB2_CREATE_QUERY_MAXIMAL_ACCESS_REQUEST: CreateQueryMaximalAccessResponse.decode_data,
    SMB2_CREATE_QUERY_ON_DISK_ID: CreateQueryOnDiskIdResponse.decode_data,
    SMB2_CREATE_REQUEST_LEASE: _decode_lease,
    SMB2_CREATE_DURABLE_HANDLE_REQUEST_V2: CreateDurableHandleResponseV2.decode_data,
}

# Next, NameOffset, NameLength, Reserved, DataOffset, DataLength.
_CTX_HEADER: Final = struct.Struct("<IHHHHI")
assert _CTX_HEADER.size == 16


def encode_create_contexts(contexts: Sequence[AnyCreateContext]) -> bytes:
    """The chain as one buffer: each context, its name and its data start
    8-byte aligned; offsets are relative to the context's own start."""
    parts: list[bytes] = []
    last = len(contexts) - 1
    for i, ctx in enumerate(contexts):
        name = ctx.name
        data = ctx.encode_data()
        name_offset = _CTX_HEADER.size
        name_pad = pad_to(name_offset + len(name), 8)
        data_offset = name_offset + len(name) + name_pad if data else 0
        length = (data_offset + len(data)) if data else name_offset + len(name)
        tail_pad = 0 if i == last else pad_to(length, 8)
        nxt = 0 if i == last else length + tail_pad
        parts.append(
            _CTX_HEADER.pack(nxt, name_offset, len(name), 0, data_offset, len(data))
        )
        parts.append(name)
        if data:
            parts.append(bytes(name_pad))
            parts.append(data)
        parts.append(bytes(tail_pad))
    return b"".join(parts)


def decode_create_contexts(
    buf: Buffer, *, response: bool
) -> list[AnyCreateContext]:
    """Decode the chain filling ``buf`` (the CreateContexts region, already cut
    to CreateContextsLength). Each context's name and data must lie inside
    that context (up to its Next, or the end of the chain for the last)."""
    region = memoryview(buf)
    decoders = _RESPONSE_DECODERS if response else _REQUEST_DECODERS
    out: list[AnyCreateContext] = []
    pos = 0
    while True:
        nxt, name_off, name_len, _r, data_off, data_len = unpack(
            _CTX_HEADER, region, pos, "create context"
        )
        if nxt:
            # Next < 16 would overlap this header (or loop forever at 0 progress).
            if nxt < _CTX_HEADER.size or pos + nxt > len(region):
                raise DecodeError(f"create context: bad Next {nxt}")
            ctx_view = region[pos : pos + nxt]
        else:
            ctx_view = region[pos:]
        name = bytes(optional_buffer(ctx_view, name_off, name_len, "create context Name"))
        data = optional_buffer(ctx_view, data_off, data_len, "create context Data")
        decode = decoders.get(name)
        if decode is None:
            out.append(RawCreateContext(name, bytes(data)))
        else:
            out.append(decode(data))
        if not nxt:
            return out
        pos += nxt


_C = TypeVar("_C", bound=CreateContext)


def find_create_context(
    contexts: Sequence[AnyCreateContext], cls: type[_C]
) -> _C | None:
    """The first context of class ``cls`` in ``contexts``, or None."""
    for ctx in contexts:
        if isinstance(ctx, cls):
            return ctx
    return None
