"""The mount and a second real client (smbclient) see each other's writes,
and bad situations give clear errors."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from fsmount import Mount, MountFactory, WorkDir

from smbfs.devserver import SMALL_SHARE_BYTES, PrivateSamba


def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_smbclient_writes_mount_reads(samba: PrivateSamba, work: WorkDir,
                                      tmp_path: Path) -> None:
    local = tmp_path / "up"
    local.write_bytes(b"from smbclient\n" * 1000)
    r = samba.smbclient(samba.shares.rw, f'put "{local}" "{work.name}/up"')
    assert r.returncode == 0, r.stdout + r.stderr
    assert (work.path / "up").read_bytes() == local.read_bytes()
    # Changed behind our back: visible once the attribute cache expires (actimeo=1).
    local.write_bytes(b"changed, and longer than before\n" * 2000)
    r = samba.smbclient(samba.shares.rw, f'put "{local}" "{work.name}/up"')
    assert r.returncode == 0, r.stdout + r.stderr
    _wait_for(lambda: (work.path / "up").stat().st_size == len(local.read_bytes()))
    assert (work.path / "up").read_bytes() == local.read_bytes()


def test_mount_writes_smbclient_reads(samba: PrivateSamba, work: WorkDir,
                                      tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    (work.path / "down").write_bytes(data)
    got = tmp_path / "got"
    r = samba.smbclient(samba.shares.rw, f'get "{work.name}/down" "{got}"')
    assert r.returncode == 0, r.stdout + r.stderr
    assert got.read_bytes() == data


def test_readonly_share(samba: PrivateSamba, mount_factory: MountFactory) -> None:
    (samba.share_path(samba.shares.ro) / "present").write_bytes(b"ro data")
    try:
        m: Mount = mount_factory(share=samba.shares.ro)
        assert (m.path / "present").read_bytes() == b"ro data"
        for fn in (lambda: (m.path / "new").write_bytes(b"x"),
                   lambda: (m.path / "present").write_bytes(b"x"),
                   lambda: (m.path / "present").unlink(),
                   lambda: (m.path / "dir").mkdir()):
            with pytest.raises(OSError) as e:
                fn()
            assert e.value.errno == errno.EROFS
    finally:
        (samba.share_path(samba.shares.ro) / "present").unlink()


def test_read_only_option(mount_factory: MountFactory, work: WorkDir) -> None:
    (work.server / "f").write_bytes(b"1")
    m: Mount = mount_factory(subdir=work.name, read_only=True)
    assert (m.path / "f").read_bytes() == b"1"
    with pytest.raises(OSError) as e:
        (m.path / "f").write_bytes(b"2")
    assert e.value.errno == errno.EROFS
    assert "ro" in subprocess.run(["findmnt", "-no", "OPTIONS", str(m.path)],
                                  capture_output=True, text=True).stdout.split(",")


def test_full_share_reports_enospc(samba: PrivateSamba, mount_factory: MountFactory) -> None:
    m: Mount = mount_factory(share=samba.shares.small)
    target = m.path / "big"
    chunk = os.urandom(256 * 1024)
    written = 0
    try:
        with pytest.raises(OSError) as e:
            with open(target, "wb", buffering=0) as f:
                for _ in range(2 * SMALL_SHARE_BYTES // len(chunk)):
                    written += f.write(chunk)
        assert e.value.errno == errno.ENOSPC
        # What the server kept is no more than what write() said it took.
        assert (m.server_dir / "big").stat().st_size <= written
    finally:
        if target.exists():
            target.unlink()
    assert os.listdir(m.path) == []


def test_unmount_while_file_open_is_clean(samba: PrivateSamba, mount_factory: MountFactory,
                                          work: WorkDir) -> None:
    m: Mount = mount_factory(subdir=work.name)
    f = open(m.path / "held", "wb")
    f.write(b"x")
    f.flush()
    # A lazy unmount lets the process end while the file is still open.
    subprocess.run(["fusermount3", "-uz", str(m.path)], check=True, timeout=15)
    f.close()
    assert m.proc.wait(timeout=15) == 0
    assert (work.server / "held").read_bytes() == b"x"


def test_lost_connection_is_mended(samba: PrivateSamba, mount_factory: MountFactory,
                                   fault_proxy: Callable[[str, int], FaultProxy],
                                   work: WorkDir) -> None:
    """A cut connection is re-established under the programs' feet: files
    held open (durable handles, reclaimed) and new opens carry on. Writes
    are the probe: each one reaches the server through its handle (no
    writeback cache), where a read could be answered by the page cache."""
    proxy = fault_proxy(samba.host, samba.port)
    (work.server / "f").write_bytes(b"1")
    (work.server / "f").chmod(0o666)  # written as root, opened for writing as the user
    m: Mount = mount_factory(subdir=work.name, port=proxy.port, actimeo=0)
    fd = os.open(m.path / "f", os.O_RDWR)
    try:
        assert os.pread(fd, 10, 0) == b"1"
        proxy.cut_all()
        assert os.pwrite(fd, b"2", 1) == 1
        assert (m.path / "f").read_bytes() == b"12"
        proxy.cut_all(reset=True)
        (m.path / "g").write_bytes(b"new")
        assert os.pwrite(fd, b"3", 2) == 1
        assert os.fstat(fd).st_size == 3
    finally:
        os.close(fd)
    assert (work.server / "f").read_bytes() == b"123"
    assert (work.server / "g").read_bytes() == b"new"
    assert proxy.connections_accepted >= 3
    assert m.proc.poll() is None


def test_unreachable_server_soft_eio_then_recovers(samba: PrivateSamba,
                                                   mount_factory: MountFactory,
                                                   fault_proxy: Callable[[str, int], FaultProxy],
                                                   work: WorkDir) -> None:
    """soft (the default): once the server has been unreachable for 30 s,
    operations fail with EIO instead of hanging; the reconnect goes on, and
    the mount works again as soon as the server is back."""
    proxy = fault_proxy(samba.host, samba.port)
    (work.server / "f").write_bytes(b"1")
    m: Mount = mount_factory(subdir=work.name, port=proxy.port, actimeo=0)
    assert (m.path / "f").read_bytes() == b"1"
    proxy.refuse_connections()
    proxy.cut_all()
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        (m.path / "f").read_bytes()
    took = time.monotonic() - start
    assert e.value.errno == errno.EIO
    assert 25 < took < 45, f"failed after {took:.1f}s"
    # Past the bound, operations fail at once while the server stays away.
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        os.listdir(m.path)
    assert e.value.errno == errno.EIO and time.monotonic() - start < 5
    assert m.proc.poll() is None
    proxy.refuse_connections(False)
    _wait_for(lambda: _reads(m.path / "f") == b"1", 30)


def _reads(p: Path) -> bytes | None:
    try:
        return p.read_bytes()
    except OSError:
        return None


def test_lost_handle_is_eio_on_that_fd_only(samba: PrivateSamba, mount_factory: MountFactory,
                                            fault_proxy: Callable[[str, int], FaultProxy],
                                            work: WorkDir, tmp_path: Path) -> None:
    """While we are cut off, another client replaces a file we hold open:
    after the reconnect that handle cannot be taken back as the same file.
    Its fd gives EIO from then on; another fd, and new opens, carry on."""
    proxy = fault_proxy(samba.host, samba.port)
    for name, data in (("doomed", b"old"), ("fine", b"fine")):
        (work.server / name).write_bytes(data)
        (work.server / name).chmod(0o666)  # written as root, opened for writing as the user
    m: Mount = mount_factory(subdir=work.name, port=proxy.port, actimeo=0)
    doomed = os.open(m.path / "doomed", os.O_RDWR)
    fine = os.open(m.path / "fine", os.O_RDWR)
    try:
        assert os.pread(doomed, 10, 0) == b"old" and os.pread(fine, 10, 0) == b"fine"
        proxy.refuse_connections()
        proxy.cut_all()
        # The server gives up a disconnected durable handle when another
        # client's open conflicts with it; smbclient then deletes the file
        # and puts a new one under the same name.
        r = samba.smbclient(samba.shares.rw, f'rm "{work.name}/doomed"', timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        new = tmp_path / "replacement"
        new.write_bytes(b"replacement")
        r = samba.smbclient(samba.shares.rw, f'put "{new}" "{work.name}/doomed"', timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        proxy.refuse_connections(False)
        assert os.pwrite(fine, b"F", 0) == 1
        for _ in range(2):  # from then on, not once
            with pytest.raises(OSError) as e:
                os.pwrite(doomed, b"x", 0)
            assert e.value.errno == errno.EIO
        assert (m.path / "doomed").read_bytes() == b"replacement"
    finally:
        os.close(doomed)
        os.close(fine)
    assert (work.server / "fine").read_bytes() == b"Fine"
    assert (work.server / "doomed").read_bytes() == b"replacement"
    assert m.proc.poll() is None


def test_fallocate_not_supported(work: WorkDir) -> None:
    p = work.path / "fa"
    p.write_bytes(b"")
    r = subprocess.run(["fallocate", "-l", "1M", str(p)], capture_output=True, text=True)
    assert r.returncode != 0 and "not supported" in r.stderr.lower()
    # glibc's posix_fallocate falls back to writing: it works.
    fd = os.open(p, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, 65536)
    finally:
        os.close(fd)
    assert p.stat().st_size == 65536


def test_many_programs_at_once(work: WorkDir, tmp_path: Path) -> None:
    srcs = []
    for i in range(6):
        src = tmp_path / f"s{i}"
        src.write_bytes(os.urandom(2 * 1024 * 1024 + i))
        srcs.append(src)
    procs = [subprocess.Popen(["cp", str(s), str(work.path / s.name)]) for s in srcs]
    # Listings while the files grow: their sizes must not stick in the cache.
    loop = f"for i in $(seq 15); do ls -lR '{work.path}' >/dev/null; done"
    procs += [subprocess.Popen(["sh", "-c", loop]) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    readers = [subprocess.Popen(["cmp", str(s), str(work.path / s.name)]) for s in srcs]
    for p in readers:
        assert p.wait(timeout=120) == 0


def test_sigterm_unmounts_and_logs_off(samba: PrivateSamba, mount_factory: MountFactory,
                                       work: WorkDir) -> None:
    m: Mount = mount_factory(subdir=work.name)
    f = open(m.path / "open-at-exit", "wb")
    try:
        f.write(b"kept")
        f.flush()
        m.proc.terminate()
        assert m.proc.wait(timeout=15) == 0
    finally:
        try:
            f.close()
        except OSError:
            pass  # the mount is gone: the kernel answers ENOTCONN
    with open("/proc/self/mounts") as mounts:
        assert str(m.path) not in mounts.read()
    assert (work.server / "open-at-exit").read_bytes() == b"kept"


def test_readahead_raised(mounted: Mount) -> None:
    dev = os.stat(mounted.path).st_dev
    ra = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    from smbfs.fs.mount import READ_AHEAD_KB

    assert ra.read_text().strip() == str(READ_AHEAD_KB)


def test_xattrs_without_ea_support(fresh_samba: Callable[..., PrivateSamba]) -> None:
    from fsmount import start_mount, unmount

    server = fresh_samba(share_options={"share": {"ea support": "no"}})
    m = start_mount(server)
    try:
        p = m.path / "f"
        p.write_bytes(b"")
        with pytest.raises(OSError) as e:
            os.setxattr(p, "user.x", b"1")
        assert e.value.errno == errno.EOPNOTSUPP
        assert os.listxattr(p) == []
        p.unlink()
    finally:
        unmount(m)


def test_cache_none_and_small_rsize_wsize(mount_factory: MountFactory, work: WorkDir) -> None:
    m = mount_factory(subdir=work.name, cache="none", rsize=65536, wsize=65536)
    data = os.urandom(1024 * 1024 + 3)
    (m.path / "f").write_bytes(data)
    assert (m.path / "f").read_bytes() == data
    assert (work.server / "f").read_bytes() == data
    # No attribute cache: a change on the server shows at once.
    (work.server / "f").write_bytes(b"short")
    assert (m.path / "f").stat().st_size == 5
    assert (m.path / "f").read_bytes() == b"short"


def test_encrypted_share(samba: PrivateSamba, mount_factory: MountFactory) -> None:
    m = mount_factory(share=samba.shares.encrypted)
    data = os.urandom(3 * 1024 * 1024)
    try:
        (m.path / "sealed").write_bytes(data)
        assert (m.path / "sealed").read_bytes() == data
        assert (m.server_dir / "sealed").read_bytes() == data
    finally:
        (m.path / "sealed").unlink(missing_ok=True)


def test_sizes_stay_right_while_listed(work: WorkDir) -> None:
    """A listing answered before a write completes must not leave its old
    size in the attribute cache (the next stat would shrink the file)."""
    p = work.path / "growing"
    stop = threading.Event()

    def lister() -> None:
        while not stop.is_set():
            with os.scandir(work.path) as it:
                for e in it:
                    e.stat()

    threads = [threading.Thread(target=lister) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        with open(p, "wb", buffering=0) as f:
            for i in range(1, 301):
                f.write(b"x" * 4096)
                assert os.stat(p).st_size == i * 4096
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)


def test_name_made_by_smbclient_in_our_new_directory(samba: PrivateSamba, work: WorkDir,
                                              tmp_path: Path) -> None:
    """A directory we made is known complete for actimeo only: a file
    smbclient creates in it is found after that."""
    d = work.path / "made"
    d.mkdir()
    (d / "mine").write_bytes(b"1")
    assert os.listdir(d) == ["mine"]
    assert not (d / "theirs").exists()
    local = tmp_path / "theirs"
    local.write_bytes(b"from smbclient")
    r = samba.smbclient(samba.shares.rw, f'put "{local}" "{work.name}/made/theirs"')
    assert r.returncode == 0, r.stdout + r.stderr
    _wait_for(lambda: (d / "theirs").exists(), timeout=5.0)
    assert (d / "theirs").read_bytes() == b"from smbclient"
    # And one it deletes is gone after actimeo too.
    r = samba.smbclient(samba.shares.rw, f'del "{work.name}/made/theirs"')
    assert r.returncode == 0, r.stdout + r.stderr
    _wait_for(lambda: not (d / "theirs").exists(), timeout=5.0)


def test_reread_after_smbclient_rewrote_same_size(samba: PrivateSamba, work: WorkDir,
                                                  tmp_path: Path) -> None:
    """Pages kept across opens (cache=strict) never hide a change another
    client made: same size, new content, new mtime."""
    p = work.path / "same"
    p.write_bytes(b"A" * 8192)
    assert p.read_bytes() == b"A" * 8192
    assert p.read_bytes() == b"A" * 8192  # this open may keep the pages
    local = tmp_path / "same"
    local.write_bytes(b"B" * 8192)
    r = samba.smbclient(samba.shares.rw, f'put "{local}" "{work.name}/same"')
    assert r.returncode == 0, r.stdout + r.stderr
    # The open's fresh attributes show the change: no need to wait.
    assert p.read_bytes() == b"B" * 8192
    # Same size and times restored by hand (touch -r): the change time
    # still moved.
    st = p.stat()
    local.write_bytes(b"C" * 8192)
    r = samba.smbclient(samba.shares.rw, f'put "{local}" "{work.name}/same"')
    assert r.returncode == 0, r.stdout + r.stderr
    os.utime(work.server / "same", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert p.read_bytes() == b"C" * 8192


def test_reread_while_another_client_holds_it_open(samba: PrivateSamba, work: WorkDir) -> None:
    """A writer that has not closed yet (the server may delay its write-time
    update until the close) is still seen at our next open."""
    import trio

    from smbfs.client import ClientConfig, Tree, open_session

    p = work.path / "held"
    p.write_bytes(b"A" * 4096)
    assert p.read_bytes() == b"A" * 4096
    assert p.read_bytes() == b"A" * 4096
    seen: list[bytes] = []

    async def writer() -> None:
        cfg = ClientConfig(host=samba.host, port=samba.port, username=samba.user.name,
                           password=samba.user.password)
        async with open_session(cfg) as session:
            tree = await Tree.connect(session, samba.shares.rw)
            async with await tree.create(f"{work.name}\\held", lease=False,
                                         durable=False) as op:
                await op.write(0, b"B" * 4096)
                seen.append(await trio.to_thread.run_sync(p.read_bytes))
            await tree.disconnect()

    trio.run(writer)
    assert seen == [b"B" * 4096]
