"""Server-less tests of the engine's plumbing: credits and MessageIds,
Direct TCP framing, and the receiver's dispatch path fed hostile frames."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbfs.client import ClientConfig, ConnectionLostError
from smbfs.client.connection import Connection, Response, SessionSecurity
from smbfs.client.credits import CreditWindow, credit_charge
from smbfs.client.transport import FramingError, Transport, parse_frame_header
from smbfs.proto.constants import Command, HeaderFlags
from smbfs.proto.crypto.encryption import Cipher, Encryptor
from smbfs.proto.crypto.signing import Signer, SigningAlgorithm
from smbfs.proto.header import Smb2Header
from smbfs.proto.simple import EchoRequest
from smbfs.testing import ScriptedServer

# -- credits ------------------------------------------------------------------


def test_credit_charge() -> None:
    assert credit_charge(0) == 1
    assert credit_charge(65536) == 1
    assert credit_charge(65537) == 2
    assert credit_charge(1 << 20) == 16
    assert credit_charge(8 << 20) == 128
    assert credit_charge(1 << 20, multi_credit=False) == 1


def test_message_ids_follow_charges() -> None:
    w = CreditWindow(initial=1)
    assert w.try_acquire(1) == 0
    assert w.try_acquire(1) is None  # window empty
    w.grant(40)
    assert w.try_acquire(16) == 1
    assert w.try_acquire(16) == 17
    assert w.try_acquire(16) is None  # 8 left
    assert w.try_acquire(8) == 33
    assert w.next_message_id == 41
    assert w.available == 0


def test_credit_request_grows_window() -> None:
    w = CreditWindow(initial=1, target=512)
    assert w.request_for(1) >= 512
    w.grant(2000)
    assert w.request_for(16) == 16  # enough held: just replace what is used
    assert CreditWindow(initial=0, target=10**6).request_for(1) == 0xFFFF


async def test_credit_waiters_are_fifo_and_reserved() -> None:
    w = CreditWindow(initial=0)
    got: list[tuple[str, int]] = []

    async def want(name: str, charge: int) -> None:
        got.append((name, await w.acquire(charge)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(want, "big", 10)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(want, "small", 1)
        await trio.testing.wait_all_tasks_blocked()
        w.grant(5)  # not enough for "big"; "small" must not overtake it
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        w.grant(6)
    assert dict(got) == {"big": 0, "small": 10}  # ids reserved in arrival order
    assert w.available == 0


async def test_cancelled_waiter_leaves_no_hole() -> None:
    w = CreditWindow(initial=0)
    with trio.move_on_after(0.01):
        await w.acquire(3)
    w.grant(3)
    assert w.try_acquire(3) == 0  # the cancelled wait consumed no ids


async def test_close_fails_waiters() -> None:
    w = CreditWindow(initial=0)
    errors: list[BaseException] = []

    async def waiter() -> None:
        try:
            await w.acquire(1)
        except ConnectionLostError as e:
            errors.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        w.close(ConnectionLostError("gone"))
    assert len(errors) == 1
    with pytest.raises(ConnectionLostError):
        w.try_acquire(1)


# -- framing --------------------------------------------------------------------


def test_frame_header_checks() -> None:
    assert parse_frame_header(b"\x00\x00\x01\x00", 1000) == 256
    with pytest.raises(FramingError):
        parse_frame_header(b"\x01\x00\x00\x10", 1000)  # NetBIOS session message type != 0
    with pytest.raises(FramingError):
        parse_frame_header(b"\x00\x10\x00\x00", 1000)  # over the limit
    with pytest.raises(FramingError):
        parse_frame_header(b"\x00\x00\x00\x00", 1000)


async def _pair(max_frame: int = 1 << 24) -> tuple[Transport, trio.socket.SocketType]:
    a, b = trio.socket.socketpair()
    return Transport(a, max_frame), b


async def test_transport_frames_roundtrip() -> None:
    t, peer = await _pair()
    big = bytes(range(256)) * 5000  # 1.28 MB: received by recv_into in pieces
    sender, _ = await _pair()
    # Several frames written at once, then read back one by one.
    stream = b"".join(len(p).to_bytes(4, "big") + p for p in (b"one", big, b"three"))
    async with trio.open_nursery() as nursery:
        async def write() -> None:
            view = memoryview(stream)
            while view:
                n = await peer.send(view[:70000])
                view = view[n:]
        nursery.start_soon(write)
        assert bytes(await t.receive_frame()) == b"one"
        assert bytes(await t.receive_frame()) == big
        assert bytes(await t.receive_frame()) == b"three"
    peer.close()
    with pytest.raises(ConnectionLostError):
        await t.receive_frame()
    t.close()
    sender.close()


async def test_transport_send_vectored() -> None:
    t, peer = await _pair()
    payload = memoryview(bytes(300_000))
    parts = [b"head", payload, b"tail"]
    receiver = Transport(peer, 1 << 24)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(t.send_frame, parts)
        frame = await receiver.receive_frame()
    assert bytes(frame) == b"head" + bytes(300_000) + b"tail"
    t.close()
    receiver.close()


async def test_transport_rejects_oversized_frame() -> None:
    t, peer = await _pair(max_frame=1000)
    await peer.send((5000).to_bytes(4, "big"))
    with pytest.raises(FramingError):
        await t.receive_frame()
    t.close()
    peer.close()


# -- the receiver's dispatch path under hostile input ---------------------------
#
# A Connection over smbfs.testing's in-memory pipe, negotiated with a
# scripted server, with a session's keys installed the way Session does
# (conn.security); requests are real transact() calls in flight. Hostile
# frames go straight to Connection.handle_frame (synchronous, documented as
# the entry for arbitrary bytes), then the test lets every task settle.

SESSION_ID = 0x1122334455667788
SIGN_KEY = bytes(range(16))
ENC_KEY = bytes(range(16, 32))


class Call:
    """A transact() running in the background, and what it came to."""

    def __init__(self) -> None:
        self.responses: list[Response] | None = None
        self.error: ConnectionLostError | None = None
        self.done = trio.Event()
        self.scope = trio.CancelScope()

    @property
    def response(self) -> Response | None:
        return self.responses[0] if self.responses else None

    async def run(self, conn: Connection, **kw: Any) -> None:
        with self.scope:
            try:
                self.responses = await conn.transact([EchoRequest()], **kw)
            except ConnectionLostError as e:
                self.error = e
            finally:
                self.done.set()


@asynccontextmanager
async def scripted(signed: bool = False, encrypted: bool = False, *, credits: int = 1,
                   **cfg: Any) -> AsyncIterator[tuple[Connection, ScriptedServer,
                                                      trio.Nursery]]:
    """A negotiated connection (holding ``credits`` credits) with a
    session's keys for SESSION_ID, its scripted server, and a nursery for
    background calls; everything is closed on exit."""
    server = ScriptedServer(decryptor=Encryptor(Cipher.AES_128_GCM, ENC_KEY)
                            if encrypted else None)
    cfg.setdefault("echo_interval", 3600)  # no keepalive unless a test wants one
    config = ClientConfig(host="127.0.0.1", **cfg)
    async with trio.open_nursery() as nursery:
        conn = await Connection.connect(config, nursery, transport=server.transport)
        nursery.start_soon(functools.partial(server.negotiate, credits=credits))
        with trio.fail_after(10):
            await conn.negotiate()
        conn.security[SESSION_ID] = SessionSecurity(
            SESSION_ID, signer=Signer(SigningAlgorithm.AES_CMAC, SIGN_KEY),
            signing_required=signed,
            encryptor=Encryptor(Cipher.AES_128_GCM, ENC_KEY) if encrypted else None,
            decryptor=Encryptor(Cipher.AES_128_GCM, ENC_KEY) if encrypted else None,
            encrypt_data=encrypted,
        )
        try:
            yield conn, server, nursery
        finally:
            conn.close()
            nursery.cancel_scope.cancel()


async def start_echo(conn: Connection, server: ScriptedServer,
                     nursery: trio.Nursery) -> tuple[Call, int]:
    """An ECHO on SESSION_ID in flight; returns it and its MessageId."""
    call = Call()
    nursery.start_soon(functools.partial(call.run, conn, session_id=SESSION_ID, timeout=30))
    with trio.fail_after(10):
        req = await server.expect(Command.SMB2_ECHO)
    await trio.testing.wait_all_tasks_blocked()  # the caller is waiting for its answer
    return call, req.message_id


def _echo_response(signed: bool, mid: int) -> bytes:
    flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
    if signed:
        flags |= int(HeaderFlags.SMB2_FLAGS_SIGNED)
    hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=mid, credits=3, flags=flags,
                     session_id=SESSION_ID)
    msg = bytearray(hdr.encode() + b"\x04\x00\x00\x00")
    if signed:
        Signer(SigningAlgorithm.AES_CMAC, SIGN_KEY).sign(msg)
    return bytes(msg)


def _seal(plain: bytes, nonce: bytes = bytes(12)) -> bytes:
    return bytes(Encryptor(Cipher.AES_128_GCM, ENC_KEY).encrypt_message(plain, SESSION_ID,
                                                                         nonce))


def _encrypted_echo(mid: int) -> bytes:
    return _seal(_echo_response(signed=False, mid=mid))


async def _deliver(conn: Connection, frame: bytes) -> None:
    conn.handle_frame(memoryview(bytearray(frame)))  # must never raise
    await trio.testing.wait_all_tasks_blocked()


@pytest.mark.parametrize("signed,encrypted", [(False, False), (True, False), (False, True)])
async def test_valid_response_is_delivered(signed: bool, encrypted: bool) -> None:
    async with scripted(signed, encrypted) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        frame = _encrypted_echo(mid) if encrypted else _echo_response(signed, mid)
        await _deliver(conn, frame)
        assert conn.alive and call.done.is_set() and call.response is not None
        assert call.response.header.message_id == mid
        assert conn.credits.available == 3  # the one credit held went on the ECHO


async def test_unsigned_response_on_signed_session_drops() -> None:
    async with scripted(signed=True) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _echo_response(signed=False, mid=mid))
        assert not conn.alive and call.response is None
        assert isinstance(call.error, ConnectionLostError)


async def test_plain_response_to_encrypted_request_drops() -> None:
    async with scripted(encrypted=True) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _echo_response(signed=False, mid=mid))
        assert not conn.alive and call.response is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
async def test_random_frames_only_drop_the_connection(frame: bytes) -> None:
    async with scripted(signed=True) as (conn, server, nursery):
        call, _mid = await start_echo(conn, server, nursery)
        await _deliver(conn, frame)
        # Nothing random can pass a signature check.
        assert call.response is None
        if not conn.alive:
            assert isinstance(call.error, ConnectionLostError)


def _mutations() -> Any:
    return st.one_of(
        st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
        st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
        st.tuples(st.just("extend"), st.integers(1, 64), st.integers(0, 255)),
    )


def _mutate(frame: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, a, b = mutation
    buf = bytearray(frame)
    if kind == "flip":
        buf[a % len(buf)] ^= b
    elif kind == "truncate":
        del buf[a % len(buf):]
    else:
        buf += bytes([b]) * a
    return bytes(buf)


@settings(max_examples=300, deadline=None)
@given(_mutations(), st.sampled_from(["signed", "encrypted"]))
async def test_mutated_frames_never_deliver_wrong_data(mutation: tuple[str, int, int],
                                                       kind: str) -> None:
    encrypted = kind == "encrypted"
    async with scripted(signed=not encrypted, encrypted=encrypted) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        original = _encrypted_echo(mid) if encrypted else _echo_response(signed=True, mid=mid)
        frame = _mutate(original, mutation)
        await _deliver(conn, frame)
        if frame == original:
            assert call.response is not None
        else:
            assert call.response is None
            assert not conn.alive
            assert isinstance(call.error, ConnectionLostError)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=4))
async def test_random_compound_chains_on_unsigned_session(bodies: list[bytes]) -> None:
    """Headers that decode but bodies that are junk, chained with random
    NextCommand values: only the connection-lost path may result."""
    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        out = bytearray()
        for i, body in enumerate(bodies):
            hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=mid + i,
                             flags=int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR),
                             next_command=(64 + len(body)) if i < len(bodies) - 1 else 0)
            out += hdr.encode() + body
        await _deliver(conn, bytes(out))
        if not conn.alive:
            assert call.done.is_set() and call.response is None


async def test_break_notification_goes_to_handler() -> None:
    async with scripted(signed=True) as (conn, _server, _nursery):
        seen: list[int] = []
        conn.break_handler = lambda hdr, msg: seen.append(hdr.message_id)
        hdr = Smb2Header(command=Command.SMB2_OPLOCK_BREAK, message_id=0xFFFFFFFFFFFFFFFF,
                         flags=int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR))
        body = (44).to_bytes(2, "little") + bytes(42)  # a lease break notification's size
        await _deliver(conn, hdr.encode() + body)
        assert seen == [0xFFFFFFFFFFFFFFFF] and conn.alive

        def broken(hdr: Smb2Header, msg: memoryview) -> None:
            raise RuntimeError("handler bug")

        conn.break_handler = broken  # a buggy handler is logged, not fatal
        await _deliver(conn, hdr.encode() + body)
        assert conn.alive


def test_socket_module_is_real() -> None:
    assert socket.TCP_NODELAY  # the transport sets it on every connection


def _response(status: int, *, async_id: int = 0, message_id: int, body: bytes,
              credits: int = 1) -> bytes:
    flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
    if async_id:
        flags |= int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
    hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=message_id, status=status,
                     credits=credits, flags=flags, async_id=async_id, session_id=SESSION_ID)
    return hdr.encode() + body


ERROR_BODY = (9).to_bytes(2, "little") + bytes(7)  # [MS-SMB2] 2.2.2, ByteCount 0
ECHO_BODY = b"\x04\x00\x00\x00"


async def test_interim_then_final(autojump_clock: trio.testing.MockClock) -> None:
    """After an interim response the request waits past its timeout (the
    mock clock jumps far beyond it) for the final answer with the same
    AsyncId."""
    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)  # 30 s timeout
        await _deliver(conn, _response(0x103, async_id=0xABCDEF, message_id=mid,
                                       body=ERROR_BODY))  # STATUS_PENDING
        await trio.sleep(300)
        assert conn.alive and not call.done.is_set()
        await _deliver(conn, _response(0, async_id=0xABCDEF, message_id=mid, body=ECHO_BODY))
        assert call.response is not None and call.response.status == 0
        assert conn.in_flight == 0


async def test_cancelled_request_final_response_is_discarded() -> None:
    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        call.scope.cancel()
        with trio.fail_after(10):
            cancel = await server.expect(Command.SMB2_CANCEL)
        assert cancel.message_id == mid and conn.in_flight == 1  # still consumed
        await _deliver(conn, _response(0xC0000120, message_id=mid,
                                       body=ERROR_BODY))  # STATUS_CANCELLED
        assert conn.alive and conn.in_flight == 0 and call.response is None


async def test_duplicate_response_drops() -> None:
    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        frame = _response(0, message_id=mid, body=ECHO_BODY)
        await _deliver(conn, frame)
        assert call.response is not None and conn.alive
        await _deliver(conn, frame)  # the MessageId is no longer outstanding
        assert not conn.alive


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=600))
async def test_random_bytes_on_the_wire_end_in_connection_lost(data: bytes) -> None:
    """The whole receive path (framing + dispatch) on a real socket: random
    bytes then EOF; the receiver ends, the connection is dead, the request
    in flight fails with ConnectionLostError, within a bound."""
    a, b = trio.socket.socketpair()
    call = Call()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            conn = await Connection.connect(ClientConfig(host="127.0.0.1", echo_interval=30),
                                            nursery, transport=Transport(a, max_frame=1 << 20))
            nursery.start_soon(functools.partial(call.run, conn, timeout=30))
            await trio.testing.wait_all_tasks_blocked()
            assert conn.in_flight == 1
            await b.send(data)
            b.close()
            await conn.closed_event.wait()
            await call.done.wait()
    assert not conn.alive
    assert call.response is None or bytes(call.response.msg[:4]) == b"\xfeSMB"
    assert call.response is not None or isinstance(call.error, ConnectionLostError)


# -- review fixes: credit starvation, sealed interims, malformed bodies ----------


def _echo_with_credits(credits: int, *, message_id: int, status: int = 0,
                       async_id: int = 0) -> bytes:
    return _response(status, async_id=async_id, message_id=message_id, credits=credits,
                     body=ERROR_BODY if status else ECHO_BODY)


async def test_zero_credits_with_nothing_outstanding_drops() -> None:
    """[MS-SMB2] 3.3.1.2: a server must never leave the client at zero
    credits. With none held and no response due, every later request would
    wait out its timeout on a connection that can never send again."""
    async with scripted(credits=1) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)  # spends the only credit
        assert conn.credits.available == 0
        await _deliver(conn, _echo_with_credits(0, message_id=mid))
        assert call.response is not None  # the answer itself is still delivered
        assert not conn.alive
        with pytest.raises(ConnectionLostError):
            conn.credits.try_acquire(1)


async def test_zero_credits_while_a_response_is_due_is_fine() -> None:
    async with scripted(credits=2) as (conn, server, nursery):
        call5, mid5 = await start_echo(conn, server, nursery)
        _call6, mid6 = await start_echo(conn, server, nursery)
        assert conn.credits.available == 0
        await _deliver(conn, _echo_with_credits(0, message_id=mid5))
        assert call5.response is not None and conn.alive  # the other may still grant
        await _deliver(conn, _echo_with_credits(2, message_id=mid6))
        assert conn.alive and conn.credits.available == 2


async def test_credits_handed_to_a_waiter_are_not_starvation() -> None:
    """Credits given to a woken waiter whose task has not run yet are spent on
    a request about to be registered: not a starved window."""
    w = CreditWindow(initial=0)
    got: list[int] = []

    async def want() -> None:
        got.append(await w.acquire(2))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(want)
        await trio.testing.wait_all_tasks_blocked()
        w.grant(2)
        assert w.available == 0 and not w.starved  # handed over, not yet resumed
    assert got == [0] and w.starved


async def test_plain_interim_to_encrypted_request_drops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server seals every response to a sealed request, interims too
    (3.3.4.1.4): a plaintext STATUS_PENDING is forged, and would otherwise
    lift the request's timeout and plant an AsyncId."""
    async with scripted(encrypted=True) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _echo_with_credits(1, message_id=mid, status=0x103,
                                                async_id=0x77))
        assert not conn.alive
        assert isinstance(call.error, ConnectionLostError)


