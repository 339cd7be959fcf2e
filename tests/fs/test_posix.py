"""The FUSE layer's pure POSIX decisions (smbfs.fs.posix), without a server
or a mount: names, open flags, mode <-> DOS attributes, errnos."""

from __future__ import annotations

import errno
import os
import stat

import pyfuse3
import pytest

from smbfs.client.open import READ_WRITE, FileInfo
from smbfs.fs import posix
from smbfs.fs.inodes import Node
from smbfs.fs.options import FsOptions
from smbfs.proto.create import AccessMask, CreateDisposition
from smbfs.proto.fscc.attributes import FileAttributes as FA

RO = int(FA.FILE_ATTRIBUTE_READONLY)
NORMAL = int(FA.FILE_ATTRIBUTE_NORMAL)
ARCHIVE = int(FA.FILE_ATTRIBUTE_ARCHIVE)
HIDDEN = int(FA.FILE_ATTRIBUTE_HIDDEN)


def errno_of(fn: object, *args: object) -> int:
    with pytest.raises(pyfuse3.FUSEError) as e:
        fn(*args)  # type: ignore[operator]
    return e.value.errno


# ------------------------------------------------------------------ names


def test_decode_name() -> None:
    assert posix.decode_name("café".encode()) == "café"
    assert errno_of(posix.decode_name, b"bad\xff") == errno.EILSEQ


@pytest.mark.parametrize("name", ["a", "file.txt", "with space", ".hidden", "ü", "a" * 255])
def test_check_name_accepts(name: str) -> None:
    posix.check_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a:b", "a\\b", "a*", "q?", 'x"', "<", ">",
                                  "a|b", "tab\t", "dot.", "space ",
                                  posix.HIDDEN_PREFIX + "0123"])
def test_check_name_refuses(name: str) -> None:
    assert errno_of(posix.check_name, name) == errno.EINVAL


def test_existing_odd_names_stay_reachable() -> None:
    # Made on the server's disk by others: a lookup must find them even
    # though we would not create them.
    assert posix.could_exist("dot.") and posix.could_exist("space ")
    assert not posix.could_exist("a:b") and not posix.could_exist("")


def test_check_lookup_name() -> None:
    posix.check_lookup_name("x" * 200, 255)
    assert errno_of(posix.check_lookup_name, "a:b", 255) == errno.ENOENT
    # Longer than the share allows but within NAME_MAX: nothing can have it.
    assert errno_of(posix.check_lookup_name, "x" * 100, 64) == errno.ENOENT
    assert errno_of(posix.check_lookup_name, "x" * 256, 255) == errno.ENAMETOOLONG


def test_hidden_names() -> None:
    assert posix.is_hidden(posix.HIDDEN_PREFIX + "abc")
    assert not posix.is_hidden(".smbfs")


# ------------------------------------------------------------------ opens


def test_access_for() -> None:
    access, writable = posix.access_for(os.O_RDONLY)
    assert not writable and access & AccessMask.FILE_READ_DATA
    assert not access & (AccessMask.FILE_WRITE_DATA | AccessMask.FILE_APPEND_DATA)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_APPEND):
        # Write opens read too (partial pages of a shared writable mmap).
        assert posix.access_for(flags) == (READ_WRITE, True)


def test_create_disposition() -> None:
    assert posix.create_disposition(os.O_CREAT | os.O_EXCL) == CreateDisposition.FILE_CREATE
    assert posix.create_disposition(os.O_CREAT | os.O_EXCL | os.O_TRUNC) == \
        CreateDisposition.FILE_CREATE
    assert posix.create_disposition(os.O_CREAT | os.O_TRUNC) == \
        CreateDisposition.FILE_OVERWRITE_IF
    assert posix.create_disposition(os.O_CREAT) == CreateDisposition.FILE_OPEN_IF


def test_check_mknod() -> None:
    posix.check_mknod(stat.S_IFREG | 0o644)
    for kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK):
        assert errno_of(posix.check_mknod, kind | 0o644) == errno.EPERM


def test_check_rename_flags() -> None:
    assert posix.check_rename_flags(0) is False
    assert posix.check_rename_flags(pyfuse3.RENAME_NOREPLACE) is True
    assert errno_of(posix.check_rename_flags, pyfuse3.RENAME_EXCHANGE) == errno.EINVAL


