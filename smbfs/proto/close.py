"""SMB2 CLOSE request/response ([MS-SMB2] 2.2.15, 2.2.16).

With SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB the server returns the file's final
times, sizes and attributes, which lets the FUSE layer refresh its cached
attributes for free; without it those fields are zero.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import SMB2_HEADER_SIZE, Buffer, checked_structure_size, unpack
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message


class CloseFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.15 Flags."""

    SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB = 0x0001


# StructureSize, Flags, Reserved, FileId.
_REQ: Final = struct.Struct("<HHIQQ")
assert _REQ.size == 24
# StructureSize, Flags, Reserved, CreationTime, LastAccessTime, LastWriteTime,
# ChangeTime, AllocationSize, EndofFile, FileAttributes.
_RESP: Final = struct.Struct("<HHIQQQQQQI")
assert _RESP.size == 60


@dataclass(slots=True)
class CloseRequest(Message):
    """[MS-SMB2] 2.2.15 SMB2 CLOSE Request."""

    COMMAND: ClassVar[Command] = Command.SMB2_CLOSE
    STRUCTURE_SIZE: ClassVar[int] = 24

    file_id: FileId = field(default_factory=lambda: FileId(0, 0))
    flags: int = 0

    def encode_parts(self) -> list[Buffer]:
        return [
            _REQ.pack(
                self.STRUCTURE_SIZE, self.flags, 0, self.file_id.persistent,
                self.file_id.volatile,
            )
        ]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, flags, _r, persistent, volatile = unpack(
            _REQ, msg, SMB2_HEADER_SIZE, "CLOSE request"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "CLOSE request")
        return cls(file_id=FileId(persistent, volatile), flags=flags)


@dataclass(slots=True)
class CloseResponse(Message):
    """[MS-SMB2] 2.2.16 SMB2 CLOSE Response; times are raw FILETIMEs."""

    COMMAND: ClassVar[Command] = Command.SMB2_CLOSE
    STRUCTURE_SIZE: ClassVar[int] = 60

    flags: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = 0

    @property
    def has_attributes(self) -> bool:
        """True when the server filled in the post-query fields."""
        return bool(self.flags & CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)

    def encode_parts(self) -> list[Buffer]:
        return [
            _RESP.pack(
                self.STRUCTURE_SIZE, self.flags, 0, self.creation_time,
                self.last_access_time, self.last_write_time, self.change_time,
                self.allocation_size, self.end_of_file, self.file_attributes,
            )
        ]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        (size, flags, _r, ctime, atime, wtime, chtime, alloc, eof, attrs) = unpack(
            _RESP, msg, SMB2_HEADER_SIZE, "CLOSE response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "CLOSE response")
        return cls(
            flags=flags, creation_time=ctime, last_access_time=atime,
            last_write_time=wtime, change_time=chtime, allocation_size=alloc,
            end_of_file=eof, file_attributes=attrs,
        )
