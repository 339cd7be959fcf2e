"""The mount and a second real client (smbclient) see each other's writes,
and bad situations give clear errors."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Mount, WorkDir

from smbfs.devserver import SMALL_SHARE_BYTES, PrivateSamba


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
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


def test_readonly_share(samba: PrivateSamba, mount_factory: object) -> None:
    (samba.share_path(samba.shares.ro) / "present").write_bytes(b"ro data")
    try:
        m: Mount = mount_factory(share=samba.shares.ro)  # type: ignore[operator]
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


def test_read_only_option(mount_factory: object, work: WorkDir) -> None:
    (work.server / "f").write_bytes(b"1")
    m: Mount = mount_factory(subdir=work.name, read_only=True)  # type: ignore[operator]
    assert (m.path / "f").read_bytes() == b"1"
    with pytest.raises(OSError) as e:
        (m.path / "f").write_bytes(b"2")
    assert e.value.errno == errno.EROFS
    assert "ro" in subprocess.run(["findmnt", "-no", "OPTIONS", str(m.path)],
                                  capture_output=True, text=True).stdout.split(",")


def test_full_share_reports_enospc(samba: PrivateSamba, mount_factory: object) -> None:
    m: Mount = mount_factory(share=samba.shares.small)  # type: ignore[operator]
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


def test_unmount_while_file_open_is_clean(samba: PrivateSamba, mount_factory: object,
                                          work: WorkDir) -> None:
    m: Mount = mount_factory(subdir=work.name)  # type: ignore[operator]
    f = open(m.path / "held", "wb")
    f.write(b"x")
    f.flush()
    # A lazy unmount lets the process end while the file is still open.
    subprocess.run(["fusermount3", "-uz", str(m.path)], check=True, timeout=15)
    f.close()
    assert m.proc.wait(timeout=15) == 0
    assert (work.server / "held").read_bytes() == b"x"