async def test_sealed_interim_to_encrypted_request_is_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with scripted(encrypted=True) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        interim = _echo_with_credits(1, message_id=mid, status=0x103, async_id=0x77)
        await _deliver(conn, _seal(interim, bytes(11) + b"\x01"))
        await trio.sleep(300)  # past the request timeout: lifted by the interim
        assert conn.alive and not call.done.is_set()
        final = _echo_with_credits(1, message_id=mid, async_id=0x77)
        await _deliver(conn, _seal(final, bytes(11) + b"\x02"))
        assert call.response is not None and call.response.header.async_id == 0x77


async def test_malformed_body_decoded_by_a_caller_drops_the_connection() -> None:
    """A DecodeError in a caller's decode (open.py, tree.py) must not escape
    raw with the connection still trusted: Response.decode turns it into a
    dropped connection and a ConnectionLostError ([MS-SMB2] 3.2.5.1.7)."""
    from smbfs.proto.create import CreateResponse

    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _echo_with_credits(1, message_id=mid))
        assert call.response is not None and conn.alive
        with pytest.raises(ConnectionLostError):
            call.response.decode(CreateResponse)  # an ECHO body is no CREATE response
        assert not conn.alive
        with pytest.raises(ConnectionLostError):
            await conn.transact([EchoRequest()])


