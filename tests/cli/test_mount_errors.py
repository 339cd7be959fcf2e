"""mount.smbfs failures: each is one "mount.smbfs: ..." line on stderr, the
mount(8) helper exit code (1 usage, 32 mount failure), no traceback, and
nothing left mounted or running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from climount import MOUNT_SMBFS, MountPoint, daemons, one_line_error, wait_until


def _nothing_left(mnt: MountPoint) -> None:
    assert not mnt.mounted()
    assert daemons(mnt.path) == []


def test_unknown_option(mnt: MountPoint) -> None:
    r = mnt.run(mnt.source, str(mnt.path), "-o", "username=x,password=y,bogus_opt=1")
    assert one_line_error(r, 1) == "mount.smbfs: unknown mount option 'bogus_opt'"
    _nothing_left(mnt)


def test_usage_errors(mnt: MountPoint) -> None:
    one_line_error(mnt.run(mnt.source, str(mnt.path), "-o", "file_mode=999"), 1)
    one_line_error(mnt.run("server/share", str(mnt.path)), 1)
    one_line_error(mnt.run(mnt.source, str(mnt.path), "-Z"), 1)
    assert "SOURCE and MOUNTPOINT" in one_line_error(mnt.run(mnt.source), 1)
    r = mnt.run("--help")
    assert r.returncode == 0 and "usage: mount.smbfs" in r.stdout
    r = mnt.run("-V")
    assert r.returncode == 0 and r.stdout.startswith("mount.smbfs (smbfs) ")
    _nothing_left(mnt)


def test_wrong_password(mnt: MountPoint) -> None:
    pw = "definitely-wrong-pw"
    r = mnt.run(mnt.source, str(mnt.path), "-o", f"username={mnt.samba.user.name},password={pw}")
    line = one_line_error(r, 32)
    assert "STATUS_LOGON_FAILURE" in line and pw not in line
    _nothing_left(mnt)


def test_unknown_share(mnt: MountPoint) -> None:
    s = mnt.samba
    r = mnt.run(f"//{s.host}:{s.port}/no-such-share", str(mnt.path), *mnt.creds())
    line = one_line_error(r, 32)
    assert "no-such-share" in line and "not found" in line
    _nothing_left(mnt)


def test_unknown_subdir(mnt: MountPoint) -> None:
    r = mnt.run(mnt.source + "/no/such/dir", str(mnt.path), *mnt.creds())
    assert "no such directory" in one_line_error(r, 32)
    _nothing_left(mnt)


def test_unreachable_server(mnt: MountPoint) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = mnt.run(f"//127.0.0.1:{port}/share", str(mnt.path), *mnt.creds())
    line = one_line_error(r, 32)
    assert f"127.0.0.1:{port}" in line and "connect" in line
    _nothing_left(mnt)


def test_missing_mount_point(mnt: MountPoint, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    r = mnt.run(mnt.source, str(missing), *mnt.creds())
    assert "does not exist" in one_line_error(r, 32)
    assert not missing.exists()


def test_mount_point_is_a_file(mnt: MountPoint, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    r = mnt.run(mnt.source, str(f), *mnt.creds())
    assert "not a directory" in one_line_error(r, 32)


def test_credentials_file_warning_and_missing(mnt: MountPoint, tmp_path: Path) -> None:
    r = mnt.run(mnt.source, str(mnt.path), "-o", f"credentials={tmp_path}/none")
    assert "credentials file" in one_line_error(r, 1)
    cred = tmp_path / "cred"
    cred.write_text(f"username={mnt.samba.user.name}\npassword={mnt.samba.user.password}\n")
    os.chmod(cred, 0o644)
    r = mnt.run(mnt.source, str(mnt.path), "-o", f"credentials={cred}")
    assert r.returncode == 0, r.stderr
    assert "group/others" in r.stderr and mnt.samba.user.password not in r.stderr
    os.listdir(mnt.path)
    mnt.unmount()


def test_silent_server_fails_within_30s(mnt: MountPoint) -> None:
    # TCP connects (the kernel's backlog accepts it) but nothing ever answers:
    # the engine's first-contact bound (30 s for connect, negotiate and
    # session setup together) fails the mount, with one clear line.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        start = time.monotonic()
        r = mnt.run(f"//127.0.0.1:{port}/share", str(mnt.path), *mnt.creds())
        took = time.monotonic() - start
    assert one_line_error(r, 32) == (
        f"mount.smbfs: //127.0.0.1:{port}/share: the server accepted the connection but did "
        "not answer within 30 s")
    assert took < 35, f"took {took:.1f}s"
    wait_until(lambda: daemons(mnt.path) == [], 15, "the child's exit")
    assert not mnt.mounted()


def test_parent_bound_stops_a_hung_child(mnt: MountPoint) -> None:
    # The parent's own bound (SMBFS_MOUNT_TIMEOUT, here below the engine's
    # 30 s) gives up, stops the child and reports.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        r = mnt.run(f"//127.0.0.1:{port}/share", str(mnt.path), *mnt.creds(),
                    env={"SMBFS_MOUNT_TIMEOUT": "2"})
    line = one_line_error(r, 32)
    assert "no answer within 2s" in line
    wait_until(lambda: daemons(mnt.path) == [], 15, "the child's exit")
    assert not mnt.mounted()


def test_sigterm_while_waiting_stops_the_child(mnt: MountPoint) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        proc = subprocess.Popen([MOUNT_SMBFS, f"//127.0.0.1:{port}/share", str(mnt.path),
                                 *mnt.creds()], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The parent and its forked child share the command line.
            wait_until(lambda: len(daemons(mnt.path)) == 2, 15, "the forked child")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=15)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert "interrupted" in one_line_error(r, 32)
    wait_until(lambda: daemons(mnt.path) == [], 15, "the child's exit")
    assert not mnt.mounted()
