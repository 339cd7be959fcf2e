"""Server-less tests of the engine's plumbing: credits and MessageIds,
Direct TCP framing, and the receiver's dispatch path fed hostile frames."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smbfs.client import ClientConfig, ConnectionLostError
from smbfs.client.connection import Connection, PendingRequest, SessionSecurity
from smbfs.client.credits import CreditWindow, credit_charge
from smbfs.client.transport import FramingError, Transport, parse_frame_header
from smbfs.proto.constants import Command, HeaderFlags
from smbfs.proto.crypto.encryption import Cipher, Encryptor
from smbfs.proto.crypto.signing import Signer, SigningAlgorithm
from smbfs.proto.header import Smb2Header
from smbfs.proto.simple import EchoRequest

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

SESSION_ID = 0x1122334455667788
SIGN_KEY = bytes(range(16))
ENC_KEY = bytes(range(16, 32))


class _NullTransport:
    closed = False

    def close(self) -> None:
        self.closed = True


def _connection(signed: bool = False, encrypted: bool = False) -> tuple[Connection, PendingRequest]:
    conn = Connection(ClientConfig(host="127.0.0.1"), _NullTransport())  # type: ignore[arg-type]
    conn.security[SESSION_ID] = SessionSecurity(
        SESSION_ID, signer=Signer(SigningAlgorithm.AES_CMAC, SIGN_KEY),
        signing_required=signed,
        encryptor=Encryptor(Cipher.AES_128_GCM, ENC_KEY) if encrypted else None,
        decryptor=Encryptor(Cipher.AES_128_GCM, ENC_KEY) if encrypted else None,
        encrypt_data=encrypted,
    )
    p = PendingRequest(message=EchoRequest(), message_id=5, charge=1, session_id=SESSION_ID,
                       tree_id=0, flags=0, encrypted=encrypted)
    conn._pending[5] = p
    return conn, p


def _echo_response(signed: bool) -> bytes:
    flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
    if signed:
        flags |= int(HeaderFlags.SMB2_FLAGS_SIGNED)
    hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=5, credits=3, flags=flags,
                     session_id=SESSION_ID)
    msg = bytearray(hdr.encode() + b"\x04\x00\x00\x00")
    if signed:
        Signer(SigningAlgorithm.AES_CMAC, SIGN_KEY).sign(msg)
    return bytes(msg)


def _encrypted_echo() -> bytes:
    plain = _echo_response(signed=False)
    enc = Encryptor(Cipher.AES_128_GCM, ENC_KEY)
    return bytes(enc.encrypt_message(plain, SESSION_ID, bytes(12)))


def _deliver(conn: Connection, frame: bytes) -> None:
    conn.handle_frame(memoryview(bytearray(frame)))  # must never raise


@pytest.mark.parametrize("signed,encrypted", [(False, False), (True, False), (False, True)])
def test_valid_response_is_delivered(signed: bool, encrypted: bool) -> None:
    conn, p = _connection(signed, encrypted)
    frame = _encrypted_echo() if encrypted else _echo_response(signed)
    _deliver(conn, frame)
    assert conn.alive and p.event.is_set() and p.response is not None
    assert p.response.header.message_id == 5
    assert conn.credits.available == 1 + 3


def test_unsigned_response_on_signed_session_drops() -> None:
    conn, p = _connection(signed=True)
    _deliver(conn, _echo_response(signed=False))
    assert not conn.alive and p.response is None
    assert isinstance(p.error, ConnectionLostError)


def test_plain_response_to_encrypted_request_drops() -> None:
    conn, p = _connection(encrypted=True)
    _deliver(conn, _echo_response(signed=False))
    assert not conn.alive and p.response is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_frames_only_drop_the_connection(frame: bytes) -> None:
    conn, p = _connection(signed=True)
    _deliver(conn, frame)
    # Nothing random can pass a signature check.
    assert p.response is None
    if not conn.alive:
        assert isinstance(p.error, ConnectionLostError)


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
def test_mutated_frames_never_deliver_wrong_data(mutation: tuple[str, int, int], kind: str) -> None:
    encrypted = kind == "encrypted"
    conn, p = _connection(signed=not encrypted, encrypted=encrypted)
    original = _encrypted_echo() if encrypted else _echo_response(signed=True)
    frame = _mutate(original, mutation)
    _deliver(conn, frame)
    if frame == original:
        assert p.response is not None
    else:
        assert p.response is None
        assert not conn.alive
        assert isinstance(p.error, ConnectionLostError)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=4))
def test_random_compound_chains_on_unsigned_session(bodies: list[bytes]) -> None:
    """Headers that decode but bodies that are junk, chained with random
    NextCommand values: only the connection-lost path may result."""
    conn, _p = _connection(signed=False)
    out = bytearray()
    for i, body in enumerate(bodies):
        hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=5 + i,
                         flags=int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR),
                         next_command=(64 + len(body)) if i < len(bodies) - 1 else 0)
        out += hdr.encode() + body
    _deliver(conn, bytes(out))


def test_break_notification_goes_to_handler() -> None:
    conn, _p = _connection(signed=True)
    seen: list[int] = []
    conn.break_handler = lambda hdr, msg: seen.append(hdr.message_id)
    hdr = Smb2Header(command=Command.SMB2_OPLOCK_BREAK, message_id=0xFFFFFFFFFFFFFFFF,
                     flags=int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR))
    body = (44).to_bytes(2, "little") + bytes(42)  # a lease break notification's size
    _deliver(conn, hdr.encode() + body)
    assert seen == [0xFFFFFFFFFFFFFFFF] and conn.alive

    def broken(hdr: Smb2Header, msg: memoryview) -> None:
        raise RuntimeError("handler bug")

    conn.break_handler = broken  # a buggy handler is logged, not fatal
    _deliver(conn, hdr.encode() + body)
    assert conn.alive


def test_socket_module_is_real() -> None:
    assert socket.TCP_NODELAY  # the transport sets it on every connection


def _response(status: int, *, async_id: int = 0, message_id: int = 5, body: bytes) -> bytes:
    flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
    if async_id:
        flags |= int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
    hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=message_id, status=status,
                     credits=1, flags=flags, async_id=async_id, session_id=SESSION_ID)
    return hdr.encode() + body


ERROR_BODY = (9).to_bytes(2, "little") + bytes(7)  # [MS-SMB2] 2.2.2, ByteCount 0


def test_interim_then_final() -> None:
    conn, p = _connection(signed=False)
    p.scope = trio.CancelScope(deadline=123.0)
    _deliver(conn, _response(0x103, async_id=0xABCDEF, body=ERROR_BODY))  # STATUS_PENDING
    assert conn.alive and not p.event.is_set()
    assert p.async_id == 0xABCDEF
    assert p.scope.deadline == float("inf")  # no request timeout after an interim
    _deliver(conn, _response(0, async_id=0xABCDEF, body=b"\x04\x00\x00\x00"))
    assert p.event.is_set() and p.response is not None and p.response.status == 0
    assert conn.in_flight == 0


def test_cancelled_request_final_response_is_discarded() -> None:
    conn, p = _connection(signed=False)
    p.cancelled = True
    _deliver(conn, _response(0xC0000120, body=ERROR_BODY))  # STATUS_CANCELLED
    assert conn.alive and conn.in_flight == 0 and p.response is None


def test_duplicate_response_drops() -> None:
    conn, p = _connection(signed=False)
    frame = _response(0, body=b"\x04\x00\x00\x00")
    _deliver(conn, frame)
    assert p.response is not None and conn.alive
    _deliver(conn, frame)  # MessageId 5 is no longer outstanding
    assert not conn.alive


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=600))
async def test_random_bytes_on_the_wire_end_in_connection_lost(data: bytes) -> None:
    """The whole receive path (framing + dispatch) on a real socket: random
    bytes then EOF; the receiver ends, the connection is dead, the pending
    request fails with ConnectionLostError, within a bound."""
    a, b = trio.socket.socketpair()
    conn = Connection(ClientConfig(host="127.0.0.1", echo_interval=30),
                      Transport(a, max_frame=1 << 20))
    p = PendingRequest(message=EchoRequest(), message_id=5, charge=1, session_id=0,
                       tree_id=0, flags=0, encrypted=False)
    conn._pending[5] = p
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn._run_tasks)
            await b.send(data)
            b.close()
            await conn.closed_event.wait()
    assert not conn.alive
    assert p.response is None or bytes(p.response.msg[:4]) == b"\xfeSMB"
    assert p.event.is_set()


# -- review fixes: credit starvation, sealed interims, malformed bodies ----------


def _echo_with_credits(credits: int, *, message_id: int = 5, status: int = 0,
                       async_id: int = 0) -> bytes:
    flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
    if async_id:
        flags |= int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
    hdr = Smb2Header(command=Command.SMB2_ECHO, message_id=message_id, status=status,
                     credits=credits, flags=flags, async_id=async_id, session_id=SESSION_ID)
    return hdr.encode() + (ERROR_BODY if status else b"\x04\x00\x00\x00")


def test_zero_credits_with_nothing_outstanding_drops() -> None:
    """[MS-SMB2] 3.3.1.2: a server must never leave the client at zero
    credits. With none held and no response due, every later request would
    wait out its timeout on a connection that can never send again."""
    conn, p = _connection()
    conn.credits.available = 0  # the request's credit is spent
    _deliver(conn, _echo_with_credits(0))
    assert p.response is not None  # the answer itself is still delivered
    assert not conn.alive
    with pytest.raises(ConnectionLostError):
        conn.credits.try_acquire(1)


def test_zero_credits_while_a_response_is_due_is_fine() -> None:
    conn, p = _connection()
    conn._pending[6] = PendingRequest(message=EchoRequest(), message_id=6, charge=1,
                                      session_id=SESSION_ID, tree_id=0, flags=0,
                                      encrypted=False)
    conn.credits.available = 0
    _deliver(conn, _echo_with_credits(0))
    assert p.response is not None and conn.alive  # MessageId 6 may still grant
    _deliver(conn, _echo_with_credits(2, message_id=6))
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


def test_plain_interim_to_encrypted_request_drops() -> None:
    """The server seals every response to a sealed request, interims too
    (3.3.4.1.4): a plaintext STATUS_PENDING is forged, and would otherwise
    lift the request's timeout and plant an AsyncId."""
    conn, p = _connection(encrypted=True)
    p.scope = trio.CancelScope(deadline=123.0)
    _deliver(conn, _echo_with_credits(1, status=0x103, async_id=0x77))
    assert not conn.alive and p.async_id is None and p.scope.deadline == 123.0
    assert isinstance(p.error, ConnectionLostError)


