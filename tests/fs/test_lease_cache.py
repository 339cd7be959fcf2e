"""The file leases drive the mount's cache (docs/filesystem.md, "Caching"):
two mounts of one share (and smbclient as a third client), each change
seen by the other at once even with ``actimeo=60``; what is cached under a
lease costs no round trip (counted as frames through the test's proxy);
breaks never deadlock."""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from fsmount import MountFactory, WorkDir

from smbfs.devserver import PrivateSamba

pytestmark = pytest.mark.both_sambas

BOUND = 15.0
CREATE, CLOSE, READ, QUERY_INFO = 0x0005, 0x0006, 0x0008, 0x0010


def count_requests(proxy: FaultProxy) -> Counter[int]:
    """Count the requests (by command) the client sends through ``proxy``;
    a compound counts each of its commands."""
    seen: Counter[int] = Counter()
    lock = threading.Lock()

    def hook(direction: str, message: bytes) -> bytes | None:
        if direction == "c2s":
            off = 0
            while off + 64 <= len(message) and message[off:off + 4] == b"\xfeSMB":
                with lock:
                    seen[int.from_bytes(message[off + 12:off + 14], "little")] += 1
                nxt = int.from_bytes(message[off + 20:off + 24], "little")
                if not nxt:
                    break
                off += nxt
        return message

    proxy.set_frame_hook(hook)
    return seen


def _wait(cond: Callable[[], object], what: str, timeout: float = BOUND) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s")
        time.sleep(0.02)


def _opens(samba: PrivateSamba, name: str) -> list[str]:
    """The lease states of the server's opens of ``name``."""
    return [str((o.get("lease") or {}).get("text", ""))
            for f in samba.open_files()
            if str(f.get("filename", "")).replace("\\", "/").endswith("/" + name)
            for o in (f.get("opens") or {}).values()]


def test_reopen_and_reread_cost_no_round_trip(samba: PrivateSamba, work: WorkDir,
                                              mount_factory: MountFactory,
                                              fault_proxy: Callable[[str, int], FaultProxy]
                                              ) -> None:
    """Within closetimeo a re-open reuses the released handle, and the
    pages cached under the unbroken read lease answer the re-read: no
    CREATE, no READ, no CLOSE reaches the server."""
    (work.server / "f").write_bytes(os.urandom(300_000))
    proxy = fault_proxy(samba.host, samba.port)
    m = mount_factory(subdir=work.name, port=proxy.port, closetimeo=60)
    p = m.path / "f"
    data = p.read_bytes()
    assert _opens(samba, "f") == ["RWH"]  # released, kept open: deferred close
    seen = count_requests(proxy)
    for _ in range(20):
        assert p.read_bytes() == data
        os.stat(p)
    assert seen[CREATE] == seen[READ] == seen[CLOSE] == 0, dict(seen)


def test_reader_sees_another_mounts_write(samba: PrivateSamba, work: WorkDir,
                                          mount_factory: MountFactory) -> None:
    """A program holding a file open on mount A while mount B rewrites it
    (same size): A's next read returns the new data (its read lease was
    broken, its pages dropped before the acknowledgment)."""
    a = mount_factory(subdir=work.name, actimeo=60)
    b = mount_factory(subdir=work.name, actimeo=60)
    (a.path / "f").write_bytes(b"a" * 50_000)
    with open(a.path / "f", "rb") as fa:
        assert fa.read() == b"a" * 50_000
        with open(b.path / "f", "r+b") as fb:
            fb.write(b"b" * 50_000)
        fa.seek(0)
        assert fa.read() == b"b" * 50_000


def test_changes_through_one_mount_seen_by_the_other(samba: PrivateSamba, work: WorkDir,
                                                     mount_factory: MountFactory) -> None:
    """Content after an overwrite and size after an append, with the
    pages and attributes of mount A cached under its lease (a file read
    and released, its handle parked)."""
    a = mount_factory(subdir=work.name, actimeo=60)
    b = mount_factory(subdir=work.name, actimeo=60)
    (b.path / "f").write_bytes(b"1" * 1000)
    assert (a.path / "f").read_bytes() == b"1" * 1000
    (b.path / "f").write_bytes(b"2" * 1000)  # same size
    assert (a.path / "f").read_bytes() == b"2" * 1000
    with open(b.path / "f", "ab") as f:
        f.write(b"3" * 500)
    assert os.stat(a.path / "f").st_size == 1500
    assert (a.path / "f").read_bytes() == b"2" * 1000 + b"3" * 500
    st_b = os.stat(b.path / "f")
    st_a = os.stat(a.path / "f")
    assert (st_a.st_size, st_a.st_mtime_ns) == (st_b.st_size, st_b.st_mtime_ns)


