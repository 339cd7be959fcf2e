"""Directories in active use are covered (a directory lease on Samba 4.22,
CHANGE_NOTIFY on 4.17): another client's name changes are seen at once
even with actimeo=60, and lookups there cost no round trip."""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pyfuse3
import pytest
import trio
from direct_ops import direct_ops

from smbfs.devserver import PrivateSamba
from smbfs.fs.dircache import LEASE, NOTIFY
from smbfs.fs.operations import SmbOperations

pytestmark = pytest.mark.both_sambas

# "At once": far below actimeo (60 s), with room for a loaded machine.
SOON = 5.0
BOUND = 20.0


def _wait(cond: Callable[[], bool], what: str, timeout: float = SOON) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not seen within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - start


def _exists(p: Path) -> bool:
    try:
        os.stat(p)
    except FileNotFoundError:
        return False
    return True


def _opens_of(samba: PrivateSamba, name: str) -> list[dict[str, Any]]:
    out = []
    for f in samba.open_files():
        if str(f.get("filename", "")).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] \
                == name:
            out.extend((f.get("opens") or {}).values())
    return out


def test_other_clients_changes_seen_at_once(samba: PrivateSamba, mount_factory: Any) -> None:
    name = f"dc-{uuid.uuid4().hex[:8]}"
    server = samba.share_path(samba.shares.rw) / name
    server.mkdir()
    server.chmod(0o777)
    a = mount_factory(actimeo=60, dircache=True)
    b = mount_factory(actimeo=60, dircache=True)
    da, db = a.path / name, b.path / name
    assert os.listdir(da) == []
    assert not _exists(da / "f")  # the lookups that make the directory covered
    if samba.version >= (4, 22):
        # Our directory lease, as the server shows it.
        _wait(lambda: any((o.get("lease") or {}).get("text") == "RH"
                          for o in _opens_of(samba, name)), "a directory lease on the server")
    waits = []
    # Created through B: A's listing and lookup show it.
    (db / "f").write_bytes(b"hello")
    waits.append(_wait(lambda: "f" in os.listdir(da) and _exists(da / "f"), "f created"))
    assert (da / "f").read_bytes() == b"hello"
    # Deleted through B: A's kernel had the name for actimeo, it is told.
    (db / "f").unlink()
    waits.append(_wait(lambda: not _exists(da / "f") and "f" not in os.listdir(da),
                       "f deleted"))
    with pytest.raises(FileNotFoundError):
        open(da / "f", "rb")
    # Renamed by smbclient (a third client).
    (db / "g").write_bytes(b"g")
    _wait(lambda: _exists(da / "g"), "g created")
    r = samba.smbclient(samba.shares.rw, f"rename {name}/g {name}/h", timeout=BOUND)
    assert r.returncode == 0, r.stdout + r.stderr
    waits.append(_wait(lambda: not _exists(da / "g") and _exists(da / "h")
                       and sorted(os.listdir(da)) == ["h"], "g renamed to h"))
    # Deleted by smbclient.
    r = samba.smbclient(samba.shares.rw, f"del {name}/h", timeout=BOUND)
    assert r.returncode == 0, r.stdout + r.stderr
    waits.append(_wait(lambda: not _exists(da / "h") and os.listdir(da) == [], "h deleted"))
    print(f"seen after {', '.join(f'{w:.3f}' for w in waits)} s")
    server.rmdir()


@pytest.fixture
async def ops(samba: PrivateSamba) -> AsyncIterator[SmbOperations]:
    """SmbOperations driven directly with its directory cache serving."""
    async with direct_ops(samba, dircache=True) as o, trio.open_nursery() as nursery:
        nursery.start_soon(o.dircache.run)
        try:
            yield o
        finally:
            nursery.cancel_scope.cancel()


async def _lookup(ops: SmbOperations, parent: int, name: str) -> pyfuse3.EntryAttributes | None:
    try:
        return await ops.lookup(parent, name.encode(), None)  # type: ignore[arg-type]
    except pyfuse3.FUSEError as e:
        assert e.errno == errno.ENOENT
        return None


async def _covered_dir(ops: SmbOperations, samba: PrivateSamba, files: int) -> tuple[str, int]:
    name = f"dco-{uuid.uuid4().hex[:8]}"
    d = samba.share_path(samba.shares.rw) / name
    d.mkdir()
    d.chmod(0o777)
    for i in range(files):
        (d / f"f{i}").write_bytes(b"x" * i)
    attr = await _lookup(ops, pyfuse3.ROOT_INODE, name)
    assert attr is not None
    assert await _lookup(ops, attr.st_ino, "absent") is None
    node = ops.inodes.get(attr.st_ino)
    with trio.fail_after(BOUND):
        assert await ops.dircache.wait_exact(node)
    cov = ops.dircache.covered(node)
    assert cov is not None
    assert cov.mode == (LEASE if samba.version >= (4, 22) else NOTIFY)
    return name, attr.st_ino


