"""Compound path operations: each one round trip, counted on the connection."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from smb_trees import config_for, tree_on, unique

from smbfs.client import open_session, paths
from smbfs.client.errors import SMBError
from smbfs.client.tree import Tree
from smbfs.proto.create import CreateDisposition, CreateOptions
from smbfs.proto.ntstatus import NTStatus

T = TypeVar("T")


async def round_trips(tree: Tree, op: Awaitable[T]) -> tuple[T, int, int]:
    """Run ``op``; return its result, the frames sent and received meanwhile."""
    conn = tree.session.connection
    sent, received = conn.frames_sent, conn.frames_received
    result = await op
    return result, conn.frames_sent - sent, conn.frames_received - received


async def test_stat_is_one_round_trip(samba: Any) -> None:
    name = unique("c")
    (samba.share_path("share") / name).write_bytes(b"x" * 4321)
    async with tree_on(samba) as tree:
        info, sent, received = await round_trips(tree, paths.stat(tree, name))
        assert (sent, received) == (1, 1)
        assert info.size == 4321 and not info.is_directory and info.file_id
        assert info.name == name and info.write_ns and info.nlink == 1
        root, sent, _ = await round_trips(tree, paths.stat(tree, ""))
        assert sent == 1 and root.is_directory
        with pytest.raises(SMBError) as e:
            await round_trips(tree, paths.stat(tree, unique("missing")))
        assert e.value.status == NTStatus.STATUS_OBJECT_NAME_NOT_FOUND
        # The failed chain used one round trip and left the connection usable.
        await paths.unlink(tree, name)


async def test_rename_is_one_round_trip(samba: Any) -> None:
    a, b = unique("a"), unique("b")
    share = samba.share_path("share")
    (share / a).write_bytes(b"payload")
    async with tree_on(samba) as tree:
        _, sent, received = await round_trips(tree, paths.rename(tree, a, b))
        assert (sent, received) == (1, 1)
        assert not (share / a).exists() and (share / b).read_bytes() == b"payload"
        # Onto an existing name: refused unless replace is asked.
        c = unique("c")
        (share / c).write_bytes(b"old")
        with pytest.raises(SMBError) as e:
            await paths.rename(tree, b, c)
        assert e.value.status == NTStatus.STATUS_OBJECT_NAME_COLLISION
        await paths.rename(tree, b, c, replace=True)
        assert (share / c).read_bytes() == b"payload"
        # Into a subdirectory, with forward slashes.
        d = unique("d")
        await paths.mkdir(tree, d)
        await paths.rename(tree, c, f"{d}/moved")
        assert (share / d / "moved").read_bytes() == b"payload"
        await paths.unlink(tree, f"{d}/moved")
        await paths.rmdir(tree, d)


async def test_delete_and_rmdir_are_one_round_trip(samba: Any) -> None:
    share = samba.share_path("share")
    f, d = unique("f"), unique("d")
    (share / f).write_bytes(b"data")
    async with tree_on(samba) as tree:
        _, sent, received = await round_trips(tree, paths.unlink(tree, f))
        assert (sent, received) == (1, 1)
        assert not (share / f).exists()
        info, sent, _ = await round_trips(tree, paths.mkdir(tree, d))
        assert sent == 1 and info.is_directory and (share / d).is_dir()
        (share / d / "inner").write_bytes(b"")
        with pytest.raises(SMBError) as e:
            await paths.rmdir(tree, d)
        assert e.value.status == NTStatus.STATUS_DIRECTORY_NOT_EMPTY
        with pytest.raises(SMBError) as e:
            await paths.unlink(tree, d)  # unlink insists on a file
        assert e.value.status == NTStatus.STATUS_FILE_IS_A_DIRECTORY
        await paths.unlink(tree, f"{d}/inner")
        _, sent, _ = await round_trips(tree, paths.rmdir(tree, d))
        assert sent == 1 and not (share / d).exists()


async def test_compound_ops_on_a_file_we_hold_leased(samba: Any) -> None:
    """stat/rename/delete of a file we have open under a lease: the chain's
    CREATE uses our lease key, so no break to ourselves, no stall."""
    name, other = unique("held"), unique("moved")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        assert f.lease is not None and f.lease_state == 0x7
        await f.write(0, b"abc")
        st = await paths.stat(tree, name)
        assert st.size == 3
        await paths.rename(tree, name, other)
        assert f.lease_state == 0x7  # not broken by our own rename
        await paths.unlink(tree, other)  # delete pending until our handle closes
        await f.close()
        with pytest.raises(SMBError):
            await paths.stat(tree, other)


async def test_create_options_directory(samba: Any) -> None:
    d = unique("dir")
    async with tree_on(samba) as tree:
        h = await tree.create(d, disposition=CreateDisposition.FILE_CREATE,
                              options=CreateOptions.FILE_DIRECTORY_FILE)
        assert h.is_directory and h.lease is None and not h.durable
        await h.close()
        with pytest.raises(SMBError) as e:
            await tree.create(d, options=CreateOptions.FILE_NON_DIRECTORY_FILE)
        assert e.value.status == NTStatus.STATUS_FILE_IS_A_DIRECTORY
        await paths.rmdir(tree, d)


async def test_tree_connect_errors_and_share_facts(samba: Any) -> None:
    async with open_session(config_for(samba)) as session:
        with pytest.raises(SMBError) as e:
            await Tree.connect(session, "no-such-share")
        assert e.value.status == NTStatus.STATUS_BAD_NETWORK_NAME
        tree = await Tree.connect(session, f"\\\\{samba.host}\\readonly")
        assert tree.share_name == "readonly" and tree.is_disk and not tree.encrypt_data
        with pytest.raises(SMBError) as e:
            await tree.create(unique("ro"), disposition=CreateDisposition.FILE_CREATE)
        assert e.value.status == NTStatus.STATUS_ACCESS_DENIED
        await tree.disconnect()
        await tree.disconnect()  # idempotent
        enc = await Tree.connect(session, "encrypted")
        assert enc.encrypt_data
        await enc.disconnect()


async def test_setattr_by_path_in_one_round_trip_and_listdir(samba: Any) -> None:
    d = unique("attrs")
    async with tree_on(samba) as tree:
        await paths.mkdir(tree, d)
        f = f"{d}/file"
        h = await tree.create(f, disposition=CreateDisposition.FILE_CREATE)
        await h.write(0, b"z" * 5000)
        await h.close()
        _, sent, _ = await round_trips(tree, paths.truncate(tree, f, 10))
        assert sent == 1 and (await paths.stat(tree, f)).size == 10
        when = 1_500_000_000_000_000_000
        _, sent, _ = await round_trips(tree, paths.set_times(tree, f, write_ns=when, access_ns=when))
        st = await paths.stat(tree, f)
        assert sent == 1 and st.write_ns == when and st.access_ns == when
        listing = await paths.listdir(tree, d)
        assert [(i.name, i.size, i.write_ns) for i in listing] == [("file", 10, when)]
        await paths.unlink(tree, f)
        assert await paths.listdir(tree, d) == []
        await paths.rmdir(tree, d)
