"""`smbfs demo` (the README's first command); mount.smbfs itself is tested in tests/cli."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from smbfs.devserver import _pids_with_arg


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from smbfs.cli import main; sys.exit(main())", *args]


def test_demo_lists_share_and_stops() -> None:
    r = subprocess.run(
        _cli("demo"), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello.txt" in r.stdout and "numbers.txt" in r.stdout
    assert "Hello from smbfs!" in r.stdout
    assert "Unmounted" in r.stdout  # the demo mounts with mount.smbfs (tests/cli)
    assert "Private Samba stopped." in r.stdout
    base = re.search(r"files on disk: (\S+)/shares/demo", r.stdout)
    assert base is not None
    assert not Path(base.group(1)).exists()
    assert _pids_with_arg(base.group(1) + "/smb.conf") == []


def test_demo_keep_stops_on_sigint() -> None:
    proc = subprocess.Popen(
        _cli("demo", "--keep"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line or time.monotonic() > deadline:
            break
    base = next(
        re.search(r"files on disk: (\S+)/shares/demo", x) for x in lines if "files on disk" in x
    )
    assert base is not None
    conf = base.group(1) + "/smb.conf"
    assert _pids_with_arg(conf)  # still serving while waiting
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "Private Samba stopped." in out
    assert proc.returncode == 130
    assert _pids_with_arg(conf) == []
    assert not os.path.exists(base.group(1))
