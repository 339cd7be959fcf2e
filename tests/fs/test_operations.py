"""SmbOperations driven directly (no kernel) against the real Samba, where
we need to count round trips: readdirplus must make the following
lookups/getattrs free."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pyfuse3
import pytest
import trio
from direct_ops import direct_ops

from smbfs.client import ClientConfig
from smbfs.devserver import PrivateSamba
from smbfs.fs.operations import SmbOperations
from smbfs.fs.options import FsOptions


@pytest.fixture
async def ops(samba: PrivateSamba) -> AsyncIterator[SmbOperations]:
    async with direct_ops(samba) as o:
        yield o


async def test_readdirplus_makes_lookups_free(ops: SmbOperations, samba: PrivateSamba,
                                              monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Any) -> None:
    name = f"rdp-{os.getpid()}"
    d = samba.share_path(samba.shares.rw) / name
    d.mkdir()
    try:
        for i in range(50):
            (d / f"f{i}").write_bytes(b"x" * i)
        replies: list[tuple[bytes, pyfuse3.EntryAttributes]] = []

        def reply(token: object, n: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
            replies.append((n, attr))
            return True

        monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
        dir_attr = await ops.lookup(pyfuse3.ROOT_INODE, name.encode(), None)  # type: ignore
        fh = await ops.opendir(dir_attr.st_ino, None)  # type: ignore[arg-type]
        await ops.readdir(fh, 0, None)  # type: ignore[arg-type]
        await ops.releasedir(fh)
        names = {n for n, _ in replies} - {b".", b".."}
        assert names == {f"f{i}".encode() for i in range(50)}
        before = ops.tree.round_trips
        for n, attr in replies:
            if n in (b".", b".."):
                continue
            got = await ops.lookup(dir_attr.st_ino, n, None)  # type: ignore[arg-type]
            assert got.st_ino == attr.st_ino and got.st_size == int(n[1:])
            await ops.getattr(got.st_ino, None)  # type: ignore[arg-type]
        assert ops.tree.round_trips == before  # all from the listing's attributes
        # Lookup counts: one per readdir entry plus one per lookup; forgetting
        # them all frees the nodes.
        inos = [(a.st_ino, 2) for n, a in replies if n not in (b".", b"..")]
        await ops.forget(inos)
        assert all(ops.inodes.by_path(f"{name}\\f{i}") is None for i in range(50))
    finally:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


async def test_serve_refuses_bad_mountpoints(samba: PrivateSamba, tmp_path: Any) -> None:
    from smbfs.fs.mount import MountError, serve

    cfg = ClientConfig(host=samba.host, port=samba.port, username=samba.user.name,
                       password=samba.user.password)
    with pytest.raises(MountError, match="does not exist"):
        await serve(cfg, samba.shares.rw, "", str(tmp_path / "missing"), FsOptions())
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(MountError, match="not a directory"):
        await serve(cfg, samba.shares.rw, "", str(tmp_path / "file"), FsOptions())
    with pytest.raises(MountError, match="no such directory"):
        await serve(cfg, samba.shares.rw, "no/such/dir", str(tmp_path), FsOptions())


async def test_serve_raises_engine_errors(samba: PrivateSamba, tmp_path: Any) -> None:
    from smbfs.client import AuthenticationError, SMBError
    from smbfs.fs.mount import serve

    bad = ClientConfig(host=samba.host, port=samba.port, username=samba.user.name,
                       password="wrong")
    with pytest.raises(AuthenticationError):
        await serve(bad, samba.shares.rw, "", str(tmp_path), FsOptions())
    good = ClientConfig(host=samba.host, port=samba.port, username=samba.user.name,
                        password=samba.user.password)
    with pytest.raises(SMBError, match="STATUS_BAD_NETWORK_NAME"):
        await serve(good, "nosuchshare", "", str(tmp_path), FsOptions())


def _fields(**on: bool) -> Any:
    """A stand-in for pyfuse3.SetattrFields (whose attributes are read-only)."""
    from types import SimpleNamespace

    names = ("update_atime", "update_mtime", "update_size", "update_mode", "update_uid",
             "update_gid", "update_ctime")
    return SimpleNamespace(**{n: on.get(n, False) for n in names})


async def test_setattr_is_one_round_trip(ops: SmbOperations, samba: PrivateSamba) -> None:
    """The change and the attributes it leaves travel in one compound, on a
    path nobody holds open and through an open handle; a chmod SMB cannot
    store sends nothing."""
    name = f"sa-{os.getpid()}"
    fi, attr = await ops.create(pyfuse3.ROOT_INODE, name.encode(), 0o644,
                                os.O_WRONLY | os.O_CREAT, None)  # type: ignore[arg-type]
    try:
        want = pyfuse3.EntryAttributes()
        want.st_mtime_ns = 1_600_000_000_123_456_700
        want.st_atime_ns = 1_600_000_000_000_000_000
        want.st_size = 10
        before = ops.tree.round_trips
        got = await ops.setattr(attr.st_ino, want, _fields(update_size=True), fi.fh,
                                None)  # type: ignore[arg-type]
        assert got.st_size == 10 and ops.tree.round_trips == before + 1
        await ops.release(fi.fh)
        before = ops.tree.round_trips
        got = await ops.setattr(attr.st_ino, want, _fields(update_mtime=True, update_atime=True,
                                                           update_size=True),
                                None, None)  # type: ignore[arg-type]
        assert ops.tree.round_trips == before + 1
        assert got.st_mtime_ns == want.st_mtime_ns and got.st_size == 10
        st = (samba.share_path(samba.shares.rw) / name).stat()
        assert st.st_mtime_ns // 100 == want.st_mtime_ns // 100 and st.st_size == 10
        want.st_mode = 0o100644  # already writable: nothing to store
        before = ops.tree.round_trips
        await ops.setattr(attr.st_ino, want, _fields(update_mode=True), None,
                          None)  # type: ignore[arg-type]
        assert ops.tree.round_trips == before
    finally:
        (samba.share_path(samba.shares.rw) / name).unlink()


async def test_create_in_known_directory(ops: SmbOperations, samba: PrivateSamba) -> None:
    """In a directory we made (or listed), the lookup before a create and the
    parent's getattr after it cost no round trip; our own creates and
    unlinks are seen at once."""
    name = f"neg-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    d = await ops.mkdir(pyfuse3.ROOT_INODE, name.encode(), 0o755, None)  # type: ignore
    try:
        await ops.getattr(d.st_ino, None)
        before = ops.tree.round_trips
        with pytest.raises(pyfuse3.FUSEError) as e:
            await ops.lookup(d.st_ino, b"f1", None)  # type: ignore[arg-type]
        assert e.value.errno == 2
        fi, attr = await ops.create(d.st_ino, b"f1", 0o644, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                    None)  # type: ignore[arg-type]
        dattr = await ops.getattr(d.st_ino, None)
        assert ops.tree.round_trips == before + 1  # the CREATE only
        assert dattr.st_mtime_ns >= d.st_mtime_ns
        await ops.release(fi.fh)
        # Seen at once, case-insensitively, as the server would.
        assert (await ops.lookup(d.st_ino, b"F1", None)).st_ino == attr.st_ino  # type: ignore
        await ops.unlink(d.st_ino, b"f1", None)  # type: ignore[arg-type]
        before = ops.tree.round_trips
        with pytest.raises(pyfuse3.FUSEError):
            await ops.lookup(d.st_ino, b"f1", None)  # type: ignore[arg-type]
        assert ops.tree.round_trips == before
        # Made by someone else: not known without asking once the listing
        # is older than actimeo.
        (server / "other").write_bytes(b"x")
        with pytest.raises(pyfuse3.FUSEError):
            await ops.lookup(d.st_ino, b"other", None)  # type: ignore[arg-type]
        ops.inodes.get(d.st_ino).listed_until = 0.0  # as if actimeo had passed
        assert (await ops.lookup(d.st_ino, b"other", None)).st_size == 1  # type: ignore
    finally:
        for f in server.iterdir():
            f.unlink()
        server.rmdir()


async def test_keep_cache_only_when_provably_unchanged(ops: SmbOperations,
                                                       samba: PrivateSamba,
                                                       tmp_path: Any) -> None:
    """cache=strict: the pages are kept at an open while a read lease of
    ours has covered the file since they were cached (our own writers write
    through the same pages), and dropped once another client's change
    broke it."""
    name = f"kc-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    fi, attr = await ops.create(pyfuse3.ROOT_INODE, name.encode(), 0o644,
                                os.O_WRONLY | os.O_CREAT, None)  # type: ignore[arg-type]
    await ops.write(fi.fh, 0, b"A" * 100)
    await ops.release(fi.fh)
    try:
        keeps = []
        for _ in range(2):
            fi = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
            keeps.append(fi.keep_cache)
            await ops.release(fi.fh)
        assert keeps == [False, True]
        w = await ops.open(attr.st_ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        r = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
        assert r.keep_cache
        await ops.write(w.fh, 0, b"B")
        await ops.release(w.fh)
        await ops.release(r.fh)
        fi = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
        assert fi.keep_cache
        await ops.release(fi.fh)
        # Changed by another client (same size): the break drops them.
        local = tmp_path / "c"
        local.write_bytes(b"C" * 100)
        breaks = ops.leases.breaks_handled
        # In a thread: the break must be acknowledged by this trio loop.
        r2 = await trio.to_thread.run_sync(samba.smbclient, samba.shares.rw,
                                           f'put "{local}" "{name}"')
        assert r2.returncode == 0, r2.stdout + r2.stderr
        assert ops.leases.breaks_handled > breaks
        fi = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
        assert not fi.keep_cache
        assert await ops.read(fi.fh, 0, 100) == b"C" * 100
        await ops.release(fi.fh)
    finally:
        server.unlink()


async def test_stat_and_reopen_under_a_lease_cost_nothing(ops: SmbOperations,
                                                          samba: PrivateSamba) -> None:
    """While a read lease covers the file, a second getattr is answered
    locally; within closetimeo a released handle serves the next open."""
    name = f"rt-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    server.write_bytes(b"z" * 10)
    try:
        attr = await ops.lookup(pyfuse3.ROOT_INODE, name.encode(), None)  # type: ignore
        fi = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
        await ops.getattr(attr.st_ino)
        before = ops.tree.round_trips
        for _ in range(5):
            assert (await ops.getattr(attr.st_ino)).st_size == 10
        assert ops.tree.round_trips == before
        await ops.release(fi.fh)
        for _ in range(5):
            fi = await ops.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
            assert await ops.read(fi.fh, 0, 10) == b"z" * 10
            await ops.release(fi.fh)
        # Reads go to the server (no kernel here), the opens did not.
        assert ops.tree.round_trips == before + 5
        assert [o for f in samba.open_files() if str(f.get("filename", "")).endswith(name)
                for o in (f.get("opens") or {}).values()]
    finally:
        await ops.leases.close_parked()
        server.unlink()


async def test_parked_handle_closes_at_its_deadline(samba: PrivateSamba) -> None:
    name = f"dl-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    server.write_bytes(b"q")
    async with direct_ops(samba, closetimeo=0.2) as o:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(o.run)
            attr = await o.lookup(pyfuse3.ROOT_INODE, name.encode(), None)  # type: ignore
            fi = await o.open(attr.st_ino, os.O_RDONLY, None)  # type: ignore[arg-type]
            await o.release(fi.fh)
            assert o.handles.parked
            with trio.fail_after(5):
                while o.leases.parked_closed == 0:
                    await trio.sleep(0.02)
            assert not o.handles.parked
            nursery.cancel_scope.cancel()
    server.unlink()


async def test_lookup_storm_lists_once(ops: SmbOperations, samba: PrivateSamba) -> None:
    """Many lookups in one directory (stat after a remount) cost one listing,
    not a round trip each; a name another client adds is still found."""
    name = f"storm-{os.getpid()}"
    d = samba.share_path(samba.shares.rw) / name
    d.mkdir()
    try:
        for i in range(60):
            (d / f"f{i}").write_bytes(b"x" * i)
        dattr = await ops.lookup(pyfuse3.ROOT_INODE, name.encode(), None)  # type: ignore
        before = ops.tree.round_trips
        for i in range(60):
            got = await ops.lookup(dattr.st_ino, f"f{i}".encode(), None)  # type: ignore
            assert got.st_size == i
        assert ops.tree.round_trips - before < 12
        (d / "late").write_bytes(b"late")
        assert (await ops.lookup(dattr.st_ino, b"late", None)).st_size == 4  # type: ignore
        with pytest.raises(pyfuse3.FUSEError):
            await ops.lookup(dattr.st_ino, b"absent", None)  # type: ignore[arg-type]
    finally:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


async def test_known_directory_renewed_by_listing(ops: SmbOperations,
                                                  samba: PrivateSamba) -> None:
    """Once a directory we made is older than actimeo, a few lookup misses
    list it, and absent names are answered locally again."""
    name = f"renew-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    before = ops.tree.round_trips
    d = await ops.mkdir(pyfuse3.ROOT_INODE, name.encode(), 0o755, None)  # type: ignore
    assert ops.tree.round_trips == before + 1  # create+query+close
    assert d.st_ino == server.stat().st_ino  # the server's file id
    try:
        node = ops.inodes.get(d.st_ino)
        node.listed_until = 0.0  # as if actimeo had passed
        (server / "other").write_bytes(b"x")
        for i in range(4):
            with pytest.raises(pyfuse3.FUSEError):
                await ops.lookup(d.st_ino, f"n{i}".encode(), None)  # type: ignore[arg-type]
        assert node.listing == {"other"}
        before = ops.tree.round_trips
        with pytest.raises(pyfuse3.FUSEError):
            await ops.lookup(d.st_ino, b"n9", None)  # type: ignore[arg-type]
        assert (await ops.lookup(d.st_ino, b"OTHER", None)).st_size == 1  # type: ignore
        assert ops.tree.round_trips == before
    finally:
        for f in server.iterdir():
            f.unlink()
        server.rmdir()


async def test_lookup_storm_listing_forgets_our_writes(ops: SmbOperations,
                                                       samba: PrivateSamba) -> None:
    """A file we wrote after the directory was listed is not described by
    that listing, even after the kernel forgot the file."""
    name = f"stormw-{os.getpid()}"
    d = samba.share_path(samba.shares.rw) / name
    d.mkdir()
    d.chmod(0o777)
    try:
        for i in range(6):
            (d / f"f{i}").write_bytes(b"")
            (d / f"f{i}").chmod(0o666)
        dattr = await ops.lookup(pyfuse3.ROOT_INODE, name.encode(), None)  # type: ignore
        for i in range(6):
            await ops.lookup(dattr.st_ino, f"f{i}".encode(), None)  # type: ignore[arg-type]
        assert ops.inodes.get(dattr.st_ino).prefetch is not None
        f5 = await ops.lookup(dattr.st_ino, b"f5", None)  # type: ignore[arg-type]
        fi = await ops.open(f5.st_ino, os.O_WRONLY, None)  # type: ignore[arg-type]
        await ops.write(fi.fh, 0, b"12345")
        await ops.release(fi.fh)
        await ops.forget([(f5.st_ino, 2)])
        assert ops.inodes.by_path(f"{name}\\f5") is None
        assert (await ops.lookup(dattr.st_ino, b"f5", None)).st_size == 5  # type: ignore
    finally:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()
