"""SMB2 LOCK ([MS-SMB2] 2.2.26, 2.2.27): byte-range locks on an open."""

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
    unpack,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message
from smbfs.proto.simple import SimpleMessage


class LockFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.26.1 Flags."""

    SMB2_LOCKFLAG_SHARED_LOCK = 0x00000001
    SMB2_LOCKFLAG_EXCLUSIVE_LOCK = 0x00000002
    SMB2_LOCKFLAG_UNLOCK = 0x00000004
    SMB2_LOCKFLAG_FAIL_IMMEDIATELY = 0x00000010


# [MS-SMB2] 2.2.26.1: "the only valid combinations for the flags field".
VALID_LOCK_FLAGS: Final = frozenset({
    LockFlags.SMB2_LOCKFLAG_SHARED_LOCK,
    LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK,
    LockFlags.SMB2_LOCKFLAG_SHARED_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY,
    LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY,
    LockFlags.SMB2_LOCKFLAG_UNLOCK,
})

_ELEMENT: Final = struct.Struct("<QQII")
# StructureSize, LockCount, LockSequence, FileId.
_LOCK_REQ: Final = struct.Struct("<HHI16s")


@dataclass(frozen=True, slots=True)
class LockElement:
    """[MS-SMB2] 2.2.26.1 SMB2_LOCK_ELEMENT."""

    offset: int
    length: int
    flags: int
    SIZE: ClassVar[int] = _ELEMENT.size  # 24

    def encode(self) -> bytes:
        return _ELEMENT.pack(self.offset, self.length, self.flags, 0)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> LockElement:
        off, length, flags, _r = unpack(_ELEMENT, buf, offset, "SMB2_LOCK_ELEMENT")
        return cls(off, length, flags)


def lock_sequence(number: int, index: int) -> int:
    """Pack LockSequence: the low 4 bits are LockSequenceNumber and the upper
    28 bits LockSequenceIndex ([MS-SMB2] 2.2.26, 3.3.5.14 step 2). Index 0
    means 'no replay detection' (only resilient/durable opens use 1..64)."""
    if not 0 <= number <= 0xF or not 0 <= index <= 0x0FFFFFFF:
        raise ValueError(f"lock sequence out of range: number={number} index={index}")
    return (index << 4) | number


@dataclass(slots=True)
class LockRequest(Message):
    """[MS-SMB2] 2.2.26. StructureSize is 48 whatever the number of locks."""

    COMMAND: ClassVar[Command] = Command.SMB2_LOCK
    STRUCTURE_SIZE: ClassVar[int] = 48

    file_id: FileId
    locks: list[LockElement] = field(default_factory=list)
    lock_sequence: int = 0

    @property
    def lock_sequence_number(self) -> int:
        return self.lock_sequence & 0xF

    @property
    def lock_sequence_index(self) -> int:
        return self.lock_sequence >> 4

    def encode_parts(self) -> list[Buffer]:
        if not self.locks:
            raise ValueError("LOCK request needs at least one SMB2_LOCK_ELEMENT")
        head = _LOCK_REQ.pack(self.STRUCTURE_SIZE, len(self.locks), self.lock_sequence,
                              self.file_id.encode())
        return [head, *(e.encode() for e in self.locks)]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, count, seq, _fid = unpack(_LOCK_REQ, msg, SMB2_HEADER_SIZE, "LOCK request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "LOCK request")
        if count == 0:
            raise DecodeError("LOCK request: LockCount is 0")
        start = SMB2_HEADER_SIZE + _LOCK_REQ.size
        if start + count * LockElement.SIZE > len(msg):
            raise DecodeError(f"LOCK request: {count} locks do not fit in the message")
        locks = [LockElement.decode(msg, start + i * LockElement.SIZE) for i in range(count)]
        return cls(FileId.decode(msg, SMB2_HEADER_SIZE + 8), locks, seq)


@dataclass(slots=True)
class LockResponse(SimpleMessage):
    """[MS-SMB2] 2.2.27: StructureSize 4 and Reserved, the shared simple body."""

    COMMAND: ClassVar[Command] = Command.SMB2_LOCK
