"""smbfs@.service's exact ExecStart, run as systemd runs it: the instance's
configuration file read as its EnvironmentFile, the helper installed by
install.sh, a clean environment with NOTIFY_SOCKET pointing at a datagram
socket this test owns, a session of its own. READY=1 must come from the main
PID once the share answers; SIGTERM (systemd's stop) must unmount and exit 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultproxy import FaultProxy
from sdunits import SYSTEMD_DIR, expand_command, parse_unit, service_environment

from smbfs.devserver import PrivateSamba

READY_TIMEOUT = 40.0
STOP_TIMEOUT = 30.0


def _is_mounted(path: Path) -> str | None:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(path):
                return fields[2]
    return None


class NotifySocket:
    """systemd's side of sd_notify: a datagram socket that learns each
    sender's PID (SO_PASSCRED), as systemd does to apply NotifyAccess=main."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))

    def receive(self, deadline: float) -> tuple[int, dict[str, str]] | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except TimeoutError:
            return None
        pid = -1
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("i", payload[:4])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        return pid, fields

    def wait_for(self, key: str, deadline: float,
                 proc: subprocess.Popen[bytes]) -> tuple[int, list[dict[str, str]]]:
        seen: list[dict[str, str]] = []
        while True:
            got = self.receive(min(deadline, time.monotonic() + 0.5))
            if got is not None:
                seen.append(got[1])
                if key in got[1]:
                    return got[0], seen
            elif time.monotonic() >= deadline or proc.poll() is not None:
                raise AssertionError(f"no {key} (exit status {proc.poll()}); got {seen}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify")
    yield ns
    ns.close()


@dataclass
class Service:
    """smbfs@testbed.service's ExecStart running, as systemd would run it."""

    proc: subprocess.Popen[bytes]
    where: Path
    log: Path
    svc: dict[str, list[str]]
    argv_of: Callable[[str], list[str]]


@contextlib.contextmanager
def run_service(samba: PrivateSamba, tmp_path: Path, notify: NotifySocket, share: str,
                port: int | None = None) -> Iterator[Service]:
    """Install the unit into a root of its own, write the instance's
    configuration (the share through ``port`` when given) and start its
    ExecStart with NOTIFY_SOCKET; kill and unmount whatever is left at the end."""
    root = tmp_path / "root"
    installed = subprocess.run(
        ["bash", str(SYSTEMD_DIR / "install.sh")], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DESTDIR": str(root)}, stdin=subprocess.DEVNULL)
    assert installed.returncode == 0, installed.stderr

    cred = root / "etc/smbfs/testbed.cred"
    cred.write_text(f"username={samba.user.name}\npassword={samba.user.password}\n")
    cred.chmod(0o600)
    where = tmp_path / "mnt" / "testbed"
    conf = (f"WHAT=//{samba.host}:{port or samba.port}/{share}\nWHERE={where}\n"
            f"OPTIONS=credentials={cred},uid=0,gid=0\n")
    (root / "etc/smbfs/testbed.conf").write_text(conf)

    unit = parse_unit(root / "etc/systemd/system/smbfs@.service")
    svc = unit["Service"]
    env = service_environment(unit, conf)
    assert svc["EnvironmentFile"] == ["/etc/smbfs/%i.conf"]

    # The programs the unit names, from the installed root when it installed them.
    def argv_of(line: str) -> list[str]:
        argv = expand_command(line, env, "testbed")
        if (root / argv[0].lstrip("/")).exists():
            argv[0] = str(root / argv[0].lstrip("/"))
        return argv

    for pre in svc.get("ExecStartPre", []):
        subprocess.run(argv_of(pre), check=True, timeout=10)
    start = argv_of(svc["ExecStart"][0])
    assert start[0] == str(root / "sbin/mount.smbfs")

    log = tmp_path / "journal.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            start, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True, cwd="/",
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
                 "NOTIFY_SOCKET": str(notify.path), "LANG": "C.UTF-8", **env})
    try:
        yield Service(proc, where, log, svc, argv_of)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if _is_mounted(where):
            subprocess.run(["umount", "-l", str(where)], timeout=10)