async def test_lookups_in_a_covered_directory_cost_nothing(ops: SmbOperations,
                                                           samba: PrivateSamba) -> None:
    _name, dino = await _covered_dir(ops, samba, 20)
    before = ops.tree.round_trips
    for _ in range(3):
        for i in range(20):
            attr = await _lookup(ops, dino, f"f{i}")
            assert attr is not None and attr.st_size == i
            assert await _lookup(ops, dino, f"nope{i}") is None
    assert ops.tree.round_trips == before
    # readdir from the listing, too.
    fh = await ops.opendir(dino, None)  # type: ignore[arg-type]
    replies: list[bytes] = []
    orig = pyfuse3.readdir_reply
    try:
        pyfuse3.readdir_reply = lambda token, n, attr, next_id: replies.append(n) or True
        mid = ops.tree.round_trips
        await ops.readdir(fh, 0, None)  # type: ignore[arg-type]
        assert ops.tree.round_trips == mid
    finally:
        pyfuse3.readdir_reply = orig
        await ops.releasedir(fh)
    assert set(replies) - {b".", b".."} == {f"f{i}".encode() for i in range(20)}


async def test_create_storm_keeps_the_listing(ops: SmbOperations, samba: PrivateSamba) -> None:
    _name, dino = await _covered_dir(ops, samba, 0)
    node = ops.inodes.get(dino)
    listings = ops.dircache.listings
    for i in range(40):
        assert await _lookup(ops, dino, f"n{i}") is None  # the kernel's lookup before create
        fi, _ = await ops.create(dino, f"n{i}".encode(), 0o644, os.O_WRONLY | os.O_CREAT,
                                 None)  # type: ignore[arg-type]
        await ops.release(fi.fh)
    await ops.unlink(dino, b"n0", None)  # type: ignore[arg-type]
    await ops.rename(dino, b"n1", dino, b"m1", 0, None)  # type: ignore[arg-type]
    await ops.mkdir(dino, b"sub", 0o755, None)  # type: ignore[arg-type]
    # A round trip on the covered handle: a break or notification caused by
    # our own changes has arrived by now.
    cov = ops.dircache.covered(node)
    assert cov is not None and cov.op is not None
    await cov.op.query_attributes()
    await trio.sleep(0)
    assert ops.dircache.covered(node) is cov and cov.exact
    assert ops.dircache.listings == listings  # no listing repeated for our own changes
    if cov.mode == LEASE:
        assert ops.dircache.breaks == 0  # ParentLeaseKey: our changes break nothing
    before = ops.tree.round_trips
    assert await _lookup(ops, dino, "n0") is None
    assert await _lookup(ops, dino, "n1") is None
    assert await _lookup(ops, dino, "m1") is not None
    assert await _lookup(ops, dino, "sub") is not None
    assert await _lookup(ops, dino, "n2") is not None
    assert ops.tree.round_trips == before


async def test_a_break_during_our_creates_deadlocks_nothing(ops: SmbOperations,
                                                           samba: PrivateSamba) -> None:
    name, dino = await _covered_dir(ops, samba, 0)

    async def creates() -> None:
        for i in range(30):
            fi, _ = await ops.create(dino, f"c{i}".encode(), 0o644, os.O_WRONLY | os.O_CREAT,
                                     None)  # type: ignore[arg-type]
            await ops.release(fi.fh)

    async def theirs() -> None:
        for i in range(3):
            r = await trio.to_thread.run_sync(
                lambda i=i: samba.smbclient(samba.shares.rw, f"mkdir {name}/theirs{i}",
                                            timeout=BOUND))
            assert r.returncode == 0, r.stdout + r.stderr

    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(creates)
            nursery.start_soon(theirs)
        # Their names appear, ours are all there.
        while any([await _lookup(ops, dino, f"theirs{i}") is None for i in range(3)]):
            await trio.sleep(0.02)
    for i in range(30):
        assert await _lookup(ops, dino, f"c{i}") is not None
    if samba.version >= (4, 22):
        assert ops.dircache.breaks >= 1
    else:
        assert ops.dircache.notifications >= 1


async def test_covered_directories_are_bounded(ops: SmbOperations, samba: PrivateSamba) -> None:
    ops.dircache.max_covered = 4
    base = f"dcb-{uuid.uuid4().hex[:8]}"
    root = samba.share_path(samba.shares.rw) / base
    root.mkdir()
    for i in range(10):
        (root / f"d{i}").mkdir()
    battr = await _lookup(ops, pyfuse3.ROOT_INODE, base)
    assert battr is not None
    nodes = []
    for i in range(10):
        attr = await _lookup(ops, battr.st_ino, f"d{i}")
        assert attr is not None
        await _lookup(ops, attr.st_ino, "x")
        nodes.append(ops.inodes.get(attr.st_ino))
        with trio.fail_after(BOUND):
            await ops.dircache.wait_exact(nodes[-1])
    assert len(ops.dircache) == 4
    # The least recently used went first (the parent, looked up in each
    # time, stays); their handles are closed.
    assert ops.dircache.covered(ops.inodes.get(battr.st_ino)) is not None
    assert [ops.dircache.covered(n) is not None for n in nodes] == [False] * 7 + [True] * 3
    with trio.fail_after(BOUND):
        while True:
            held = [op for op in ops.tree.opens if op.path.startswith(base + "\\d")]
            if len(held) <= 4:
                break
            await trio.sleep(0.02)
