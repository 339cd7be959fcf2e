"""Orderings a real server does not produce on demand, played by
smbfs.testing.ScriptedServer: interim then final responses, CANCEL of an
async request, credit starvation, a connection lost in the middle of a
compound's answers, duplicate and unsolicited responses, and a lease break
that overtakes the CREATE response granting the lease.

Each test states the order of events on the wire and what the engine must
make of it; Samba-backed tests (test_faults.py, test_files_lease.py) cover
the same features against a real peer.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from smbfs.client import ClientConfig, ConnectionLostError, Session, open_session
from smbfs.client.tree import Tree
from smbfs.proto.close import CloseRequest
from smbfs.proto.constants import Command, Dialect
from smbfs.proto.create import CreateRequest, CreateResponse, OplockLevel
from smbfs.proto.create_contexts import CreateRequestLeaseV2
from smbfs.proto.fileid import RELATED, FileId
from smbfs.proto.info import QueryInfoRequest
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.oplock_break import (
    SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED,
    LeaseBreakAcknowledgment,
    LeaseBreakNotification,
    LeaseBreakResponse,
    LeaseState,
)
from smbfs.proto.simple import EchoRequest, EchoResponse
from smbfs.testing import ScriptedServer

# Every wait in these tests is bounded by this (seconds of trio time; the
# tests that use the mock clock jump past their timeouts instantly).
BOUND = 10
R = int(LeaseState.SMB2_LEASE_READ_CACHING)
RWH = int(LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_WRITE_CACHING
          | LeaseState.SMB2_LEASE_HANDLE_CACHING)


def scripted_config(**kw: Any) -> ClientConfig:
    opts: dict[str, Any] = dict(host="scripted", auth="anonymous", request_timeout=5,
                                echo_interval=3600)
    opts.update(kw)
    return ClientConfig(**opts)


@asynccontextmanager
async def scripted_session(*, credits: int = 64, dialect: Dialect = Dialect.SMB3_0_2,
                           **kw: Any) -> AsyncIterator[tuple[Session, ScriptedServer]]:
    """A Session over the in-memory pipe, after a scripted NEGOTIATE and
    anonymous SESSION_SETUP; the server end is closed on exit (so the
    engine's LOGOFF finds the connection gone and does not wait)."""
    server = ScriptedServer()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(server.handshake, dialect, credits=credits))
        async with open_session(scripted_config(**kw), transport=server.transport) as session:
            try:
                yield session, server
            finally:
                server.close()


class Outcome:
    """What a request started in the background came to."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.done = trio.Event()

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            self.value = await fn(*args, **kwargs)
        except (ConnectionLostError, trio.Cancelled) as e:
            self.error = e
            if isinstance(e, trio.Cancelled):
                raise
        finally:
            self.done.set()


async def test_interim_response_lifts_the_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """STATUS_PENDING with an AsyncId, then silence far longer than
    request_timeout, then the final response: the request waits for it
    ([MS-SMB2] 3.2.5.1.5) and gets it; the connection stays up."""
    async with scripted_session() as (session, server):
        out = Outcome()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(out.run, session.request, EchoRequest())
            with trio.fail_after(BOUND):
                req = await server.expect(Command.SMB2_ECHO)
            await server.send(server.interim(req))
            await trio.sleep(session.config.request_timeout * 10)  # mock clock
            assert not out.done.is_set()
            await server.reply(req, EchoResponse())
        assert out.error is None and out.value.status == 0
        assert out.value.header.is_async  # the final answer kept the AsyncId
        assert session.connection.alive and session.connection.in_flight == 0


async def test_request_without_interim_times_out_and_drops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The contrast: no interim, no answer within request_timeout: the
    connection is dropped (errors.py: SMBTimeoutError)."""
    from smbfs.client import SMBTimeoutError

    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND * 10), pytest.raises(SMBTimeoutError):
            await session.request(EchoRequest())
        assert not session.connection.alive
        assert (await server.receive()).command == Command.SMB2_ECHO


