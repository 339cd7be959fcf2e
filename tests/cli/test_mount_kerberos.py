"""``mount.smbfs -o sec=krb5`` for real: a FUSE mount authenticated by a
Kerberos ticket from the private AD DC (the ``ad_dc`` fixture, see
docs/kerberos.md). The source is //localhost:PORT/data: the DC's account
carries the SPN cifs/localhost, so the name in the UNC is the SPN's host
part, as with a real server name."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from climount import (
    EXIT_TIMEOUT,
    MOUNT_SMBFS,
    STEP_TIMEOUT,
    alive,
    daemons,
    one_line_error,
    wait_exit,
)

from smbfs.cli.daemon import is_mounted
from smbfs.devserver_ad import PrivateAdDc


@pytest.fixture
def mountpoint() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="smbfs-krb5-"))
    yield path
    pids = daemons(path)
    if is_mounted(str(path)):
        subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, timeout=EXIT_TIMEOUT)
    try:
        wait_exit(pids)
    except TimeoutError:
        for p in pids:
            if alive(p):
                os.kill(p, 9)
    if is_mounted(str(path)):
        subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True,
                       timeout=EXIT_TIMEOUT)
    shutil.rmtree(path, ignore_errors=True)


def mount(dc: PrivateAdDc, path: Path, ccache: str, *opts: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MOUNT_SMBFS, f"//localhost:{dc.port}/data", str(path), "-o", ",".join(("sec=krb5", *opts))],
        capture_output=True, text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **dc.client_env(ccache)})


def krb5_logons(dc: PrivateAdDc, account: str) -> list[dict[str, Any]]:
    return [e["Authorization"] for e in dc.auth_events()
            if e.get("type") == "Authorization"
            and e["Authorization"].get("serviceDescription") == "SMB2"
            and e["Authorization"].get("authType") == "krb5"
            and e["Authorization"].get("account") == account]


def test_mount_sec_krb5(ad_dc: PrivateAdDc, mountpoint: Path) -> None:
    ccache = ad_dc.kinit()
    before = len(krb5_logons(ad_dc, ad_dc.user.name))
    r = mount(ad_dc, mountpoint, ccache)
    assert r.returncode == 0, r.stderr
    assert is_mounted(str(mountpoint))
    name = f"krb5-mount-{os.getpid()}.txt"
    (mountpoint / name).write_bytes(b"through a Kerberos mount\n")
    assert (mountpoint / name).read_bytes() == b"through a Kerberos mount\n"
    on_server = ad_dc.share_path("data") / name
    assert on_server.read_bytes() == b"through a Kerberos mount\n"
    assert len(krb5_logons(ad_dc, ad_dc.user.name)) > before
    (mountpoint / name).unlink()
    pids = daemons(mountpoint)
    subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True, capture_output=True,
                   timeout=EXIT_TIMEOUT)
    wait_exit(pids)


def test_mount_sec_krb5_without_ticket(ad_dc: PrivateAdDc, mountpoint: Path,
                                       tmp_path: Path) -> None:
    r = mount(ad_dc, mountpoint, f"FILE:{tmp_path / 'none'}")
    line = one_line_error(r, 32)
    assert "Kerberos login failed" in line and "No Kerberos credentials available" in line, line
    assert "kinit" in line
    assert not is_mounted(str(mountpoint))
