"""SMB2 ERROR Response ([MS-SMB2] 2.2.2), its 3.1.1 error contexts (2.2.2.1)
and the ErrorData formats of 2.2.2.2 that a client acts on.

Any command can come back as an ERROR response, so :class:`ErrorResponse`
has no COMMAND of its own: the engine decodes it whenever the header's
Status is an error that is not one of the few "error with a normal body"
cases (STATUS_MORE_PROCESSING_REQUIRED for SESSION_SETUP,
STATUS_BUFFER_OVERFLOW for QUERY_INFO/READ/IOCTL, ... see 3.3.4.4).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    checked_structure_size,
    from_utf16,
    optional_buffer,
    pad_to,
    unpack,
    utf16,
    view,
)
from smbfs.proto.message import Message


class ErrorId(enum.IntEnum):
    """[MS-SMB2] 2.2.2.1 ErrorId."""

    SMB2_ERROR_ID_DEFAULT = 0x00000000
    SMB2_ERROR_ID_SHARE_REDIRECT = 0x72645253


SYMLINK_FLAG_RELATIVE: Final = 0x00000001
SYMLINK_ERROR_TAG: Final = 0x4C4D5953  # "SYML"
IO_REPARSE_TAG_SYMLINK: Final = 0xA000000C

# StructureSize, ErrorContextCount, Reserved, ByteCount.
_ERR: Final = struct.Struct("<HBBI")
# ErrorDataLength, ErrorId.
_CTX: Final = struct.Struct("<II")
_U32: Final = struct.Struct("<I")


@dataclass(slots=True)
class ErrorContext:
    """[MS-SMB2] 2.2.2.1 SMB2 ERROR Context Response. The Share Redirect
    payload (2.2.2.2.2) is kept as raw ``data``."""

    error_id: int = ErrorId.SMB2_ERROR_ID_DEFAULT
    data: bytes = b""


@dataclass(slots=True)
class ErrorResponse(Message):
    """[MS-SMB2] 2.2.2 SMB2 ERROR Response.

    With ``error_contexts`` (3.1.1, ErrorContextCount > 0) the ErrorData is
    that 8-byte aligned array and ``error_data`` is empty; otherwise the
    ErrorData is ``error_data`` itself. ByteCount 0 is sent with the one
    padding byte the spec requires, and accepted without it.
    """

    STRUCTURE_SIZE: ClassVar[int] = 9

    error_data: bytes = b""
    error_contexts: list[ErrorContext] = field(default_factory=list)

    def encode_parts(self) -> list[Buffer]:
        if self.error_contexts:
            if len(self.error_contexts) > 0xFF:
                raise ValueError("more than 255 error contexts")
            parts: list[bytes] = []
            for i, ctx in enumerate(self.error_contexts):
                if i:
                    parts.append(bytes(pad_to(sum(map(len, parts)), 8)))
                parts.append(_CTX.pack(len(ctx.data), ctx.error_id))
                parts.append(ctx.data)
            data = b"".join(parts)
            count = len(self.error_contexts)
        else:
            data = self.error_data
            count = 0
        return [_ERR.pack(self.STRUCTURE_SIZE, count, 0, len(data)), data or b"\0"]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, count, _r, byte_count = unpack(_ERR, msg, SMB2_HEADER_SIZE, "ERROR response")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "ERROR response")
        data = view(msg, SMB2_HEADER_SIZE + _ERR.size, byte_count, "ERROR ErrorData")
        if not count:
            return cls(error_data=bytes(data))
        contexts: list[ErrorContext] = []
        pos = 0
        for i in range(count):
            if i:
                pos += pad_to(pos, 8)
            length, error_id = unpack(_CTX, data, pos, "ERROR context")
            ctx_data = view(data, pos + _CTX.size, length, "ERROR context data")
            contexts.append(ErrorContext(error_id, bytes(ctx_data)))
            pos += _CTX.size + length
        return cls(error_contexts=contexts)

    def default_data(self) -> bytes:
        """The ErrorData a status-specific format applies to: the first
        SMB2_ERROR_ID_DEFAULT context's data in 3.1.1, else ``error_data``."""
        for ctx in self.error_contexts:
            if ctx.error_id == ErrorId.SMB2_ERROR_ID_DEFAULT:
                return ctx.data
        return self.error_data

    def symlink(self) -> SymlinkErrorResponse:
        """The Symbolic Link Error Response of a STATUS_STOPPED_ON_SYMLINK."""
        return SymlinkErrorResponse.decode(self.default_data())

    def required_buffer_length(self) -> int:
        """STATUS_BUFFER_TOO_SMALL carries the minimum length as 4 bytes
        ([MS-SMB2] 2.2.2.2)."""
        (n,) = unpack(_U32, self.default_data(), 0, "ERROR required buffer length")
        return int(n)


# SymLinkLength, SymLinkErrorTag, ReparseTag, ReparseDataLength,
# UnparsedPathLength, SubstituteNameOffset, SubstituteNameLength,
# PrintNameOffset, PrintNameLength, Flags.
_SYMLINK: Final = struct.Struct("<IIIHHHHHHI")
assert _SYMLINK.size == 28


@dataclass(slots=True)
class SymlinkErrorResponse:
    """[MS-SMB2] 2.2.2.2.1 (2.2.2.1 in the 2014 text) Symbolic Link Error
    Response. ``unparsed_path_length`` is the byte length of the tail of the
    requested path that lies beyond the link (2.2.2.2.1.1); names are
    relative to the link's directory when SYMLINK_FLAG_RELATIVE is set."""

    substitute_name: str = ""
    print_name: str = ""
    unparsed_path_length: int = 0
    flags: int = 0

    @property
    def is_relative(self) -> bool:
        return bool(self.flags & SYMLINK_FLAG_RELATIVE)

    def encode(self) -> bytes:
        sub = utf16(self.substitute_name)
        prt = utf16(self.print_name)
        path_buffer = sub + prt
        return (
            _SYMLINK.pack(
                _SYMLINK.size - 4 + len(path_buffer), SYMLINK_ERROR_TAG,
                IO_REPARSE_TAG_SYMLINK, len(path_buffer) + 12, self.unparsed_path_length,
                0, len(sub), len(sub), len(prt), self.flags,
            )
            + path_buffer
        )

    @classmethod
    def decode(cls, buf: Buffer) -> Self:
        (length, tag, _reparse_tag, _reparse_len, unparsed, sub_off, sub_len, prt_off,
         prt_len, flags) = unpack(_SYMLINK, buf, 0, "Symbolic Link Error Response")
        if tag != SYMLINK_ERROR_TAG:
            raise DecodeError(f"Symbolic Link Error Response: bad tag {tag:#x}")
        if length < _SYMLINK.size - 4:
            raise DecodeError(f"Symbolic Link Error Response: SymLinkLength {length}")
        # PathBuffer runs from the end of the fixed part to SymLinkLength + 4.
        path_buffer = view(buf, _SYMLINK.size, length + 4 - _SYMLINK.size, "PathBuffer")
        return cls(
            substitute_name=from_utf16(
                optional_buffer(path_buffer, sub_off, sub_len, "SubstituteName"),
                "SubstituteName",
            ),
            print_name=from_utf16(
                optional_buffer(path_buffer, prt_off, prt_len, "PrintName"), "PrintName"
            ),
            unparsed_path_length=unparsed,
            flags=flags,
        )
