"""SMB2 NEGOTIATE request/response ([MS-SMB2] 2.2.3, 2.2.4) and the SMB 3.1.1
negotiate contexts (2.2.3.1.x).

Dialects, cipher, hash, signing and compression identifiers are kept as plain
ints in the decoded objects (the enums below are IntEnums, so they compare
equal): a server may announce values newer than this code, and the engine,
not the decoder, decides what is acceptable. Likewise an unknown negotiate
context type is kept as :class:`RawNegotiateContext` so it round-trips.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self, TypeVar

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    align,
    checked_structure_size,
    from_utf16,
    optional_buffer,
    pad_to,
    unpack,
    utf16,
    view,
)
from smbfs.proto.constants import Cipher, Command, Dialect, SigningAlgorithm
from smbfs.proto.message import Message


class NegotiateContextType(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1 ContextType."""

    SMB2_PREAUTH_INTEGRITY_CAPABILITIES = 0x0001
    SMB2_ENCRYPTION_CAPABILITIES = 0x0002
    SMB2_COMPRESSION_CAPABILITIES = 0x0003
    SMB2_NETNAME_NEGOTIATE_CONTEXT_ID = 0x0005
    SMB2_TRANSPORT_CAPABILITIES = 0x0006
    SMB2_RDMA_TRANSFORM_CAPABILITIES = 0x0007
    SMB2_SIGNING_CAPABILITIES = 0x0008
    SMB2_CONTEXTTYPE_RESERVED = 0x0100


