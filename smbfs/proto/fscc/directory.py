"""Directory enumeration classes ([MS-FSCC] 2.4, used by SMB2 QUERY_DIRECTORY).

A QUERY_DIRECTORY OutputBuffer is a list of entries chained by
NextEntryOffset (0 on the last one), each entry 8-byte aligned. ``ls -l`` on
a 10,000-entry directory decodes all of them, so the walk here is lean: one
precompiled ``struct`` per class, the name decoded straight out of the
received buffer, and no other per-entry copy.

Every class has ``decode(buf, offset=0)`` for one entry, ``decode_list(buf)``
for a whole OutputBuffer and ``encode_list(entries)`` building such a buffer
(for tests and symmetry). :func:`decode_directory_buffer` dispatches on the
FileInformationClass number.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Self, TypeVar

from smbfs.proto.codec import Buffer, DecodeError, utf16
from smbfs.proto.fscc._util import chain
from smbfs.proto.fscc.attributes import FileAttributes
from smbfs.proto.fscc.attributes import FileInformationClass as FIC

__all__ = [
    "FileBothDirectoryInformation",
    "FileDirectoryInformation",
    "FileFullDirectoryInformation",
    "FileIdBothDirectoryInformation",
    "FileIdFullDirectoryInformation",
    "FileNamesInformation",
    "decode_directory_buffer",
]

_T = TypeVar("_T")

_REPARSE_POINT: Final = int(FileAttributes.FILE_ATTRIBUTE_REPARSE_POINT)
_SHORT_NAME_MAX: Final = 24  # ShortName is a fixed 24-byte (12 WCHAR) field.


def _walk(
    buf: Buffer, st: struct.Struct, name_len_idx: int, build: Callable[[tuple, str], _T],
    what: str,
) -> list[_T]:
    """Decode every entry of a NextEntryOffset chain that starts at offset 0.

    The bounds rules are those of :func:`smbfs.proto.fscc._util.next_offset`,
    inlined because this loop is the hot path: each NextEntryOffset must clear
    the current entry (fixed part plus name), so offsets strictly increase and
    a hostile chain cannot loop or overlap.
    """
    out: list[_T] = []
    n = len(buf)
    if n == 0:
        return out
    mv = memoryview(buf)
    unpack_from = st.unpack_from
    fixed = st.size
    append = out.append
    pos = 0
    while True:
        if pos + fixed > n:
            raise DecodeError(f"{what}: entry at {pos} truncated (buffer {n} bytes)")
        t = unpack_from(mv, pos)
        nlen = t[name_len_idx]
        start = pos + fixed
        end = start + nlen
        if end > n:
            raise DecodeError(f"{what}: FileNameLength {nlen} at {pos} overruns buffer")
        if nlen & 1:
            raise DecodeError(f"{what}: odd FileNameLength {nlen}")
        append(build(t, str(mv[start:end], "utf-16-le", "surrogatepass")))
        nxt = t[0]
        if nxt == 0:
            return out
        if nxt < fixed + nlen:
            raise DecodeError(f"{what}: NextEntryOffset {nxt} does not clear the entry")
        pos += nxt
        if pos >= n:
            raise DecodeError(f"{what}: NextEntryOffset {nxt} points outside the buffer")


class _DirEntry:
    """Shared list machinery; subclasses give ``_ST``, ``_NAME_LEN_IDX``,
    ``_from_tuple`` and ``encode``."""

    __slots__ = ()
    _ST: ClassVar[struct.Struct]
    _NAME_LEN_IDX: ClassVar[int]

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def reparse_tag(self) -> int:
        """The entry's reparse tag, 0 when it is not a reparse point.

        Directory entries have no tag field: for a reparse point the server
        puts the ReparseTag in EaSize instead ([MS-FSA] 2.1.5.6.3.x), which is
        how ``readdir`` spots symlinks without opening each entry.
        """
        if getattr(self, "file_attributes", 0) & _REPARSE_POINT:
            return int(getattr(self, "ea_size", 0))
        return 0

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        """One entry at ``offset`` (its NextEntryOffset is not followed)."""
        what = cls.__name__
        st = cls._ST
        if offset < 0 or offset + st.size > len(buf):
            raise DecodeError(f"{what}: entry at {offset} truncated (buffer {len(buf)} bytes)")
        t = st.unpack_from(buf, offset)
        nlen = t[cls._NAME_LEN_IDX]
        start = offset + st.size
        if start + nlen > len(buf):
            raise DecodeError(f"{what}: FileNameLength {nlen} overruns buffer")
        if nlen & 1:
            raise DecodeError(f"{what}: odd FileNameLength {nlen}")
        name = str(memoryview(buf)[start : start + nlen], "utf-16-le", "surrogatepass")
        return cls._from_tuple(t, name)

    @classmethod
    def decode_list(cls, buf: Buffer) -> list[Self]:
        """Every entry of a QUERY_DIRECTORY OutputBuffer (empty buffer -> [])."""
        return _walk(buf, cls._ST, cls._NAME_LEN_IDX, cls._from_tuple, cls.__name__)

    @classmethod
    def encode_list(cls, entries: Sequence[Self]) -> bytes:
        return chain([e.encode() for e in entries], 8)


def _short_name(t_len: int, raw: bytes, what: str) -> str:
    if t_len > _SHORT_NAME_MAX or t_len & 1:
        raise DecodeError(f"{what}: bad ShortNameLength {t_len}")
    return raw[:t_len].decode("utf-16-le", "surrogatepass")


def _short_name_bytes(s: str) -> bytes:
    b = utf16(s)
    if len(b) > _SHORT_NAME_MAX:
        raise ValueError(f"ShortName {s!r} longer than {_SHORT_NAME_MAX} bytes")
    return b


@dataclass(slots=True)
class _StatEntry(_DirEntry):
    """What the five classes with stat data share: their leading fields,
    NextEntryOffset through FileNameLength (in that wire order, so their
    ``_ST`` formats all start with ``<IIqqqqqqII``), and the packing of that
    prefix. Each subclass adds its own trailing fields, positionally after
    these, and ``_tail`` to pack them."""

    _NAME_LEN_IDX: ClassVar[int] = 9

    file_name: str
    file_index: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    end_of_file: int = 0
    allocation_size: int = 0
    file_attributes: int = 0

    def _tail(self) -> tuple:
        """The fields that follow FileNameLength in this class's ``_ST``."""
        return ()

    def encode(self) -> bytes:
        name = utf16(self.file_name)
        return self._ST.pack(
            0, self.file_index, self.creation_time, self.last_access_time,
            self.last_write_time, self.change_time, self.end_of_file,
            self.allocation_size, self.file_attributes, len(name), *self._tail(),
        ) + name


