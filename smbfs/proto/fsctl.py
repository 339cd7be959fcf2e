"""FSCTL control codes and the payloads carried in SMB2 IOCTL buffers.

Sources: [MS-SMB2] 2.2.31.x / 2.2.32.x (SMB2-specific FSCTLs),
[MS-FSCC] 2.3 (file system FSCTLs), [MS-DFSC] 2.2.2 / 2.2.4 / 2.2.5 (DFS
referrals). Reparse data buffers (symlinks, mount points) are [MS-FSCC]
2.1.2 structures handled by smbfs.proto.fscc: FSCTL_GET/SET_REPARSE_POINT
carry them as raw bytes.

Every structure has ``encode() -> bytes`` and ``decode(buf) -> Self``; the
decoders take the IOCTL output (or input) buffer on its own, so offsets
inside are relative to its start, and raise only DecodeError.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
import uuid
from dataclasses import dataclass, field
from typing import ClassVar, Final

from smbfs.proto.codec import (
    Buffer,
    DecodeError,
    from_utf16,
    need,
    unpack,
    utf16,
    view,
)
from smbfs.proto.fileid import FileId


class CtlCode(enum.IntEnum):
    """Control codes ([MS-SMB2] 2.2.31, [MS-FSCC] 2.3).

    The FSCC values are CTL_CODE(DeviceType, Function, Method, Access) =
    DeviceType << 16 | Access << 14 | Function << 2 | Method, with
    FILE_DEVICE_FILE_SYSTEM = 9.
    """

    FSCTL_DFS_GET_REFERRALS = 0x00060194
    FSCTL_DFS_GET_REFERRALS_EX = 0x000601B0
    FSCTL_PIPE_PEEK = 0x0011400C
    FSCTL_PIPE_WAIT = 0x00110018
    FSCTL_PIPE_TRANSCEIVE = 0x0011C017
    FSCTL_SRV_COPYCHUNK = 0x001440F2
    FSCTL_SRV_COPYCHUNK_WRITE = 0x001480F2
    FSCTL_SRV_ENUMERATE_SNAPSHOTS = 0x00144064
    FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
    FSCTL_SRV_READ_HASH = 0x001441BB
    FSCTL_LMR_REQUEST_RESILIENCY = 0x001401D4
    FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC
    FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204
    FSCTL_FILE_LEVEL_TRIM = 0x00098208
    FSCTL_GET_COMPRESSION = 0x0009003C
    FSCTL_SET_COMPRESSION = 0x0009C040
    FSCTL_GET_OBJECT_ID = 0x0009009C
    FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900C0
    FSCTL_SET_REPARSE_POINT = 0x000900A4
    FSCTL_GET_REPARSE_POINT = 0x000900A8
    FSCTL_DELETE_REPARSE_POINT = 0x000900AC
    FSCTL_SET_SPARSE = 0x000900C4
    FSCTL_SET_ZERO_DATA = 0x000980C8
    FSCTL_QUERY_ALLOCATED_RANGES = 0x000940CF
    FSCTL_GET_INTEGRITY_INFORMATION = 0x0009027C
    FSCTL_SET_INTEGRITY_INFORMATION = 0x0009C280
    FSCTL_QUERY_FILE_REGIONS = 0x00090284
    FSCTL_OFFLOAD_READ = 0x00094264
    FSCTL_OFFLOAD_WRITE = 0x00098268
    FSCTL_DUPLICATE_EXTENTS_TO_FILE = 0x00098344
    FSCTL_DUPLICATE_EXTENTS_TO_FILE_EX = 0x000983E8


_U8: Final = struct.Struct("<B")
_U16: Final = struct.Struct("<H")


# ------------------------------------------------ FSCTL_VALIDATE_NEGOTIATE_INFO

_VNI_REQ: Final = struct.Struct("<I16sHH")
_VNI_RSP: Final = struct.Struct("<I16sHH")


@dataclass(slots=True)
class ValidateNegotiateInfoRequest:
    """[MS-SMB2] 2.2.31.4: the client's NEGOTIATE, repeated under signing so a
    man in the middle cannot have downgraded it (SMB 3.0 / 3.0.2)."""

    capabilities: int
    guid: uuid.UUID
    security_mode: int
    dialects: list[int] = field(default_factory=list)

    def encode(self) -> bytes:
        return _VNI_REQ.pack(
            self.capabilities, self.guid.bytes_le, self.security_mode, len(self.dialects),
        ) + struct.pack(f"<{len(self.dialects)}H", *self.dialects)

    @classmethod
    def decode(cls, buf: Buffer) -> ValidateNegotiateInfoRequest:
        caps, guid, mode, count = unpack(_VNI_REQ, buf, 0, "VALIDATE_NEGOTIATE_INFO request")
        need(buf, _VNI_REQ.size, 2 * count, "VALIDATE_NEGOTIATE_INFO Dialects")
        dialects = list(struct.unpack_from(f"<{count}H", buf, _VNI_REQ.size))
        return cls(caps, uuid.UUID(bytes_le=bytes(guid)), mode, dialects)


@dataclass(slots=True)
class ValidateNegotiateInfoResponse:
    """[MS-SMB2] 2.2.32.6: what the server believes was negotiated."""

    capabilities: int
    guid: uuid.UUID
    security_mode: int
    dialect: int

    def encode(self) -> bytes:
        return _VNI_RSP.pack(self.capabilities, self.guid.bytes_le, self.security_mode,
                             self.dialect)

    @classmethod
    def decode(cls, buf: Buffer) -> ValidateNegotiateInfoResponse:
        caps, guid, mode, dialect = unpack(_VNI_RSP, buf, 0, "VALIDATE_NEGOTIATE_INFO response")
        return cls(caps, uuid.UUID(bytes_le=bytes(guid)), mode, dialect)


# -------------------------------------------------- FSCTL_LMR_REQUEST_RESILIENCY

_RESILIENCY: Final = struct.Struct("<II")


@dataclass(frozen=True, slots=True)
class NetworkResiliencyRequest:
    """[MS-SMB2] 2.2.31.3 NETWORK_RESILIENCY_REQUEST: keep the open alive for
    ``timeout_ms`` after a disconnect (SMB 2.1+, before durable v2 existed)."""

    timeout_ms: int

    def encode(self) -> bytes:
        return _RESILIENCY.pack(self.timeout_ms, 0)

    @classmethod
    def decode(cls, buf: Buffer) -> NetworkResiliencyRequest:
        timeout, _r = unpack(_RESILIENCY, buf, 0, "NETWORK_RESILIENCY_REQUEST")
        return cls(timeout)


# ------------------------------------------- FSCTL_QUERY_NETWORK_INTERFACE_INFO

class InterfaceCapability(enum.IntFlag):
    """[MS-SMB2] 2.2.32.5 Capability."""

    RSS_CAPABLE = 0x00000001
    RDMA_CAPABLE = 0x00000002


# [MS-SMB2] 2.2.32.5.1 Family.
AF_INET: Final = 0x0002  # InterNetwork
AF_INET6: Final = 0x0017  # InterNetworkV6
SOCKADDR_STORAGE_SIZE: Final = 128

# Next, IfIndex, Capability, Reserved, LinkSpeed, SockAddr_Storage.
_NIC: Final = struct.Struct(f"<IIIIQ{SOCKADDR_STORAGE_SIZE}s")
NETWORK_INTERFACE_INFO_SIZE: Final = _NIC.size  # 152
# Family (little-endian like the rest), then SOCKADDR_IN / SOCKADDR_IN6 whose
# own fields are in network byte order (2.2.32.5.1.1 / .2).
_SA_IN: Final = struct.Struct(">H4s")  # Port, IPv4Address (after Family)
_SA_IN6: Final = struct.Struct(">HI16sI")  # Port, FlowInfo, IPv6Address, ScopeId


@dataclass(frozen=True, slots=True)
class NetworkInterfaceInfo:
    """[MS-SMB2] 2.2.32.5 NETWORK_INTERFACE_INFO, one server interface.

    ``address`` is None for a family other than IPv4/IPv6 (kept in
    ``family``), so an unknown entry does not hide the known ones.
    ``link_speed`` is in bits per second.
    """

    if_index: int
    capability: int
    link_speed: int
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    family: int = AF_INET

    @property
    def rss_capable(self) -> bool:
        return bool(self.capability & InterfaceCapability.RSS_CAPABLE)

    @property
    def rdma_capable(self) -> bool:
        return bool(self.capability & InterfaceCapability.RDMA_CAPABLE)

    @classmethod
    def for_address(cls, if_index: int, capability: int, link_speed: int,
                    address: ipaddress.IPv4Address | ipaddress.IPv6Address
                    ) -> NetworkInterfaceInfo:
        family = AF_INET if address.version == 4 else AF_INET6
        return cls(if_index, capability, link_speed, address, family)

    def _sockaddr(self) -> bytes:
        sa = bytearray(SOCKADDR_STORAGE_SIZE)
        _U16.pack_into(sa, 0, self.family)
        if isinstance(self.address, ipaddress.IPv4Address):
            _SA_IN.pack_into(sa, 2, 0, self.address.packed)
        elif isinstance(self.address, ipaddress.IPv6Address):
            _SA_IN6.pack_into(sa, 2, 0, 0, self.address.packed, 0)
        return bytes(sa)

    def encode(self, next_offset: int = 0) -> bytes:
        return _NIC.pack(next_offset, self.if_index, self.capability, 0, self.link_speed,
                         self._sockaddr())

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> NetworkInterfaceInfo:
        _next, if_index, cap, _r, speed, _sa = unpack(_NIC, buf, offset,
                                                      "NETWORK_INTERFACE_INFO")
        sa = offset + _NIC.size - SOCKADDR_STORAGE_SIZE
        (family,) = _U16.unpack_from(buf, sa)
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        if family == AF_INET:
            address = ipaddress.IPv4Address(bytes(_SA_IN.unpack_from(buf, sa + 2)[1]))
        elif family == AF_INET6:
            address = ipaddress.IPv6Address(bytes(_SA_IN6.unpack_from(buf, sa + 2)[2]))
        return cls(if_index, cap, speed, address, family)


def encode_network_interfaces(nics: list[NetworkInterfaceInfo]) -> bytes:
    last = len(nics) - 1
    return b"".join(
        n.encode(0 if i == last else NETWORK_INTERFACE_INFO_SIZE) for i, n in enumerate(nics)
    )


def decode_network_interfaces(buf: Buffer) -> list[NetworkInterfaceInfo]:
    """Walk the Next chain of an FSCTL_QUERY_NETWORK_INTERFACE_INFO output.

    Next must step past the whole current entry, so the walk always moves
    forward and entries never overlap. An empty buffer is an empty list.
    """
    out: list[NetworkInterfaceInfo] = []
    if len(buf) == 0:
        return out
    pos = 0
    while True:
        out.append(NetworkInterfaceInfo.decode(buf, pos))
        (nxt,) = struct.unpack_from("<I", buf, pos)
        if nxt == 0:
            return out
        if nxt < NETWORK_INTERFACE_INFO_SIZE:
            raise DecodeError(f"NETWORK_INTERFACE_INFO: Next {nxt} inside the entry")
        pos += nxt


# ------------------------------------------------ server-side copy (copychunk)

RESUME_KEY_SIZE: Final = 24
_RESUME_KEY: Final = struct.Struct(f"<{RESUME_KEY_SIZE}sI")


@dataclass(slots=True)
class SrvRequestResumeKey:
    """[MS-SMB2] 2.2.32.3 SRV_REQUEST_RESUME_KEY: an opaque 24-byte key naming
    the copy source."""

    resume_key: bytes
    context: bytes = b""

    def encode(self) -> bytes:
        if len(self.resume_key) != RESUME_KEY_SIZE:
            raise ValueError("ResumeKey must be 24 bytes")
        return _RESUME_KEY.pack(self.resume_key, len(self.context)) + self.context

    @classmethod
    def decode(cls, buf: Buffer) -> SrvRequestResumeKey:
        key, ctx_len = unpack(_RESUME_KEY, buf, 0, "SRV_REQUEST_RESUME_KEY")
        # ContextLength is "unused ... the client MUST ignore it": Windows sends
        # 0 with 4 bytes of padding, so take the context only if it is there.
        ctx = bytes(buf[_RESUME_KEY.size:_RESUME_KEY.size + ctx_len])
        if len(ctx) != ctx_len:
            ctx = b""
        return cls(bytes(key), ctx)


_CHUNK: Final = struct.Struct("<QQII")
_COPYCHUNK_HEAD: Final = struct.Struct(f"<{RESUME_KEY_SIZE}sII")
_COPYCHUNK_RSP: Final = struct.Struct("<III")


@dataclass(frozen=True, slots=True)
class SrvCopychunk:
    """[MS-SMB2] 2.2.31.1.1 SRV_COPYCHUNK: one range to copy."""

    source_offset: int
    target_offset: int
    length: int
    SIZE: ClassVar[int] = _CHUNK.size  # 24

    def encode(self) -> bytes:
        return _CHUNK.pack(self.source_offset, self.target_offset, self.length, 0)


@dataclass(slots=True)
class SrvCopychunkCopy:
    """[MS-SMB2] 2.2.31.1 SRV_COPYCHUNK_COPY, the input of FSCTL_SRV_COPYCHUNK(_WRITE).

    Servers cap the chunk count, chunk size and total per request (Windows:
    256 chunks, 1 MiB each, 16 MiB total); an over-limit request fails with
    STATUS_INVALID_PARAMETER and a SRV_COPYCHUNK_RESPONSE holding the limits.
    """

    source_key: bytes
    chunks: list[SrvCopychunk] = field(default_factory=list)

    def encode(self) -> bytes:
        if len(self.source_key) != RESUME_KEY_SIZE:
            raise ValueError("SourceKey must be 24 bytes")
        return _COPYCHUNK_HEAD.pack(self.source_key, len(self.chunks), 0) + b"".join(
            c.encode() for c in self.chunks
        )

    @classmethod
    def decode(cls, buf: Buffer) -> SrvCopychunkCopy:
        key, count, _r = unpack(_COPYCHUNK_HEAD, buf, 0, "SRV_COPYCHUNK_COPY")
        need(buf, _COPYCHUNK_HEAD.size, count * _CHUNK.size, "SRV_COPYCHUNK_COPY Chunks")
        chunks = [
            SrvCopychunk(*_CHUNK.unpack_from(buf, _COPYCHUNK_HEAD.size + i * _CHUNK.size)[:3])
            for i in range(count)
        ]
        return cls(bytes(key), chunks)


@dataclass(slots=True)
class SrvCopychunkResponse:
    """[MS-SMB2] 2.2.32.1. With STATUS_INVALID_PARAMETER the three fields are
    instead the server's limits: max chunks, max chunk size, max total."""

    chunks_written: int
    chunk_bytes_written: int
    total_bytes_written: int

    def encode(self) -> bytes:
        return _COPYCHUNK_RSP.pack(self.chunks_written, self.chunk_bytes_written,
                                   self.total_bytes_written)

    @classmethod
    def decode(cls, buf: Buffer) -> SrvCopychunkResponse:
        return cls(*unpack(_COPYCHUNK_RSP, buf, 0, "SRV_COPYCHUNK_RESPONSE"))


