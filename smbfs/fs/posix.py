"""The POSIX decisions of the FUSE layer that need no I/O: which names SMB
can hold, what an open(2) flag set asks of a CREATE, how a mode maps to DOS
attributes and back, and which errno a request gets before anything is
sent (docs/filesystem.md gives the reasons).

Why one module of pure functions: these choices are where smbfs's POSIX
behaviour is decided, and they can be unit tested without a server or a
mount (tests/fs/test_posix.py).
"""

from __future__ import annotations

import errno
import os
import stat

import pyfuse3

from smbfs.client.open import READ_WRITE, FileInfo
from smbfs.fs.inodes import Node
from smbfs.fs.options import FsOptions

# API vocabulary of the engine: Tree.create takes AccessMask and
# CreateDisposition values, and FileInfo.attributes holds FileAttributes
# bits; the engine re-uses the protocol's enums instead of copying them.
from smbfs.proto.create import AccessMask, CreateDisposition
from smbfs.proto.fscc.attributes import FileAttributes

_A = AccessMask

# Unlinked-but-open files are renamed to this prefix and hidden from listings
# (POSIX unlink semantics over Windows delete-pending, docs/filesystem.md).
HIDDEN_PREFIX = ".smbfs-deleted-"
# [MS-FSCC] 2.1.5: characters a file name component cannot hold on the wire.
FORBIDDEN = frozenset('\\:*?"<>|') | frozenset(chr(c) for c in range(1, 32))
# What a read-only open asks for (data, attributes, EAs, the security
# descriptor); write opens get READ_WRITE.
READ_ACCESS = (_A.FILE_READ_DATA | _A.FILE_READ_ATTRIBUTES | _A.FILE_READ_EA
               | _A.READ_CONTROL | _A.SYNCHRONIZE)
# The least an open needs to read attributes; added to every special open.
ATTR_ACCESS = _A.FILE_READ_ATTRIBUTES | _A.SYNCHRONIZE
BLKSIZE = 1024 * 1024
# Linux's NAME_MAX: longer names are ENAMETOOLONG whatever the share says.
NAME_MAX = 255
# [MS-FSCC] 2.4.15: an EA name is at most 255 bytes, a value 65535.
EA_NAME_MAX = 255
EA_VALUE_MAX = 65535
_READONLY = int(FileAttributes.FILE_ATTRIBUTE_READONLY)
_NORMAL = int(FileAttributes.FILE_ATTRIBUTE_NORMAL)


