"""Write-behind under a W lease (smbfs/fs/writeback.py): writes answered
from our buffer, several WRITEs in flight, a small file in two round trips,
and every byte on the server when close(2)/fsync return or another client
opens the file (the lease break flushes before it is acknowledged).

Real Samba throughout; the round-trip and in-flight counts drive
SmbOperations directly (as test_operations.py does), the rest are real
mounts and real programs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pyfuse3
import pytest
import trio
from direct_ops import direct_ops
from faultproxy import FaultProxy
from fsmount import MountFactory, WorkDir, start_mount, unmount
from fsx import Fsx, FsxConfig

from smbfs.devserver import PrivateSamba
from smbfs.fs.operations import SmbOperations

KIB = 1024
MIB = 1024 * KIB
BOUND = 30.0  # far below a hang, far above any of these on a loaded machine


@pytest.fixture
async def ops(samba: PrivateSamba) -> AsyncIterator[SmbOperations]:
    async with direct_ops(samba) as o:
        yield o


def _ctx() -> pyfuse3.RequestContext:
    return None  # type: ignore[return-value]  # SmbOperations does not read it


@pytest.mark.both_sambas
async def test_small_file_costs_two_round_trips(ops: SmbOperations, samba: PrivateSamba) -> None:
    """create, write, close(2): CREATE, then one compound of the WRITE, the
    write time close(2) sets and the attributes it leaves; the data is on
    the server when close(2) returns. The release parks the handle under
    its H lease (deferred close): no CLOSE on the program's path at all."""
    name = f"small-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    data = os.urandom(3000)
    try:
        with trio.fail_after(BOUND):
            before = ops.tree.round_trips
            fi, _ = await ops.create(pyfuse3.ROOT_INODE, name.encode(), 0o644,
                                     os.O_CREAT | os.O_WRONLY | os.O_TRUNC, _ctx())
            assert await ops.write(fi.fh, 0, data[:1000]) == 1000
            assert await ops.write(fi.fh, 1000, data[1000:]) == 2000
            assert ops.tree.round_trips == before + 1  # the CREATE; writes buffered
            await ops.flush(fi.fh)  # close(2)
            assert server.read_bytes() == data
            assert ops.tree.round_trips == before + 2  # WRITE + SET_INFO + QUERY_INFO
            assert ops.writeback.write_stamp_compounds == 1
            await ops.release(fi.fh)
            assert ops.tree.round_trips == before + 2
            assert ops.handles.parked
    finally:
        await ops.leases.close_parked()
        server.unlink(missing_ok=True)


async def test_tail_written_after_close_goes_with_the_close(ops: SmbOperations,
                                                           samba: PrivateSamba) -> None:
    """Writes after the last close(2) (a shared mapping's pages written
    back at munmap) are sent in one compound with the CLOSE."""
    name = f"tail-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    try:
        with trio.fail_after(BOUND):
            before = ops.tree.round_trips
            fi, attr = await ops.create(pyfuse3.ROOT_INODE, name.encode(), 0o644,
                                        os.O_CREAT | os.O_RDWR, _ctx())
            await ops.write(fi.fh, 0, b"first ")
            await ops.flush(fi.fh)
            await ops.write(fi.fh, 6, b"second")
            await ops.release(fi.fh)
            assert server.read_bytes() == b"first second"
            assert ops.writeback.write_close_compounds == 1
            assert ops.tree.round_trips == before + 3  # CREATE, WRITE, WRITE+CLOSE
            # The CLOSE's attributes were taken: no round trip for them.
            assert (await ops.getattr(attr.st_ino, _ctx())).st_size == 12
            assert ops.tree.round_trips == before + 3
    finally:
        server.unlink(missing_ok=True)


