"""The fault proxy does what it promises, on plain sockets and on real SMB traffic."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from smbfs.devserver import PrivateSamba

ProxyFactory = Callable[[str, int], FaultProxy]


class EchoServer:
    """A loopback echo target in a thread (one thread per connection)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c: socket.socket) -> None:
        try:
            while data := c.recv(65536):
                c.sendall(data)
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    return s


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _recv_until_closed(s: socket.socket) -> tuple[bytes, bool]:
    """Everything until EOF or reset; True when the connection did end."""
    buf = bytearray()
    try:
        while chunk := s.recv(65536):
            buf += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return bytes(buf), False
    return bytes(buf), True


def test_passthrough_and_counter(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    for i in range(3):
        with _connect(proxy.port) as s:
            s.sendall(b"hello %d" % i)
            assert _recv_exactly(s, 7) == b"hello %d" % i
    assert proxy.connections_accepted == 3
    # The proxy counts after its send returns, which can be after our recv.
    _eventually(lambda: proxy.bytes_c2s == 21 and proxy.bytes_s2c == 21)


def test_cut_all_gives_eof(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    with _connect(proxy.port) as s:
        s.sendall(b"ping")
        assert _recv_exactly(s, 4) == b"ping"
        proxy.cut_all()
        data, closed = _recv_until_closed(s)
        assert closed and data == b""
    # New connections still work after a cut (what a reconnect needs).
    with _connect(proxy.port) as s2:
        s2.sendall(b"again")
        assert _recv_exactly(s2, 5) == b"again"
    assert proxy.connections_accepted == 2


def test_cut_all_reset(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    with _connect(proxy.port) as s:
        proxy.wait_for_connections(1)
        s.sendall(b"x")
        assert _recv_exactly(s, 1) == b"x"
        proxy.cut_all(reset=True)
        with pytest.raises(ConnectionResetError):
            s.recv(10)


def test_stall_holds_then_continues(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    with _connect(proxy.port) as s:
        s.sendall(b"a")
        assert _recv_exactly(s, 1) == b"a"
        proxy.stall(1.0)
        t0 = time.monotonic()
        s.sendall(b"held")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)
        s.settimeout(10)
        assert _recv_exactly(s, 4) == b"held"
        assert time.monotonic() - t0 >= 0.95


def test_cut_after_n_bytes(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    with _connect(proxy.port) as s:
        s.sendall(b"warm")
        assert _recv_exactly(s, 4) == b"warm"
        # 100 bytes go to the echo server and 60 of them come back: 160 in all.
        proxy.cut_after(160)
        s.sendall(bytes(range(100)))
        data, closed = _recv_until_closed(s)
        assert closed
        assert data == bytes(range(60))
    assert proxy.cuts == 1


def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _frames(payloads: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


def test_frame_hook_modifies_and_drops(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    seen: list[tuple[str, bytes]] = []

    def hook(direction: str, frame: bytes) -> bytes | None:
        seen.append((direction, frame))
        if frame == b"drop":
            return None
        if direction == "s2c":
            return frame.upper() + b"!"
        return frame

    proxy.set_frame_hook(hook)
    with _connect(proxy.port) as s:
        # Frames split at awkward places must still be reassembled.
        wire = _frames([b"abc", b"drop", b"", b"xyz" * 1000])
        for i in range(0, len(wire), 7):
            s.sendall(wire[i : i + 7])
        expected = _frames([b"ABC!", b"!", b"XYZ" * 1000 + b"!"])
        assert _recv_exactly(s, len(expected)) == expected
    assert [d for d, _ in seen].count("c2s") == 4


def test_frame_hook_error_cuts_connection(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)

    def hook(direction: str, frame: bytes) -> bytes | None:
        raise RuntimeError("boom")

    proxy.set_frame_hook(hook)
    with _connect(proxy.port) as s:
        s.sendall(_frames([b"x"]))
        _, closed = _recv_until_closed(s)
        assert closed
    assert isinstance(proxy.hook_errors[0], RuntimeError)


def test_refuse_connections(fault_proxy: ProxyFactory, echo: EchoServer) -> None:
    proxy = fault_proxy("127.0.0.1", echo.port)
    proxy.refuse_connections()
    with _connect(proxy.port) as s:
        _, closed = _recv_until_closed(s)
        assert closed
    proxy.refuse_connections(False)
    with _connect(proxy.port) as s:
        s.sendall(b"ok")
        assert _recv_exactly(s, 2) == b"ok"


def test_stop_is_clean(echo: EchoServer) -> None:
    proxy = FaultProxy("127.0.0.1", echo.port).start()
    s = _connect(proxy.port)
    proxy.wait_for_connections(1)
    proxy.stop()
    assert proxy._thread is not None and not proxy._thread.is_alive()
    _, closed = _recv_until_closed(s)
    assert closed
    s.close()
    with pytest.raises(OSError):
        _connect(proxy.port)


def test_smb_through_proxy_sees_frames(
    samba: PrivateSamba, fault_proxy: ProxyFactory, tmp_path: Path
) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    commands: list[int] = []

    def hook(direction: str, frame: bytes) -> bytes | None:
        if frame[:4] == b"\xfeSMB":
            commands.append(int.from_bytes(frame[12:14], "little"))
        return frame

    proxy.set_frame_hook(hook)
    r = samba.smbclient(samba.shares.rw, "ls", port=proxy.port)
    assert r.returncode == 0, r.stdout + r.stderr
    # NEGOTIATE (0), SESSION_SETUP (1), TREE_CONNECT (3) and QUERY_DIRECTORY (14) went by.
    assert {0, 1, 3, 14} <= set(commands)
    assert proxy.connections_accepted == 1


def test_cut_drops_smb_client(samba: PrivateSamba, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    with samba.smbclient_session(samba.shares.rw, user=samba.user2, port=proxy.port) as proc:
        proxy.cut_all()
        # The server sees the loss too: its session goes away.
        samba.wait_for(
            lambda st: (
                not any(
                    x["username"] == samba.user2.name
                    for x in (st.get("sessions") or {}).values()  # type: ignore[attr-defined]
                )
            ),
            what="the cut session gone",
        )
        assert proc.stdin is not None
        proc.stdin.write("ls\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=20)
        assert "NT_STATUS_CONNECTION" in out or "NT_STATUS_END_OF_FILE" in out, out


def test_signature_tampering_is_visible(
    samba_signing: PrivateSamba, fault_proxy: ProxyFactory
) -> None:
    """The hook can flip a bit of a signed response; smbclient then refuses it."""
    s = samba_signing
    proxy = fault_proxy(s.host, s.port)

    def hook(direction: str, frame: bytes) -> bytes | None:
        # Tamper with the signature (MS-SMB2 2.2.1: bytes 48..63) of signed
        # TREE_CONNECT responses (command 3; flags bit SMB2_FLAGS_SIGNED = 8).
        if direction == "s2c" and frame[:4] == b"\xfeSMB":
            command = int.from_bytes(frame[12:14], "little")
            flags = int.from_bytes(frame[16:20], "little")
            if command == 3 and flags & 0x8:
                b = bytearray(frame)
                b[48] ^= 0x01
                return bytes(b)
        return frame

    proxy.set_frame_hook(hook)
    r = s.smbclient(s.shares.rw, "ls", port=proxy.port, extra_args=["--client-protection=sign"])
    assert r.returncode != 0, r.stdout + r.stderr
    assert "NT_STATUS_ACCESS_DENIED" in r.stdout + r.stderr or "NT_STATUS_" in r.stdout + r.stderr


def test_cut_after_mid_transfer_fails_smbclient(
    samba: PrivateSamba, fault_proxy: ProxyFactory, tmp_path: Path
) -> None:
    name = f"cut-{time.monotonic_ns()}.bin"
    src = samba.share_path(samba.shares.rw) / name
    src.write_bytes(bytes(8 * 1024 * 1024))
    try:
        proxy = fault_proxy(samba.host, samba.port)
        proxy.cut_after(2 * 1024 * 1024)
        dest = tmp_path / "partial.bin"
        r = samba.smbclient(samba.shares.rw, f"get {name} {dest}", port=proxy.port)
        assert r.returncode != 0, r.stdout + r.stderr
        assert "NT_STATUS_" in r.stdout + r.stderr
        assert proxy.cuts == 1
        assert proxy.bytes_c2s + proxy.bytes_s2c == 2 * 1024 * 1024
    finally:
        src.unlink()