def test_sealed_interim_to_encrypted_request_is_accepted() -> None:
    conn, p = _connection(encrypted=True)
    enc = Encryptor(Cipher.AES_128_GCM, ENC_KEY)
    interim = _echo_with_credits(1, status=0x103, async_id=0x77)
    _deliver(conn, bytes(enc.encrypt_message(interim, SESSION_ID, bytes(11) + b"\x01")))
    assert conn.alive and p.async_id == 0x77 and not p.event.is_set()


def test_malformed_body_decoded_by_a_caller_drops_the_connection() -> None:
    """A DecodeError in a caller's decode (open.py, tree.py) must not escape
    raw with the connection still trusted: Response.decode turns it into a
    dropped connection and a ConnectionLostError ([MS-SMB2] 3.2.5.1.7)."""
    from smbfs.proto.create import CreateResponse

    conn, p = _connection()
    _deliver(conn, _echo_with_credits(1))
    assert p.response is not None and conn.alive
    with pytest.raises(ConnectionLostError):
        p.response.decode(CreateResponse)  # an ECHO body is no CREATE response
    assert not conn.alive
    with pytest.raises(ConnectionLostError):
        conn._check_alive()


def test_response_guard_turns_decode_errors_into_connection_loss() -> None:
    from smbfs.proto.codec import DecodeError

    conn, p = _connection()
    _deliver(conn, _echo_with_credits(1))
    assert p.response is not None
    with pytest.raises(ConnectionLostError), p.response.guard():
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

    conn, _p = _connection()
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
    from types import SimpleNamespace

    conn, p = _connection()
    conn.config.echo_interval = 10
    conn.negotiated = SimpleNamespace(multi_credit=False)  # type: ignore[assignment]
    conn.credits.available = 0
    p.scope = trio.CancelScope()  # a pending request with its timeout lifted
    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn._echo_loop)
            await conn.closed_event.wait()
            nursery.cancel_scope.cancel()
    assert not conn.alive and conn.echoes_sent == 1
    assert p.event.is_set() and isinstance(p.error, ConnectionLostError)


