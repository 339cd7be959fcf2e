"""The example fstab line (systemd/fstab.example) through mount(8) itself:
``mount --fstab FILE MOUNTPOINT`` parses the line, runs /sbin/mount.smbfs
with its options (_netdev, nofail, x-systemd.*, credentials=...), which
must return once the mount works; ``umount`` must end the daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from sdunits import SYSTEMD_DIR

from smbfs.cli.daemon import find_daemons
from smbfs.devserver import PrivateSamba

HELPER = Path("/sbin/mount.smbfs")


def _fstype(path: Path) -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path):
                return fields[2]
    return None


def test_example_fstab_line_mounts_through_mount8(samba: PrivateSamba, tmp_path: Path) -> None:
    if not os.access(HELPER, os.X_OK):
        pytest.fail(f"{HELPER} missing: run `sudo bash .ci/setup` (smbfs install-helper)")
    [line] = [ln for ln in (SYSTEMD_DIR / "fstab.example").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    _what, _where, fstype, options, dump, passno = line.split()
    cred = tmp_path / "share.cred"
    cred.write_text(f"username={samba.user.name}\npassword={samba.user.password}\n")
    cred.chmod(0o600)
    opts = [f"credentials={cred}" if o.startswith("credentials=")
            else "uid=0" if o.startswith("uid=") else "gid=0" if o.startswith("gid=") else o
            for o in options.split(",")]
    where = tmp_path / "mnt"
    where.mkdir()
    share = samba.shares.rw
    marker = f"sd-fstab-{os.getpid()}.txt"
    (samba.share_path(share) / marker).write_bytes(b"from fstab\n")
    fstab = tmp_path / "fstab"
    fstab.write_text(f"//{samba.host}:{samba.port}/{share}  {where}  {fstype}  "
                     f"{','.join(opts)}  {dump}  {passno}\n")
    try:
        r = subprocess.run([shutil.which("mount") or "mount", "--fstab", str(fstab), str(where)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        # mount(8) returned: the helper promised a working mount by then.
        assert _fstype(where) == "fuse.smbfs"
        assert (where / marker).read_bytes() == b"from fstab\n"
        assert find_daemons(str(where))
        r = subprocess.run(["umount", str(where)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20
        while find_daemons(str(where)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not find_daemons(str(where)), "the daemon outlived its unmount"
    finally:
        if _fstype(where):
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)
        (samba.share_path(share) / marker).unlink(missing_ok=True)