async def test_response_guard_turns_decode_errors_into_connection_loss() -> None:
    from smbfs.proto.codec import DecodeError

    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _echo_with_credits(1, message_id=mid))
        assert call.response is not None
        with pytest.raises(ConnectionLostError), call.response.guard():
            raise DecodeError("bad FSCC buffer")
        assert not conn.alive


class _FakeSession:
    def __init__(self, conn: Connection) -> None:
        self.connection = conn


async def test_break_flood_is_bounded() -> None:
    """Breaks are queued for the acknowledger; a server sending far more
    than one per lease held is a flood that must not grow memory without
    bound: the connection is dropped instead."""
    from smbfs.client.lease import _BACKLOG_SLACK, LeaseTable

    async with scripted() as (conn, _server, _nursery):
        table = LeaseTable(_FakeSession(conn))  # type: ignore[arg-type]
        hdr = Smb2Header(command=Command.SMB2_OPLOCK_BREAK, message_id=0xFFFFFFFFFFFFFFFF,
                         flags=int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR))
        body = memoryview((44).to_bytes(2, "little") + bytes(42))
        for _ in range(_BACKLOG_SLACK):
            table.on_break(hdr, body)
        assert conn.alive
        table.on_break(hdr, body)
        assert not conn.alive
        assert table._send.statistics().current_buffer_used == _BACKLOG_SLACK