# ------------------------------------------------------- sparse files, zeroing

_RANGE: Final = struct.Struct("<qq")


@dataclass(slots=True)
class FileSetSparseBuffer:
    """[MS-FSCC] 2.3.64 FILE_SET_SPARSE_BUFFER. An empty input buffer also
    means "set sparse", hence the default."""

    set_sparse: bool = True

    def encode(self) -> bytes:
        return _U8.pack(1 if self.set_sparse else 0)

    @classmethod
    def decode(cls, buf: Buffer) -> FileSetSparseBuffer:
        if len(buf) == 0:
            return cls(True)
        return cls(buf[0] != 0)


@dataclass(frozen=True, slots=True)
class FileZeroDataInformation:
    """[MS-FSCC] 2.3.67 FILE_ZERO_DATA_INFORMATION: zero [file_offset,
    beyond_final_zero) without changing the file size."""

    file_offset: int
    beyond_final_zero: int

    def encode(self) -> bytes:
        return _RANGE.pack(self.file_offset, self.beyond_final_zero)

    @classmethod
    def decode(cls, buf: Buffer) -> FileZeroDataInformation:
        return cls(*unpack(_RANGE, buf, 0, "FILE_ZERO_DATA_INFORMATION"))


@dataclass(frozen=True, slots=True)
class FileAllocatedRangeBuffer:
    """[MS-FSCC] 2.3.46 FILE_ALLOCATED_RANGE_BUFFER: the query range (input of
    FSCTL_QUERY_ALLOCATED_RANGES) and each allocated range of its output."""

    file_offset: int
    length: int
    SIZE: ClassVar[int] = _RANGE.size  # 16

    def encode(self) -> bytes:
        return _RANGE.pack(self.file_offset, self.length)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> FileAllocatedRangeBuffer:
        return cls(*unpack(_RANGE, buf, offset, "FILE_ALLOCATED_RANGE_BUFFER"))


