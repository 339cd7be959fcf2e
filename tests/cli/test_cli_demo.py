"""`smbfs demo` mounts the demo share with the real mount.smbfs, lists,
reads and writes it, unmounts and stops; `--keep` keeps the mount until
Ctrl-C; `smbfs install-helper` is idempotent."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from climount import SMBFS, STEP_TIMEOUT, daemons

from smbfs.cli.daemon import is_mounted


def test_demo_mounts_lists_reads_writes_and_cleans_up() -> None:
    r = subprocess.run([SMBFS, "demo"], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    m = re.search(r"^\$ mount\.smbfs //\S+ (\S+) -o credentials=\S+$", out, re.M)
    assert m is not None, out
    mnt = m.group(1)
    assert "fuse.smbfs" in out
    assert re.search(r"-rwx\S* +1 .* 18 .* hello\.txt", out), out
    assert "Hello from smbfs!" in out
    written = re.findall(r"written through the smbfs mount at [0-9:]+", out)
    assert len(set(written)) == 1 and len(written) == 3  # echo, smbclient, the server's disk
    assert "Unmounted" in out and "Private Samba stopped." in out
    assert "smbfs-Pass" not in out.split("\n", 2)[2]  # only the banner shows the password
    assert not is_mounted(mnt) and not Path(mnt).exists() and daemons(Path(mnt)) == []


def test_demo_keep_unmounts_on_ctrl_c() -> None:
    proc = subprocess.Popen([SMBFS, "demo", "--keep"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        mnt = next(re.search(r"mounted on (\S+);", x) for x in lines if "stays mounted" in x)
        assert mnt is not None, lines
        path = mnt.group(1).rstrip(".")
        assert is_mounted(path)
        assert "hello.txt" in subprocess.run(["ls", path], capture_output=True, text=True,
                                             timeout=STEP_TIMEOUT).stdout
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130
    assert "Private Samba stopped." in out
    assert not is_mounted(path) and daemons(Path(path)) == []


def test_install_helper_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "mount.smbfs"
    for expect in ("->", "already installed"):
        r = subprocess.run([SMBFS, "install-helper", "--target", str(target)],
                           capture_output=True, text=True, timeout=STEP_TIMEOUT)
        assert r.returncode == 0 and expect in r.stdout, r.stderr
    assert target.is_symlink()
    other = tmp_path / "other"
    other.write_text("")
    r = subprocess.run([SMBFS, "install-helper", "--target", str(other)],
                       capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert r.returncode == 1 and "--force" in r.stderr
    # Another checkout's (here: a removed venv's) helper link is taken over.
    stale = tmp_path / "stale"
    stale.symlink_to("/nonexistent/.venv/bin/mount.smbfs")
    r = subprocess.run([SMBFS, "install-helper", "--target", str(stale)],
                       capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert os.readlink(stale) == os.readlink(target)
    r = subprocess.run([SMBFS, "install-helper", "--target", str(target), "--remove"],
                       capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert r.returncode == 0 and not target.exists()
