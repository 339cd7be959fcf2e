"""SMB2 SESSION_SETUP request/response ([MS-SMB2] 2.2.5, 2.2.6).

The security buffer is an opaque GSS-API/SPNEGO token produced and consumed
by pyspnego; this layer only frames it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    checked_structure_size,
    optional_buffer,
    unpack,
)
from smbfs.proto.constants import Command
from smbfs.proto.message import Message


class SessionSetupFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.5 Flags."""

    SMB2_SESSION_FLAG_BINDING = 0x01


class SessionFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.6 SessionFlags."""

    SMB2_SESSION_FLAG_IS_GUEST = 0x0001
    SMB2_SESSION_FLAG_IS_NULL = 0x0002
    SMB2_SESSION_FLAG_ENCRYPT_DATA = 0x0004


# StructureSize, Flags, SecurityMode, Capabilities, Channel,
# SecurityBufferOffset, SecurityBufferLength, PreviousSessionId.
_REQ: Final = struct.Struct("<HBBIIHHQ")
assert _REQ.size == 24
# StructureSize, SessionFlags, SecurityBufferOffset, SecurityBufferLength.
_RESP: Final = struct.Struct("<HHHH")


@dataclass(slots=True)
class SessionSetupRequest(Message):
    """[MS-SMB2] 2.2.5 SMB2 SESSION_SETUP Request.

    ``security_mode`` is one byte here (unlike NEGOTIATE); ``channel`` MUST
    be 0 except for RDMA ([MS-SMB2] 2.2.5).
    """

    COMMAND: ClassVar[Command] = Command.SMB2_SESSION_SETUP
    STRUCTURE_SIZE: ClassVar[int] = 25

    flags: int = 0
    security_mode: int = 0
    capabilities: int = 0
    channel: int = 0
    previous_session_id: int = 0
    security_buffer: bytes = b""

    def encode_parts(self) -> list[Buffer]:
        fixed = _REQ.pack(
            self.STRUCTURE_SIZE, self.flags, self.security_mode, self.capabilities,
            self.channel, SMB2_HEADER_SIZE + _REQ.size, len(self.security_buffer),
            self.previous_session_id,
        )
        # StructureSize 25 counts one byte of Buffer: never send it empty.
        return [fixed, self.security_buffer or b"\0"]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        (size, flags, security_mode, capabilities, channel, sec_offset, sec_len,
         previous) = unpack(_REQ, msg, SMB2_HEADER_SIZE, "SESSION_SETUP request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "SESSION_SETUP request")
        sec = optional_buffer(msg, sec_offset, sec_len, "SESSION_SETUP SecurityBuffer")
        return cls(
            flags=flags, security_mode=security_mode, capabilities=capabilities,
            channel=channel, previous_session_id=previous, security_buffer=bytes(sec),
        )


@dataclass(slots=True)
class SessionSetupResponse(Message):
    """[MS-SMB2] 2.2.6 SMB2 SESSION_SETUP Response (also carried, with
    STATUS_MORE_PROCESSING_REQUIRED, by every intermediate leg)."""

    COMMAND: ClassVar[Command] = Command.SMB2_SESSION_SETUP
    STRUCTURE_SIZE: ClassVar[int] = 9

    session_flags: int = 0
    security_buffer: bytes = b""

    def encode_parts(self) -> list[Buffer]:
        fixed = _RESP.pack(
            self.STRUCTURE_SIZE, self.session_flags,
            SMB2_HEADER_SIZE + _RESP.size if self.security_buffer else 0,
            len(self.security_buffer),
        )
        return [fixed, self.security_buffer or b"\0"]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, flags, sec_offset, sec_len = unpack(
            _RESP, msg, SMB2_HEADER_SIZE, "SESSION_SETUP response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "SESSION_SETUP response")
        sec = optional_buffer(msg, sec_offset, sec_len, "SESSION_SETUP SecurityBuffer")
        return cls(session_flags=flags, security_buffer=bytes(sec))