def encode_allocated_ranges(ranges: list[FileAllocatedRangeBuffer]) -> bytes:
    return b"".join(r.encode() for r in ranges)


def decode_allocated_ranges(buf: Buffer) -> list[FileAllocatedRangeBuffer]:
    """The output of FSCTL_QUERY_ALLOCATED_RANGES: a packed array. A partial
    trailing entry is malformed (a short buffer comes with
    STATUS_BUFFER_OVERFLOW and whole entries only)."""
    if len(buf) % _RANGE.size:
        raise DecodeError(f"FILE_ALLOCATED_RANGE_BUFFER array: {len(buf)} bytes is not a "
                          f"multiple of {_RANGE.size}")
    return [FileAllocatedRangeBuffer(o, n) for o, n in _RANGE.iter_unpack(buf)]


# ------------------------------------------------ FSCTL_DUPLICATE_EXTENTS_TO_FILE

_DUP: Final = struct.Struct("<16sqqq")


@dataclass(frozen=True, slots=True)
class DuplicateExtentsData:
    """[MS-FSCC] 2.3.8 DUPLICATE_EXTENTS_DATA: block-clone ``byte_count`` bytes
    from the open ``file_id`` (the source) into the target handle."""

    file_id: FileId
    source_file_offset: int
    target_file_offset: int
    byte_count: int

    def encode(self) -> bytes:
        return _DUP.pack(self.file_id.encode(), self.source_file_offset,
                         self.target_file_offset, self.byte_count)

    @classmethod
    def decode(cls, buf: Buffer) -> DuplicateExtentsData:
        _fid, src, dst, count = unpack(_DUP, buf, 0, "DUPLICATE_EXTENTS_DATA")
        return cls(FileId.decode(buf, 0), src, dst, count)