async def test_echo_without_credits_still_drops_a_silent_peer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """All credits held by requests the server never answers (interim
    responses lifted their timeouts): the ECHO cannot get a credit either.
    The keepalive must then drop the connection, not end quietly and leave
    it without dead-peer detection."""
    async with scripted(credits=1, echo_interval=10) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)  # holds the only credit
        await _deliver(conn, _echo_with_credits(0, message_id=mid, status=0x103,
                                                async_id=0x42))  # timeout lifted
        assert conn.credits.available == 0
        with trio.fail_after(100):
            await conn.closed_event.wait()
        assert not conn.alive and conn.echoes_sent == 1
        await call.done.wait()
        assert isinstance(call.error, ConnectionLostError)


_MSG = st.tuples(
    st.sampled_from([0, 1, 2, 3, 0xFFFFFFFFFFFFFFFF]),  # offsets from the first id; 3: never sent
    st.sampled_from([0, 0x103, 0xC0000120, 0x80000005, 0xC0000022]),  # ok, PENDING, errors
    st.integers(0, 3),  # CreditResponse
    st.booleans(),  # ASYNC flag
    st.sampled_from([Command.SMB2_ECHO, Command.SMB2_OPLOCK_BREAK, Command.SMB2_READ]),
    st.one_of(st.sampled_from([ECHO_BODY, ERROR_BODY,
                               (44).to_bytes(2, "little") + bytes(42),
                               (24).to_bytes(2, "little") + bytes(22)]),
              st.binary(max_size=48)),
)


