"""File information classes ([MS-FSCC] 2.4) carried by SMB2 QUERY_INFO and
SET_INFO (InfoType SMB2_0_INFO_FILE).

Each class is a dataclass whose ``encode()`` gives exactly the OutputBuffer /
Buffer bytes and whose ``decode(buf, offset=0)`` reads them back, raising only
:class:`DecodeError`. Times are raw FILETIME integers (see
:mod:`smbfs.proto.fscc.time` for conversions) so values round-trip exactly,
including the special 0 / -1 / -2 of SET_INFO. Sizes that MS-FSCC defines as
signed LARGE_INTEGER / LONGLONG are signed here too.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import Buffer, DecodeError, unpack, utf16
from smbfs.proto.fscc._util import chain, name16, next_offset
from smbfs.proto.fscc.attributes import FileInformationClass as FIC

__all__ = [
    "FILE_DISPOSITION_DELETE",
    "FILE_DISPOSITION_DO_NOT_DELETE",
    "FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK",
    "FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE",
    "FILE_DISPOSITION_ON_CLOSE",
    "FILE_DISPOSITION_POSIX_SEMANTICS",
    "FileAccessInformation",
    "FileAlignmentInformation",
    "FileAllInformation",
    "FileAllocationInformation",
    "FileAttributeTagInformation",
    "FileBasicInformation",
    "FileDispositionInformation",
    "FileDispositionInformationEx",
    "FileEaInformation",
    "FileEndOfFileInformation",
    "FileInternalInformation",
    "FileLinkInformation",
    "FileModeFlags",
    "FileModeInformation",
    "FileNameInformation",
    "FileNetworkOpenInformation",
    "FilePositionInformation",
    "FileRenameInformation",
    "FileStandardInformation",
    "FileStreamEntry",
    "FileStreamInformation",
]


# --------------------------------------------------------------------------
# Fixed-size classes


@dataclass(slots=True)
class FileBasicInformation:
    """[MS-FSCC] 2.4.7 FILE_BASIC_INFORMATION (40 bytes): the four times and
    the attributes. In SET_INFO a time of 0 leaves it unchanged, and
    FileAttributes 0 leaves the attributes unchanged."""

    INFO_CLASS: ClassVar[int] = FIC.FileBasicInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<qqqqII")
    SIZE: ClassVar[int] = 40

    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    file_attributes: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(
            self.creation_time, self.last_access_time, self.last_write_time,
            self.change_time, self.file_attributes, 0,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        c, a, w, ch, attrs, _ = unpack(cls._ST, buf, offset, "FileBasicInformation")
        return cls(c, a, w, ch, attrs)


@dataclass(slots=True)
class FileStandardInformation:
    """[MS-FSCC] 2.4.45 FILE_STANDARD_INFORMATION (24 bytes)."""

    INFO_CLASS: ClassVar[int] = FIC.FileStandardInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<qqIBBH")
    SIZE: ClassVar[int] = 24

    allocation_size: int = 0
    end_of_file: int = 0
    number_of_links: int = 0
    delete_pending: bool = False
    directory: bool = False

    def encode(self) -> bytes:
        return self._ST.pack(
            self.allocation_size, self.end_of_file, self.number_of_links,
            int(self.delete_pending), int(self.directory), 0,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        alloc, eof, links, dp, d, _ = unpack(cls._ST, buf, offset, "FileStandardInformation")
        return cls(alloc, eof, links, dp != 0, d != 0)


@dataclass(slots=True)
class FileNetworkOpenInformation:
    """[MS-FSCC] 2.4.33 FILE_NETWORK_OPEN_INFORMATION (56 bytes): everything
    ``stat`` needs in one round trip (times, sizes, attributes)."""

    INFO_CLASS: ClassVar[int] = FIC.FileNetworkOpenInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<qqqqqqII")
    SIZE: ClassVar[int] = 56

    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(
            self.creation_time, self.last_access_time, self.last_write_time,
            self.change_time, self.allocation_size, self.end_of_file,
            self.file_attributes, 0,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        v = unpack(cls._ST, buf, offset, "FileNetworkOpenInformation")
        return cls(*v[:7])


class _OneField:
    """Base for the classes that are a single integer field: one struct, one
    attribute, so each subclass is three lines and cannot get the size wrong."""

    __slots__ = ()
    _ST: ClassVar[struct.Struct]
    _FIELD: ClassVar[str]

    def encode(self) -> bytes:
        return self._ST.pack(getattr(self, self._FIELD))

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        (v,) = unpack(cls._ST, buf, offset, cls.__name__)
        return cls(v)  # type: ignore[call-arg]


@dataclass(slots=True)
class FileInternalInformation(_OneField):
    """[MS-FSCC] 2.4.26 FILE_INTERNAL_INFORMATION: IndexNumber, the file's
    64-bit id on the volume (the inode number candidate)."""

    INFO_CLASS: ClassVar[int] = FIC.FileInternalInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<Q")
    _FIELD: ClassVar[str] = "index_number"
    SIZE: ClassVar[int] = 8
    index_number: int = 0


@dataclass(slots=True)
class FileEaInformation(_OneField):
    """[MS-FSCC] FILE_EA_INFORMATION: EaSize, the bytes the file's EAs need."""

    INFO_CLASS: ClassVar[int] = FIC.FileEaInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<I")
    _FIELD: ClassVar[str] = "ea_size"
    SIZE: ClassVar[int] = 4
    ea_size: int = 0


