"""smbfs.sdnotify against a datagram socket the test owns, as systemd would own it."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from smbfs import sdnotify


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = str(tmp_path / "notify")
    sock.bind(name)
    sock.settimeout(5)
    with sock:
        yield sock, name


def test_unset_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_path_socket(monkeypatch: pytest.MonkeyPatch,
                     path_socket: tuple[socket.socket, str]) -> None:
    sock, name = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert sdnotify.notify("READY=1")
    assert sdnotify.notify("STATUS=mounted //h/s on /mnt\nREADY=1")
    assert sock.recv(4096) == b"READY=1"
    assert sock.recv(4096) == b"STATUS=mounted //h/s on /mnt\nREADY=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"smbfs-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("STOPPING=1")
        assert sock.recv(4096) == b"STOPPING=1"


def test_unicode_status(monkeypatch: pytest.MonkeyPatch,
                        path_socket: tuple[socket.socket, str]) -> None:
    sock, name = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert sdnotify.notify("STATUS=mounted //srv/Müsik")
    assert sock.recv(4096).decode() == "STATUS=mounted //srv/Müsik"


def test_missing_socket_is_false_not_an_error(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False


def test_relative_name_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/notify")
    assert sdnotify.socket_address() is None
    assert sdnotify.notify("READY=1") is False


def test_socket_address_forms() -> None:
    assert sdnotify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert sdnotify.socket_address("@abc") == b"\0abc"
    assert sdnotify.socket_address("") is None


def test_no_fd_leak(monkeypatch: pytest.MonkeyPatch,
                    path_socket: tuple[socket.socket, str]) -> None:
    sock, name = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        assert sdnotify.notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"
    assert len(os.listdir("/proc/self/fd")) == before


def test_full_queue_does_not_hang(monkeypatch: pytest.MonkeyPatch,
                                  path_socket: tuple[socket.socket, str]) -> None:
    """A supervisor that stops reading: notify gives up (bounded), never blocks."""
    _, name = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    monkeypatch.setattr(sdnotify, "SEND_TIMEOUT", 0.05)
    sent = 0
    while sent < 10_000 and sdnotify.notify("WATCHDOG=1"):
        sent += 1
    assert 0 < sent < 10_000