# ------------------------------------------------- FSCTL_SRV_ENUMERATE_SNAPSHOTS

_SNAP_HEAD: Final = struct.Struct("<III")


@dataclass(slots=True)
class SrvSnapshotArray:
    """[MS-SMB2] 2.2.32.2 SRV_SNAPSHOT_ARRAY: previous versions as @GMT tokens
    ("@GMT-YYYY.MM.DD-HH.MM.SS").

    When the output buffer was too small the server returns no names
    (NumberOfSnapShotsReturned 0) but sets ``snapshot_array_size`` to the
    size needed, so the caller can retry with a larger MaxOutputResponse.
    """

    number_of_snapshots: int
    snapshots: list[str] = field(default_factory=list)
    snapshot_array_size: int = 0

    @staticmethod
    def _array(names: list[str]) -> bytes:
        return b"".join(utf16(n) + b"\0\0" for n in names) + b"\0\0"

    @classmethod
    def build(cls, names: list[str]) -> SrvSnapshotArray:
        return cls(len(names), list(names), len(cls._array(names)) if names else 0)

    @property
    def required_output_size(self) -> int:
        return _SNAP_HEAD.size + self.snapshot_array_size

    def encode(self) -> bytes:
        array = self._array(self.snapshots) if self.snapshots else b""
        return _SNAP_HEAD.pack(self.number_of_snapshots, len(self.snapshots),
                               self.snapshot_array_size) + array

    @classmethod
    def decode(cls, buf: Buffer) -> SrvSnapshotArray:
        total, returned, size = unpack(_SNAP_HEAD, buf, 0, "SRV_SNAPSHOT_ARRAY")
        names: list[str] = []
        if returned:
            raw = view(buf, _SNAP_HEAD.size, size, "SRV_SNAPSHOT_ARRAY SnapShots")
            if size % 2:
                raise DecodeError("SRV_SNAPSHOT_ARRAY: odd SnapShotArraySize")
            names = [n for n in from_utf16(raw, "SRV_SNAPSHOT_ARRAY").split("\0") if n]
            if len(names) != returned:
                raise DecodeError(f"SRV_SNAPSHOT_ARRAY: {len(names)} names, "
                                  f"NumberOfSnapShotsReturned {returned}")
        return cls(total, names, size)