@dataclass(slots=True)
class FileDirectoryInformation(_StatEntry):
    """[MS-FSCC] FILE_DIRECTORY_INFORMATION: times, sizes, attributes, name."""

    INFO_CLASS: ClassVar[int] = FIC.FileDirectoryInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<IIqqqqqqII")

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        return cls(name, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])


@dataclass(slots=True)
class FileFullDirectoryInformation(_StatEntry):
    """[MS-FSCC] FILE_FULL_DIR_INFORMATION: the directory form plus EaSize
    (which holds the reparse tag instead when the entry is a reparse point)."""

    INFO_CLASS: ClassVar[int] = FIC.FileFullDirectoryInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<IIqqqqqqIII")

    ea_size: int = 0

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        return cls(name, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[10])

    def _tail(self) -> tuple:
        return (self.ea_size,)


@dataclass(slots=True)
class FileIdFullDirectoryInformation(_StatEntry):
    """[MS-FSCC] FILE_ID_FULL_DIR_INFORMATION: the full form plus FileId."""

    INFO_CLASS: ClassVar[int] = FIC.FileIdFullDirectoryInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<IIqqqqqqIIIIQ")

    ea_size: int = 0
    file_id: int = 0

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        return cls(name, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[10], t[12])

    def _tail(self) -> tuple:
        return (self.ea_size, 0, self.file_id)


@dataclass(slots=True)
class FileBothDirectoryInformation(_StatEntry):
    """[MS-FSCC] FILE_BOTH_DIR_INFORMATION: the full form plus the 8.3 short
    name (ShortNameLength bytes of a fixed 24-byte field)."""

    INFO_CLASS: ClassVar[int] = FIC.FileBothDirectoryInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<IIqqqqqqIIIBB24s")

    ea_size: int = 0
    short_name: str = ""

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        short = _short_name(t[11], t[13], cls.__name__) if t[11] else ""
        return cls(name, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[10], short)

    def _tail(self) -> tuple:
        short = _short_name_bytes(self.short_name)
        return (self.ea_size, len(short), 0, short)


@dataclass(slots=True)
class FileIdBothDirectoryInformation(_StatEntry):
    """[MS-FSCC] FILE_ID_BOTH_DIR_INFORMATION: the both form plus FileId, the
    class smbfs uses for readdir (one request yields names, stat data and
    the inode candidate)."""

    INFO_CLASS: ClassVar[int] = FIC.FileIdBothDirectoryInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<IIqqqqqqIIIBB24sHQ")

    ea_size: int = 0
    short_name: str = ""
    file_id: int = 0

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        short = _short_name(t[11], t[13], cls.__name__) if t[11] else ""
        return cls(name, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[10], short, t[15])

    def _tail(self) -> tuple:
        short = _short_name_bytes(self.short_name)
        return (self.ea_size, len(short), 0, short, 0, self.file_id)


@dataclass(slots=True)
class FileNamesInformation(_DirEntry):
    """[MS-FSCC] FILE_NAMES_INFORMATION: names only (cheapest listing)."""

    INFO_CLASS: ClassVar[int] = FIC.FileNamesInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<III")
    _NAME_LEN_IDX: ClassVar[int] = 2

    file_name: str
    file_index: int = 0

    @classmethod
    def _from_tuple(cls, t: tuple, name: str) -> Self:
        return cls(name, t[1])

    def encode(self) -> bytes:
        name = utf16(self.file_name)
        return self._ST.pack(0, self.file_index, len(name)) + name


DirectoryEntry = (
    FileDirectoryInformation
    | FileFullDirectoryInformation
    | FileIdFullDirectoryInformation
    | FileBothDirectoryInformation
    | FileIdBothDirectoryInformation
    | FileNamesInformation
)

DIRECTORY_CLASSES: Final[dict[int, type[_DirEntry]]] = {
    c.INFO_CLASS: c
    for c in (
        FileDirectoryInformation,
        FileFullDirectoryInformation,
        FileIdFullDirectoryInformation,
        FileBothDirectoryInformation,
        FileIdBothDirectoryInformation,
        FileNamesInformation,
    )
}


def decode_directory_buffer(info_class: int, buf: Buffer) -> list[DirectoryEntry]:
    """Decode a QUERY_DIRECTORY OutputBuffer of the given information class."""
    cls = DIRECTORY_CLASSES.get(info_class)
    if cls is None:
        raise DecodeError(f"directory information class {info_class} not supported")
    return cls.decode_list(buf)  # type: ignore[return-value]
