"""The current Samba (4.22 from Debian 13, in a root of its own) is real and
offers what the later features are tested on: directory leases, the SMB3
POSIX extensions, multichannel."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from smbfs.devserver import PrivateSamba, _pids_with_arg, current_samba_root


def test_it_is_a_current_samba(samba_current: PrivateSamba) -> None:
    assert samba_current.version >= (4, 22)
    status = samba_current.smbstatus()
    assert status["version"].startswith("4.2"), status["version"]
    # smbstatus ran inside the root: it names the configuration as the chrooted
    # smbd sees it.
    assert status["smb_conf"] == str(samba_current.inner(samba_current.conf_path))


def test_defaults_offer_the_new_features(samba_current: PrivateSamba) -> None:
    root = current_samba_root(build=False)
    conf = samba_current.inner(samba_current.conf_path)
    r = subprocess.run(
        ["chroot", str(root), "testparm", "-s", "-v", str(conf)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stderr
    params = {k.strip(): v.strip() for k, _, v in
              (line.partition("=") for line in r.stdout.splitlines() if "=" in line)}
    # "Auto": on unless clustered (Samba 4.22's WHATSNEW).
    assert params["smb3 directory leases"] in ("Auto", "Yes")
    assert params["clustering"] == "No"
    assert params["server multi channel support"] == "Yes"
    assert "smb3 unix extensions" in params  # known to this Samba (4.17 has no such option)


def test_posix_extensions_can_be_switched_on(fresh_samba: Callable[..., PrivateSamba]) -> None:
    server = fresh_samba(root=current_samba_root(build=False),
                         global_options={"smb3 unix extensions": "yes"})
    conf = server.inner(server.conf_path)
    r = subprocess.run(
        ["chroot", str(server.root), "testparm", "-s", "--parameter-name",
         "smb3 unix extensions", str(conf)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert r.stdout.strip() == "Yes", r.stdout + r.stderr
    assert server.smbclient(server.shares.rw, "ls").returncode == 0


@pytest.mark.both_sambas
def test_session_seen(samba: PrivateSamba) -> None:
    with samba.smbclient_session(samba.shares.rw):
        sessions = samba.sessions()
        assert any(s["username"] == samba.user.name for s in sessions), sessions


@pytest.mark.both_sambas
def test_share_kinds(samba: PrivateSamba, tmp_path: Path) -> None:
    src = tmp_path / "x.bin"
    src.write_bytes(b"nope")
    r = samba.smbclient(samba.shares.ro, f"put {src} x.bin")
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr or \
        "NT_STATUS_MEDIA_WRITE_PROTECTED" in r.stdout + r.stderr
    r = samba.smbclient(samba.shares.encrypted, "ls", extra_args=["-m", "SMB2_10"])
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    r = samba.smbclient(samba.shares.small, f"put {big} big.bin")
    assert "NT_STATUS_DISK_FULL" in r.stdout + r.stderr, r.stdout + r.stderr
    (samba.share_path(samba.shares.small) / "big.bin").unlink(missing_ok=True)


def test_fresh_current_server_stops_cleanly(fresh_samba: Callable[..., PrivateSamba]) -> None:
    server = fresh_samba(root=current_samba_root(build=False))
    conf = str(server.inner(server.conf_path))
    with server.smbclient_session(server.shares.rw):
        assert server.connection_pids()
    base = server.base_dir
    server.stop()
    assert not _pids_with_arg(conf)
    assert not base.exists()
