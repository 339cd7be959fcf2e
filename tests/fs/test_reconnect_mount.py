"""Reconnect seen by programs: a mount whose connection is cut, stalled or
whose smbd is killed or restarted keeps working, byte for byte.

Real programs and syscalls on a real mount of the test Samba, with the test
bed's fault proxy between the mount and smbd (or the server's own processes
killed and restarted). Nothing here may see an error, except the one case
documented to give EIO: a file replaced by someone else while the server was
down and its state lost.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from fsmount import Mount, MountFactory, WorkDir, start_mount, unmount

from smbfs.devserver import PrivateSamba

MIB = 1024 * 1024
CMD_TIMEOUT = 120


def cut_every(proxy: FaultProxy, command: int, n: int) -> list[int]:
    """Cut every connection (RST) after each ``n``-th answer to ``command``
    goes by: a fault bound to the I/O itself, not to the clock (a fast
    machine must not finish between two timed cuts). Returns the list the
    cuts are counted in."""
    seen = [0]
    cuts: list[int] = []

    def hook(direction: str, message: bytes) -> bytes | None:
        if direction == "s2c" and message[:4] == b"\xfeSMB" and \
                int.from_bytes(message[12:14], "little") == command:
            seen[0] += 1
            if seen[0] % n == 0:
                cuts.append(seen[0])
                threading.Thread(target=proxy.cut_all, kwargs={"reset": True}).start()
        return message

    proxy.set_frame_hook(hook)
    return cuts


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def _through_proxy(mount_factory: MountFactory, samba: PrivateSamba, proxy: FaultProxy,
                   work: WorkDir, **options: object) -> Mount:
    return mount_factory(subdir=work.name, port=proxy.port, echo_interval=2, **options)


def test_cp_onto_the_mount_survives_cuts(samba: PrivateSamba, mount_factory: MountFactory,
                                         fault_proxy: Callable[[str, int], FaultProxy],
                                         work: WorkDir, tmp_path: Path) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    m = _through_proxy(mount_factory, samba, proxy, work)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(96 * MIB))
    cuts = cut_every(proxy, 0x0009, 20)  # after every 20th WRITE answer
    r = subprocess.run(["cp", str(src), str(m.path / "big.bin")], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["sync", str(m.path / "big.bin")], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert len(cuts) >= 3, cuts
    assert _sha(work.server / "big.bin") == _sha(src)
    assert "reconnected" in m.log_tail(400)


def test_reading_a_big_file_survives_cuts(samba: PrivateSamba, mount_factory: MountFactory,
                                          fault_proxy: Callable[[str, int], FaultProxy],
                                          work: WorkDir) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    data = os.urandom(96 * MIB)
    (work.server / "big.bin").write_bytes(data)
    m = _through_proxy(mount_factory, samba, proxy, work, cache="none")
    cuts = cut_every(proxy, 0x0008, 20)  # after every 20th READ answer
    got = _sha(m.path / "big.bin")
    assert len(cuts) >= 3, cuts
    assert got == hashlib.sha256(data).hexdigest()


def test_listing_10000_entries_survives_a_cut(samba: PrivateSamba, mount_factory: MountFactory,
                                              fault_proxy: Callable[[str, int], FaultProxy],
                                              work: WorkDir) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    big = work.server / "many"
    big.mkdir()
    names = {f"entry-{i:05d}.txt" for i in range(10_000)}
    for n in names:
        (big / n).touch()
    m = _through_proxy(mount_factory, samba, proxy, work)
    state = {"listings": 0, "armed": True}

    def hook(direction: str, message: bytes) -> bytes | None:
        # The third QUERY_DIRECTORY answer never arrives: the connection is
        # cut in the middle of the continuation.
        if direction == "s2c" and message[:4] == b"\xfeSMB" and \
                int.from_bytes(message[12:14], "little") == 0x000E:
            state["listings"] += 1
            if state["armed"] and state["listings"] == 3:
                state["armed"] = False
                threading.Thread(target=proxy.cut_all, kwargs={"reset": True}).start()
                return None
        return message

    proxy.set_frame_hook(hook)
    listed = os.listdir(m.path / "many")
    assert not state["armed"], "the listing was not cut"
    assert len(listed) == len(names) and set(listed) == names


@pytest.mark.parametrize("op", ["rename", "create", "chmod", "utime", "mkdir", "unlink"])
def test_namespace_change_whose_answer_is_lost(samba: PrivateSamba, mount_factory: MountFactory,
                                               fault_proxy: Callable[[str, int], FaultProxy],
                                               work: WorkDir, op: str) -> None:
    """The server did it, the answer was lost with the connection: the
    program sees success, the server has the change exactly once."""
    proxy = fault_proxy(samba.host, samba.port)
    (work.server / "f").write_bytes(b"data")
    (work.server / "f").chmod(0o666)  # made by root here: writable by the share's user
    m = _through_proxy(mount_factory, samba, proxy, work, actimeo=0)
    assert (m.path / "f").read_bytes() == b"data"
    armed = {"on": False}

    def hook(direction: str, message: bytes) -> bytes | None:
        # Drop the first answer to a CREATE (every namespace change starts
        # with one) once armed, and cut.
        if armed["on"] and direction == "s2c" and message[:4] == b"\xfeSMB" and \
                int.from_bytes(message[12:14], "little") == 0x0005:
            armed["on"] = False
            threading.Thread(target=proxy.cut_all, kwargs={"reset": True}).start()
            return None
        return message

    proxy.set_frame_hook(hook)
    armed["on"] = True
    if op == "rename":
        os.rename(m.path / "f", m.path / "g")
        assert (work.server / "g").read_bytes() == b"data" and not (work.server / "f").exists()
    elif op == "create":
        fd = os.open(m.path / "new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b"fresh")
        os.close(fd)
        assert (work.server / "new").read_bytes() == b"fresh"
    elif op == "chmod":
        os.chmod(m.path / "f", 0o444)  # the DOS read-only attribute on the server
        assert os.stat(m.path / "f").st_mode & 0o222 == 0
        os.chmod(m.path / "f", 0o644)
    elif op == "utime":
        os.utime(m.path / "f", (1_000_000_000, 1_000_000_000))
        assert int(os.stat(work.server / "f").st_mtime) == 1_000_000_000
    elif op == "mkdir":
        os.mkdir(m.path / "d")
        assert (work.server / "d").is_dir()
    elif op == "unlink":
        os.unlink(m.path / "f")
        assert not (work.server / "f").exists()
    assert not armed["on"], "the answer was not dropped: the test did not test"


def _connection_pids(server: PrivateSamba) -> list[int]:
    return server.connection_pids()


def test_killed_smbd_mid_copy(fresh_samba: Callable[..., PrivateSamba], tmp_path: Path) -> None:
    server = fresh_samba()
    m = start_mount(server, echo_interval=2)
    try:
        src = tmp_path / "big.bin"
        # Big enough that the copy is still going when the kill lands (the
        # kill comes once 8 MiB are on the server).
        src.write_bytes(os.urandom(256 * MIB))
        proc = subprocess.Popen(["cp", str(src), str(m.path / "big.bin")],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        target = server.share_path(server.shares.rw) / "big.bin"
        while not target.exists() or target.stat().st_size < 8 * MIB:
            assert time.monotonic() < deadline, "the copy did not start"
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        pids = _connection_pids(server)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=CMD_TIMEOUT)
        assert proc.returncode == 0, err
        subprocess.run(["sync", str(m.path / "big.bin")], check=True, timeout=CMD_TIMEOUT)
        assert _sha(target) == _sha(src)
        log = m.log_tail(400)
        # A killed smbd takes its durable handles with it (Samba refuses to
        # reclaim an open whose process died): reopened by name, same file.
        assert "reconnected" in log and "reopened by name after the reconnect (same file)" \
            in log, log
    finally:
        unmount(m)


def test_server_restart_keeps_open_files_working(
        fresh_samba: Callable[..., PrivateSamba]) -> None:
    server = fresh_samba()
    root = server.share_path(server.shares.rw)
    (root / "readme").write_bytes(b"r" * 100_000)
    (root / "doomed").write_bytes(b"old")
    m = start_mount(server, echo_interval=2)
    try:
        reader = open(m.path / "readme", "rb")
        writer = open(m.path / "log", "wb", buffering=0)
        doomed = open(m.path / "doomed", "rb", buffering=0)
        writer.write(b"before\n")
        # On the server before it dies: a write still held back by the
        # write-behind would make start_smbd's fork wait for the server
        # (each exec closes this process's descriptors, and every close(2)
        # puts the file's data on the server first).
        os.fsync(writer.fileno())
        assert reader.read(10) == b"r" * 10

        server.stop_smbd()  # durable state lost with the server
        (root / "doomed").unlink()
        (root / "doomed").write_bytes(b"someone else's new file")
        server.start_smbd()

        # Reads go on where they were; writes the server cannot have lost go on.
        assert reader.read(20) == b"r" * 20
        writer.write(b"after\n")
        writer.close()
        assert (root / "log").read_bytes() == b"before\nafter\n"
        # The replaced file: that descriptor, and only it, gives EIO.
        with pytest.raises(OSError) as e:
            os.pread(doomed.fileno(), 3, 0)
        assert e.value.errno == errno.EIO
        assert "lost" in m.log_tail(400)
        reader.close()
        doomed.close()
        # The new file under the old name, once the attribute cache (actimeo,
        # 1 s) lets the kernel look again.
        deadline = time.monotonic() + 10
        while (m.path / "doomed").read_bytes() != b"someone else's new file":
            assert time.monotonic() < deadline, "the replacing file never showed"
            time.sleep(0.1)
    finally:
        unmount(m)


def test_hard_mount_waits_for_the_server(samba: PrivateSamba, mount_factory: MountFactory,
                                         fault_proxy: Callable[[str, int], FaultProxy],
                                         work: WorkDir) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    (work.server / "f").write_bytes(b"still here")
    m = _through_proxy(mount_factory, samba, proxy, work, hard=True, actimeo=0)
    assert (m.path / "f").read_bytes() == b"still here"
    proxy.refuse_connections(True)
    proxy.cut_all()
    result: list[bytes] = []
    t = threading.Thread(target=lambda: result.append((m.path / "f").read_bytes()))
    t.start()
    t.join(3)  # the server stays away longer than any soft bound in this test
    assert t.is_alive() and not result
    proxy.refuse_connections(False)
    t.join(30)
    assert result == [b"still here"]


def test_fsx_soak_with_a_cut_every_few_hundred_ops(
        samba: PrivateSamba, mount_factory: MountFactory,
        fault_proxy: Callable[[str, int], FaultProxy], work: WorkDir) -> None:
    """20,000 random operations (tests/fsx.py: writes, reads, truncates,
    fsync, reopen, O_APPEND, mmap, renames) while the connection is cut
    (RST) every 800 operations, 25 cuts: zero errors, and every byte checked
    against the checker's model, through the mount and on the server's disk."""
    from fsx import Fsx, FsxConfig

    proxy = fault_proxy(samba.host, samba.port)
    m = _through_proxy(mount_factory, samba, proxy, work)
    cuts: list[int] = []

    def between(i: int) -> None:
        if i and i % 800 == 0:
            proxy.cut_all(reset=True)
            cuts.append(i)

    # mmap runs in a child process: the fault proxy is a thread of this one,
    # and a page fault served through it must not wait on this interpreter.
    config = FsxConfig(seed=20, ops=20_000, files=2, rename=True, mmap_in_child=True)
    fsx = Fsx(m.path, config, between_ops=between)
    stats = fsx.run()
    print(stats.summary())
    assert len(cuts) >= 20
    for i in range(config.files):
        assert (work.server / fsx.files[i].name).read_bytes() == fsx.expected(i)
    assert m.log_tail(2000).count("reconnected to") >= 20


def test_unmount_while_the_server_is_away_is_prompt(
        samba: PrivateSamba, mount_factory: MountFactory,
        fault_proxy: Callable[[str, int], FaultProxy], work: WorkDir) -> None:
    """umount of a hard mount whose server is unreachable: the closes the
    kernel sends on the way out do not wait for the server (they are done
    after a reconnect, if one comes), so the daemon ends at once."""
    proxy = fault_proxy(samba.host, samba.port)
    # closetimeo=0: no handle parked (deferred close) when the server goes
    # away; a durable handle left behind on the session's server would
    # outlive this test (smbstatus then lists the other tests' opens
    # incompletely).
    m = _through_proxy(mount_factory, samba, proxy, work, hard=True, closetimeo=0)
    (m.path / "f").write_bytes(b"x")
    os.listdir(m.path)
    proxy.refuse_connections(True)
    proxy.cut_all()
    start = time.monotonic()
    subprocess.run(["fusermount3", "-u", str(m.path)], check=True, timeout=15)
    m.proc.wait(timeout=10)
    assert time.monotonic() - start < 5
