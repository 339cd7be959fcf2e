"""Faults: cuts, stalls, dead peers, server-side kills, cancellation and
malformed input. Every wait here is bounded; every failure must be a
ConnectionLostError that arrives promptly, never a hang or wrong data."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import trio
from conn_util import open_dir, pattern, tree_connect, write_read_close
from smb_trees import config_for

from smbfs.client import ClientConfig, ConnectionLostError, SMBTimeoutError, open_session
from smbfs.proto.change_notify import ChangeNotifyRequest, CompletionFilter
from smbfs.proto.close import CloseRequest
from smbfs.proto.constants import Dialect
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.simple import EchoRequest


async def test_cut_fails_in_flight_requests_promptly(samba: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    async with open_session(config_for(samba, port=proxy.port, request_timeout=30)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        errors: list[BaseException] = []
        started = trio.Event()

        async def one(i: int) -> None:
            try:
                await write_read_close(s, tree, f"cut-{i}.bin", pattern(100_000, seed=i))
            except BaseException as e:  # recorded and checked below
                errors.append(e)

        proxy.stall(60)  # hold the requests in flight ...
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    nursery.start_soon(one, i)
                while s.connection.in_flight < 8:
                    await trio.sleep(0.01)
                started.set()
                proxy.cut_all()  # ... then cut: all 8 fail well before the timeout
        assert started.is_set()
        assert len(errors) == 8
        for e in errors:
            assert isinstance(e, ConnectionLostError) and not isinstance(e, SMBTimeoutError)
        with trio.fail_after(2), pytest.raises(ConnectionLostError):
            await s.request(EchoRequest())


async def test_stall_longer_than_request_timeout(samba: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    async with open_session(config_for(samba, port=proxy.port, request_timeout=1.0)) as s:
        await s.request(EchoRequest())
        proxy.stall(10)
        with trio.fail_after(5), pytest.raises(SMBTimeoutError):
            await s.request(EchoRequest())
        assert not s.connection.alive


async def test_idle_stall_detected_by_echo(samba: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    cfg = config_for(samba, port=proxy.port, echo_interval=0.5, request_timeout=30)
    async with open_session(cfg) as s:
        # Healthy idle connection: ECHOs go out and are answered.
        await trio.sleep(1.5)
        assert s.connection.alive and s.connection.echoes_sent >= 1
        proxy.stall(30)
        with trio.fail_after(5):
            await s.connection.closed_event.wait()
        with trio.fail_after(2), pytest.raises(ConnectionLostError):
            await s.request(EchoRequest())


async def test_server_process_killed(samba: Any) -> None:
    async with open_session(config_for(samba, request_timeout=30)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        [pid] = [int(v["server_id"]["pid"]) for v in samba.smbstatus()["sessions"].values()
                 if int(v["session_id"]) == s.session_id]
        fid = await open_dir(s, tree)
        done = trio.Event()
        result: list[BaseException] = []

        async def notify() -> None:
            try:
                await s.request(ChangeNotifyRequest(
                    file_id=fid, completion_filter=CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME),
                    tree_id=tree.tree_id)
            except BaseException as e:
                result.append(e)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(notify)
            while s.connection.in_flight == 0 or not _has_async(s):
                await trio.sleep(0.01)
            os.kill(pid, signal.SIGKILL)
            with trio.fail_after(5):
                await done.wait()
        assert isinstance(result[0], ConnectionLostError)


def _has_async(s: Any) -> bool:
    return any(p.async_id is not None for p in s.connection._pending.values())


@pytest.mark.parametrize("server,dialect", [
    ("samba", Dialect.SMB3_1_1),
    ("samba_signing", Dialect.SMB3_1_1),  # CANCEL signed with AES-GMAC (cancel nonce bit)
    ("samba_signing", Dialect.SMB3_0),  # ... with AES-CMAC
    ("samba_signing", Dialect.SMB2_1),  # ... with HMAC-SHA256
])
async def test_cancel_sends_cancel_and_connection_stays_usable(
    request: pytest.FixtureRequest, server: str, dialect: Dialect
) -> None:
    samba = request.getfixturevalue(server)
    async with open_session(config_for(samba, max_dialect=dialect)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        fid = await open_dir(s, tree)
        with trio.move_on_after(0.5) as scope:
            await s.request(ChangeNotifyRequest(
                file_id=fid, completion_filter=CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME),
                tree_id=tree.tree_id)
        assert scope.cancelled_caught
        assert s.connection.cancels_sent == 1
        # The server answers the cancelled request (STATUS_CANCELLED); the
        # receiver consumes it, so nothing stays outstanding.
        with trio.fail_after(5):
            while s.connection.in_flight:
                await trio.sleep(0.01)
        data = pattern(10_000, seed=5)
        assert await write_read_close(s, tree, "after-cancel.bin", data) == data
        await s.request(CloseRequest(file_id=fid), tree_id=tree.tree_id)


async def test_cancel_before_interim_response(samba: Any, fault_proxy: Any) -> None:
    """Cancelled while the request is still unanswered (no AsyncId yet): the
    CANCEL goes by MessageId and the late answer is discarded."""
    proxy = fault_proxy(samba.host, samba.port)
    async with open_session(config_for(samba, port=proxy.port)) as s:
        proxy.stall(0.5)
        with trio.move_on_after(0.1):
            await s.request(EchoRequest())
        assert s.connection.cancels_sent == 1
        with trio.fail_after(5):
            while s.connection.in_flight:
                await trio.sleep(0.01)
        assert s.connection.alive
        await s.request(EchoRequest())


async def test_garbage_from_server_is_connection_lost(samba: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    armed = False

    def hook(direction: str, frame: bytes) -> bytes | None:
        if armed and direction == "s2c":
            return frame[:66]  # ECHO response cut inside its 4-byte body
        return frame

    proxy.set_frame_hook(hook)
    async with open_session(config_for(samba, port=proxy.port)) as s:
        armed = True
        with trio.fail_after(5), pytest.raises(ConnectionLostError):
            await s.request(EchoRequest())
        assert not s.connection.alive


async def test_response_to_unknown_message_id_drops(samba: Any, fault_proxy: Any) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    armed = False

    def hook(direction: str, frame: bytes) -> bytes | None:
        if armed and direction == "s2c":
            b = bytearray(frame)
            b[24:32] = (12345678).to_bytes(8, "little")
            return bytes(b)
        return frame

    proxy.set_frame_hook(hook)
    async with open_session(config_for(samba, port=proxy.port)) as s:
        armed = True
        with trio.fail_after(5), pytest.raises(ConnectionLostError):
            await s.request(EchoRequest())
        assert not s.connection.alive
        assert s.connection.cancels_sent == 0


async def test_connection_refused_is_connection_lost() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connect is refused
        cfg = ClientConfig(host="127.0.0.1", port=port, username="x", password="y")
        with trio.fail_after(5), pytest.raises(ConnectionLostError):
            async with open_session(cfg):
                pass


async def test_expired_session_reauthenticates_and_retries(
    samba: Any, fault_proxy: Any
) -> None:
    """STATUS_NETWORK_SESSION_EXPIRED: SESSION_SETUP again on the same
    SessionId, then the request is sent once more and succeeds."""
    proxy = fault_proxy(samba.host, samba.port)
    state = {"armed": False, "setups": 0}

    def hook(direction: str, frame: bytes) -> bytes | None:
        command = int.from_bytes(frame[12:14], "little")
        if direction == "c2s" and command == 0x01:
            state["setups"] += 1
        if state["armed"] and direction == "s2c" and command == 0x0D:
            state["armed"] = False
            b = bytearray(frame)
            b[8:12] = int(NTStatus.STATUS_NETWORK_SESSION_EXPIRED).to_bytes(4, "little")
            return bytes(b)
        return frame

    proxy.set_frame_hook(hook)
    async with open_session(config_for(samba, port=proxy.port)) as s:
        setups = state["setups"]
        sid = s.session_id
        state["armed"] = True
        await s.request(EchoRequest(), tree_id=0)
        assert state["setups"] > setups
        assert s.session_id == sid and s.connection.alive


async def test_cancel_on_encrypted_share(samba: Any) -> None:
    """Interim response, CANCEL and the final STATUS_CANCELLED all sealed."""
    async with open_session(config_for(samba)) as s:
        tree = await tree_connect(s, samba.shares.encrypted)
        assert tree.encrypt
        fid = await open_dir(s, tree)  # honours tree.encrypt
        with trio.move_on_after(0.5) as scope:
            await s.request(ChangeNotifyRequest(
                file_id=fid, completion_filter=CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME),
                tree_id=tree.tree_id, encrypt=True)
        assert scope.cancelled_caught and s.connection.cancels_sent == 1
        with trio.fail_after(5):
            while s.connection.in_flight:
                await trio.sleep(0.01)
        assert s.connection.alive
        await s.request(CloseRequest(file_id=fid), tree_id=tree.tree_id, encrypt=True)