def test_smbclient_overwrite_of_a_parked_file(samba: PrivateSamba, work: WorkDir,
                                              mount_factory: MountFactory,
                                              tmp_path: Path) -> None:
    """smbclient's open breaks our lease; the parked handle is closed
    before the acknowledgment (the server no longer shows it), and the
    next read shows smbclient's bytes."""
    m = mount_factory(subdir=work.name, actimeo=60, closetimeo=60)
    (m.path / "f").write_bytes(b"old" * 1000)
    assert (m.path / "f").read_bytes() == b"old" * 1000
    assert _opens(samba, "f") == ["RWH"]
    up = tmp_path / "up"
    up.write_bytes(b"new" * 1000)
    start = time.monotonic()
    r = samba.smbclient(samba.shares.rw, f'put "{up}" "{work.name}/f"', timeout=BOUND)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - start < BOUND
    assert (m.path / "f").read_bytes() == b"new" * 1000


def test_delete_by_another_client_is_not_held_by_a_parked_handle(
        samba: PrivateSamba, work: WorkDir, mount_factory: MountFactory) -> None:
    m = mount_factory(subdir=work.name, actimeo=1, closetimeo=60)
    (m.path / "f").write_bytes(b"x")
    assert (m.path / "f").read_bytes() == b"x"
    r = samba.smbclient(samba.shares.rw, f'del "{work.name}/f"', timeout=BOUND)
    assert r.returncode == 0, r.stdout + r.stderr
    _wait(lambda: not (work.server / "f").exists(), "the delete on the server's disk")
    _wait(lambda: not (m.path / "f").exists(), "the name gone from the mount")


def test_a_thousand_breaks_in_a_row(samba: PrivateSamba, work: WorkDir,
                                    mount_factory: MountFactory) -> None:
    """Two mounts opening one file in turn: each open breaks the other's
    lease (1,000 breaks). Each waits for an acknowledgment, none for the
    server's 35 s break timeout; the data stays exact."""
    a = mount_factory(subdir=work.name, closetimeo=60)
    b = mount_factory(subdir=work.name, closetimeo=60)
    (a.path / "f").write_bytes(b"ping")
    start = time.monotonic()
    for i in range(500):
        with open(a.path / "f", "rb") as f:
            assert f.read() == b"ping"
        with open(b.path / "f", "rb") as f:
            assert f.read() == b"ping"
        assert time.monotonic() - start < 120, f"iteration {i}"
    assert (a.path / "f").read_bytes() == b"ping"


def test_break_flushes_dirty_mmap_pages(samba: PrivateSamba, work: WorkDir,
                                        mount_factory: MountFactory,
                                        tmp_path: Path) -> None:
    """Pages dirtied through a shared mapping, not msync'ed: another
    client's open breaks our write caching, the kernel writes them back
    (FUSE WRITEs this mount serves while its break handler waits) before
    the acknowledgment, so smbclient reads them. No deadlock."""
    m = mount_factory(subdir=work.name)
    size = 64 * 4096
    (m.path / "f").write_bytes(b"\0" * size)
    got = tmp_path / "got"
    with open(m.path / "f", "r+b") as f:
        with mmap.mmap(f.fileno(), size) as mm:
            mm[:] = b"M" * size
            start = time.monotonic()
            r = samba.smbclient(samba.shares.rw, f'get "{work.name}/f" "{got}"',
                                timeout=BOUND)
            assert r.returncode == 0, r.stdout + r.stderr
            assert time.monotonic() - start < BOUND
    assert got.read_bytes() == b"M" * size


def test_break_while_renaming(samba: PrivateSamba, work: WorkDir,
                              mount_factory: MountFactory) -> None:
    """Mount B reads the file (breaking mount A's lease) while A renames it
    back and forth with a handle open: every operation finishes in bounded
    time and nothing is lost."""
    a = mount_factory(subdir=work.name)
    b = mount_factory(subdir=work.name, actimeo=0)
    (a.path / "a").write_bytes(b"r" * 10_000)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            for name in ("a", "b"):
                try:
                    assert (b.path / name).read_bytes() == b"r" * 10_000
                    reads[0] += 1
                except FileNotFoundError:
                    pass
                except BaseException as e:
                    errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        with open(a.path / "a", "rb"):
            start = time.monotonic()
            for _ in range(40):
                os.rename(a.path / "a", a.path / "b")
                os.rename(a.path / "b", a.path / "a")
            assert time.monotonic() - start < 60
    finally:
        stop.set()
        t.join(BOUND * 3)
    assert not t.is_alive()
    assert not errors, errors
    assert reads[0] > 0
    assert (a.path / "a").read_bytes() == b"r" * 10_000