_MSG = st.tuples(
    st.sampled_from([5, 6, 7, 8, 0xFFFFFFFFFFFFFFFF]),  # 8: never sent
    st.sampled_from([0, 0x103, 0xC0000120, 0x80000005, 0xC0000022]),  # ok, PENDING, errors
    st.integers(0, 3),  # CreditResponse
    st.booleans(),  # ASYNC flag
    st.sampled_from([Command.SMB2_ECHO, Command.SMB2_OPLOCK_BREAK, Command.SMB2_READ]),
    st.one_of(st.sampled_from([b"\x04\x00\x00\x00", ERROR_BODY,
                               (44).to_bytes(2, "little") + bytes(42),
                               (24).to_bytes(2, "little") + bytes(22)]),
              st.binary(max_size=48)),
)


def _chain(msgs: list[tuple[int, int, int, bool, Command, bytes]]) -> bytes:
    out = bytearray()
    for i, (mid, status, credits, is_async, command, body) in enumerate(msgs):
        flags = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
        if is_async:
            flags |= int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
        size = 64 + len(body)
        pad = (-size) % 8 if i < len(msgs) - 1 else 0
        hdr = Smb2Header(command=command, message_id=mid, status=status, credits=credits,
                         flags=flags, async_id=0x99 if is_async else 0,
                         session_id=0 if mid == 0xFFFFFFFFFFFFFFFF else SESSION_ID,
                         next_command=size + pad if i < len(msgs) - 1 else 0)
        out += hdr.encode() + body + bytes(pad)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_MSG, min_size=1, max_size=3), min_size=1, max_size=6),
       st.booleans())