# ------------------------------------------------------ FSCTL_DFS_GET_REFERRALS

class _CStrings:
    """NUL-terminated UTF-16 strings at peer-given offsets in one buffer.

    The buffer becomes bytes once; each offset is decoded once; and the bytes
    decoded in total are capped at a small multiple of the buffer, so entries
    that all point into one long unterminated-looking string cannot make a
    decode quadratic (bounded time on hostile input). A well-formed buffer
    decodes each of its strings once, far below the cap.
    """

    __slots__ = ("_budget", "_cache", "_raw")

    def __init__(self, buf: Buffer) -> None:
        self._raw = bytes(buf)
        self._cache: dict[int, tuple[str, int]] = {}
        self._budget = 8 * len(self._raw) + 4096

    def scan(self, offset: int, what: str) -> tuple[str, int]:
        """The string at ``offset`` and the offset just past its terminator."""
        hit = self._cache.get(offset)
        if hit is not None:
            return hit
        raw = self._raw
        need(raw, offset, 2, what)
        end = offset
        while True:
            end = raw.find(b"\0\0", end)
            if end < 0:
                raise DecodeError(f"{what}: no NUL terminator")
            if (end - offset) % 2 == 0:
                break
            end += 1
        self._budget -= end - offset
        if self._budget < 0:
            raise DecodeError(f"{what}: too many overlapping strings")
        hit = (from_utf16(raw[offset:end], what), end + 2)
        self._cache[offset] = hit
        return hit

    def at(self, offset: int, what: str) -> str:
        return self.scan(offset, what)[0]

    def run(self, offset: int, count: int, what: str) -> list[str]:
        """``count`` consecutive strings from ``offset``."""
        out: list[str] = []
        for _ in range(count):
            s, offset = self.scan(offset, what)
            out.append(s)
        return out