@dataclass(slots=True)
class FileAccessInformation(_OneField):
    """[MS-FSCC] FILE_ACCESS_INFORMATION: the access mask granted to the open."""

    INFO_CLASS: ClassVar[int] = FIC.FileAccessInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<I")
    _FIELD: ClassVar[str] = "access_flags"
    SIZE: ClassVar[int] = 4
    access_flags: int = 0


@dataclass(slots=True)
class FilePositionInformation(_OneField):
    """[MS-FSCC] FILE_POSITION_INFORMATION: CurrentByteOffset (signed)."""

    INFO_CLASS: ClassVar[int] = FIC.FilePositionInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<q")
    _FIELD: ClassVar[str] = "current_byte_offset"
    SIZE: ClassVar[int] = 8
    current_byte_offset: int = 0


class FileModeFlags(enum.IntFlag):
    """[MS-FSCC] FileModeInformation Mode bits (a subset of CreateOptions)."""

    FILE_WRITE_THROUGH = 0x00000002
    FILE_SEQUENTIAL_ONLY = 0x00000004
    FILE_NO_INTERMEDIATE_BUFFERING = 0x00000008
    FILE_SYNCHRONOUS_IO_ALERT = 0x00000010
    FILE_SYNCHRONOUS_IO_NONALERT = 0x00000020
    FILE_DELETE_ON_CLOSE = 0x00001000


@dataclass(slots=True)
class FileModeInformation(_OneField):
    """[MS-FSCC] FILE_MODE_INFORMATION: Mode (FileModeFlags)."""

    INFO_CLASS: ClassVar[int] = FIC.FileModeInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<I")
    _FIELD: ClassVar[str] = "mode"
    SIZE: ClassVar[int] = 4
    mode: int = 0


@dataclass(slots=True)
class FileAlignmentInformation(_OneField):
    """[MS-FSCC] FILE_ALIGNMENT_INFORMATION: AlignmentRequirement."""

    INFO_CLASS: ClassVar[int] = FIC.FileAlignmentInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<I")
    _FIELD: ClassVar[str] = "alignment_requirement"
    SIZE: ClassVar[int] = 4
    alignment_requirement: int = 0


@dataclass(slots=True)
class FileEndOfFileInformation(_OneField):
    """[MS-FSCC] FILE_END_OF_FILE_INFORMATION (SET_INFO): truncate/extend."""

    INFO_CLASS: ClassVar[int] = FIC.FileEndOfFileInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<q")
    _FIELD: ClassVar[str] = "end_of_file"
    SIZE: ClassVar[int] = 8
    end_of_file: int = 0


@dataclass(slots=True)
class FileAllocationInformation(_OneField):
    """[MS-FSCC] FILE_ALLOCATION_INFORMATION (SET_INFO): preallocation."""

    INFO_CLASS: ClassVar[int] = FIC.FileAllocationInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<q")
    _FIELD: ClassVar[str] = "allocation_size"
    SIZE: ClassVar[int] = 8
    allocation_size: int = 0