async def test_sequential_writer_keeps_several_writes_in_flight(
        ops: SmbOperations, samba: PrivateSamba) -> None:
    name = f"seq-{os.getpid()}"
    server = samba.share_path(samba.shares.rw) / name
    data = os.urandom(16 * MIB)
    step = 128 * KIB  # the kernel's FUSE write size
    try:
        with trio.fail_after(BOUND):
            fi, _ = await ops.create(pyfuse3.ROOT_INODE, name.encode(), 0o644,
                                     os.O_CREAT | os.O_WRONLY, _ctx())
            op = ops.handles.files[fi.fh].open
            for off in range(0, len(data), step):
                assert await ops.write(fi.fh, off, data[off:off + step]) == step
            await ops.fsync(fi.fh, False)
            assert server.read_bytes() == data
            # One writer, one request at a time from the kernel, yet more
            # than one SMB2 WRITE on the wire, coalesced to max_write each.
            assert op.peak_in_flight >= 2, op.peak_in_flight
            assert ops.writeback.peak_in_flight >= 2
            assert op.requests <= len(data) // op.max_write + 2
            await ops.flush(fi.fh)
            await ops.release(fi.fh)
    finally:
        server.unlink(missing_ok=True)


def test_close_returns_with_the_data_on_the_server(work: WorkDir) -> None:
    data = os.urandom(5 * MIB + 12345)
    for i in range(3):
        p = work.path / f"c{i}"
        with open(p, "wb") as f:
            f.write(data)
        assert (work.server / f"c{i}").read_bytes() == data


def test_fsync_returns_with_the_data_on_the_server(work: WorkDir) -> None:
    p = work.path / "synced"
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"a" * 300_000)
        os.fsync(fd)
        assert (work.server / "synced").read_bytes() == b"a" * 300_000
        os.write(fd, b"b" * 1000)
        # Seen through the mount (a refresh flushes first) and on the
        # server after fsync.
        assert os.stat(p).st_size == 301_000
        os.fsync(fd)
        assert (work.server / "synced").stat().st_size == 301_000
    finally:
        os.close(fd)


# The writer runs in a process of its own: a descriptor this test process
# held would be closed in every child it forks to run smbclient, and each of
# those closes is a close(2) (a FUSE flush) that would push the data out
# before the break we want to see doing it.
WRITER = r"""
import os, sys
src, dst, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(src, "rb").read()
fd = os.open(dst, os.O_CREAT | os.O_WRONLY, 0o644)
for off in range(0, len(data), step):
    os.write(fd, data[off:off + step])
    if off // step == 4:
        print("started", flush=True)
print("written", flush=True)
for line in sys.stdin:
    if line.strip() == "tail":
        os.write(fd, b"tail")
        print("ok", flush=True)
    else:
        break
os.close(fd)
print("closed", flush=True)
"""


def _writer(src: Path, dst: Path, step: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(dst), str(step)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _expect(proc: subprocess.Popen[str], word: str) -> None:
    assert proc.stdout is not None
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(proc.stdout.readline()  # type: ignore
                                                   .strip()))
    t.start()
    t.join(BOUND)
    assert got == [word], (word, got)


@pytest.mark.both_sambas
def test_another_clients_open_sees_unflushed_data(samba: PrivateSamba, work: WorkDir,
                                                  tmp_path: Path) -> None:
    """Written on the mount, no fsync, file still open: smbclient's open
    breaks our lease, and the break flushes before it is acknowledged."""
    data = os.urandom(300 * KIB)  # below max_write: it stays in our buffer
    src = tmp_path / "src"
    src.write_bytes(data)
    w = _writer(src, work.path / "dirty", 64 * KIB)
    try:
        _expect(w, "started")
        _expect(w, "written")
        assert (work.server / "dirty").stat().st_size < len(data)  # really held back
        local = tmp_path / "got"
        r = samba.smbclient(samba.shares.rw, f'get "{work.name}/dirty" "{local}"',
                            timeout=BOUND)
        assert r.returncode == 0, r.stdout + r.stderr
        assert local.read_bytes() == data
        # W is gone: the next write goes through, on the server at once.
        assert w.stdin is not None
        w.stdin.write("tail\n")
        w.stdin.flush()
        _expect(w, "ok")
        assert (work.server / "dirty").read_bytes() == data + b"tail"
        w.stdin.write("close\n")
        w.stdin.flush()
        _expect(w, "closed")
    finally:
        w.kill()
        w.wait(BOUND)