def fail(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


# ------------------------------------------------------------------ names


def decode_name(name: bytes) -> str:
    """A name from the kernel as str; SMB names are UTF-16, so bytes that
    are not UTF-8 decode to nothing that could be sent (EILSEQ)."""
    try:
        return os.fsdecode(name).encode("utf-8", "strict").decode("utf-8")
    except UnicodeError:
        raise fail(errno.EILSEQ) from None


def check_name(name: str) -> None:
    """Refuse a new name the server cannot store, with EINVAL: forbidden
    characters, a trailing dot or space (Windows strips them, so the name
    would not be the one asked for), and our hidden prefix."""
    if not name or name in (".", "..") or any(c in FORBIDDEN for c in name) \
            or name[-1] in ". " or name.startswith(HIDDEN_PREFIX):
        raise fail(errno.EINVAL)


def could_exist(name: str) -> bool:
    """May a lookup of ``name`` find something? A trailing dot or space is
    refused for new names only: Samba stores and lists such names (made on
    its disk by others), so they must be reachable."""
    return bool(name) and not any(c in FORBIDDEN for c in name)


def check_lookup_name(name: str, max_name: int) -> None:
    """ENOENT for a name nothing on the share can have (no round trip),
    ENAMETOOLONG past NAME_MAX."""
    if not could_exist(name) or len(name) > max_name:
        raise fail(errno.ENOENT if len(name) <= NAME_MAX else errno.ENAMETOOLONG)


def is_hidden(name: str) -> bool:
    """An unlinked file still open, moved out of the way: not listed."""
    return name.startswith(HIDDEN_PREFIX)


# ------------------------------------------------------------------ opens


def access_for(flags: int) -> tuple[int, bool]:
    """The CREATE DesiredAccess for open(2) ``flags``, and whether the
    handle may write. Write opens also read: the kernel reads pages around
    partial writes to a shared writable mmap."""
    if flags & os.O_ACCMODE == os.O_RDONLY:
        return READ_ACCESS, False
    return READ_WRITE, True


def create_disposition(flags: int) -> int:
    """The CreateDisposition for creat(2)/open(O_CREAT) ``flags``."""
    if flags & os.O_EXCL:
        return CreateDisposition.FILE_CREATE
    if flags & os.O_TRUNC:
        return CreateDisposition.FILE_OVERWRITE_IF
    return CreateDisposition.FILE_OPEN_IF


def check_mknod(mode: int) -> None:
    """Only regular files: SMB has no FIFOs or devices (EPERM)."""
    if not stat.S_ISREG(mode):
        raise fail(errno.EPERM)


def check_rename_flags(flags: int) -> bool:
    """renameat2 flags: EINVAL for RENAME_EXCHANGE (SMB has no atomic
    exchange); returns whether RENAME_NOREPLACE was asked."""
    if flags & pyfuse3.RENAME_EXCHANGE:
        raise fail(errno.EINVAL)
    return bool(flags & pyfuse3.RENAME_NOREPLACE)


def symlink_target(target: str) -> tuple[str, bool]:
    """A POSIX link target in SMB form, and whether it is relative."""
    return target.replace("/", "\\"), not target.startswith("/")


# ------------------------------------------------------ mode <-> attributes


def mode_attributes(current: int, st_mode: int) -> int:
    """The FileAttributes a chmod to ``st_mode`` asks for, given the file's
    ``current`` attributes (0: no change). Only the owner write bit is
    stored, as the DOS read-only attribute."""
    cur = current & ~_NORMAL
    new = (cur & ~_READONLY) if st_mode & 0o200 else (cur | _READONLY)
    if new == cur:
        return 0
    return new or _NORMAL


def without_readonly(attributes: int) -> int:
    """``attributes`` with the DOS read-only bit cleared (never 0, which
    would mean "leave them" on the wire)."""
    return (attributes & ~_READONLY) or _NORMAL


def entry_attributes(node: Node, options: FsOptions, timeout: float,
                     attr_timeout: float | None = None) -> pyfuse3.EntryAttributes:
    """What stat(2) shows of ``node``: the mount's uid/gid and modes (SMB
    without unix extensions has no per-file owner or mode), the read-only
    attribute as a missing write bit, one link for a directory and none for
    a file unlinked while open."""
    info = node.info
    assert info is not None
    a = pyfuse3.EntryAttributes()
    a.st_ino = node.ino
    a.generation = 0
    a.entry_timeout = timeout
    a.attr_timeout = timeout if attr_timeout is None else attr_timeout
    if node.is_dir:
        mode = stat.S_IFDIR | (options.dir_mode & 0o7777)
    else:
        mode = stat.S_IFREG | (options.file_mode & 0o7777)
        if info.is_readonly:
            mode &= ~0o222
    a.st_mode = mode
    if node.is_dir:
        a.st_nlink = 1
    else:
        a.st_nlink = 0 if node.unlinked else max(info.nlink, 1)
    a.st_uid = options.uid
    a.st_gid = options.gid
    a.st_rdev = 0
    a.st_size = 0 if node.is_dir else info.size
    a.st_blksize = BLKSIZE
    a.st_blocks = (info.allocation_size + 511) // 512
    mtime = info.write_ns or 0
    a.st_mtime_ns = mtime
    a.st_atime_ns = info.access_ns or mtime
    a.st_ctime_ns = info.change_ns or mtime
    a.st_birthtime_ns = info.creation_ns or 0
    return a


def placeholder_dir_info() -> FileInfo:
    """Attributes for "." or ".." of a directory we never stat'ed."""
    return FileInfo(0, 0, int(FileAttributes.FILE_ATTRIBUTE_DIRECTORY))


# ------------------------------------------------------------------ xattrs


def ea_name(name: bytes, supported: bool) -> bytes:
    """``user.foo`` -> SMB EA ``foo``; other namespaces are not ours
    (EOPNOTSUPP), nor is any when the share takes no EAs. EA names are
    ASCII and at most 255 bytes (EINVAL)."""
    if not supported or not name.startswith(b"user.") or len(name) <= 5:
        raise fail(errno.EOPNOTSUPP)
    ea = name[5:]
    if len(ea) > EA_NAME_MAX or not ea.isascii():
        raise fail(errno.EINVAL)
    return ea


def check_ea_value(value: bytes) -> None:
    """An empty value deletes an SMB EA ([MS-FSCC] 2.4.15): it cannot be
    stored, so say so (EINVAL) instead of silently removing; E2BIG past
    the 16-bit length."""
    if not value:
        raise fail(errno.EINVAL)
    if len(value) > EA_VALUE_MAX:
        raise fail(errno.E2BIG)
