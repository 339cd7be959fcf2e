"""File and directory operations through a real mount of a real Samba."""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fsmount import Mount, MountFactory, WorkDir

GiB = 1024 ** 3


def _errno_of(fn: Callable[..., object], *args: object) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno or 0
    return 0


def test_create_read_write_stat(work: WorkDir) -> None:
    p = work.path / "a.txt"
    p.write_bytes(b"hello world")
    assert p.read_bytes() == b"hello world"
    st = p.stat()
    srv = (work.server / "a.txt").stat()
    assert st.st_size == 11
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    # FILETIME has 100 ns resolution: exact to that.
    assert st.st_mtime_ns == srv.st_mtime_ns // 100 * 100
    assert stat.S_ISDIR(work.path.stat().st_mode)
    assert stat.S_IMODE(work.path.stat().st_mode) == 0o755


def test_set_times_exact(work: WorkDir) -> None:
    p = work.path / "t"
    p.write_bytes(b"x")
    when = 1_500_000_000_123_456_700
    os.utime(p, ns=(when, when))
    assert p.stat().st_mtime_ns == when
    assert (work.server / "t").stat().st_mtime_ns == when


def test_options_owner_and_modes(mount_factory: MountFactory, work: WorkDir) -> None:
    (work.server / "f").write_bytes(b"1")
    (work.server / "d").mkdir()
    m: Mount = mount_factory(subdir=work.name, uid=1234, gid=5678,
                             file_mode=0o640, dir_mode=0o750)
    f, d = (m.path / "f").stat(), (m.path / "d").stat()
    assert (f.st_uid, f.st_gid, d.st_uid, d.st_gid) == (1234, 5678, 1234, 5678)
    assert stat.S_IMODE(f.st_mode) == 0o640
    assert stat.S_IMODE(d.st_mode) == 0o750


def test_readonly_attribute_clears_write_bits_and_unlink_works(work: WorkDir) -> None:
    p = work.path / "ro"
    p.write_bytes(b"x")
    p.chmod(0o444)
    assert stat.S_IMODE(p.stat().st_mode) == 0o555
    p.chmod(0o644)
    assert stat.S_IMODE(p.stat().st_mode) == 0o755
    p.chmod(0o444)
    p.unlink()
    assert not p.exists()
    # rename over a read-only file replaces it, as POSIX does.
    ro, new = work.path / "ro2", work.path / "new"
    ro.write_bytes(b"old")
    ro.chmod(0o444)
    new.write_bytes(b"new")
    new.rename(ro)
    assert ro.read_bytes() == b"new"


def test_truncate_up_and_down(work: WorkDir) -> None:
    p = work.path / "tr"
    p.write_bytes(b"abcdef")
    os.truncate(p, 3)
    assert p.read_bytes() == b"abc"
    os.truncate(p, 10)
    assert p.read_bytes() == b"abc" + bytes(7)
    with open(p, "r+b") as f:
        f.truncate(1)
        assert os.fstat(f.fileno()).st_size == 1
    assert p.read_bytes() == b"a"


def test_write_beyond_end(work: WorkDir) -> None:
    p = work.path / "hole"
    with open(p, "wb") as f:
        f.write(b"a")
        f.seek(100_000)
        f.write(b"b")
    data = p.read_bytes()
    assert len(data) == 100_001 and data[0:1] == b"a" and data[-1:] == b"b"
    assert data[1:-1] == bytes(99_999)


def test_sparse_offset_beyond_4gib(work: WorkDir) -> None:
    p = work.path / "sparse"
    off = 5 * GiB
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.pwrite(fd, b"Z", off) == 1
        assert os.fstat(fd).st_size == off + 1
        assert os.pread(fd, 1, off) == b"Z"
        assert os.pread(fd, 4096, off - 4096) == bytes(4096)
    finally:
        os.close(fd)
    assert p.stat().st_size == off + 1
    srv = (work.server / "sparse").stat()
    assert srv.st_size == off + 1
    assert srv.st_blocks * 512 < 64 * 1024 * 1024  # stayed sparse on the server


def test_open_flags_excl_trunc_append(work: WorkDir) -> None:
    p = work.path / "fl"
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"12345")
    os.close(fd)
    assert _errno_of(os.open, p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"67")
    os.close(fd)
    assert p.read_bytes() == b"1234567"
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"x")
    os.close(fd)
    assert p.read_bytes() == b"x"