async def test_cancel_of_an_async_request_then_the_connection_goes_on() -> None:
    """The caller gives up after the interim: the engine sends CANCEL with
    the request's MessageId and AsyncId (3.2.4.24) and consumes the final
    STATUS_CANCELLED; the next request uses the next MessageId."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                scope = trio.CancelScope()

                async def waiting() -> None:
                    with scope:
                        await session.request(EchoRequest())

                nursery.start_soon(waiting)
                req = await server.expect(Command.SMB2_ECHO)
                interim = server.interim(req)
                await server.send(interim)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
                cancel = await server.expect(Command.SMB2_CANCEL)
            assert cancel.message_id == req.message_id
            assert cancel.header.is_async
            assert cancel.header.async_id == server.state.async_ids[req.message_id]
            assert session.connection.cancels_sent == 1
            # The late final answer is consumed, not mistaken for anything.
            await server.send(server.error(req, int(NTStatus.STATUS_CANCELLED)))
            await trio.testing.wait_all_tasks_blocked()
            assert session.connection.alive and session.connection.in_flight == 0
            async with trio.open_nursery() as nursery:
                out = Outcome()
                nursery.start_soon(out.run, session.request, EchoRequest())
                nxt = await server.expect(Command.SMB2_ECHO)
                await server.reply(nxt, EchoResponse())
            assert nxt.message_id == req.message_id + 1
            assert out.value.status == 0


async def test_credit_starvation_waits_for_a_grant_in_order() -> None:
    """The server granted one credit in all: a second request waits until a
    response grants more, then goes out with the next MessageId; nothing
    overtakes (3.2.4.1.5: MessageIds follow the credits granted)."""
    async with scripted_session(credits=1) as (session, server):
        assert session.connection.credits.available == 1
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                first, second = Outcome(), Outcome()
                nursery.start_soon(first.run, session.request, EchoRequest())
                req1 = await server.expect(Command.SMB2_ECHO)
                nursery.start_soon(second.run, session.request, EchoRequest())
                await trio.testing.wait_all_tasks_blocked()
                # Nothing more may be on the wire: no credit for it.
                assert len(server.requests) == 3 + 1  # negotiate, 2 x setup, echo
                assert session.connection.credits.waits == 1
                await server.reply(req1, EchoResponse(), credits=1)
                req2 = await server.expect(Command.SMB2_ECHO)
                assert req2.message_id == req1.message_id + 1
                await server.reply(req2, EchoResponse(), credits=1)
        assert first.value.status == 0 and second.value.status == 0


async def test_zero_credit_grant_with_nothing_due_drops() -> None:
    """[MS-SMB2] 3.3.1.2: the server must not leave the client without
    credits. The answer that does so is still delivered, then the
    connection is dropped rather than leaving every later request to wait
    out its timeout."""
    async with scripted_session(credits=1) as (session, server):
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                out = Outcome()
                nursery.start_soon(out.run, session.request, EchoRequest())
                req = await server.expect(Command.SMB2_ECHO)
                # The caller is past its send, waiting for the answer (an
                # answer racing the send is not what this test is about).
                await trio.testing.wait_all_tasks_blocked()
                await server.reply(req, EchoResponse(), credits=0)
            assert out.value.status == 0
            await session.connection.closed_event.wait()
        with pytest.raises(ConnectionLostError):
            await session.request(EchoRequest())


async def test_connection_lost_between_compound_answers() -> None:
    """A server may answer the members of a compound in separate frames
    (3.3.4.1.3). The first answer arrives, then the connection dies: the
    caller gets ConnectionLostError (never half a result), and the
    connection is dead for the next caller too."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            tid = 7
            chain = [
                CreateRequest(name="f"),
                QueryInfoRequest(info_type=1, file_info_class=18, file_id=RELATED,
                                 output_buffer_length=4096),
                CloseRequest(file_id=RELATED),
            ]
            async with trio.open_nursery() as nursery:
                out = Outcome()
                nursery.start_soon(functools.partial(out.run, session.compound, chain,
                                                     tree_id=tid))
                frame = await server.receive_frame()
                assert [r.command for r in frame] == [Command.SMB2_CREATE,
                                                      Command.SMB2_QUERY_INFO,
                                                      Command.SMB2_CLOSE]
                assert [r.is_related for r in frame] == [False, True, True]
                await server.reply(frame[0], CreateResponse(file_id=FileId(1, 2)))
                await trio.testing.wait_all_tasks_blocked()
                assert not out.done.is_set()  # still waiting for the other two
                server.close()
            assert isinstance(out.error, ConnectionLostError)
            assert not session.connection.alive
            with pytest.raises(ConnectionLostError):
                await session.request(EchoRequest())