def test_dispatch_sequences_keep_the_invariants(frames: list[list[Any]],
                                               cancel_one: bool) -> None:
    """Interim, final, error, cancelled, duplicate, unsolicited and unknown
    responses, alone or compounded, in any order: the receiver never raises,
    only ever completes a request with a final response of its own command
    and MessageId, never completes a cancelled one, and once it drops the
    connection every waiter has been woken."""
    conn, p5 = _connection()
    pendings = {5: p5}
    for mid in (6, 7):
        pendings[mid] = conn._pending[mid] = PendingRequest(
            message=EchoRequest(), message_id=mid, charge=1, session_id=SESSION_ID,
            tree_id=0, flags=0, encrypted=False)
    for p in pendings.values():
        p.scope = trio.CancelScope(deadline=50.0)
    pendings[7].cancelled = cancel_one
    conn.credits.available = 0
    breaks: list[int] = []
    conn.break_handler = lambda hdr, msg: breaks.append(len(msg))
    granted = 0
    for msgs in frames:
        before = conn.credits.available
        _deliver(conn, _chain(msgs))
        if conn.alive:
            granted += conn.credits.available - before
            assert conn.credits.available >= before  # credits are only ever added
        for mid, p in pendings.items():
            if p.response is not None:
                assert p.event.is_set() and not p.cancelled
                assert p.response.header.message_id == mid
                assert p.response.header.command == Command.SMB2_ECHO
                assert p.response.status != 0x103
                assert mid not in conn._pending
            if p.scope is not None and p.scope.deadline == float("inf"):
                assert p.response is not None or p.error is not None or mid in conn._pending
        if not conn.alive:
            break
    if not conn.alive:
        for p in pendings.values():
            assert p.event.is_set() or p.cancelled
            assert p.response is not None or p.error is not None or p.cancelled
        with pytest.raises(ConnectionLostError):
            conn.credits.try_acquire(1)
    else:
        open_ = [m for m, p in pendings.items() if not p.event.is_set() and not p.cancelled]
        assert set(open_) <= set(conn._pending)
        assert conn.credits.available == granted