def test_append_from_two_processes(work: WorkDir) -> None:
    p = work.path / "log"
    p.write_bytes(b"")
    script = (
        "import os,sys\n"
        "fd=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND)\n"
        "for i in range(200): os.write(fd, (sys.argv[2]*19+'\\n').encode())\n"
        "os.close(fd)\n"
    )
    procs = [subprocess.Popen(["python3", "-c", script, str(p), c]) for c in "AB"]
    for pr in procs:
        assert pr.wait(timeout=60) == 0
    lines = p.read_bytes().splitlines()
    assert len(lines) == 400
    assert sorted(set(lines)) == [b"A" * 19, b"B" * 19]
    assert lines.count(b"A" * 19) == 200


def test_unlink_open_file_keeps_handle(work: WorkDir) -> None:
    p = work.path / "open-unlink"
    with open(p, "w+b") as f:
        f.write(b"data")
        f.flush()
        p.unlink()
        assert not p.exists()
        assert "open-unlink" not in os.listdir(work.path)
        f.write(b"more")
        f.flush()
        f.seek(0)
        assert f.read() == b"datamore"
        assert os.fstat(f.fileno()).st_size == 8
        assert os.fstat(f.fileno()).st_nlink == 0
        # The name is free again at once.
        p.write_bytes(b"new")
        assert p.read_bytes() == b"new"
    assert p.read_bytes() == b"new"
    # Closing the last handle deletes the hidden file on the server.
    assert sorted(os.listdir(work.server)) == ["open-unlink"]


def test_rmdir_while_unlinked_file_open(work: WorkDir) -> None:
    d = work.path / "d"
    d.mkdir()
    with open(d / "f", "w+b") as f:
        f.write(b"still here")
        (d / "f").unlink()
        d.rmdir()
        assert not d.exists()
        f.seek(0)
        assert f.read() == b"still here"


def test_rename_directory_with_open_files(work: WorkDir) -> None:
    d = work.path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "g").write_bytes(b"")
    with open(d / "f", "w+b") as f, open(d / "sub" / "g", "rb") as g:
        f.write(b"x")
        f.flush()
        os.rename(d, work.path / "d2")  # Samba alone would say ACCESS_DENIED
        f.write(b"y")
        f.flush()
        f.seek(0)
        assert f.read() == b"xy"
        assert g.read() == b""
    assert (work.path / "d2" / "f").read_bytes() == b"xy"
    assert not d.exists()


def test_rename_open_file(work: WorkDir) -> None:
    a, b = work.path / "ra", work.path / "rb"
    with open(a, "w+b") as f:
        f.write(b"one")
        f.flush()
        a.rename(b)
        f.write(b"two")
        f.flush()
        f.seek(0)
        assert f.read() == b"onetwo"
    assert not a.exists()
    assert b.read_bytes() == b"onetwo"


def test_rename_replaces_and_directories(work: WorkDir) -> None:
    a, b = work.path / "a", work.path / "b"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    a.rename(b)
    assert b.read_bytes() == b"A" and not a.exists()
    # Replace a file that is open.
    c = work.path / "c"
    c.write_bytes(b"C")
    with open(b, "rb") as f:
        c.rename(b)
        assert f.read() == b"A"
    assert b.read_bytes() == b"C"
    # Directories: move with contents, replace an empty one, not a full one.
    d1, d2, d3 = work.path / "d1", work.path / "d2", work.path / "d3"
    d1.mkdir()
    (d1 / "inner").write_bytes(b"i")
    d2.mkdir()
    d1.rename(d2)
    assert (d2 / "inner").read_bytes() == b"i" and not d1.exists()
    d3.mkdir()
    (d3 / "x").write_bytes(b"x")
    assert _errno_of(os.rename, d3, d2) in (errno.ENOTEMPTY, errno.EEXIST)
    assert _errno_of(os.rename, b, d3) == errno.EISDIR
    assert _errno_of(os.rename, d3, b) == errno.ENOTDIR
    # The share is case-insensitive: "CASE" is the same file as "case", so
    # the kernel treats a case-only rename as a no-op (docs/filesystem.md).
    (work.path / "case").write_bytes(b"k")
    assert (work.path / "CASE").stat().st_ino == (work.path / "case").stat().st_ino


def test_mkdir_rmdir_errors(work: WorkDir) -> None:
    d = work.path / "dd"
    d.mkdir()
    assert _errno_of(os.mkdir, d) == errno.EEXIST
    (d / "f").write_bytes(b"")
    assert _errno_of(os.rmdir, d) == errno.ENOTEMPTY
    assert _errno_of(os.unlink, d) in (errno.EISDIR, errno.EPERM)
    assert _errno_of(os.rmdir, d / "f") == errno.ENOTDIR
    (d / "f").unlink()
    d.rmdir()
    assert _errno_of(os.stat, d) == errno.ENOENT
    assert _errno_of(open, work.path / "nope") == errno.ENOENT