@pytest.mark.both_sambas
def test_break_while_writes_are_in_flight_does_not_deadlock(samba: PrivateSamba,
                                                            work: WorkDir,
                                                            tmp_path: Path) -> None:
    data = os.urandom(48 * MIB)
    src = tmp_path / "src"
    src.write_bytes(data)
    w = _writer(src, work.path / "busy", MIB)
    try:
        _expect(w, "started")
        for i in range(3):
            r = samba.smbclient(samba.shares.rw,
                                f'get "{work.name}/busy" "{tmp_path / str(i)}"',
                                timeout=BOUND)
            assert r.returncode == 0, r.stdout + r.stderr
        assert w.stdin is not None
        w.stdin.write("close\n")
        w.stdin.flush()
        _expect(w, "written")
        _expect(w, "closed")
        assert w.wait(BOUND) == 0
    finally:
        w.kill()
        w.wait(BOUND)
    assert (work.server / "busy").read_bytes() == data


def test_enospc_reaches_the_program(samba: PrivateSamba, mount_factory: MountFactory) -> None:
    """The small share is a 2 MiB tmpfs: writing more fails, at the latest
    at fsync, and at close(2) when fsync is skipped."""
    m = mount_factory(share=samba.shares.small)
    for how in ("fsync", "close"):
        p = m.path / f"full-{how}"
        seen: list[int] = []
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            for _ in range(8):
                os.write(fd, b"z" * (512 * KIB))
            if how == "fsync":
                os.fsync(fd)
        except OSError as e:
            seen.append(e.errno)
        try:
            os.close(fd)
        except OSError as e:
            seen.append(e.errno)
        assert errno.ENOSPC in seen, (how, seen)
        os.unlink(p)


def test_buffered_data_survives_a_cut(samba: PrivateSamba, mount_factory: MountFactory,
                                      fault_proxy: Callable[[str, int], FaultProxy],
                                      work: WorkDir) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    m = mount_factory(subdir=work.name, port=proxy.port, echo_interval=2)
    data = os.urandom(3 * MIB + 777)
    with open(m.path / "cut", "wb") as f:
        f.write(data[:MIB + 100])
        proxy.cut_all(reset=True)
        f.write(data[MIB + 100:])
    assert (work.server / "cut").read_bytes() == data


def test_fsx_with_another_client_breaking_the_lease(
        fresh_samba: Callable[..., PrivateSamba], tmp_path: Path) -> None:
    """Random writes, truncates and reads, byte-exact, while smbclient
    opens the file every so often (each open takes our W away; the next
    open of ours gets it back). A server of its own: smbstatus --json keys
    open files by device and inode, so a durable handle other tests left
    on a deleted file whose inode number the new file got hides it."""
    samba = fresh_samba()
    m = start_mount(samba)
    got = tmp_path / "peek"
    states: list[str] = []

    def peek(i: int) -> None:
        if i % 150 == 75:
            states.extend(_lease_states(samba, "fsx0"))
            r = samba.smbclient(samba.shares.rw, f'get "fsx0" "{got}"', timeout=BOUND)
            assert r.returncode == 0, r.stdout + r.stderr

    try:
        config = FsxConfig(seed=23, ops=1500, mmap=False, prefix="fsx")
        fsx = Fsx(m.path, config, between_ops=peek)
        fsx.run()
        name = fsx.files[0].name
        assert (samba.share_path(samba.shares.rw) / name).read_bytes() == fsx.expected(0)
    finally:
        unmount(m)
    # Cached writes more than once: W came back with our later opens.
    assert states.count("RWH") >= 2, states


def _lease_states(samba: PrivateSamba, name: str) -> list[str]:
    """The lease states of the server's opens of the file called ``name``."""
    out = []
    for f in samba.open_files():
        if str(f.get("filename", "")).replace("\\", "/").rsplit("/", 1)[-1] == name:
            for o in (f.get("opens") or {}).values():
                out.append(str((o.get("lease") or {}).get("text", "")))
    return out


def test_kernel_writeback_cache_stays_off() -> None:
    # docs/filesystem.md: with it the kernel keeps its own size and mtime
    # of every regular file and ignores the server's, leased or not.
    assert SmbOperations.enable_writeback_cache is False