class HashAlgorithm(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1.1 HashAlgorithms."""

    SHA_512 = 0x0001


class CompressionAlgorithm(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1.3 CompressionAlgorithms."""

    NONE = 0x0000
    LZNT1 = 0x0001
    LZ77 = 0x0002
    LZ77_HUFFMAN = 0x0003
    PATTERN_V1 = 0x0004
    LZ4 = 0x0005


class CompressionCapabilitiesFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.3.1.3 Flags."""

    SMB2_COMPRESSION_CAPABILITIES_FLAG_NONE = 0x00000000
    SMB2_COMPRESSION_CAPABILITIES_FLAG_CHAINED = 0x00000001


class TransportCapabilitiesFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.3.1.5 Flags."""

    SMB2_ACCEPT_TRANSPORT_LEVEL_SECURITY = 0x00000001


class RdmaTransformId(enum.IntEnum):
    """[MS-SMB2] 2.2.3.1.6 RDMATransformIds."""

    SMB2_RDMA_TRANSFORM_NONE = 0x0000
    SMB2_RDMA_TRANSFORM_ENCRYPTION = 0x0001
    SMB2_RDMA_TRANSFORM_SIGNING = 0x0002


_C = TypeVar("_C")

_U16: Final = struct.Struct("<H")
_U16X2: Final = struct.Struct("<HH")
_U32: Final = struct.Struct("<I")
# ContextType, DataLength, Reserved.
_CTX_HEADER: Final = struct.Struct("<HHI")


def _u16_list(data: memoryview, offset: int, count: int, what: str) -> list[int]:
    """``count`` little-endian u16s; bounds-checked before any allocation."""
    raw = view(data, offset, 2 * count, what)
    return list(struct.unpack(f"<{count}H", raw))


def _pack_u16_list(values: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


class NegotiateContext:
    """Base of the typed negotiate contexts: ``encode_data`` / ``decode_data``
    handle only the Data field; the 8-byte context header and the alignment
    are handled by :func:`encode_negotiate_contexts`."""

    CONTEXT_TYPE: ClassVar[int]

    @property
    def context_type(self) -> int:
        return self.CONTEXT_TYPE

    def encode_data(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        raise NotImplementedError


@dataclass(slots=True)
class PreauthIntegrityCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.1 SMB2_PREAUTH_INTEGRITY_CAPABILITIES."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_PREAUTH_INTEGRITY_CAPABILITIES

    hash_algorithms: list[int] = field(default_factory=lambda: [HashAlgorithm.SHA_512])
    salt: bytes = b""

    def encode_data(self) -> bytes:
        return (
            _U16X2.pack(len(self.hash_algorithms), len(self.salt))
            + _pack_u16_list(self.hash_algorithms)
            + self.salt
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        count, salt_len = unpack(_U16X2, data, 0, "PREAUTH_INTEGRITY_CAPABILITIES")
        algs = _u16_list(data, 4, count, "PREAUTH_INTEGRITY HashAlgorithms")
        salt = view(data, 4 + 2 * count, salt_len, "PREAUTH_INTEGRITY Salt")
        return cls(algs, bytes(salt))


@dataclass(slots=True)
class EncryptionCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.2 SMB2_ENCRYPTION_CAPABILITIES (in a response: exactly
    one cipher, or 0 meaning none in common)."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_ENCRYPTION_CAPABILITIES

    ciphers: list[int] = field(default_factory=list)

    def encode_data(self) -> bytes:
        return _U16.pack(len(self.ciphers)) + _pack_u16_list(self.ciphers)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        (count,) = unpack(_U16, data, 0, "ENCRYPTION_CAPABILITIES")
        return cls(_u16_list(data, 2, count, "ENCRYPTION_CAPABILITIES Ciphers"))


_COMPRESSION_HDR: Final = struct.Struct("<HHI")  # Count, Padding, Flags


@dataclass(slots=True)
class CompressionCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.3 SMB2_COMPRESSION_CAPABILITIES."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_COMPRESSION_CAPABILITIES

    compression_algorithms: list[int] = field(default_factory=list)
    flags: int = 0

    def encode_data(self) -> bytes:
        return _COMPRESSION_HDR.pack(
            len(self.compression_algorithms), 0, self.flags
        ) + _pack_u16_list(self.compression_algorithms)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        count, _pad, flags = unpack(_COMPRESSION_HDR, data, 0, "COMPRESSION_CAPABILITIES")
        algs = _u16_list(data, 8, count, "COMPRESSION_CAPABILITIES Algorithms")
        return cls(algs, flags)


@dataclass(slots=True)
class NetnameNegotiateContextId(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.4 SMB2_NETNAME_NEGOTIATE_CONTEXT_ID: the server name
    the client connects to, UTF-16LE without terminator, request only."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_NETNAME_NEGOTIATE_CONTEXT_ID

    net_name: str = ""

    def encode_data(self) -> bytes:
        return utf16(self.net_name)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        return cls(from_utf16(data, "NETNAME_NEGOTIATE_CONTEXT_ID"))


@dataclass(slots=True)
class TransportCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.5 SMB2_TRANSPORT_CAPABILITIES."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_TRANSPORT_CAPABILITIES

    flags: int = 0

    def encode_data(self) -> bytes:
        return _U32.pack(self.flags)

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        (flags,) = unpack(_U32, data, 0, "TRANSPORT_CAPABILITIES")
        return cls(flags)


_RDMA_HDR: Final = struct.Struct("<HHI")  # TransformCount, Reserved1, Reserved2


@dataclass(slots=True)
class RdmaTransformCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.6 SMB2_RDMA_TRANSFORM_CAPABILITIES."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_RDMA_TRANSFORM_CAPABILITIES

    rdma_transform_ids: list[int] = field(default_factory=list)

    def encode_data(self) -> bytes:
        return _RDMA_HDR.pack(len(self.rdma_transform_ids), 0, 0) + _pack_u16_list(
            self.rdma_transform_ids
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        count, _r1, _r2 = unpack(_RDMA_HDR, data, 0, "RDMA_TRANSFORM_CAPABILITIES")
        return cls(_u16_list(data, 8, count, "RDMA_TRANSFORM_CAPABILITIES Ids"))


@dataclass(slots=True)
class SigningCapabilities(NegotiateContext):
    """[MS-SMB2] 2.2.3.1.7 SMB2_SIGNING_CAPABILITIES (one algorithm in a response)."""

    CONTEXT_TYPE: ClassVar[int] = NegotiateContextType.SMB2_SIGNING_CAPABILITIES

    signing_algorithms: list[int] = field(default_factory=list)

    def encode_data(self) -> bytes:
        return _U16.pack(len(self.signing_algorithms)) + _pack_u16_list(
            self.signing_algorithms
        )

    @classmethod
    def decode_data(cls, data: memoryview) -> Self:
        (count,) = unpack(_U16, data, 0, "SIGNING_CAPABILITIES")
        return cls(_u16_list(data, 2, count, "SIGNING_CAPABILITIES Algorithms"))


@dataclass(slots=True)
class RawNegotiateContext:
    """A context type this module does not interpret (e.g. the POSIX
    extensions context 0x0100), kept byte for byte."""

    context_type: int
    data: bytes = b""

    def encode_data(self) -> bytes:
        return self.data


AnyNegotiateContext = (
    PreauthIntegrityCapabilities
    | EncryptionCapabilities
    | CompressionCapabilities
    | NetnameNegotiateContextId
    | TransportCapabilities
    | RdmaTransformCapabilities
    | SigningCapabilities
    | RawNegotiateContext
)

_CONTEXT_CLASSES: Final[dict[int, type[NegotiateContext]]] = {
    c.CONTEXT_TYPE: c
    for c in (
        PreauthIntegrityCapabilities,
        EncryptionCapabilities,
        CompressionCapabilities,
        NetnameNegotiateContextId,
        TransportCapabilities,
        RdmaTransformCapabilities,
        SigningCapabilities,
    )
}


def encode_negotiate_contexts(contexts: Sequence[AnyNegotiateContext]) -> bytes:
    """The NegotiateContextList: each context starts 8-byte aligned
    ([MS-SMB2] 2.2.3.1); the last one is not padded."""
    parts: list[bytes] = []
    for i, ctx in enumerate(contexts):
        data = ctx.encode_data()
        if len(data) > 0xFFFF:
            raise ValueError("negotiate context data longer than 65535 bytes")
        parts.append(_CTX_HEADER.pack(ctx.context_type, len(data), 0))
        parts.append(data)
        if i != len(contexts) - 1:
            parts.append(bytes(pad_to(len(data), 8)))
    return b"".join(parts)


def decode_negotiate_contexts(
    msg: memoryview, offset: int, count: int
) -> list[AnyNegotiateContext]:
    """Parse ``count`` contexts starting at ``offset`` of ``msg``. Each is
    bounds-checked before its data is read, so a count of 65535 over a short
    buffer fails on the first missing context rather than allocating."""
    if offset < SMB2_HEADER_SIZE:
        # Pointing into the SMB2 header would parse the header as contexts.
        raise DecodeError(f"NegotiateContextOffset {offset} inside the SMB2 header")
    out: list[AnyNegotiateContext] = []
    pos = offset
    for i in range(count):
        if i:
            pos = align(pos, 8)
        ctype, length, _reserved = unpack(_CTX_HEADER, msg, pos, "negotiate context")
        data = view(msg, pos + _CTX_HEADER.size, length, "negotiate context data")
        cls = _CONTEXT_CLASSES.get(ctype)
        if cls is None:
            out.append(RawNegotiateContext(ctype, bytes(data)))
        else:
            out.append(cls.decode_data(data))  # type: ignore[arg-type]
        pos += _CTX_HEADER.size + length
    return out


# StructureSize, DialectCount, SecurityMode, Reserved, Capabilities, ClientGuid,
# then 8 bytes: NegotiateContextOffset, NegotiateContextCount, Reserved2
# (3.1.1) or ClientStartTime (earlier dialects, MUST be 0).
_REQ: Final = struct.Struct("<HHHHI16sIHH")
assert _REQ.size == 36


@dataclass(slots=True)
class NegotiateRequest(Message):
    """[MS-SMB2] 2.2.3 SMB2 NEGOTIATE Request.

    The context list is written whenever ``negotiate_contexts`` is non-empty,
    and decoded only when SMB 3.1.1 is among the dialects: otherwise the
    same 8 bytes are ClientStartTime and carry no offset.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_NEGOTIATE
    STRUCTURE_SIZE: ClassVar[int] = 36

    dialects: list[int] = field(default_factory=list)
    security_mode: int = 0
    capabilities: int = 0
    client_guid: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))
    negotiate_contexts: list[AnyNegotiateContext] = field(default_factory=list)

    def encode(self) -> bytes:
        dialects = _pack_u16_list(self.dialects)
        body_len = _REQ.size + len(dialects)
        ctx_offset = 0
        ctx_bytes = b""
        padding = b""
        if self.negotiate_contexts:
            padding = bytes(pad_to(SMB2_HEADER_SIZE + body_len, 8))
            ctx_offset = SMB2_HEADER_SIZE + body_len + len(padding)
            ctx_bytes = encode_negotiate_contexts(self.negotiate_contexts)
        fixed = _REQ.pack(
            self.STRUCTURE_SIZE, len(self.dialects), self.security_mode, 0,
            self.capabilities, self.client_guid.bytes_le, ctx_offset,
            len(self.negotiate_contexts), 0,
        )
        return b"".join((fixed, dialects, padding, ctx_bytes))

    def encode_parts(self) -> list[Buffer]:
        return [self.encode()]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        msg = memoryview(msg)
        (size, dialect_count, security_mode, _r, capabilities, guid, ctx_offset,
         ctx_count, _r2) = unpack(_REQ, msg, SMB2_HEADER_SIZE, "NEGOTIATE request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "NEGOTIATE request")
        dialects = _u16_list(
            msg, SMB2_HEADER_SIZE + _REQ.size, dialect_count, "NEGOTIATE Dialects"
        )
        contexts: list[AnyNegotiateContext] = []
        if Dialect.SMB3_1_1 in dialects and ctx_count:
            contexts = decode_negotiate_contexts(msg, ctx_offset, ctx_count)
        return cls(
            dialects=dialects, security_mode=security_mode, capabilities=capabilities,
            client_guid=uuid.UUID(bytes_le=bytes(guid)), negotiate_contexts=contexts,
        )


# StructureSize, SecurityMode, DialectRevision, NegotiateContextCount/Reserved,
# ServerGuid, Capabilities, MaxTransactSize, MaxReadSize, MaxWriteSize,
# SystemTime, ServerStartTime, SecurityBufferOffset, SecurityBufferLength,
# NegotiateContextOffset/Reserved2.
_RESP: Final = struct.Struct("<HHHH16sIIIIQQHHI")
assert _RESP.size == 64


@dataclass(slots=True)
class NegotiateResponse(Message):
    """[MS-SMB2] 2.2.4 SMB2 NEGOTIATE Response.

    ``system_time`` and ``server_start_time`` are raw FILETIMEs. Contexts are
    only present (and only decoded) when ``dialect_revision`` is 3.1.1.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_NEGOTIATE
    STRUCTURE_SIZE: ClassVar[int] = 65

    security_mode: int = 0
    dialect_revision: int = 0
    server_guid: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=0))
    capabilities: int = 0
    max_transact_size: int = 0
    max_read_size: int = 0
    max_write_size: int = 0
    system_time: int = 0
    server_start_time: int = 0
    security_buffer: bytes = b""
    negotiate_contexts: list[AnyNegotiateContext] = field(default_factory=list)

    def encode(self) -> bytes:
        sec_offset = SMB2_HEADER_SIZE + _RESP.size
        body_end = sec_offset + len(self.security_buffer)
        ctx_offset = 0
        padding = b""
        ctx_bytes = b""
        if self.negotiate_contexts:
            padding = bytes(pad_to(body_end, 8))
            ctx_offset = body_end + len(padding)
            ctx_bytes = encode_negotiate_contexts(self.negotiate_contexts)
        fixed = _RESP.pack(
            self.STRUCTURE_SIZE, self.security_mode, self.dialect_revision,
            len(self.negotiate_contexts), self.server_guid.bytes_le, self.capabilities,
            self.max_transact_size, self.max_read_size, self.max_write_size,
            self.system_time, self.server_start_time,
            sec_offset if self.security_buffer else 0, len(self.security_buffer),
            ctx_offset,
        )
        return b"".join((fixed, self.security_buffer, padding, ctx_bytes))

    def encode_parts(self) -> list[Buffer]:
        return [self.encode()]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        msg = memoryview(msg)
        (size, security_mode, dialect, ctx_count, guid, capabilities, max_transact,
         max_read, max_write, system_time, start_time, sec_offset, sec_len,
         ctx_offset) = unpack(_RESP, msg, SMB2_HEADER_SIZE, "NEGOTIATE response")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "NEGOTIATE response")
        sec = optional_buffer(msg, sec_offset, sec_len, "NEGOTIATE SecurityBuffer")
        contexts: list[AnyNegotiateContext] = []
        if dialect == Dialect.SMB3_1_1 and ctx_count:
            contexts = decode_negotiate_contexts(msg, ctx_offset, ctx_count)
        return cls(
            security_mode=security_mode, dialect_revision=dialect,
            server_guid=uuid.UUID(bytes_le=bytes(guid)), capabilities=capabilities,
            max_transact_size=max_transact, max_read_size=max_read,
            max_write_size=max_write, system_time=system_time,
            server_start_time=start_time, security_buffer=bytes(sec),
            negotiate_contexts=contexts,
        )

    def find_context(self, cls_: type[_C]) -> _C | None:
        """The first context of the given class, or None."""
        for ctx in self.negotiate_contexts:
            if isinstance(ctx, cls_):
                return ctx
        return None


__all__ = [
    "AnyNegotiateContext",
    "Cipher",
    "CompressionAlgorithm",
    "CompressionCapabilities",
    "CompressionCapabilitiesFlags",
    "EncryptionCapabilities",
    "HashAlgorithm",
    "NegotiateContext",
    "NegotiateContextType",
    "NegotiateRequest",
    "NegotiateResponse",
    "NetnameNegotiateContextId",
    "PreauthIntegrityCapabilities",
    "RawNegotiateContext",
    "RdmaTransformCapabilities",
    "RdmaTransformId",
    "SigningAlgorithm",
    "SigningCapabilities",
    "TransportCapabilities",
    "decode_negotiate_contexts",
    "encode_negotiate_contexts",
]
