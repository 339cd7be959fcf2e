"""The units in systemd/ pass ``systemd-analyze verify`` once installed by
systemd/install.sh (into a private root: the test never touches /etc), and
say what the design needs (Type=notify, after network-online.target...)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from sdunits import SYSTEMD_DIR, expand_command, parse_environment_file, parse_unit

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
INSTALL = SYSTEMD_DIR / "install.sh"


def _install(root: Path, helper: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DESTDIR": str(root), "SMBFS_MOUNT_HELPER": str(helper)},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An installed root: the units by install.sh, systemd's own units (the
    default dependencies such as sysinit.target) and the programs the unit
    runs, so that verify checks everything offline."""
    if SYSTEMD_ANALYZE is None:
        pytest.fail("systemd-analyze not found: apt-get install systemd (see .ci/setup)")
    r = tmp_path / "root"
    helper = tmp_path / "mount.smbfs"
    helper.write_text("#!/bin/sh\n")
    helper.chmod(0o755)
    result = _install(r, helper)
    assert result.returncode == 0, result.stderr
    # verify resolves the unit's programs inside the root: put the stub there.
    installed = r / "usr/sbin/mount.smbfs"
    assert installed.is_symlink() and installed.resolve() == helper
    installed.unlink()
    shutil.copy2(helper, installed)
    shutil.copytree(SYSTEM_UNITS, r / "usr/lib/systemd/system", symlinks=True)
    for prog in ("mkdir", "umount"):
        (r / "usr/bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f"/usr/bin/{prog}", r / "usr/bin" / prog)
    shutil.copy2(SYSTEMD_DIR / "mnt-share.mount", r / "etc/systemd/system/")
    shutil.copy2(SYSTEMD_DIR / "mnt-share.automount", r / "etc/systemd/system/")
    return r


def _verify(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", f"--root={root}", "--man=no", *units],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_service_template_verifies(root: Path) -> None:
    r = _verify(root, "/etc/systemd/system/smbfs@.service")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_mount_and_automount_verify(root: Path) -> None:
    r = _verify(root, "/etc/systemd/system/mnt-share.mount",
                "/etc/systemd/system/mnt-share.automount")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_verify_is_not_vacuous(root: Path) -> None:
    """The same check fails when the helper the unit runs is missing or a key is wrong."""
    (root / "usr/sbin/mount.smbfs").unlink()
    r = _verify(root, "/etc/systemd/system/smbfs@.service")
    assert r.returncode != 0 and "mount.smbfs" in r.stderr
    broken = root / "etc/systemd/system/broken@.service"
    broken.write_text("[Service]\nType=notifyy\nExecStart=/usr/bin/mkdir x\n")
    r = _verify(root, "/etc/systemd/system/broken@.service")
    assert "notifyy" in r.stderr


def test_install_is_idempotent_and_protects_credentials(tmp_path: Path) -> None:
    helper = tmp_path / "mount.smbfs"
    helper.write_text("#!/bin/sh\necho \"$@\"\n")
    helper.chmod(0o755)
    r = tmp_path / "root"
    assert _install(r, helper).returncode == 0
    cred = r / "etc/smbfs/mine.cred"
    cred.write_text("username=u\npassword=p\n")
    cred.chmod(0o644)
    second = _install(r, helper)
    assert second.returncode == 0, second.stderr
    assert stat.S_IMODE(cred.stat().st_mode) == 0o600
    assert stat.S_IMODE((r / "etc/smbfs/examples/example.cred").stat().st_mode) == 0o600
    wrapper = r / "usr/sbin/mount.smbfs"
    out = subprocess.run([str(wrapper), "//h/s", "/mnt", "-o", "a b"], capture_output=True,
                         text=True, timeout=10).stdout
    assert out.strip() == "//h/s /mnt -o a b"
    assert os.readlink(wrapper) == str(helper)


def test_service_says_what_boot_needs() -> None:
    unit = parse_unit(SYSTEMD_DIR / "smbfs@.service")
    assert unit["Unit"]["After"] == ["network-online.target"]
    assert unit["Unit"]["Wants"] == ["network-online.target"]
    svc = unit["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["EnvironmentFile"] == ["/etc/smbfs/%i.conf"]
    argv = expand_command(svc["ExecStart"][0], {"WHAT": "//h/s", "WHERE": "/mnt/x y",
                                                  "OPTIONS": "uid=1"}, "x")
    assert argv == ["/sbin/mount.smbfs", "//h/s", "/mnt/x y", "--foreground", "-o",
                    "uid=1"]


def test_examples_agree() -> None:
    mount = parse_unit(SYSTEMD_DIR / "mnt-share.mount")
    auto = parse_unit(SYSTEMD_DIR / "mnt-share.automount")
    where = mount["Mount"]["Where"][0]
    assert auto["Automount"]["Where"] == [where]
    escaped = subprocess.run(["systemd-escape", "-p", "--suffix=mount", where],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    assert escaped == "mnt-share.mount"
    assert mount["Mount"]["Type"] == ["smbfs"]
    assert "_netdev" in mount["Mount"]["Options"][0].split(",")
    fstab = [line.split() for line in (SYSTEMD_DIR / "fstab.example").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(fstab) == 1 and len(fstab[0]) == 6
    what, where2, fstype, options, _, _ = fstab[0]
    assert what.startswith("//")
    assert (fstype, where2) == ("smbfs", where)
    opts = options.split(",")
    assert {"_netdev", "x-systemd.automount"} <= set(opts)
    assert any(o.startswith("credentials=") for o in opts)
    conf = parse_environment_file((SYSTEMD_DIR / "example.conf").read_text())
    assert set(conf) == {"WHAT", "WHERE", "OPTIONS"}
    assert "password" not in conf["OPTIONS"]
