"""[MS-SMB2] 2.2.14.1 SMB2_FILEID: the handle of an open on the wire.

Hashable and immutable so that the engine can key its open and lease
tables by it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from smbfs.proto.codec import Buffer, unpack

_FILEID: Final = struct.Struct("<QQ")
FILEID_SIZE: Final = _FILEID.size  # 16


@dataclass(frozen=True, slots=True)
class FileId:
    """Persistent and Volatile halves of an open's identifier."""

    persistent: int
    volatile: int

    SIZE: ClassVar[int] = FILEID_SIZE

    def encode(self) -> bytes:
        return _FILEID.pack(self.persistent, self.volatile)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> FileId:
        persistent, volatile = unpack(_FILEID, buf, offset, "SMB2_FILEID")
        return cls(persistent, volatile)

    @property
    def is_related(self) -> bool:
        return self == RELATED


# "The file opened by the previous request" in a related compound: every bit
# of both halves set ([MS-SMB2] 3.2.4.1.4).
RELATED: Final = FileId(0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