@dataclass(slots=True)
class FileDispositionInformation:
    """[MS-FSCC] FILE_DISPOSITION_INFORMATION (1 byte): DeletePending set
    marks the open file for deletion when the last handle closes."""

    INFO_CLASS: ClassVar[int] = FIC.FileDispositionInformation
    SIZE: ClassVar[int] = 1

    delete_pending: bool = True

    def encode(self) -> bytes:
        return b"\x01" if self.delete_pending else b"\x00"

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        if offset < 0 or offset >= len(buf):
            raise DecodeError("FileDispositionInformation: needs 1 byte")
        return cls(buf[offset] != 0)


# [MS-FSCC] FileDispositionInformationEx Flags.
FILE_DISPOSITION_DO_NOT_DELETE: Final = 0x00000000
FILE_DISPOSITION_DELETE: Final = 0x00000001
FILE_DISPOSITION_POSIX_SEMANTICS: Final = 0x00000002
FILE_DISPOSITION_FORCE_IMAGE_SECTION_CHECK: Final = 0x00000004
FILE_DISPOSITION_ON_CLOSE: Final = 0x00000008
FILE_DISPOSITION_IGNORE_READONLY_ATTRIBUTE: Final = 0x00000010


@dataclass(slots=True)
class FileDispositionInformationEx(_OneField):
    """[MS-FSCC] FILE_DISPOSITION_INFORMATION_EX: Flags. POSIX_SEMANTICS
    removes the name at once while open handles keep the data (unlink of an
    open file), where plain delete-pending hides nothing until last close."""

    INFO_CLASS: ClassVar[int] = FIC.FileDispositionInformationEx
    _ST: ClassVar[struct.Struct] = struct.Struct("<I")
    _FIELD: ClassVar[str] = "flags"
    SIZE: ClassVar[int] = 4
    flags: int = FILE_DISPOSITION_DELETE


@dataclass(slots=True)
class FileAttributeTagInformation:
    """[MS-FSCC] FILE_ATTRIBUTE_TAG_INFORMATION (8 bytes): attributes and,
    for a reparse point, its ReparseTag (symlink? NFS special file?)."""

    INFO_CLASS: ClassVar[int] = FIC.FileAttributeTagInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = 8

    file_attributes: int = 0
    reparse_tag: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(self.file_attributes, self.reparse_tag)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        a, t = unpack(cls._ST, buf, offset, "FileAttributeTagInformation")
        return cls(a, t)


# --------------------------------------------------------------------------
# Classes with a name

_U32: Final = struct.Struct("<I")


@dataclass(slots=True)
class FileNameInformation:
    """[MS-FSCC] FILE_NAME_INFORMATION: FileNameLength then a UTF-16 name
    (the path from the share root, with a leading backslash)."""

    INFO_CLASS: ClassVar[int] = FIC.FileNameInformation

    file_name: str = ""

    def encode(self) -> bytes:
        name = utf16(self.file_name)
        return _U32.pack(len(name)) + name

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        (n,) = unpack(_U32, buf, offset, "FileNameInformation")
        return cls(name16(buf, offset + 4, n, "FileNameInformation"))


_RENAME: Final = struct.Struct("<B7xQI")
# Windows insists on at least sizeof(FILE_RENAME_INFORMATION) (a one-WCHAR
# name array padded to 8) even for a name shorter than that.
_RENAME_MIN: Final = 24


@dataclass(slots=True)
class FileRenameInformation:
    """[MS-FSCC] 2.4.42.2 (2.4.41.2 in older texts) FileRenameInformation for
    SMB2: FILE_RENAME_INFORMATION_TYPE_2 with an 8-byte RootDirectory, which
    MUST be 0 on the network. FileName is the full target path from the share
    root, without a leading backslash."""

    INFO_CLASS: ClassVar[int] = FIC.FileRenameInformation

    file_name: str = ""
    replace_if_exists: bool = False
    root_directory: int = 0

    def encode(self) -> bytes:
        name = utf16(self.file_name)
        out = _RENAME.pack(int(self.replace_if_exists), self.root_directory, len(name)) + name
        if len(out) < _RENAME_MIN:
            out += bytes(_RENAME_MIN - len(out))
        return out

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = cls.__name__
        rep, root, n = unpack(_RENAME, buf, offset, what)
        name = name16(buf, offset + _RENAME.size, n, what)
        return cls(name, rep != 0, root)


