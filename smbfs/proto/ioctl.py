"""SMB2 IOCTL ([MS-SMB2] 2.2.31, 2.2.32): the envelope of every FSCTL.

The control codes and the payload structures carried in the input and
output buffers live in :mod:`smbfs.proto.fsctl`; here they are raw buffers
(the caller's buffer on the way out, memoryviews into the received message
on the way in).
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
    align,
    checked_structure_size,
    optional_buffer,
    pad_to,
    unpack,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import RELATED, FileId
from smbfs.proto.message import Message


class IoctlFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.31 Flags: 0 for a device IOCTL, 1 for an FSCTL."""

    SMB2_0_IOCTL_IS_IOCTL = 0x00000000
    SMB2_0_IOCTL_IS_FSCTL = 0x00000001


SMB2_0_IOCTL_IS_FSCTL: Final = 0x00000001

# StructureSize, Reserved, CtlCode, FileId, InputOffset, InputCount,
# MaxInputResponse, OutputOffset, OutputCount, MaxOutputResponse, Flags, Reserved2.
_IOCTL_REQ: Final = struct.Struct("<HHI16sIIIIIIII")
IOCTL_REQUEST_BUFFER_OFFSET: Final = SMB2_HEADER_SIZE + _IOCTL_REQ.size  # 0x78
# StructureSize, Reserved, CtlCode, FileId, InputOffset, InputCount,
# OutputOffset, OutputCount, Flags, Reserved2.
_IOCTL_RSP: Final = struct.Struct("<HHI16sIIIIII")
IOCTL_RESPONSE_BUFFER_OFFSET: Final = SMB2_HEADER_SIZE + _IOCTL_RSP.size  # 0x70


@dataclass(slots=True)
class IoctlRequest(Message):
    """[MS-SMB2] 2.2.31.

    ``file_id`` is ignored by the server for FSCTL_DFS_GET_REFERRALS,
    FSCTL_PIPE_WAIT and FSCTL_VALIDATE_NEGOTIATE_INFO, where the all-ones
    value is conventional, hence the default. ``max_output_response`` bounds
    what the server may return and so the credits it costs.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_IOCTL
    STRUCTURE_SIZE: ClassVar[int] = 57

    ctl_code: int
    file_id: FileId = RELATED
    input: Buffer = field(default=b"")
    max_input_response: int = 0
    max_output_response: int = 65536
    flags: int = SMB2_0_IOCTL_IS_FSCTL

    def encode_parts(self) -> list[Buffer]:
        n = len(self.input)
        fixed = _IOCTL_REQ.pack(
            self.STRUCTURE_SIZE, 0, self.ctl_code, self.file_id.encode(),
            IOCTL_REQUEST_BUFFER_OFFSET if n else 0, n, self.max_input_response,
            0, 0, self.max_output_response, self.flags, 0,
        )
        # Windows and Samba accept an empty Buffer here, but one zero byte keeps
        # every odd-StructureSize request alike (see READ, 2.2.19).
        return [fixed, self.input] if n else [fixed, b"\x00"]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, _r, ctl_code, _fid, in_off, in_count, max_in, _out_off, _out_count, max_out,
         flags, _r2) = unpack(_IOCTL_REQ, msg, SMB2_HEADER_SIZE, "IOCTL request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "IOCTL request")
        return cls(
            ctl_code=ctl_code, file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 8),
            input=optional_buffer(msg, in_off, in_count, "IOCTL request input"),
            max_input_response=max_in, max_output_response=max_out, flags=flags,
        )


@dataclass(slots=True)
class IoctlResponse(Message):
    """[MS-SMB2] 2.2.32.

    ``output`` is the FSCTL's result; ``input`` is normally empty (only
    pass-through operations echo input back, 3.3.5.15.8). Both are
    memoryviews into the received message when decoded.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_IOCTL
    STRUCTURE_SIZE: ClassVar[int] = 49

    ctl_code: int
    file_id: FileId = RELATED
    output: Buffer = field(default=b"")
    input: Buffer = field(default=b"")
    flags: int = 0

    def encode_parts(self) -> list[Buffer]:
        n_in, n_out = len(self.input), len(self.output)
        in_off = IOCTL_RESPONSE_BUFFER_OFFSET
        # "the output offset MUST be set to InputOffset + InputCount rounded
        # up to a multiple of 8" (2.2.32).
        out_off = align(in_off + n_in, 8) if n_out else 0
        fixed = _IOCTL_RSP.pack(
            self.STRUCTURE_SIZE, 0, self.ctl_code, self.file_id.encode(), in_off, n_in,
            out_off, n_out, self.flags, 0,
        )
        parts: list[Buffer] = [fixed]
        if n_in:
            parts.append(self.input)
        if n_out:
            parts.append(bytes(pad_to(in_off + n_in, 8)))
            parts.append(self.output)
        return parts

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, _r, ctl_code, _fid, in_off, in_count, out_off, out_count, flags,
         _r2) = unpack(_IOCTL_RSP, msg, SMB2_HEADER_SIZE, "IOCTL response")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "IOCTL response")
        for what, off, count in (("Input", in_off, in_count), ("Output", out_off, out_count)):
            if count and off < IOCTL_RESPONSE_BUFFER_OFFSET:
                raise DecodeError(f"IOCTL response: {what}Offset {off} overlaps the header")
        mv = memoryview(msg)
        out = optional_buffer(msg, out_off, out_count, "IOCTL response output")
        inp = optional_buffer(msg, in_off, in_count, "IOCTL response input")
        return cls(
            ctl_code=ctl_code, file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 8),
            output=out if out_count else mv[0:0], input=inp if in_count else mv[0:0],
            flags=flags,
        )