def _chain(msgs: list[tuple[int, int, int, bool, Command, bytes]], first: int) -> bytes:
    out = bytearray()
    for i, (off, status, credits, is_async, command, body) in enumerate(msgs):
        unsolicited = off == 0xFFFFFFFFFFFFFFFF
        mid = off if unsolicited else first + off
        flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
        if is_async:
            flags |= int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
        size = 64 + len(body)
        pad = (-size) % 8 if i < len(msgs) - 1 else 0
        hdr = Smb2Header(command=command, message_id=mid, status=status, credits=credits,
                         flags=flags, async_id=0x99 if is_async else 0,
                         session_id=0 if unsolicited else SESSION_ID,
                         next_command=size + pad if i < len(msgs) - 1 else 0)
        out += hdr.encode() + body + bytes(pad)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_MSG, min_size=1, max_size=3), min_size=1, max_size=6),
       st.booleans())
async def test_dispatch_sequences_keep_the_invariants(frames: list[list[Any]],
                                                     cancel_one: bool) -> None:
    """Interim, final, error, cancelled, duplicate, unsolicited and unknown
    responses, alone or compounded, in any order: the receiver never raises,
    only ever completes a request with a final response of its own command
    and MessageId, never completes a cancelled one, and once it drops the
    connection every waiter has been woken."""
    async with scripted(credits=3) as (conn, server, nursery):
        calls: dict[int, Call] = {}
        for _ in range(3):
            call, mid = await start_echo(conn, server, nursery)
            calls[mid] = call
        first = min(calls)
        cancelled = calls[first + 2]
        if cancel_one:
            cancelled.scope.cancel()
            with trio.fail_after(10):
                await server.expect(Command.SMB2_CANCEL)
        assert conn.credits.available == 0
        breaks: list[int] = []
        conn.break_handler = lambda hdr, msg: breaks.append(len(msg))
        granted = 0
        for msgs in frames:
            before = conn.credits.available
            await _deliver(conn, _chain(msgs, first))
            if conn.alive:
                granted += conn.credits.available - before
                assert conn.credits.available >= before  # credits are only ever added
            for mid, call in calls.items():
                if call.response is not None:
                    assert call.done.is_set()
                    assert not (cancel_one and call is cancelled)
                    assert call.response.header.message_id == mid
                    assert call.response.header.command == Command.SMB2_ECHO
                    assert call.response.status != 0x103
            if not conn.alive:
                break
        if not conn.alive:
            for call in calls.values():
                if not (cancel_one and call is cancelled):
                    assert call.done.is_set()
                    assert call.response is not None or call.error is not None
            with pytest.raises(ConnectionLostError):
                conn.credits.try_acquire(1)
        else:
            open_ = [c for c in calls.values()
                     if not c.done.is_set() and not (cancel_one and c is cancelled)]
            assert conn.in_flight >= len(open_)
            assert conn.credits.available == granted


