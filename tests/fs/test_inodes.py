"""The inode table alone: numbering, lookup counts, renames, id reuse."""

from __future__ import annotations

import trio
import trio.testing

from smbfs.client.open import FileInfo
from smbfs.fs.inodes import ROOT_INODE, InodeTable
from smbfs.proto.fscc.attributes import FileAttributes

DIR = int(FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
FILE = int(FileAttributes.FILE_ATTRIBUTE_ARCHIVE)


def _info(fid: int | None, attrs: int = FILE, size: int = 0) -> FileInfo:
    return FileInfo(size=size, allocation_size=0, attributes=attrs, file_id=fid)


async def test_server_ids_are_inode_numbers_and_forget_frees() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    n = t.remember("a", _info(1000))
    assert n.ino == 1000 and t.by_path("A") is n  # case-insensitive share
    t.lookup(n, 2)
    t.forget(1000, 1)
    assert t.by_path("a") is n
    t.forget(1000, 1)
    assert t.by_path("a") is None and len(t) == 1  # only the root is left
    t.forget(ROOT_INODE, 5)
    assert t.get(ROOT_INODE) is t.root


async def test_open_handle_keeps_node_after_forget() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    n = t.remember("f", _info(7))
    t.lookup(n)
    t.opened(n)
    t.forget(7, 1)
    assert t.get(7) is n
    t.closed(n)
    assert len(t) == 1


async def test_noserverino_counter_stable_per_path() -> None:
    t = InodeTable("sub", serverino=False, actimeo=1.0)
    a = t.remember("sub\\a", _info(55))
    b = t.remember("sub\\b", _info(55))
    assert a.ino != b.ino and a.ino != 55
    assert t.remember("sub\\a", _info(55)) is a
    assert t.remember("sub", _info(1, DIR)) is t.root


async def test_directory_rename_moves_children() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    d = t.remember("d", _info(10, DIR))
    c = t.remember("d\\e\\f", _info(11))
    t.lookup(d)
    t.lookup(c)
    t.moved("d", "x")
    assert d.path == "x" and c.path == "x\\e\\f"
    assert t.by_path("x\\e\\f") is c and t.by_path("d\\e\\f") is None


async def test_rename_over_existing_drops_target_name() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    a = t.remember("a", _info(1))
    b = t.remember("b", _info(2))
    t.lookup(a)
    t.lookup(b)
    t.moved("a", "b")
    assert t.by_path("b") is a and t.by_path("a") is None
    assert t.get(2) is b  # the kernel still holds it until forget


async def test_reused_directory_id_gets_new_inode_while_referenced() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    old = t.remember("old", _info(42, DIR))
    t.lookup(old)
    t.removed("old")
    new = t.remember("new", _info(42, DIR))
    assert new is not old and new.ino != 42
    # Later sightings of id 42 are the new directory.
    assert t.remember("new", _info(42, DIR)) is new
    t.lookup(new)
    t.forget(42, 1)
    t.forget(new.ino, 1)
    assert len(t) == 1
    # Unreferenced: the id is a plain inode number again.
    assert t.remember("again", _info(42, DIR)).ino == 42


async def test_hard_link_names_share_a_node() -> None:
    t = InodeTable("", serverino=True, actimeo=1.0)
    a = t.remember("a", _info(5))
    t.lookup(a)
    b = t.remember("b", _info(5))
    assert a is b and t.by_path("a") is a and t.by_path("b") is a
    t.removed("b")
    assert a.path == "a" and t.by_path("a") is a


async def test_answers_older_than_a_local_change_are_not_cached() -> None:
    t = InodeTable("", serverino=True, actimeo=60.0)
    n = t.remember("f", _info(9, size=0))
    since = t.stamp()  # a listing is sent...
    t.invalidate(n)  # ...a write completes...
    n2 = t.remember("f", _info(9, size=0), since)  # ...the listing's old size arrives
    assert n2 is n and t.fresh_info(n) is None
    since = t.stamp()
    t.set_info(n, _info(9, size=5), since)
    assert t.fresh_info(n) is not None


async def test_attributes_expire_and_invalidate(mock_clock: trio.testing.MockClock) -> None:
    t = InodeTable("", serverino=True, actimeo=0.05)
    n = t.remember("a", _info(3, size=1))
    assert t.fresh_info(n) is not None
    t.invalidate(n)
    assert t.fresh_info(n) is None
    t.set_info(n, _info(3, size=2))
    assert t.fresh_info(n) is not None
    mock_clock.jump(0.06)
    assert t.fresh_info(n) is None
    t.set_info(n, _info(3))
    t.invalidate_all()
    assert t.fresh_info(n) is None


def test_errno_mapping_logs_unknown_status(caplog: object) -> None:
    import errno
    import logging

    import pyfuse3
    import pytest

    from smbfs.client.errors import ConnectionLostError, SMBError
    from smbfs.fs.errors import to_fuse_error
    from smbfs.proto.ntstatus import NTStatus

    assert to_fuse_error(SMBError(NTStatus.STATUS_OBJECT_NAME_NOT_FOUND)).errno == errno.ENOENT
    assert to_fuse_error(SMBError(NTStatus.STATUS_DISK_FULL)).errno == errno.ENOSPC
    assert to_fuse_error(SMBError(NTStatus.STATUS_DIRECTORY_NOT_EMPTY)).errno == errno.ENOTEMPTY
    cap: pytest.LogCaptureFixture = caplog  # type: ignore[assignment]
    with cap.at_level(logging.WARNING, logger="smbfs.fs.errors"):
        assert to_fuse_error(SMBError(0xC0DE0001), "read").errno == errno.EIO
    assert "0xC0DE0001" in cap.text or "C0DE0001" in cap.text.upper()
    with cap.at_level(logging.ERROR, logger="smbfs.fs.errors"):
        assert to_fuse_error(ConnectionLostError("cut"), "write").errno == errno.EIO
    assert "connection lost" in cap.text
    assert to_fuse_error(RuntimeError("bug"), "x").errno == errno.EIO
    same = pyfuse3.FUSEError(errno.EPERM)
    assert to_fuse_error(same) is same


async def test_reused_id_of_an_unlinked_open_file_is_a_new_inode() -> None:
    # The file was unlinked while open (hidden, delete-on-close), the server
    # deleted it at the last close and gave its number to a new file while
    # the kernel still held the old inode: the new file is not a hard link.
    t = InodeTable("", serverino=True, actimeo=1.0)
    old = t.remember("a", _info(42))
    t.lookup(old)
    old.unlinked = True
    new = t.remember("b", _info(42))
    assert new is not old and new.ino != old.ino
    assert not new.unlinked and new.path == "b"
    assert t.remember("b", _info(42)) is new  # later sightings of the id agree


def test_lost_handles_and_an_unreachable_server_are_eio() -> None:
    import errno

    from smbfs.client.errors import HandleLostError, ServerUnreachableError
    from smbfs.fs.errors import to_fuse_error

    assert to_fuse_error(HandleLostError("gone"), "read").errno == errno.EIO
    assert to_fuse_error(ServerUnreachableError("30 s"), "getattr").errno == errno.EIO


async def test_lease_name_follows_renames_not_hard_links() -> None:
    # The server files a lease under the name it was opened with and moves
    # it with every rename of the file (ours, a parent directory's, another
    # client's), never to another hard link of the file.
    t = InodeTable("", serverino=True, actimeo=1.0)
    d = t.remember("d", _info(10, DIR))
    f = t.remember("d\\f", _info(11))
    f.lease_path = f.path  # a handle holds its key under d\f
    t.moved("d\\f", "d\\g")
    assert (f.path, f.lease_path) == ("d\\g", "d\\g")
    t.moved("d", "e")
    assert (d.path, f.path, f.lease_path) == ("e", "e\\g", "e\\g")
    t.remember("e\\h", _info(11))  # a second name of the same file
    assert f.path == "e\\h" and f.lease_path == "e\\g"
    t.removed("e\\g")  # ...and that name gone: the node moves back to the link
    assert f.path == "e\\h"
    y = t.remember("y", _info(12))
    y.lease_path = "y"
    t.removed("y")
    t.remember("z", _info(12))  # seen again under another name: renamed elsewhere
    assert (y.path, y.lease_path) == ("z", "z")


async def test_lease_key_per_file_not_per_name() -> None:
    from smbfs.fs.handles import HandleTable

    class _Open:
        closed = False

    t = InodeTable("", serverino=True, actimeo=1.0)
    h = HandleTable()
    f = t.remember("a", _info(5))
    key = h.lease_key_for(f)
    assert len(key or b"") == 16 and h.lease_key_for(f) == key == f.lease_key
    h.add_file(f, _Open(), False, key)  # type: ignore[arg-type]
    assert f.lease_path == "a"
    t.moved("a", "b")
    assert h.lease_key_for(f) == key  # a renamed file keeps its key
    t.remember("c", _info(5))  # a hard link "c": the key is held under "b"
    assert f.path == "c" and h.lease_key_for(f) is None
    other = t.remember("o", _info(6))
    assert h.lease_key_for(other) not in (None, key)


async def test_a_create_that_finds_a_known_node_adopts_its_key() -> None:
    from smbfs.fs.handles import HandleTable

    class _Open:
        closed = False

    t = InodeTable("", serverino=True, actimeo=1.0)
    h = HandleTable()
    # A node whose file id the server gives to a new file (ext4 reuses
    # inode numbers at once): our create's key becomes the node's.
    old = t.remember("gone", _info(9))
    old_key = h.lease_key_for(old)
    assert t.remember("new", _info(9)) is old
    h.adopt_key(old, b"k" * 16)
    assert old.lease_key == b"k" * 16 != old_key
    # Not while our handles hold the node's own key.
    h.add_file(old, _Open(), False, old.lease_key)  # type: ignore[arg-type]
    h.adopt_key(old, b"j" * 16)
    assert old.lease_key == b"k" * 16