def test_symlink_target() -> None:
    assert posix.symlink_target("../a/b") == ("..\\a\\b", True)
    assert posix.symlink_target("/abs/x") == ("\\abs\\x", False)


# ------------------------------------------------------ mode <-> attributes


def test_mode_attributes() -> None:
    # Dropping the owner write bit sets read-only, keeping other bits.
    assert posix.mode_attributes(ARCHIVE, 0o444) == ARCHIVE | RO
    assert posix.mode_attributes(NORMAL, 0o400) == RO
    # Giving it back clears it; with nothing left, NORMAL (0 means "leave").
    assert posix.mode_attributes(RO, 0o644) == NORMAL
    assert posix.mode_attributes(RO | HIDDEN, 0o600) == HIDDEN
    # No change in what SMB stores: nothing to send.
    assert posix.mode_attributes(ARCHIVE, 0o755) == 0
    assert posix.mode_attributes(ARCHIVE | RO, 0o555) == 0
    assert posix.mode_attributes(NORMAL, 0o644) == 0


def test_without_readonly() -> None:
    assert posix.without_readonly(RO | ARCHIVE) == ARCHIVE
    assert posix.without_readonly(RO) == NORMAL


def _node(is_dir: bool, attributes: int, **kw: object) -> Node:
    info = FileInfo(size=5000, allocation_size=8192, attributes=attributes,
                    creation_ns=1, access_ns=None, write_ns=3_000, change_ns=4_000, nlink=2)
    return Node(ino=42, path="x", is_dir=is_dir, info=info, **kw)  # type: ignore[arg-type]


def test_entry_attributes_of_a_file() -> None:
    o = FsOptions(uid=1000, gid=100, file_mode=0o664, dir_mode=0o775)
    a = posix.entry_attributes(_node(False, ARCHIVE), o, 1.5)
    assert a.st_ino == 42 and a.st_mode == stat.S_IFREG | 0o664
    assert (a.st_uid, a.st_gid, a.st_nlink, a.st_size) == (1000, 100, 2, 5000)
    assert a.st_blocks == 16 and a.st_blksize == posix.BLKSIZE
    assert a.entry_timeout == a.attr_timeout == 1.5
    # No access time from the server: the write time stands in.
    assert (a.st_mtime_ns, a.st_atime_ns, a.st_ctime_ns) == (3_000, 3_000, 4_000)
    ro = posix.entry_attributes(_node(False, RO), o, 0)
    assert ro.st_mode == stat.S_IFREG | 0o444
    gone = posix.entry_attributes(_node(False, ARCHIVE, unlinked=True), o, 0)
    assert gone.st_nlink == 0


def test_entry_attributes_of_a_directory() -> None:
    o = FsOptions(uid=0, gid=0, file_mode=0o644, dir_mode=0o750)
    a = posix.entry_attributes(_node(True, int(FA.FILE_ATTRIBUTE_DIRECTORY) | RO), o, 0)
    # Read-only means nothing for a directory's mode (Windows uses it to
    # mark folders customised); size and links are not the server's.
    assert a.st_mode == stat.S_IFDIR | 0o750
    assert a.st_nlink == 1 and a.st_size == 0


def test_placeholder_dir_info() -> None:
    assert posix.placeholder_dir_info().is_directory


# ------------------------------------------------------------------ xattrs


def test_ea_name() -> None:
    assert posix.ea_name(b"user.comment", True) == b"comment"
    assert errno_of(posix.ea_name, b"user.comment", False) == errno.EOPNOTSUPP
    for other in (b"security.selinux", b"trusted.x", b"system.posix_acl_access", b"user."):
        assert errno_of(posix.ea_name, other, True) == errno.EOPNOTSUPP
    assert errno_of(posix.ea_name, b"user." + b"n" * 256, True) == errno.EINVAL
    assert errno_of(posix.ea_name, "user.ü".encode(), True) == errno.EINVAL
    assert posix.ea_name(b"user." + b"n" * 255, True) == b"n" * 255


def test_check_ea_value() -> None:
    posix.check_ea_value(b"x")
    posix.check_ea_value(b"x" * 65535)
    assert errno_of(posix.check_ea_value, b"") == errno.EINVAL
    assert errno_of(posix.check_ea_value, b"x" * 65536) == errno.E2BIG