def test_hard_link(work: WorkDir) -> None:
    a, b = work.path / "h1", work.path / "h2"
    a.write_bytes(b"shared")
    os.link(a, b)
    sa, sb = a.stat(), b.stat()
    assert sa.st_ino == sb.st_ino
    assert sb.st_nlink == 2
    with open(b, "ab") as f:
        f.write(b"!")
    assert a.read_bytes() == b"shared!"
    a.unlink()
    assert b.read_bytes() == b"shared!"
    assert os.stat(work.server / "h2").st_nlink == 1


def test_symlink_refused_cleanly(work: WorkDir) -> None:
    # Samba 4.17 without unix extensions takes no reparse points: EPERM,
    # nothing left behind (docs/filesystem.md).
    assert _errno_of(os.symlink, "target", work.path / "ln") == errno.EPERM
    assert os.listdir(work.path) == []


def test_xattrs(work: WorkDir) -> None:
    p = work.path / "x"
    p.write_bytes(b"")
    os.setxattr(p, "user.color", b"blue")
    os.setxattr(p, "user.size", b"\x00\x01binary")
    assert os.getxattr(p, "user.color") == b"blue"
    assert os.getxattr(p, "user.size") == b"\x00\x01binary"
    assert sorted(os.listxattr(p)) == ["user.color", "user.size"]
    os.setxattr(p, "user.color", b"red")
    assert os.getxattr(p, "user.color") == b"red"
    os.removexattr(p, "user.color")
    assert os.listxattr(p) == ["user.size"]
    assert _errno_of(os.getxattr, p, "user.color") == errno.ENODATA
    assert _errno_of(os.removexattr, p, "user.color") == errno.ENODATA
    assert _errno_of(os.setxattr, p, "trusted.x", b"1") == errno.EOPNOTSUPP
    # getfattr/setfattr, the programs (package "attr"), when installed.
    if shutil.which("setfattr") and shutil.which("getfattr"):
        subprocess.run(["setfattr", "-n", "user.tool", "-v", "yes", str(p)], check=True)
        out = subprocess.run(["getfattr", "-n", "user.tool", "--only-values", str(p)],
                             check=True, capture_output=True).stdout
        assert out == b"yes"
    else:
        os.setxattr(p, "user.tool", b"yes")
    # On the server they are the file's user.* xattrs.
    assert os.getxattr(work.server / "x", "user.tool") == b"yes"


def test_statfs(mounted: Mount) -> None:
    st = os.statvfs(mounted.path)
    srv = os.statvfs(mounted.server_dir)
    assert st.f_blocks * st.f_frsize == pytest.approx(srv.f_blocks * srv.f_frsize, rel=0.01)
    assert st.f_bavail * st.f_frsize == pytest.approx(srv.f_bavail * srv.f_frsize, rel=0.05)
    assert st.f_namemax == 255
    out = subprocess.run(["df", "-P", str(mounted.path)], check=True, capture_output=True,
                         text=True).stdout
    assert f"//127.0.0.1/{mounted.share}" in out


def test_mmap_read_and_shared_write(work: WorkDir) -> None:
    p = work.path / "mm"
    p.write_bytes(b"a" * 8192)
    with open(p, "r+b") as f:
        with mmap.mmap(f.fileno(), 0) as m:
            assert m[:4] == b"aaaa"
            m[4096:4100] = b"MMAP"
            m.flush()
    assert (work.server / "mm").read_bytes()[4096:4100] == b"MMAP"
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
        assert m[4090:4102] == b"aaaaaaMMAPaa"


def test_fsync(work: WorkDir) -> None:
    p = work.path / "fs"
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"durable")
        os.fsync(fd)
        os.fdatasync(fd)
        assert (work.server / "fs").read_bytes() == b"durable"
    finally:
        os.close(fd)


def test_names_spaces_unicode(work: WorkDir) -> None:
    names = ["with space", "café", "日本語.txt", "emoji-😀", "a'quote", "semi;colon", "#hash"]
    for n in names:
        (work.path / n).write_text(n)
    assert sorted(os.listdir(work.path)) == sorted(names)
    for n in names:
        assert (work.path / n).read_text() == n
        assert (work.server / n).read_text() == n


@pytest.mark.parametrize("name", ["a:b", "a*b", "a?b", 'a"b', "a<b", "a>b", "a|b",
                                  "a\\b", "trail.", "trail ", "ctl\x01"])
