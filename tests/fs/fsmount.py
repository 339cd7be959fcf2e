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
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smbfs.devserver import PrivateSamba, process_alive

RUNNER = Path(__file__).with_name("runner.py")
# The real command when installed; SMBFS_TEST_RUNNER=1 uses runner.py instead
# (serve() without the CLI, to tell the two apart when something fails).
MOUNT_SMBFS = Path(sys.executable).with_name("mount.smbfs")


def use_cli() -> bool:
    return MOUNT_SMBFS.exists() and not os.environ.get("SMBFS_TEST_RUNNER")


class Daemon:
    """The background ``mount.smbfs`` process (not our child: found by its
    command line), with the little of Popen's interface the tests use. Its
    exit status comes from its log's last line."""

    def __init__(self, pid: int, log: Path) -> None:
        self.pid = pid
        self.log = log

    def _alive(self) -> bool:
        return process_alive(self.pid)

    def _status(self) -> int:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return -1
        marker = "exiting with status "
        i = text.rfind(marker)
        if i < 0:
            return -1
        return int(text[i + len(marker):].split()[0].rstrip(".;"))

    def poll(self) -> int | None:
        return None if self._alive() else self._status()

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._alive():
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"mount.smbfs[{self.pid}]", timeout or 0)
            time.sleep(0.05)
        return self._status()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def _find_daemon(mountpoint: Path) -> int | None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"mount.smbfs") for a in args) and \
                os.fsencode(str(mountpoint)) in args:
            return int(entry)
    return None


def _cli_options(options: dict[str, Any]) -> list[str]:
    out = []
    for k, v in options.items():
        if k == "fsname":
            continue  # the CLI names the mount after its source
        if isinstance(v, bool):
            name = {"read_only": "ro"}.get(k, k)
            if v:
                out.append(name)
        elif k in ("file_mode", "dir_mode"):
            out.append(f"{k}={v:o}")
        else:
            out.append(f"{k}={v}")
    return out


def _start_cli(samba: PrivateSamba, share: str, subdir: str, mp: Path, port: int,
               env: dict[str, str], options: dict[str, Any], log: Path) -> Mount:
    source = f"//{samba.host}/{share}" + (f"/{subdir}" if subdir else "")
    opts = [f"username={samba.user.name}", f"port={port}", f"log={log}",
            *_cli_options(options)]
    args = [str(MOUNT_SMBFS), source, str(mp), "-o", ",".join(opts)]
    if env.get("SMBFS_TEST_LOG") == "DEBUG" or env.get("SMBFS_TEST_DEBUG_LOGGERS"):
        args.append("-v")
    r = subprocess.run(args, capture_output=True, text=True, timeout=READY_TIMEOUT + 10,
                       stdin=subprocess.DEVNULL,
                       env={**env, "PASSWD": samba.user.password,
                            "SMBFS_MOUNT_TIMEOUT": str(READY_TIMEOUT)})
    if r.returncode != 0:
        log.unlink(missing_ok=True)
        shutil.rmtree(mp, ignore_errors=True)
        raise RuntimeError(f"mount.smbfs failed ({r.returncode}): {r.stderr.strip()}")
    pid = _find_daemon(mp)
    if pid is None:
        subprocess.run(["fusermount3", "-uz", str(mp)], capture_output=True,
                       timeout=UNMOUNT_TIMEOUT)
        raise RuntimeError(f"mount.smbfs said ready but no daemon serves {mp}")
    m = Mount(mp, Daemon(pid, log), share, samba.share_path(share), options, log)
    ACTIVE.append(m)
    return m

READY_TIMEOUT = 30.0
UNMOUNT_TIMEOUT = 15.0


@dataclass
class Mount:
    path: Path
    proc: subprocess.Popen[bytes] | Daemon
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
    if use_cli():
        log = Path(tempfile.mkstemp(prefix="smbfs-mount-", suffix=".log")[1])
        return _start_cli(samba, share, subdir, mp, port or samba.port,
                          {**os.environ, **(env or {})}, options, log)
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
        shutil.rmtree(mp, ignore_errors=True)
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