async def test_duplicate_response_drops_and_fails_the_others() -> None:
    """A second response to a MessageId already answered is a protocol
    violation: the connection is dropped and every other request in flight
    fails with ConnectionLostError; the first answer was delivered."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                a, b = Outcome(), Outcome()
                nursery.start_soon(a.run, session.request, EchoRequest())
                req_a = await server.expect(Command.SMB2_ECHO)
                nursery.start_soon(b.run, session.request, EchoRequest())
                await server.expect(Command.SMB2_ECHO)
                answer = server.response(req_a, EchoResponse())
                await server.send(answer)
                await trio.testing.wait_all_tasks_blocked()
                assert a.done.is_set() and a.value.status == 0
                await server.send(answer)
            assert isinstance(b.error, ConnectionLostError)
            assert not session.connection.alive


async def test_reordered_responses_reach_their_own_requests() -> None:
    """Answers in the reverse order of the requests, one of them in a
    compound frame with the other: each caller gets its own."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                outs = [Outcome() for _ in range(3)]
                reqs = []
                for o in outs:
                    nursery.start_soon(o.run, session.request, EchoRequest())
                    reqs.append(await server.expect(Command.SMB2_ECHO))
                await server.send(server.response(reqs[2], EchoResponse()))
                await server.send(server.response(reqs[1], EchoResponse()),
                                  server.response(reqs[0], EchoResponse()))
        assert [o.value.header.message_id for o in outs] == [r.message_id for r in reqs]


async def test_unsolicited_response_that_is_not_a_break_drops() -> None:
    """MessageId 0xFFFFFFFFFFFFFFFF is for oplock/lease breaks only
    (3.2.5.19); anything else there is a protocol violation."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            await server.send(server.notification(EchoResponse()))
            await session.connection.closed_event.wait()
        assert not session.connection.alive


async def test_lease_break_overtaking_the_create_response() -> None:
    """The break for a lease arrives before the CREATE response that grants
    it (3.2.5.19.2: the server may send it as soon as the open exists). The
    engine must wait for the open to be registered, record the new state,
    and acknowledge with the broken-to state on the same tree."""
    async with scripted_session() as (session, server):
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.tree_connect)
                tree = await Tree.connect(session, "share")
            async with trio.open_nursery() as nursery:
                out = Outcome()
                nursery.start_soon(out.run, tree.create, "dir\\file.txt")
                create = await server.expect(Command.SMB2_CREATE)
                rq = next(c for c in create.message.create_contexts
                          if isinstance(c, CreateRequestLeaseV2))
                assert rq.lease_state == RWH
                await server.send(server.notification(LeaseBreakNotification(
                    lease_key=rq.lease_key, current_lease_state=RWH, new_lease_state=R,
                    flags=SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED, new_epoch=2)))
                await trio.testing.wait_all_tasks_blocked()
                # No acknowledgment before the open it concerns is known.
                assert [r.command for r in server.requests][-1] == Command.SMB2_CREATE
                await server.reply(create, CreateResponse(
                    file_id=FileId(1, 2), oplock_level=OplockLevel.SMB2_OPLOCK_LEVEL_LEASE,
                    create_contexts=[CreateRequestLeaseV2(lease_key=rq.lease_key,
                                                          lease_state=RWH, epoch=1)]))
                ack = await server.expect(Command.SMB2_OPLOCK_BREAK)
                assert isinstance(ack.message, LeaseBreakAcknowledgment)
                assert ack.message.lease_key == rq.lease_key
                assert ack.message.lease_state == R
                assert ack.header.tree_id == tree.tree_id
                await server.reply(ack, LeaseBreakResponse(lease_key=rq.lease_key,
                                                           lease_state=R))
            opened = out.value
            assert opened.lease is not None and opened.lease_state == R
            assert session.connection.alive
