"""The test bed is real: each server, share and helper does what the fixtures promise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from smbfs.devserver import SMALL_SHARE_BYTES, PrivateSamba, _pids_with_arg, process_alive


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.both_sambas  # the current Samba (4.22) too
def test_put_get_roundtrip_is_byte_exact(samba: PrivateSamba, tmp_path: Path) -> None:
    data = os.urandom(300_000) + bytes(range(256))
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    name = _name("roundtrip")
    r = samba.smbclient(samba.shares.rw, f"put {src} {name}; get {name} {back}")
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert back.read_bytes() == data
        assert (samba.share_path(samba.shares.rw) / name).read_bytes() == data
    finally:
        (samba.share_path(samba.shares.rw) / name).unlink()


def test_second_user_can_log_in(samba: PrivateSamba) -> None:
    r = samba.smbclient(samba.shares.rw, "ls", user=samba.user2)
    assert r.returncode == 0, r.stdout + r.stderr


def test_wrong_password_is_refused(samba: PrivateSamba) -> None:
    r = samba.smbclient(samba.shares.rw, "ls", extra_args=["--password=wrong"])
    assert r.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in r.stdout + r.stderr


def test_readonly_share_refuses_write(samba: PrivateSamba, tmp_path: Path) -> None:
    src = tmp_path / "x.txt"
    src.write_bytes(b"nope")
    r = samba.smbclient(samba.shares.ro, f"put {src} x.txt")
    out = r.stdout + r.stderr
    assert "NT_STATUS_ACCESS_DENIED" in out or "NT_STATUS_MEDIA_WRITE_PROTECTED" in out, out
    assert not (samba.share_path(samba.shares.ro) / "x.txt").exists()


def test_encrypted_share_refuses_unencrypted_client(samba: PrivateSamba) -> None:
    # smbclient >= 4.15 switches encryption on by itself when the share asks for it,
    # so the honest non-encrypting client is one limited to SMB 2.1 (no encryption).
    r = samba.smbclient(samba.shares.encrypted, "ls", extra_args=["-m", "SMB2_10"])
    assert r.returncode != 0
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr


def test_encrypted_share_serves_encrypting_client(samba: PrivateSamba) -> None:
    r = samba.smbclient(samba.shares.encrypted, "ls", extra_args=["--client-protection=encrypt"])
    assert r.returncode == 0, r.stdout + r.stderr
    with samba.smbclient_session(
        samba.shares.encrypted, extra_args=["--client-protection=encrypt"]
    ):
        tcons = samba.smbstatus()["tcons"]
        assert isinstance(tcons, dict)
        enc = [t for t in tcons.values() if t["service"] == samba.shares.encrypted]
        assert enc and all(t["encryption"]["degree"] == "full" for t in enc), tcons


def test_signing_server_signs(samba_signing: PrivateSamba) -> None:
    s = samba_signing
    with s.smbclient_session(s.shares.rw, extra_args=["--client-protection=sign"]):
        sessions = s.sessions()
        assert sessions
        for sess in sessions:
            signing = sess["signing"]
            assert isinstance(signing, dict)
            assert signing["cipher"] != "-" and signing["degree"] in ("partial", "full"), sess
    r = s.smbclient(s.shares.rw, "ls")
    assert r.returncode == 0, r.stdout + r.stderr


def test_main_server_does_not_require_signing(samba: PrivateSamba) -> None:
    # The main server must leave unsigned sessions possible (engine tests need both).
    conf = samba.conf_path.read_text()
    assert "server signing = auto" in conf


def test_small_share_fills_up(samba: PrivateSamba, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SMALL_SHARE_BYTES + 512 * 1024))
    name = _name("full")
    try:
        r = samba.smbclient(samba.shares.small, f"put {big} {name}")
        assert "NT_STATUS_DISK_FULL" in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        (samba.share_path(samba.shares.small) / name).unlink(missing_ok=True)


def test_smbstatus_shows_open_session(samba: PrivateSamba) -> None:
    with samba.smbclient_session(samba.shares.rw, user=samba.user2) as proc:
        sessions = [x for x in samba.sessions() if x["username"] == samba.user2.name]
        assert sessions, samba.smbstatus()
        assert sessions[0]["session_dialect"] == "SMB3_11"
        pids = samba.connection_pids()
        assert pids and samba.smbd_pid not in pids
        assert proc.poll() is None


def test_killing_connection_pid_drops_the_client(samba: PrivateSamba) -> None:
    with samba.smbclient_session(samba.shares.rw, user=samba.user2) as proc:
        mine = [
            int(x["server_id"]["pid"])  # type: ignore[index]
            for x in samba.sessions()
            if x["username"] == samba.user2.name
        ]
        assert len(mine) == 1
        os.kill(mine[0], signal.SIGKILL)
        assert proc.stdin is not None
        proc.stdin.write("ls\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=20)
        assert (
            "NT_STATUS_CONNECTION" in out
            or "NT_STATUS_END_OF_FILE" in out
            or "NT_STATUS_PIPE" in out
        ), out
    assert samba.running


def test_fresh_samba_takes_options_and_cleans_up(
    fresh_samba: Callable[..., PrivateSamba],
) -> None:
    s = fresh_samba(global_options={"server max protocol": "SMB3_00"})
    with s.smbclient_session(s.shares.rw):
        assert [x["session_dialect"] for x in s.sessions()] == ["SMB3_00"]
    base, conf, small = s.base_dir, s.conf_path, s.share_path(s.shares.small)
    pid = s.smbd_pid
    s.stop()
    assert not process_alive(pid)
    assert _pids_with_arg(str(conf)) == []
    assert not base.exists()
    mounts = Path("/proc/mounts").read_text()
    assert str(small) not in mounts


def test_fresh_samba_restart_keeps_port(fresh_samba: Callable[..., PrivateSamba]) -> None:
    s = fresh_samba()
    port, pid = s.port, s.smbd_pid
    s.restart()
    assert s.port == port and s.smbd_pid != pid
    r = s.smbclient(s.shares.rw, "ls")
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_smbd_stops_the_suite(tmp_path: Path) -> None:
    """With no smbd on PATH the suite must exit non-zero with an install hint, not skip."""
    (tmp_path / "test_dummy.py").write_text("def test_x():\n    pass\n")
    conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    (tmp_path / "faultproxy.py").write_text((conftest.parent / "faultproxy.py").read_text())
    env = dict(os.environ, PATH="/nonexistent")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode not in (0, 5), out
    assert "apt-get install samba smbclient" in out, out


@pytest.mark.parametrize("share", ["share", "readonly", "encrypted", "small"])
def test_share_names_match_contract(samba: PrivateSamba, share: str) -> None:
    names = samba.shares
    assert share in (names.rw, names.ro, names.encrypted, names.small)
    assert samba.share_path(share).is_dir()


def test_port_taken_is_detected_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """smbd half-starts (on ::1 only) when 127.0.0.1:port is taken: never mistake the
    other listener for ours; with an automatic port, retry on another one."""
    import socket

    import smbfs.devserver as devserver

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(devserver.PortInUseError):
            PrivateSamba(devserver.SambaConfig(port=taken, start_timeout=10)).start()
        ports = iter([taken])
        real = devserver.free_port
        monkeypatch.setattr(devserver, "free_port", lambda host: next(ports, None) or real(host))
        with PrivateSamba() as server:
            assert server.port != taken
            r = server.smbclient(server.shares.rw, "ls")
            assert r.returncode == 0, r.stdout + r.stderr


def test_smbstatus_shows_open_file(samba: PrivateSamba) -> None:
    name = _name("open")
    path = samba.share_path(samba.shares.rw) / name
    path.write_text("x")
    try:
        with samba.smbclient_session(samba.shares.rw) as proc:
            assert proc.stdin is not None
            proc.stdin.write(f"open {name}\n")
            proc.stdin.flush()
            samba.wait_for(
                lambda st: any(
                    f["filename"] == name for f in (st.get("open_files") or {}).values()
                ),
                what=f"{name} open",
            )
            [entry] = [f for f in samba.open_files() if f["filename"] == name]
            assert entry["opens"]
    finally:
        path.unlink()


def test_non_root_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import smbfs.devserver as devserver

    monkeypatch.setattr(devserver.os, "geteuid", lambda: 1000)
    with pytest.raises(devserver.SambaError, match="needs root"):
        PrivateSamba().start()
