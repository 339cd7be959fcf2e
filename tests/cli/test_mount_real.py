"""mount.smbfs against the real test Samba: it returns once the mount works,
serves in the background (or the foreground), works through mount(8) and an
fstab line, honours uid/gid/modes/ro, keeps the password out of the process
list and the log, and exits cleanly on umount or SIGTERM."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from climount import (
    EXIT_TIMEOUT,
    MOUNT_SMBFS,
    MountPoint,
    alive,
    daemons,
    exit_status_logged,
    wait_exit,
    wait_until,
)

from smbfs.devserver import PrivateSamba


def _session_ids(samba: PrivateSamba) -> set[str]:
    return set(samba.smbstatus().get("sessions") or {})


def _server_file(samba: PrivateSamba, text: str) -> Path:
    p = samba.share_path(samba.shares.rw) / f"cli-{uuid.uuid4().hex[:8]}.txt"
    p.write_text(text)
    p.chmod(0o666)
    return p


def test_mount_ready_then_umount_exits_and_logs_off(mnt: MountPoint, tmp_path: Path) -> None:
    samba = mnt.samba
    f = _server_file(samba, "through the mount\n")
    mnt.extra.append(f)
    log = tmp_path / "mount.log"
    before = _session_ids(samba)
    r = mnt.run(mnt.source, str(mnt.path), "-o",
                f"username={samba.user.name},password={samba.user.password},log={log}")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    # No wait: the mount answers as soon as the command returned.
    assert f.name in os.listdir(mnt.path)
    assert (mnt.path / f.name).read_text() == "through the mount\n"
    (pid,) = daemons(mnt.path)
    ours = _session_ids(samba) - before
    assert ours, "the server shows no new session"
    (mnt.path / "from-cli.txt").write_text("x")
    mnt.extra.append(samba.share_path(samba.shares.rw) / "from-cli.txt")
    assert (samba.share_path(samba.shares.rw) / "from-cli.txt").read_text() == "x"
    subprocess.run(["umount", str(mnt.path)], check=True, capture_output=True,
                   timeout=EXIT_TIMEOUT)
    wait_exit([pid])
    assert not mnt.mounted()
    samba.wait_for(lambda st: not ours & set(st.get("sessions") or {}), timeout=10,
                   what="our session gone")
    assert exit_status_logged(log)
    # The daemon closed every handle it had: nothing of ours stays open.
    assert not [o for o in samba.open_files() if f.name in str(o)]


def test_password_not_in_cmdline_environ_or_verbose_log(mnt: MountPoint, tmp_path: Path) -> None:
    samba = mnt.samba
    pw = samba.user.password
    log = tmp_path / "verbose.log"
    r = mnt.run(mnt.source, str(mnt.path), "-v", "-o",
                f"user={samba.user.name}%{pw},log={log}", env={"PASSWD": "env-" + pw})
    assert r.returncode == 0, r.stderr
    assert pw not in r.stderr + r.stdout
    os.listdir(mnt.path)
    (pid,) = daemons(mnt.path)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert pw.encode() not in cmdline and pw.encode() not in environ
    assert b"PASSWD" not in environ
    assert b"mount.smbfs" in cmdline
    mnt.unmount()
    text = log.read_text()
    assert "DEBUG" in text and "authenticated" in text
    assert pw not in text
    assert exit_status_logged(log)


@pytest.mark.parametrize("stop", ["sigterm", "umount"])
def test_foreground_serves_until_stopped(mnt: MountPoint, tmp_path: Path, stop: str) -> None:
    samba = mnt.samba
    cred = tmp_path / "cred"
    cred.write_text(f"username={samba.user.name}\npassword={samba.user.password}\n")
    cred.chmod(0o600)
    proc = subprocess.Popen([MOUNT_SMBFS, mnt.source, str(mnt.path), "-f", "-o",
                             f"credentials={cred}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(mnt.mounted, 30, "the foreground mount")
        os.listdir(mnt.path)
        assert proc.poll() is None
        assert daemons(mnt.path) == [proc.pid]
        if stop == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            subprocess.run(["umount", str(mnt.path)], check=True, capture_output=True,
                           timeout=EXIT_TIMEOUT)
        _out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=EXIT_TIMEOUT)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not mnt.mounted()


def test_sigterm_to_daemon_unmounts(mnt: MountPoint) -> None:
    r = mnt.run(mnt.source, str(mnt.path), *mnt.creds())
    assert r.returncode == 0, r.stderr
    (pid,) = daemons(mnt.path)
    os.kill(pid, signal.SIGTERM)
    wait_exit([pid])
    assert not mnt.mounted()


def test_subdir_mount_and_ids_modes(mnt: MountPoint) -> None:
    samba = mnt.samba
    sub = samba.share_path(samba.shares.rw) / f"cli-sub-{uuid.uuid4().hex[:8]}"
    (sub / "inner").mkdir(parents=True)
    (sub / "f.txt").write_text("sub")
    os.chmod(sub, 0o777)
    mnt.extra.append(sub)
    r = mnt.run(f"{mnt.source}/{sub.name}", str(mnt.path), "-o",
                f"username={samba.user.name},password={samba.user.password},"
                "uid=1234,gid=2345,file_mode=0640,dir_mode=0750")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(mnt.path)) == ["f.txt", "inner"]
    st = os.stat(mnt.path / "f.txt")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)
    st = os.stat(mnt.path / "inner")
    assert stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o750)
    fs = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE", str(mnt.path)],
                        capture_output=True, text=True, timeout=EXIT_TIMEOUT).stdout.split()
    assert fs == [f"//{samba.host}/{samba.shares.rw}/{sub.name}", "fuse.smbfs"]
    mnt.unmount()


def test_mount_t_smbfs_through_helper(mnt: MountPoint, helper_installed: str,
                                      tmp_path: Path) -> None:
    samba = mnt.samba
    cred = tmp_path / "cred"
    cred.write_text(f"username={samba.user.name}\npassword={samba.user.password}\n")
    cred.chmod(0o600)
    r = mnt.run("-t", "smbfs", mnt.source, str(mnt.path), "-o", f"credentials={cred},ro",
                cmd="mount")
    assert r.returncode == 0, r.stderr
    os.listdir(mnt.path)
    with pytest.raises(OSError) as e:
        (mnt.path / "nope.txt").write_text("x")
    assert e.value.errno == errno.EROFS
    mnt.unmount(("umount",))


def test_mount_fake_through_helper_mounts_nothing(mnt: MountPoint, helper_installed: str) -> None:
    # mount(8) passes -f (fake) to helpers: everything but the mount.
    r = mnt.run("-f", "-t", "smbfs", mnt.source, str(mnt.path), *mnt.creds(), cmd="mount")
    assert r.returncode == 0, r.stderr
    assert not mnt.mounted() and daemons(mnt.path) == []


def test_fstab_line(mnt: MountPoint, helper_installed: str, tmp_path: Path) -> None:
    samba = mnt.samba
    cred = tmp_path / "cred"
    cred.write_text(f"username={samba.user.name}\npassword={samba.user.password}\n")
    cred.chmod(0o600)
    fstab = tmp_path / "fstab"
    fstab.write_text(
        f"{mnt.source} {mnt.path} smbfs credentials={cred},_netdev,nofail,noauto,"
        "x-systemd.automount,uid=4321,file_mode=0600,dir_mode=0700,vers=3.1.1 0 0\n")
    r = subprocess.run(["mount", "--fstab", str(fstab), str(mnt.path)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    st = os.stat(mnt.path)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (4321, 0o700)
    (pid,) = daemons(mnt.path)
    subprocess.run(["umount", str(mnt.path)], check=True, capture_output=True,
                   timeout=EXIT_TIMEOUT)
    wait_exit([pid])
    assert not alive(pid)


def test_sloppy_and_namespace_flags(mnt: MountPoint) -> None:
    # -s: an unknown option is a warning; -N: enter the mount namespace of a
    # PID (ours, so the mount is visible here); -n: accepted.
    r = mnt.run(mnt.source, str(mnt.path), "-s", "-n", "-N", str(os.getpid()), "-o",
                f"username={mnt.samba.user.name},password={mnt.samba.user.password},"
                "frobnicate=1")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "mount.smbfs: warning: ignoring unknown option frobnicate"
    os.listdir(mnt.path)
    mnt.unmount()


@pytest.mark.parametrize("opts, dialect, sealed", [
    ("vers=2.0", "SMB2_02", False),
    ("vers=3.0,seal", "SMB3_00", True),
    ("vers=3.1.1,sign", "SMB3_11", False),
])
def test_vers_seal_as_the_server_sees_them(mnt: MountPoint, opts: str, dialect: str,
                                           sealed: bool) -> None:
    samba = mnt.samba
    before = _session_ids(samba)
    u = samba.user
    r = mnt.run(mnt.source, str(mnt.path), "-o", f"username={u.name},password={u.password},{opts}")
    assert r.returncode == 0, r.stderr
    os.listdir(mnt.path)
    sessions = samba.smbstatus().get("sessions") or {}
    (ours,) = [s for k, s in sessions.items() if k not in before]
    assert ours["session_dialect"] == dialect
    assert (ours.get("encryption", {}).get("cipher", "-") != "-") == sealed
    mnt.unmount()