async def test_credit_wait_timeout_drops_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """SMBTimeoutError means "connection dropped, reconnect" (errors.py): a
    request that cannot get a credit within its timeout must not leave the
    connection alive and stuck."""
    from types import SimpleNamespace

    from smbfs.client.errors import SMBTimeoutError

    conn, p = _connection()
    conn.negotiated = SimpleNamespace(multi_credit=False)  # type: ignore[assignment]
    conn.credits.available = 0  # all held by the pending request
    with trio.fail_after(100), pytest.raises(SMBTimeoutError):
        await conn.transact([EchoRequest()], timeout=5)
    assert not conn.alive and p.event.is_set()
    assert conn.credits.next_message_id == 0  # no MessageId was spent


class _CapturingTransport(_NullTransport):
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def send_frame(self, parts: Any) -> None:
        self.frames.append(b"".join(bytes(p) for p in parts))


async def test_encrypted_session_never_sends_plaintext() -> None:
    """encrypt=False on a session that must be encrypted still seals the
    request, so its response must be sealed too (a plaintext one drops)."""
    conn, _p = _connection(encrypted=True)
    transport = _CapturingTransport()
    conn.transport = transport  # type: ignore[assignment]
    conn.credits.available = 5
    result: list[Any] = []

    async def send() -> None:
        try:
            result.append(await conn.transact([EchoRequest()], session_id=SESSION_ID,
                                              encrypt=False, timeout=5))
        except ConnectionLostError as e:
            result.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        assert transport.frames and transport.frames[0][:4] == b"\xfdSMB"
        mid = conn.credits.next_message_id - 1
        assert conn._pending[mid].encrypted
        _deliver(conn, _echo_with_credits(1, message_id=mid))  # plaintext answer
    assert isinstance(result[0], ConnectionLostError) and not conn.alive


async def test_cancel_of_a_sealed_request_is_sealed_or_not_sent() -> None:
    conn, p = _connection(encrypted=True)
    transport = _CapturingTransport()
    conn.transport = transport  # type: ignore[assignment]
    await conn._send_cancel(p)
    assert len(transport.frames) == 1 and transport.frames[0][:4] == b"\xfdSMB"
    del conn.security[SESSION_ID]  # logged off meanwhile: no key any more
    await conn._send_cancel(p)
    assert len(transport.frames) == 1  # never a plaintext CANCEL
    assert p.cancelled and conn._pending[5] is p  # its answer is still consumed


def test_final_response_with_another_async_id_drops() -> None:
    conn, p = _connection()
    _deliver(conn, _response(0x103, async_id=0xABCDEF, body=ERROR_BODY))
    assert conn.alive and p.async_id == 0xABCDEF
    _deliver(conn, _response(0, async_id=0x1234, body=b"\x04\x00\x00\x00"))
    assert not conn.alive and p.response is None