def _cstr(s: str) -> bytes:
    return utf16(s) + b"\0\0"


@dataclass(slots=True)
class ReqGetDfsReferral:
    """[MS-DFSC] 2.2.2 REQ_GET_DFS_REFERRAL, the input of FSCTL_DFS_GET_REFERRALS
    (sent on an IPC$ tree with FileId all ones)."""

    request_file_name: str
    max_referral_level: int = 4

    def encode(self) -> bytes:
        return _U16.pack(self.max_referral_level) + _cstr(self.request_file_name)

    @classmethod
    def decode(cls, buf: Buffer) -> ReqGetDfsReferral:
        (level,) = unpack(_U16, buf, 0, "REQ_GET_DFS_REFERRAL")
        name = _CStrings(buf).at(2, "REQ_GET_DFS_REFERRAL RequestFileName")
        return cls(name, level)


class ReferralHeaderFlags(enum.IntFlag):
    """[MS-DFSC] 2.2.4 ReferralHeaderFlags."""

    ReferralServers = 0x00000001  # R
    StorageServers = 0x00000002  # S
    TargetFailback = 0x00000004  # T


class ReferralEntryFlags(enum.IntFlag):
    """[MS-DFSC] 2.2.5.3 / 2.2.5.4 ReferralEntryFlags."""

    NameListReferral = 0x0002
    TargetSetBoundary = 0x0004  # V4 only


