"""Helpers of the mount.smbfs tests: the real command from the venv run as
a subprocess, a mount point per test, waits with bounds.

A module of its own, not conftest: "conftest" names several modules in
one pytest run, so test modules import this one by name."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from smbfs.cli.daemon import find_daemons, is_mounted
from smbfs.devserver import PrivateSamba, process_alive

MOUNT_SMBFS = str(Path(sys.executable).parent / "mount.smbfs")
SMBFS = str(Path(sys.executable).parent / "smbfs")
HELPER = "/sbin/mount.smbfs"
STEP_TIMEOUT = 60.0
EXIT_TIMEOUT = 15.0


# Zombies count as exited: in a container PID 1 may never reap them.
alive = process_alive


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout}s")
        time.sleep(0.02)


def daemons(path: Path) -> list[int]:
    return [p for p in find_daemons(str(path)) if alive(p)]


def wait_exit(pids: list[int], timeout: float = EXIT_TIMEOUT) -> None:
    wait_until(lambda: not any(alive(p) for p in pids), timeout, f"exit of {pids}")


def exit_status_logged(log: Path) -> bool:
    return "exiting with status 0" in log.read_text()


@dataclass
class MountPoint:
    path: Path
    samba: PrivateSamba
    extra: list[Path] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"//{self.samba.host}:{self.samba.port}/{self.samba.shares.rw}"

    def creds(self) -> list[str]:
        u = self.samba.user
        return ["-o", f"username={u.name},password={u.password}"]

    def run(self, *args: str, env: dict[str, str] | None = None,
            cmd: str = MOUNT_SMBFS) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cmd, *args], capture_output=True, text=True,
                              timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})})

    def mounted(self) -> bool:
        return is_mounted(str(self.path))

    def unmount(self, command: tuple[str, ...] = ("fusermount3", "-u")) -> list[int]:
        """Unmount and wait for the daemon(s) to exit; returns their PIDs."""
        pids = daemons(self.path)
        if self.mounted():
            subprocess.run([*command, str(self.path)], capture_output=True, timeout=EXIT_TIMEOUT,
                           check=True)
        wait_exit(pids)
        return pids


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The failure contract: exit ``code``, one "mount.smbfs: ..." line, no traceback."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mount.smbfs: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]