@dataclass(slots=True)
class FileLinkInformation(FileRenameInformation):
    """[MS-FSCC] FileLinkInformation for SMB2 (FILE_LINK_INFORMATION_TYPE_2):
    the same layout as the SMB2 rename form; creates a hard link."""

    INFO_CLASS: ClassVar[int] = FIC.FileLinkInformation


_ALL_FIXED: Final = struct.Struct("<qqqqII" "qqIBBH" "Q" "I" "I" "q" "I" "I" "I")
assert _ALL_FIXED.size == 100


@dataclass(slots=True)
class FileAllInformation:
    """[MS-FSCC] 2.4.2 FILE_ALL_INFORMATION: Basic, Standard, Internal, Ea,
    Access, Position, Mode, Alignment and Name information back to back (no
    padding between them), decoded with one struct for the fixed 100 bytes."""

    INFO_CLASS: ClassVar[int] = FIC.FileAllInformation

    basic: FileBasicInformation = field(default_factory=FileBasicInformation)
    standard: FileStandardInformation = field(default_factory=FileStandardInformation)
    internal: FileInternalInformation = field(default_factory=FileInternalInformation)
    ea: FileEaInformation = field(default_factory=FileEaInformation)
    access: FileAccessInformation = field(default_factory=FileAccessInformation)
    position: FilePositionInformation = field(default_factory=FilePositionInformation)
    mode: FileModeInformation = field(default_factory=FileModeInformation)
    alignment: FileAlignmentInformation = field(default_factory=FileAlignmentInformation)
    name: FileNameInformation = field(default_factory=FileNameInformation)

    def encode(self) -> bytes:
        b, s = self.basic, self.standard
        name = utf16(self.name.file_name)
        return _ALL_FIXED.pack(
            b.creation_time, b.last_access_time, b.last_write_time, b.change_time,
            b.file_attributes, 0,
            s.allocation_size, s.end_of_file, s.number_of_links,
            int(s.delete_pending), int(s.directory), 0,
            self.internal.index_number, self.ea.ea_size, self.access.access_flags,
            self.position.current_byte_offset, self.mode.mode,
            self.alignment.alignment_requirement, len(name),
        ) + name

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileAllInformation"
        (c, a, w, ch, attrs, _r1, alloc, eof, links, dp, d, _r2,
         index, ea, access, pos, mode, align_req, n) = unpack(_ALL_FIXED, buf, offset, what)
        return cls(
            FileBasicInformation(c, a, w, ch, attrs),
            FileStandardInformation(alloc, eof, links, dp != 0, d != 0),
            FileInternalInformation(index),
            FileEaInformation(ea),
            FileAccessInformation(access),
            FilePositionInformation(pos),
            FileModeInformation(mode),
            FileAlignmentInformation(align_req),
            FileNameInformation(name16(buf, offset + _ALL_FIXED.size, n, what)),
        )


# --------------------------------------------------------------------------
# FileStreamInformation: a chained list

_STREAM: Final = struct.Struct("<IIqq")


@dataclass(slots=True)
class FileStreamEntry:
    """One FILE_STREAM_INFORMATION entry: a named data stream such as
    ``::$DATA`` (the default stream) or ``:name:$DATA``."""

    stream_name: str
    stream_size: int = 0
    stream_allocation_size: int = 0


@dataclass(slots=True)
class FileStreamInformation:
    """[MS-FSCC] FILE_STREAM_INFORMATION: entries chained by NextEntryOffset,
    each 8-byte aligned."""

    INFO_CLASS: ClassVar[int] = FIC.FileStreamInformation

    entries: list[FileStreamEntry] = field(default_factory=list)

    def encode(self) -> bytes:
        parts: list[bytes] = []
        for e in self.entries:
            name = utf16(e.stream_name)
            parts.append(_STREAM.pack(0, len(name), e.stream_size, e.stream_allocation_size) + name)
        return chain(parts, 8)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileStreamInformation"
        entries: list[FileStreamEntry] = []
        n_buf = len(buf)
        if offset == n_buf:
            # An empty OutputBuffer: a directory, or a file system without
            # streams, has no entries at all.
            return cls(entries)
        pos = offset
        while pos >= 0:
            nxt, nlen, size, alloc = unpack(_STREAM, buf, pos, what)
            name = name16(buf, pos + _STREAM.size, nlen, what)
            entries.append(FileStreamEntry(name, size, alloc))
            pos = next_offset(pos, nxt, _STREAM.size + nlen, n_buf, what)
        return cls(entries)
