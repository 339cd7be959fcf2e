"""SMB2_FILEID ([MS-SMB2] 2.2.14.1): the 16-byte handle of an open.

A frozen dataclass so it can key dictionaries (the engine's open table, the
FUSE layer's handle table, the lease table) and be compared by value after a
reconnect.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from smbfs.proto.codec import Buffer, unpack

_FILE_ID: Final = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class FileId:
    """``persistent`` survives a durable reconnect; ``volatile`` may change."""

    persistent: int
    volatile: int

    SIZE: ClassVar[int] = 16

    def encode(self) -> bytes:
        return _FILE_ID.pack(self.persistent, self.volatile)

    def pack_into(self, buf: bytearray | memoryview, offset: int) -> None:
        _FILE_ID.pack_into(buf, offset, self.persistent, self.volatile)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> FileId:
        persistent, volatile = unpack(_FILE_ID, buf, offset, "SMB2_FILEID")
        return cls(persistent, volatile)

    # Aliases: both spellings are in use across the tree.
    def to_bytes(self) -> bytes:
        return _FILE_ID.pack(self.persistent, self.volatile)

    @classmethod
    def from_bytes(cls, buf: Buffer, offset: int = 0) -> FileId:
        return cls.decode(buf, offset)

    @property
    def is_related(self) -> bool:
        return self.persistent == self.volatile == 0xFFFFFFFFFFFFFFFF


# Both halves all ones: "the file opened by the previous request" in a
# related compound ([MS-SMB2] 3.2.4.1.4).
RELATED: Final = FileId(0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
RELATED_FILE_ID: Final = RELATED
