"""The path operations of smbfs.client.paths that the FUSE layer uses for
statfs, filesystem facts, EAs and hard links, against the real Samba."""

from __future__ import annotations

import os
from typing import Any

import pytest
from smb_trees import tree_on, unique

from smbfs.client import paths
from smbfs.client.errors import SMBError
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions
from smbfs.proto.ntstatus import NTStatus


async def test_statfs_matches_the_servers_disk(samba: Any) -> None:
    async with tree_on(samba) as tree:
        size = await paths.statfs(tree, "")
    st = os.statvfs(samba.share_path(samba.shares.rw))
    assert size.unit_size > 0 and size.total_units > 0
    assert size.total_units * size.unit_size == pytest.approx(
        st.f_blocks * st.f_frsize, rel=0.05)
    assert 0 <= size.available_units <= size.free_units <= size.total_units


async def test_fs_attributes(samba: Any) -> None:
    async with tree_on(samba) as tree:
        fa = await paths.fs_attributes(tree, "")
        root = await tree.create(
            "", desired_access=AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE,
            options=CreateOptions.FILE_DIRECTORY_FILE, lease=False, durable=False)
        async with root:
            assert await root.query_fs_attributes() == fa
    assert fa.name and fa.max_name > 0


async def test_eas_round_trip(samba: Any) -> None:
    name = unique("ea")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        await f.close()
        try:
            assert await paths.get_eas(tree, name) == []  # NO_EAS_ON_FILE
            await paths.set_ea(tree, name, b"one", b"1")
            await paths.set_ea(tree, name, b"two", b"\x00\xff")
            # EA names are case-insensitive ([MS-FSCC] 2.4.15); Samba keeps
            # the case they were set with, Windows upper-cases them.
            got = {n.lower(): v for n, v in await paths.get_eas(tree, name)}
            assert got == {b"one": b"1", b"two": b"\x00\xff"}
            await paths.set_ea(tree, name, b"one", b"")  # removes it
            assert [n.lower() for n, _ in await paths.get_eas(tree, name)] == [b"two"]
        finally:
            await paths.unlink(tree, name)


async def test_hard_link(samba: Any) -> None:
    name, other = unique("ln"), unique("ln")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        await f.write(0, b"shared")
        await f.close()
        try:
            await paths.link(tree, name, other)
            a, b = await paths.stat(tree, name), await paths.stat(tree, other)
            assert a.file_id == b.file_id and b.nlink == 2
            with pytest.raises(SMBError) as e:
                await paths.link(tree, name, other)
            assert e.value.status == NTStatus.STATUS_OBJECT_NAME_COLLISION
        finally:
            await paths.unlink(tree, other)
            await paths.unlink(tree, name)