def _stop(service: Service, notify_socket: NotifySocket) -> None:
    """systemctl stop: SIGTERM to the main PID (KillMode=mixed), STOPPING=1,
    exit 0, nothing mounted, then ExecStopPost."""
    proc = service.proc
    os.kill(proc.pid, signal.SIGTERM)
    notify_socket.wait_for("STOPPING", time.monotonic() + STOP_TIMEOUT, proc)
    assert proc.wait(timeout=STOP_TIMEOUT) == 0, service.log.read_text()
    assert _is_mounted(service.where) is None
    for post in service.svc.get("ExecStopPost", []):
        r = subprocess.run(service.argv_of(post), capture_output=True, timeout=10)
        assert post.startswith("-") or r.returncode == 0
    assert _is_mounted(service.where) is None


def test_exec_start_notifies_and_stops_cleanly(samba: PrivateSamba, tmp_path: Path,
                                               notify_socket: NotifySocket) -> None:
    share = samba.shares.rw
    marker = f"sd-service-{os.getpid()}.txt"
    (samba.share_path(share) / marker).write_bytes(b"booted\n")
    try:
        with run_service(samba, tmp_path, notify_socket, share) as service:
            proc, where = service.proc, service.where
            pid, seen = notify_socket.wait_for("READY", time.monotonic() + READY_TIMEOUT, proc)
            assert pid == proc.pid, "READY=1 must come from the main PID (NotifyAccess=main)"
            assert seen[-1]["READY"] == "1"
            assert seen[-1].get("STATUS") == f"Connected to //{samba.host}/{share} (SMB 3.1.1)"
            assert _is_mounted(where) == "fuse.smbfs"
            assert marker in os.listdir(where)
            assert (where / marker).read_bytes() == b"booted\n"
            _stop(service, notify_socket)
    finally:
        (samba.share_path(share) / marker).unlink(missing_ok=True)


def test_status_follows_a_lost_connection(samba: PrivateSamba, tmp_path: Path,
                                          notify_socket: NotifySocket) -> None:
    """`systemctl status` shows the outage and the recovery: the server
    unreachable for a while (the proxy cuts the connection and refuses new
    ones), then back; a file held open across it is taken back."""
    share = samba.shares.rw
    name = f"sd-reconnect-{os.getpid()}.txt"
    (samba.share_path(share) / name).write_bytes(b"held open\n")
    unc = f"//{samba.host}/{share}"
    with FaultProxy(samba.host, samba.port) as proxy, \
            run_service(samba, tmp_path, notify_socket, share, port=proxy.port) as service:
        proc = service.proc
        _, seen = notify_socket.wait_for("READY", time.monotonic() + READY_TIMEOUT, proc)
        assert seen[-1]["STATUS"] == f"Connected to {unc} (SMB 3.1.1)"
        with open(service.where / name, "rb") as held:
            proxy.refuse_connections()
            proxy.cut_all()
            deadline = time.monotonic() + 20
            while True:
                _, seen = notify_socket.wait_for("STATUS", deadline, proc)
                if seen[-1]["STATUS"].startswith(f"Reconnecting to {unc} since "):
                    break
            proxy.refuse_connections(False)
            deadline = time.monotonic() + 30
            while True:
                _, seen = notify_socket.wait_for("STATUS", deadline, proc)
                if seen[-1]["STATUS"].startswith("Connected"):
                    break
            assert seen[-1]["STATUS"] == (
                f"Connected to {unc} (SMB 3.1.1; reconnected 1 time, 0 handles lost)")
            assert held.read() == b"held open\n"
        journal = service.log.read_text()
        assert f"Reconnecting to {unc} since " in journal
        assert "reconnected 1 time, 0 handles lost" in journal
        _stop(service, notify_socket)
    (samba.share_path(share) / name).unlink(missing_ok=True)