# VersionNumber, Size, ServerType, ReferralEntryFlags.
_REF_COMMON: Final = struct.Struct("<HHHH")
# + Proximity, TimeToLive, DFSPathOffset, DFSAlternatePathOffset, NetworkAddressOffset.
_REF_V2: Final = struct.Struct("<HHHHIIHHH")
# + TimeToLive, DFSPathOffset, DFSAlternatePathOffset, NetworkAddressOffset, ServiceSiteGuid.
_REF_V3: Final = struct.Struct("<HHHHIHHH16s")
# + TimeToLive, SpecialNameOffset, NumberOfExpandedNames, ExpandedNameOffset.
_REF_V3_NAMES: Final = struct.Struct("<HHHHIHHH")
# PathConsumed, NumberOfReferrals, ReferralHeaderFlags.
_RESP_HEAD: Final = struct.Struct("<HHI")


@dataclass(slots=True)
class DfsReferral:
    """One [MS-DFSC] 2.2.5 referral entry, versions 1 to 4, decoded to strings.

    ``network_address`` is the target (\\\\server\\share[\\path]); for V1 it is
    the ShareName. Name-list entries (V3/V4 domain or DC referrals) carry
    ``special_name`` and ``expanded_names`` instead of paths.
    """

    version: int
    server_type: int = 0
    referral_entry_flags: int = 0
    time_to_live: int = 0
    dfs_path: str = ""
    dfs_alternate_path: str = ""
    network_address: str = ""
    special_name: str = ""
    expanded_names: list[str] = field(default_factory=list)

    @property
    def is_name_list(self) -> bool:
        return self.version >= 3 and bool(
            self.referral_entry_flags & ReferralEntryFlags.NameListReferral
        )

    def fixed_size(self) -> int:
        if self.version == 1:
            return _REF_COMMON.size + len(_cstr(self.network_address))
        if self.version == 2:
            return _REF_V2.size
        return _REF_V3_NAMES.size if self.is_name_list else _REF_V3.size


