"""Reparse point data ([MS-FSCC] 2.1.2): symbolic links, mount points, and
the tags Samba and Windows use for special files.

FSCTL_GET_REPARSE_POINT returns a REPARSE_DATA_BUFFER; :func:`decode_reparse`
gives a :class:`SymbolicLinkReparseBuffer` or :class:`MountPointReparseBuffer`
when the tag is understood and a generic :class:`ReparseDataBuffer` (raw
DataBuffer kept) for everything else, including IO_REPARSE_TAG_NFS and the
WSL LX_* tags whose payload the FUSE layer may interpret itself.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, Self

from smbfs.proto.codec import Buffer, DecodeError, need, unpack, utf16
from smbfs.proto.fscc._util import name16

__all__ = [
    "SYMLINK_FLAG_RELATIVE",
    "MountPointReparseBuffer",
    "NfsSpecFileType",
    "ReparseDataBuffer",
    "ReparseTag",
    "SymbolicLinkReparseBuffer",
    "decode_reparse",
    "is_microsoft_tag",
]


class ReparseTag(enum.IntEnum):
    """[MS-FSCC] 2.1.2.1 Reparse Tags (those a client is likely to meet)."""

    IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
    IO_REPARSE_TAG_HSM = 0xC0000004
    IO_REPARSE_TAG_DRIVE_EXTENDER = 0x80000005
    IO_REPARSE_TAG_HSM2 = 0x80000006
    IO_REPARSE_TAG_SIS = 0x80000007
    IO_REPARSE_TAG_WIM = 0x80000008
    IO_REPARSE_TAG_CSV = 0x80000009
    IO_REPARSE_TAG_DFS = 0x8000000A
    IO_REPARSE_TAG_SYMLINK = 0xA000000C
    IO_REPARSE_TAG_DFSR = 0x80000012
    IO_REPARSE_TAG_DEDUP = 0x80000013
    IO_REPARSE_TAG_NFS = 0x80000014
    IO_REPARSE_TAG_LX_SYMLINK = 0xA000001D
    IO_REPARSE_TAG_AF_UNIX = 0x80000023
    IO_REPARSE_TAG_LX_FIFO = 0x80000024
    IO_REPARSE_TAG_LX_CHR = 0x80000025
    IO_REPARSE_TAG_LX_BLK = 0x80000026


class NfsSpecFileType(enum.IntEnum):
    """[MS-FSCC] 2.1.2.6 Network File System (NFS) Reparse Data Buffer Type:
    the first 8 bytes of an IO_REPARSE_TAG_NFS DataBuffer (ASCII tags)."""

    NFS_SPECFILE_LNK = 0x00000000014B4E4C
    NFS_SPECFILE_CHR = 0x0000000000524843
    NFS_SPECFILE_BLK = 0x00000000004B4C42
    NFS_SPECFILE_FIFO = 0x000000004F464946
    NFS_SPECFILE_SOCK = 0x000000004B434F53


# [MS-FSCC] 2.1.2.4: SubstituteName is relative to the link's directory.
SYMLINK_FLAG_RELATIVE: Final = 0x00000001

_HEADER: Final = struct.Struct("<IHH")
_GUID_SIZE: Final = 16
_NAMES: Final = struct.Struct("<HHHH")
_SYMLINK: Final = struct.Struct("<HHHHI")


def is_microsoft_tag(tag: int) -> bool:
    """Bit 31 set: a Microsoft tag, whose buffer has no ReparseGuid ([MS-FSCC]
    2.1.2.2 versus 2.1.2.3)."""
    return bool(tag & 0x80000000)


@dataclass(slots=True)
class ReparseDataBuffer:
    """[MS-FSCC] 2.1.2.2 REPARSE_DATA_BUFFER (or 2.1.2.3 REPARSE_GUID_DATA_BUFFER
    when the tag is not Microsoft's and ``reparse_guid`` is then 16 bytes)."""

    reparse_tag: int
    data: bytes = b""
    reparse_guid: bytes | None = None

    def encode(self) -> bytes:
        guid = b""
        if not is_microsoft_tag(self.reparse_tag):
            guid = self.reparse_guid if self.reparse_guid is not None else bytes(_GUID_SIZE)
            if len(guid) != _GUID_SIZE:
                raise ValueError("ReparseGuid must be 16 bytes")
        return _HEADER.pack(self.reparse_tag, len(self.data), 0) + guid + self.data

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "REPARSE_DATA_BUFFER"
        tag, n, _ = unpack(_HEADER, buf, offset, what)
        pos = offset + _HEADER.size
        guid = None
        if not is_microsoft_tag(tag):
            need(buf, pos, _GUID_SIZE, what)
            guid = bytes(buf[pos : pos + _GUID_SIZE])
            pos += _GUID_SIZE
        need(buf, pos, n, what)
        return cls(tag, bytes(buf[pos : pos + n]), guid)

    @property
    def nfs_type(self) -> int | None:
        """For IO_REPARSE_TAG_NFS, the 64-bit NfsSpecFileType; else None."""
        if self.reparse_tag != ReparseTag.IO_REPARSE_TAG_NFS or len(self.data) < 8:
            return None
        return int.from_bytes(self.data[:8], "little")


def _names(data: memoryview, base: int, so: int, sl: int, po: int, pl: int, what: str
           ) -> tuple[str, str]:
    """SubstituteName and PrintName from (offset, length) pairs relative to the
    start of PathBuffer (``base`` within ``data``)."""
    path_len = len(data) - base
    if so + sl > path_len or po + pl > path_len:
        raise DecodeError(f"{what}: name outside PathBuffer")
    return (
        name16(data, base + so, sl, what),
        name16(data, base + po, pl, what),
    )


def _path_buffer(substitute: bytes, printable: bytes, nul: bool) -> tuple[bytes, int, int]:
    """PathBuffer with SubstituteName first then PrintName; returns the buffer
    and the two offsets. Mount points carry NUL terminators that the lengths
    do not count; symlinks do not."""
    term = b"\x00\x00" if nul else b""
    path = substitute + term + printable + term
    return path, 0, len(substitute) + len(term)


@dataclass(slots=True)
class SymbolicLinkReparseBuffer:
    """[MS-FSCC] 2.1.2.4 Symbolic Link Reparse Data Buffer."""

    substitute_name: str
    print_name: str = ""
    flags: int = 0

    @property
    def relative(self) -> bool:
        return bool(self.flags & SYMLINK_FLAG_RELATIVE)

    def encode(self) -> bytes:
        s, p = utf16(self.substitute_name), utf16(self.print_name)
        path, so, po = _path_buffer(s, p, nul=False)
        body = _SYMLINK.pack(so, len(s), po, len(p), self.flags) + path
        return _HEADER.pack(ReparseTag.IO_REPARSE_TAG_SYMLINK, len(body), 0) + body

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "SymbolicLinkReparseBuffer"
        generic = ReparseDataBuffer.decode(buf, offset)
        if generic.reparse_tag != ReparseTag.IO_REPARSE_TAG_SYMLINK:
            raise DecodeError(f"{what}: tag 0x{generic.reparse_tag:08X} is not a symlink")
        return cls._from_data(memoryview(generic.data))

    @classmethod
    def _from_data(cls, data: memoryview) -> Self:
        what = "SymbolicLinkReparseBuffer"
        so, sl, po, pl, flags = unpack(_SYMLINK, data, 0, what)
        sub, prn = _names(data, _SYMLINK.size, so, sl, po, pl, what)
        return cls(sub, prn, flags)


@dataclass(slots=True)
class MountPointReparseBuffer:
    """[MS-FSCC] 2.1.2.5 Mount Point Reparse Data Buffer (junctions)."""

    substitute_name: str
    print_name: str = ""

    def encode(self) -> bytes:
        s, p = utf16(self.substitute_name), utf16(self.print_name)
        path, so, po = _path_buffer(s, p, nul=True)
        body = _NAMES.pack(so, len(s), po, len(p)) + path
        return _HEADER.pack(ReparseTag.IO_REPARSE_TAG_MOUNT_POINT, len(body), 0) + body

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "MountPointReparseBuffer"
        generic = ReparseDataBuffer.decode(buf, offset)
        if generic.reparse_tag != ReparseTag.IO_REPARSE_TAG_MOUNT_POINT:
            raise DecodeError(f"{what}: tag 0x{generic.reparse_tag:08X} is not a mount point")
        return cls._from_data(memoryview(generic.data))

    @classmethod
    def _from_data(cls, data: memoryview) -> Self:
        what = "MountPointReparseBuffer"
        so, sl, po, pl = unpack(_NAMES, data, 0, what)
        sub, prn = _names(data, _NAMES.size, so, sl, po, pl, what)
        return cls(sub, prn)


ReparseData = SymbolicLinkReparseBuffer | MountPointReparseBuffer | ReparseDataBuffer


def decode_reparse(buf: Buffer, offset: int = 0) -> ReparseData:
    """Decode a REPARSE_DATA_BUFFER into the most specific class known."""
    generic = ReparseDataBuffer.decode(buf, offset)
    if generic.reparse_tag == ReparseTag.IO_REPARSE_TAG_SYMLINK:
        return SymbolicLinkReparseBuffer._from_data(memoryview(generic.data))
    if generic.reparse_tag == ReparseTag.IO_REPARSE_TAG_MOUNT_POINT:
        return MountPointReparseBuffer._from_data(memoryview(generic.data))
    return generic