async def test_credit_wait_timeout_drops_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """SMBTimeoutError means "connection dropped" (errors.py): a request that
    cannot get a credit within its timeout must not leave the connection
    alive and stuck."""
    from smbfs.client.errors import SMBTimeoutError

    async with scripted(credits=1) as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)  # holds the only credit
        with trio.fail_after(100), pytest.raises(SMBTimeoutError):
            await conn.transact([EchoRequest()], timeout=5)
        assert not conn.alive
        await call.done.wait()
        assert conn.credits.next_message_id == mid + 1  # no MessageId was spent


async def test_encrypted_session_never_sends_plaintext() -> None:
    """encrypt=False on a session that must be encrypted still seals the
    request, so its response must be sealed too (a plaintext one drops)."""
    async with scripted(encrypted=True, credits=5) as (conn, server, nursery):
        call = Call()
        nursery.start_soon(functools.partial(call.run, conn, session_id=SESSION_ID,
                                             encrypt=False, timeout=5))
        with trio.fail_after(10):
            req = await server.expect(Command.SMB2_ECHO)
        assert server.frames[-1][:4] == b"\xfdSMB"
        await _deliver(conn, _echo_with_credits(1, message_id=req.message_id))  # plaintext
        assert isinstance(call.error, ConnectionLostError) and not conn.alive


async def test_cancel_of_a_sealed_request_is_sealed_or_not_sent() -> None:
    async with scripted(encrypted=True, credits=2) as (conn, server, nursery):
        first, mid = await start_echo(conn, server, nursery)
        second, _mid2 = await start_echo(conn, server, nursery)
        first.scope.cancel()
        with trio.fail_after(10):
            cancel = await server.expect(Command.SMB2_CANCEL)
        assert cancel.message_id == mid and server.frames[-1][:4] == b"\xfdSMB"
        frames = len(server.frames)
        del conn.security[SESSION_ID]  # logged off meanwhile: no key any more
        second.scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert len(server.frames) == frames  # never a plaintext CANCEL
        assert conn.alive and conn.in_flight == 2  # their answers are still consumed


async def test_final_response_with_another_async_id_drops() -> None:
    async with scripted() as (conn, server, nursery):
        call, mid = await start_echo(conn, server, nursery)
        await _deliver(conn, _response(0x103, async_id=0xABCDEF, message_id=mid,
                                       body=ERROR_BODY))
        assert conn.alive and not call.done.is_set()
        await _deliver(conn, _response(0, async_id=0x1234, message_id=mid, body=ECHO_BODY))
        assert not conn.alive and call.response is None