@dataclass(slots=True)
class RespGetDfsReferral:
    """[MS-DFSC] 2.2.4 RESP_GET_DFS_REFERRAL, the output of FSCTL_DFS_GET_REFERRALS.

    ``path_consumed`` counts bytes (not characters) of the request path that
    the referral matched.
    """

    path_consumed: int
    referrals: list[DfsReferral] = field(default_factory=list)
    referral_header_flags: int = 0

    def encode(self) -> bytes:
        """Entries first, then one string area, as Windows and Samba lay it out."""
        sizes = [r.fixed_size() for r in self.referrals]
        strings = bytearray()
        entries: list[bytes] = []
        string_base = _RESP_HEAD.size + sum(sizes)
        pos = _RESP_HEAD.size
        for r, size in zip(self.referrals, sizes, strict=True):
            def put(s: str, pos: int = pos) -> int:
                off = string_base + len(strings) - pos
                strings.extend(_cstr(s))
                return off

            if r.version == 1:
                entries.append(_REF_COMMON.pack(1, size, r.server_type, r.referral_entry_flags)
                               + _cstr(r.network_address))
            elif r.version == 2:
                entries.append(_REF_V2.pack(
                    2, size, r.server_type, r.referral_entry_flags, 0, r.time_to_live,
                    put(r.dfs_path), put(r.dfs_alternate_path), put(r.network_address)))
            elif r.is_name_list:
                special = put(r.special_name)
                expanded = string_base + len(strings) - pos
                for name in r.expanded_names:
                    strings.extend(_cstr(name))
                entries.append(_REF_V3_NAMES.pack(
                    r.version, size, r.server_type, r.referral_entry_flags, r.time_to_live,
                    special, len(r.expanded_names), expanded))
            else:
                entries.append(_REF_V3.pack(
                    r.version, size, r.server_type, r.referral_entry_flags, r.time_to_live,
                    put(r.dfs_path), put(r.dfs_alternate_path), put(r.network_address),
                    bytes(16)))
            pos += size
        return (_RESP_HEAD.pack(self.path_consumed, len(self.referrals),
                                self.referral_header_flags)
                + b"".join(entries) + bytes(strings))

    @classmethod
    def decode(cls, buf: Buffer) -> RespGetDfsReferral:
        consumed, count, header_flags = unpack(_RESP_HEAD, buf, 0, "RESP_GET_DFS_REFERRAL")
        strings = _CStrings(buf)
        referrals: list[DfsReferral] = []
        pos = _RESP_HEAD.size
        for _ in range(count):
            version, size, server_type, flags = unpack(_REF_COMMON, buf, pos,
                                                       "DFS_REFERRAL entry")
            need(buf, pos, size, f"DFS_REFERRAL_V{version}")
            ref = DfsReferral(version, server_type, flags)
            what = f"DFS_REFERRAL_V{version}"
            if version == 1:
                # The ShareName is inline: it must end inside the entry, which
                # also keeps the total decoding work linear in the buffer.
                ref.network_address, end = strings.scan(pos + _REF_COMMON.size,
                                                        what + " ShareName")
                if end > pos + size:
                    raise DecodeError(f"{what}: ShareName runs past the entry's Size")
            elif version == 2:
                _check_entry_size(size, _REF_V2.size, what)
                (*_h, _prox, ttl, p_off, a_off, n_off) = _REF_V2.unpack_from(buf, pos)
                ref.time_to_live = ttl
                ref.dfs_path = strings.at(pos + p_off, what + " DFSPath")
                ref.dfs_alternate_path = strings.at(pos + a_off, what + " DFSAlternatePath")
                ref.network_address = strings.at(pos + n_off, what + " NetworkAddress")
            elif version in (3, 4):
                if ref.is_name_list:
                    _check_entry_size(size, _REF_V3_NAMES.size, what)
                    (*_h, ttl, s_off, n_names, e_off) = _REF_V3_NAMES.unpack_from(buf, pos)
                    ref.time_to_live = ttl
                    ref.special_name = strings.at(pos + s_off, what + " SpecialName")
                    ref.expanded_names = strings.run(pos + e_off, n_names,
                                                     what + " ExpandedName")
                else:
                    _check_entry_size(size, _REF_V3.size, what)
                    (*_h, ttl, p_off, a_off, n_off, _guid) = _REF_V3.unpack_from(buf, pos)
                    ref.time_to_live = ttl
                    ref.dfs_path = strings.at(pos + p_off, what + " DFSPath")
                    ref.dfs_alternate_path = strings.at(pos + a_off,
                                                        what + " DFSAlternatePath")
                    ref.network_address = strings.at(pos + n_off, what + " NetworkAddress")
            else:
                raise DecodeError(f"DFS referral: unknown VersionNumber {version}")
            referrals.append(ref)
            # [MS-DFSC] 2.2.5: the next entry is at this one's offset + Size.
            if size == 0:
                raise DecodeError("DFS referral: entry Size 0")
            pos += size
        return cls(consumed, referrals, header_flags)


def _check_entry_size(size: int, minimum: int, what: str) -> None:
    if size < minimum:
        raise DecodeError(f"{what}: Size {size} smaller than the {minimum}-byte entry")
