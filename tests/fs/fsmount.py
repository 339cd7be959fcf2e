"""Mounting helpers of the fs tests: a subprocess (``runner.py``, a stand-in
for ``mount.smbfs``) serving a share of the test Samba through FUSE, ready
within a bound, unmounted with fusermount3 (bounded, with fallbacks).

A module of its own, not conftest: test modules import it by name, and
"conftest" names several modules in one pytest run.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smbfs.devserver import PrivateSamba

RUNNER = Path(__file__).with_name("runner.py")
READY_TIMEOUT = 30.0
UNMOUNT_TIMEOUT = 15.0


@dataclass
class Mount:
    path: Path
    proc: subprocess.Popen[bytes]
    share: str
    server_dir: Path
    options: dict[str, Any]

    log: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


ACTIVE: list[Mount] = []


def _is_mounted(path: Path) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def _unmount(m: Mount) -> None:
    if m in ACTIVE:
        ACTIVE.remove(m)
    if _is_mounted(m.path):
        subprocess.run(["fusermount3", "-u", str(m.path)], capture_output=True,
                       timeout=UNMOUNT_TIMEOUT)
    try:
        m.proc.wait(timeout=UNMOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        m.proc.terminate()
        try:
            m.proc.wait(timeout=UNMOUNT_TIMEOUT)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(timeout=UNMOUNT_TIMEOUT)
    if _is_mounted(m.path):
        subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True,
                       timeout=UNMOUNT_TIMEOUT)
    if not os.environ.get("SMBFS_TEST_KEEP_LOGS"):
        m.log.unlink(missing_ok=True)


def start_mount(samba: PrivateSamba, share: str | None = None, subdir: str = "",
                mountpoint: Path | None = None, port: int | None = None,
                env: dict[str, str] | None = None, **options: Any) -> Mount:
    share = share or samba.shares.rw
    mp = mountpoint or Path(tempfile.mkdtemp(prefix="smbfs-mnt-"))
    options.setdefault("fsname", f"//{samba.host}/{share}")
    spec = {
        "host": samba.host, "port": port or samba.port, "username": samba.user.name,
        "password": samba.user.password, "share": share, "subdir": subdir,
        "mountpoint": str(mp), "options": options,
    }
    rfd, wfd = os.pipe()
    log = Path(tempfile.mkstemp(prefix="smbfs-mount-", suffix=".log")[1])
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), json.dumps(spec), str(wfd)],
            pass_fds=(wfd,), stdin=subprocess.DEVNULL, stderr=logf,
            env={**os.environ, **(env or {})},
        )
    os.close(wfd)
    m = Mount(mp, proc, share, samba.share_path(share), options, log)
    try:
        r, _, _ = select.select([rfd], [], [], READY_TIMEOUT)
        got = os.read(rfd, 64) if r else b""
    finally:
        os.close(rfd)
    if got != b"ready\n":
        with contextlib.suppress(subprocess.TimeoutExpired):
            m.proc.wait(timeout=2)  # a failing runner is writing its last line
        tail = m.log_tail()
        _unmount(m)
        raise RuntimeError(f"mount did not become ready (got {got!r}): {tail}")
    ACTIVE.append(m)
    return m


def unmount(m: Mount) -> None:
    """Unmount (bounded) and remove the mount point."""
    _unmount(m)
    shutil.rmtree(m.path, ignore_errors=True)


MountFactory = Callable[..., Mount]


@dataclass
class WorkDir:
    """A fresh directory of the rw share, seen through the mount (``path``)
    and directly on the server's disk (``server``)."""

    path: Path
    server: Path
    name: str
