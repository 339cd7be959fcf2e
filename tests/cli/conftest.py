"""Fixtures of the mount.smbfs tests: a mount point per test whose teardown
always unmounts (fusermount3 -u, bounded) and waits for the daemon to exit;
/sbin/mount.smbfs installed the documented way."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from climount import (
    EXIT_TIMEOUT,
    HELPER,
    MOUNT_SMBFS,
    SMBFS,
    STEP_TIMEOUT,
    MountPoint,
    alive,
    daemons,
    wait_exit,
)

from smbfs.devserver import PrivateSamba


@pytest.fixture
def mnt(samba: PrivateSamba) -> Iterator[MountPoint]:
    path = Path(tempfile.mkdtemp(prefix="smbfs-cli-"))
    m = MountPoint(path, samba)
    yield m
    pids = daemons(path)
    if m.mounted():
        subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, timeout=EXIT_TIMEOUT)
    try:
        wait_exit(pids)
    except TimeoutError:
        for p in pids:
            if alive(p):
                os.kill(p, 9)
    if m.mounted():
        subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True,
                       timeout=EXIT_TIMEOUT)
    shutil.rmtree(path, ignore_errors=True)
    for extra in m.extra:
        if extra.is_dir():
            shutil.rmtree(extra, ignore_errors=True)
        else:
            extra.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def helper_installed() -> str:
    """/sbin/mount.smbfs, installed the documented way (idempotent)."""
    r = subprocess.run([SMBFS, "install-helper"], capture_output=True, text=True,
                       timeout=STEP_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(HELPER) == os.path.realpath(MOUNT_SMBFS)
    return HELPER