def test_forbidden_names_refused(work: WorkDir, name: str) -> None:
    assert _errno_of(os.open, work.path / name, os.O_CREAT | os.O_WRONLY, 0o644) == errno.EINVAL
    assert _errno_of(os.mkdir, work.path / name) == errno.EINVAL
    assert _errno_of(os.stat, work.path / name) == errno.ENOENT
    assert _errno_of(os.rename, work.path, work.path.parent / name) == errno.EINVAL


def test_server_side_unrepresentable_names_are_mangled(work: WorkDir) -> None:
    # Samba lists such names (made on its disk) under mangled 8.3 names.
    for n in ("made on the server.", "colon:name"):
        (work.server / n).write_bytes(n.encode())
    listed = os.listdir(work.path)
    assert len(listed) == 2 and all("~" in n for n in listed)
    assert sorted((work.path / n).read_bytes() for n in listed) == [
        b"colon:name", b"made on the server."]
    for n in listed:
        (work.path / n).unlink()
    assert os.listdir(work.server) == []


def test_non_utf8_name_refused(work: WorkDir) -> None:
    bad = os.fsencode(str(work.path)) + b"/bad\xff"
    assert _errno_of(os.open, bad, os.O_CREAT | os.O_WRONLY, 0o644) == errno.EILSEQ


def test_big_directory_listed_completely(work: WorkDir) -> None:
    n = 10_000
    names = {f"entry-{i:05d}" for i in range(n)}
    for name in names:
        os.close(os.open(work.server / name, os.O_CREAT | os.O_WRONLY, 0o666))
    t0 = time.monotonic()
    assert set(os.listdir(work.path)) == names
    with os.scandir(work.path) as it:
        sizes = {e.name: e.stat().st_size for e in it}
    assert len(sizes) == n
    out = subprocess.run(["ls", "-l", str(work.path)], check=True, capture_output=True).stdout
    assert out.count(b"\n") == n + 1
    assert time.monotonic() - t0 < 60


def test_forgotten_inodes_are_freed(mount_factory: MountFactory, work: WorkDir) -> None:
    n = 3000
    for i in range(n):
        os.close(os.open(work.server / f"e{i}", os.O_CREAT | os.O_WRONLY, 0o666))
    m = mount_factory(subdir=work.name, env={
        "SMBFS_TEST_LOG": "INFO", "SMBFS_TEST_DEBUG_LOGGERS": "smbfs.fs.operations"})
    subprocess.run(["ls", "-l", str(m.path)], check=True, capture_output=True)
    # Drop the kernel's dentries and inodes: it sends FORGET for every one.
    Path("/proc/sys/vm/drop_caches").write_text("2")

    def forgets() -> list[tuple[int, int]]:  # (forgotten, left) per FORGET batch
        out = []
        for ln in m.log.read_text().splitlines():
            if "inodes, " in ln:
                words = ln.replace(",", "").split()
                out.append((int(words[-4]), int(words[-2])))
        return out

    def counts() -> list[int]:
        return [left for _, left in forgets()]

    deadline = time.monotonic() + 10
    while not counts() or counts()[-1] > 10:
        assert time.monotonic() < deadline, f"inodes left after drop_caches: {counts()[-1:]}"
        Path("/proc/sys/vm/drop_caches").write_text("2")
        time.sleep(0.1)
    # The listing had really filled the table, and the forgets emptied it.
    assert max(f + left for f, left in forgets()) >= n


def test_subdir_mount_and_noserverino(mount_factory: MountFactory, work: WorkDir) -> None:
    (work.server / "sub").mkdir()
    (work.server / "sub" / "f").write_bytes(b"in sub")
    m: Mount = mount_factory(subdir=f"{work.name}/sub", noserverino=True)
    assert os.listdir(m.path) == ["f"]
    assert (m.path / "f").read_bytes() == b"in sub"
    ino = (m.path / "f").stat().st_ino
    assert ino == (m.path / "f").stat().st_ino
    assert ino < 1 << 62


def test_missing_subdir_fails_to_mount(mount_factory: MountFactory) -> None:
    with pytest.raises(RuntimeError, match="no such directory"):
        mount_factory(subdir="does/not/exist")


def test_serverino_matches_directory_listing(work: WorkDir) -> None:
    p = work.path / "ino"
    p.write_bytes(b"1")
    ino_created = p.stat().st_ino
    with os.scandir(work.path) as it:
        listed = {e.name: e.inode() for e in it}
    assert listed["ino"] == ino_created
    Path(work.path / "ino").rename(work.path / "ino2")
    assert (work.path / "ino2").stat().st_ino == ino_created
