"""An in-memory transport and a scripted SMB2 server, for engine tests whose
point is an *ordering* that a real server will not produce on demand.

Samba is the reference peer and stays the main line of the test suite: it
decides what a correct answer is. What it cannot do is answer in an order a
test chooses -- an interim response and then the final one later, a lease
break *before* the CREATE response that granted the lease, a connection that
dies between two members of a compound, a duplicate response, a grant of
zero credits. :class:`ScriptedServer` lets a test play the server's side by
hand: every request the engine sends arrives decoded (with
:mod:`smbfs.proto`'s own decoders), and every answer is built with
:mod:`smbfs.proto`'s own encoders and sent when, and in whatever order, the
test says. Nothing is answered unless the script answers it.

It is not a stand-in for Samba: it has no file system, checks no
signatures, derives no keys, and knows only the anonymous session setup.
A test that needs the server to *be right* belongs on Samba.

The seam: :meth:`smbfs.client.connection.Connection.connect` and
:func:`smbfs.client.open_session` take ``transport=``; give them
``server.transport``. Everything here is deterministic: the pipe has no
buffer limits, so a send never waits, and a test waits on the events it
names (``await server.receive()``, ``trio.testing.wait_all_tasks_blocked``),
never on time.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from smbfs.client.errors import ConnectionLostError
from smbfs.proto.change_notify import ChangeNotifyRequest
from smbfs.proto.close import CloseRequest
from smbfs.proto.codec import Buffer, pad_to
from smbfs.proto.constants import Command, Dialect, GlobalCapabilities, HeaderFlags
from smbfs.proto.create import CreateRequest
from smbfs.proto.crypto.encryption import Encryptor
from smbfs.proto.error import ErrorResponse
from smbfs.proto.header import (
    SMB2_PROTOCOL_ID,
    SMB2_TRANSFORM_PROTOCOL_ID,
    Smb2Header,
    split_compound,
)
from smbfs.proto.info import QueryInfoRequest, SetInfoRequest
from smbfs.proto.io import FlushRequest, ReadRequest, WriteRequest
from smbfs.proto.ioctl import IoctlRequest
from smbfs.proto.lock import LockRequest
from smbfs.proto.message import Message
from smbfs.proto.negotiate import (
    HashAlgorithm,
    NegotiateRequest,
    NegotiateResponse,
    PreauthIntegrityCapabilities,
)
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.oplock_break import decode_break_ack
from smbfs.proto.query_directory import QueryDirectoryRequest
from smbfs.proto.session_setup import SessionSetupRequest, SessionSetupResponse
from smbfs.proto.simple import CancelRequest, EchoRequest, LogoffRequest
from smbfs.proto.tree import (
    ShareType,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
)

__all__ = [
    "UNSOLICITED_MESSAGE_ID",
    "MemoryTransport",
    "ReceivedRequest",
    "ScriptedServer",
]

UNSOLICITED_MESSAGE_ID: Final = 0xFFFFFFFFFFFFFFFF  # [MS-SMB2] 3.2.5.19
_SERVER_TO_REDIR: Final = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
_ASYNC: Final = int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
_PENDING: Final = int(NTStatus.STATUS_PENDING)
# Sizes the engine accepts without complaint ([MS-SMB2] 3.2.5.2 wants at
# least 64 KiB); large enough for any test payload.
_MAX_SIZE: Final = 8 * 1024 * 1024

_DECODERS: Final[dict[Command, Callable[[memoryview], Any]]] = {
    Command.SMB2_NEGOTIATE: NegotiateRequest.decode,
    Command.SMB2_SESSION_SETUP: SessionSetupRequest.decode,
    Command.SMB2_LOGOFF: LogoffRequest.decode,
    Command.SMB2_TREE_CONNECT: TreeConnectRequest.decode,
    Command.SMB2_TREE_DISCONNECT: TreeDisconnectRequest.decode,
    Command.SMB2_CREATE: CreateRequest.decode,
    Command.SMB2_CLOSE: CloseRequest.decode,
    Command.SMB2_FLUSH: FlushRequest.decode,
    Command.SMB2_READ: ReadRequest.decode,
    Command.SMB2_WRITE: WriteRequest.decode,
    Command.SMB2_LOCK: LockRequest.decode,
    Command.SMB2_IOCTL: IoctlRequest.decode,
    Command.SMB2_CANCEL: CancelRequest.decode,
    Command.SMB2_ECHO: EchoRequest.decode,
    Command.SMB2_QUERY_DIRECTORY: QueryDirectoryRequest.decode,
    Command.SMB2_CHANGE_NOTIFY: ChangeNotifyRequest.decode,
    Command.SMB2_QUERY_INFO: QueryInfoRequest.decode,
    Command.SMB2_SET_INFO: SetInfoRequest.decode,
    Command.SMB2_OPLOCK_BREAK: decode_break_ack,
}


class MemoryTransport:
    """The client's end of an in-memory frame pipe (a
    :class:`~smbfs.client.transport.FrameTransport`).

    Frames, not bytes: Direct TCP framing has its own tests on real
    sockets, and whole frames keep a script's sends and receives in step.
    Either end closing ends the other's receive with
    :class:`ConnectionLostError` (client side) or :class:`trio.EndOfChannel`
    (server side), as a TCP FIN would.
    """

    def __init__(self, outgoing: trio.MemorySendChannel[bytes],
                 incoming: trio.MemoryReceiveChannel[bytes]) -> None:
        self._out = outgoing
        self._in = incoming
        self.closed = False
        self.frames_sent = 0

    async def send_frame(self, parts: Sequence[Buffer]) -> None:
        if self.closed:
            raise ConnectionLostError("transport closed")
        frame = b"".join(bytes(p) for p in parts)
        try:
            self._out.send_nowait(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            self.closed = True
            raise ConnectionLostError("send failed: the server closed the connection") from e
        self.frames_sent += 1
        # A checkpoint, as a socket send is: other tasks (the server script)
        # may run before the sender goes on.
        await trio.lowlevel.checkpoint()

    async def receive_frame(self) -> memoryview:
        try:
            frame = await self._in.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as e:
            raise ConnectionLostError("connection closed by the server") from e
        # Writable, as the TCP transport's receive buffer is (decryption and
        # signature checks may work in place).
        return memoryview(bytearray(frame))

    def close(self) -> None:
        self.closed = True
        self._out.close()
        self._in.close()


@dataclass(slots=True)
class ReceivedRequest:
    """One request as the server saw it: header, decoded body, raw bytes
    (header first, compound padding included)."""

    header: Smb2Header
    message: Any
    raw: bytes
    # Set for the first message of a compound (and single requests): the
    # number of messages the frame carried.
    frame_size: int = 1

    @property
    def command(self) -> Command:
        return self.header.command

    @property
    def message_id(self) -> int:
        return self.header.message_id

    @property
    def is_related(self) -> bool:
        return bool(self.header.flags & HeaderFlags.SMB2_FLAGS_RELATED_OPERATIONS)


@dataclass(slots=True)
class _State:
    """What the server assigned, so answers can echo it by default."""

    session_id: int = 0x0000_4000_0000_0001
    tree_id: int = 1
    next_async_id: int = 0x100
    async_ids: dict[int, int] = field(default_factory=dict)


class ScriptedServer:
    """The server's side of a :class:`MemoryTransport`, played by a test.

    Receive: :meth:`receive` (the next request, compound members one by
    one), :meth:`receive_frame` (a whole frame), :meth:`expect` (the next
    request, asserting its command). Answer: build messages with
    :meth:`response`, :meth:`error`, :meth:`interim` and
    :meth:`notification` (each returns the encoded message, so a test can
    hold it, reorder it or duplicate it), then :meth:`send` them, several
    at once as one compound frame. :meth:`send_raw` puts any bytes on the
    wire; :meth:`close` cuts the connection. :meth:`negotiate`,
    :meth:`anonymous_session_setup` and :meth:`tree_connect` play the
    ordinary opening exchanges.
    """

    def __init__(self, *, decryptor: Encryptor | None = None) -> None:
        """``decryptor``: for a test that gave the connection a
        SessionSecurity of its own, the key to read its sealed requests
        with (the server's answers are then the test's to seal)."""
        to_server, from_client = trio.open_memory_channel[bytes](math.inf)
        to_client, from_server = trio.open_memory_channel[bytes](math.inf)
        self.transport = MemoryTransport(to_server, from_server)
        self._send_channel = to_client
        self._receive_channel = from_client
        self._queue: deque[ReceivedRequest] = deque()
        self.state = _State()
        self.decryptor = decryptor
        # Every frame received, as it came (sealed ones still sealed).
        self.frames: list[bytes] = []
        self.requests: list[ReceivedRequest] = []

    # ----------------------------------------------------------- receiving

    async def receive_frame(self) -> list[ReceivedRequest]:
        """Every request of the next frame (several for a compound).

        Raises :class:`trio.EndOfChannel` when the client closed the
        connection. A test bounds its own waits (``trio.fail_after``).
        """
        if self._queue:
            out = list(self._queue)
            self._queue.clear()
            return out
        frame = await self._receive_channel.receive()
        return self._split(frame)

    async def receive(self) -> ReceivedRequest:
        """The next request (members of a compound one after the other)."""
        if not self._queue:
            self._queue.extend(self._split(await self._receive_channel.receive()))
        return self._queue.popleft()

    async def expect(self, command: Command) -> ReceivedRequest:
        """The next request, which must be a ``command``."""
        req = await self.receive()
        if req.command != command:
            raise AssertionError(f"expected {command.name}, the client sent {req.command.name}")
        return req

    def _split(self, frame: bytes) -> list[ReceivedRequest]:
        self.frames.append(frame)
        if frame[:4] == SMB2_TRANSFORM_PROTOCOL_ID and self.decryptor is not None:
            frame = bytes(self.decryptor.decrypt(memoryview(frame)))
        if frame[:4] != SMB2_PROTOCOL_ID:
            raise AssertionError(f"the scripted server cannot read a {frame[:4]!r} frame "
                                 "(signing and encryption are not scripted)")
        out: list[ReceivedRequest] = []
        for msg in split_compound(memoryview(frame)):
            hdr = Smb2Header.decode(msg)
            body = _DECODERS[hdr.command](msg)
            out.append(ReceivedRequest(hdr, body, bytes(msg)))
        out[0].frame_size = len(out)
        self.requests.extend(out)
        return out

    # ---------------------------------------------------------- answering

    def response(self, request: ReceivedRequest, body: Message | bytes | None = None, *,
                 status: int = 0, credits: int = 1, async_id: int | None = None,
                 session_id: int | None = None, tree_id: int | None = None,
                 message_id: int | None = None, command: Command | None = None,
                 flags: int = 0) -> bytes:
        """One response message to ``request`` (header + body), not sent.

        ``body`` is a proto message, raw body bytes, or None for the
        [MS-SMB2] 2.2.2 ERROR body. A final answer to a request that got an
        interim response carries its AsyncId by default (3.2.5.1.5).
        Every field can be overridden to forge a wrong answer.
        """
        if body is None:
            body_bytes = ErrorResponse().encode()
        elif isinstance(body, bytes | bytearray):
            body_bytes = bytes(body)
        else:
            body_bytes = body.encode()
        if async_id is None:
            async_id = self.state.async_ids.get(request.message_id)
        hflags = _SERVER_TO_REDIR | flags
        if async_id is not None:
            hflags |= _ASYNC
        hdr = Smb2Header(
            command=command if command is not None else request.command,
            message_id=request.message_id if message_id is None else message_id,
            status=status, credits=credits, flags=hflags,
            async_id=async_id or 0,
            tree_id=request.header.tree_id if tree_id is None else tree_id,
            session_id=request.header.session_id if session_id is None else session_id,
            credit_charge=request.header.credit_charge,
        )
        return hdr.encode() + body_bytes

    def error(self, request: ReceivedRequest, status: int, *, credits: int = 1) -> bytes:
        """A final error response (ERROR body) with ``status``."""
        return self.response(request, None, status=status, credits=credits)

    def interim(self, request: ReceivedRequest, *, credits: int = 1,
                async_id: int | None = None) -> bytes:
        """A STATUS_PENDING interim response ([MS-SMB2] 3.3.4.2) with a new
        AsyncId (remembered: the final response carries it by default)."""
        if async_id is None:
            async_id = self.state.next_async_id
            self.state.next_async_id += 1
        self.state.async_ids[request.message_id] = async_id
        return self.response(request, None, status=_PENDING, credits=credits,
                             async_id=async_id)

    def notification(self, body: Message, *, credits: int = 0) -> bytes:
        """An unsolicited message (a lease or oplock break notification):
        MessageId all ones, SessionId 0, unsigned ([MS-SMB2] 3.3.4.7)."""
        hdr = Smb2Header(command=body.COMMAND, message_id=UNSOLICITED_MESSAGE_ID,
                         credits=credits, flags=_SERVER_TO_REDIR)
        return hdr.encode() + body.encode()

    async def send(self, *messages: bytes) -> None:
        """Send ``messages`` as one frame: a compound chain if several
        (NextCommand and 8-byte padding filled in, [MS-SMB2] 3.3.4.1.3)."""
        if not messages:
            raise ValueError("nothing to send")
        out = bytearray()
        for i, msg in enumerate(messages):
            m = bytearray(msg)
            if i < len(messages) - 1:
                m += bytes(pad_to(len(m), 8))
                struct.pack_into("<I", m, 20, len(m))
            else:
                struct.pack_into("<I", m, 20, 0)
            out += m
        await self.send_raw(bytes(out))

    async def send_raw(self, frame: bytes) -> None:
        """Put one frame on the wire exactly as given."""
        try:
            self._send_channel.send_nowait(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise trio.BrokenResourceError("the client closed the connection") from e
        await trio.lowlevel.checkpoint()

    async def reply(self, request: ReceivedRequest, body: Message | bytes | None = None,
                    **kw: Any) -> None:
        """:meth:`response` and :meth:`send` in one step."""
        await self.send(self.response(request, body, **kw))

    def close(self) -> None:
        """Cut the connection from the server's side (the client sees EOF)."""
        self._send_channel.close()
        self._receive_channel.close()

    # ---------------------------------------------------- opening exchanges

    async def negotiate(self, dialect: Dialect = Dialect.SMB3_0_2, *, credits: int = 64,
                        capabilities: int = (GlobalCapabilities.SMB2_GLOBAL_CAP_LEASING
                                             | GlobalCapabilities.SMB2_GLOBAL_CAP_LARGE_MTU),
                        security_mode: int = 1) -> ReceivedRequest:
        """Answer the client's NEGOTIATE choosing ``dialect``; no cipher, no
        signing required (``security_mode`` 1: SIGNING_ENABLED). For 3.1.1
        the SHA-512 preauth context the client insists on is included."""
        req = await self.expect(Command.SMB2_NEGOTIATE)
        contexts: list[Any] = []
        if dialect == Dialect.SMB3_1_1:
            contexts.append(PreauthIntegrityCapabilities(
                hash_algorithms=[HashAlgorithm.SHA_512], salt=bytes(32)))
        body = NegotiateResponse(
            security_mode=security_mode, dialect_revision=int(dialect),
            server_guid=uuid.UUID(int=0x5C5C), capabilities=int(capabilities),
            max_transact_size=_MAX_SIZE, max_read_size=_MAX_SIZE, max_write_size=_MAX_SIZE,
            negotiate_contexts=contexts,
        )
        await self.reply(req, body, credits=credits)
        return req

    async def anonymous_session_setup(self, *, credits: int = 64) -> int:
        """Play the two legs of an NTLM anonymous logon ([MS-NLMP] 3.1.5.1.2:
        the engine's ``auth="anonymous"``); returns the SessionId given."""
        first = await self.expect(Command.SMB2_SESSION_SETUP)
        sid = self.state.session_id
        await self.reply(first, SessionSetupResponse(security_buffer=_NTLM_CHALLENGE),
                         status=int(NTStatus.STATUS_MORE_PROCESSING_REQUIRED),
                         session_id=sid, credits=credits)
        second = await self.expect(Command.SMB2_SESSION_SETUP)
        await self.reply(second, SessionSetupResponse(), session_id=sid, credits=credits)
        return sid

    async def tree_connect(self, *, share_type: int = ShareType.SMB2_SHARE_TYPE_DISK,
                           share_flags: int = 0, capabilities: int = 0,
                           credits: int = 64) -> int:
        """Answer the next TREE_CONNECT; returns the TreeId given."""
        req = await self.expect(Command.SMB2_TREE_CONNECT)
        tid = self.state.tree_id
        self.state.tree_id += 1
        await self.reply(req, TreeConnectResponse(share_type=share_type,
                                                  share_flags=share_flags,
                                                  capabilities=capabilities,
                                                  maximal_access=0x001F01FF),
                         tree_id=tid, credits=credits)
        return tid

    async def handshake(self, dialect: Dialect = Dialect.SMB3_0_2, *,
                        credits: int = 64) -> int:
        """NEGOTIATE and an anonymous SESSION_SETUP; returns the SessionId."""
        await self.negotiate(dialect, credits=credits)
        return await self.anonymous_session_setup(credits=credits)


# [MS-NLMP] 2.2.1.2 CHALLENGE_MESSAGE, minimal: signature, MessageType 2,
# an empty TargetName, NegotiateFlags, a fixed ServerChallenge, Reserved,
# empty TargetInfo. The anonymous client reads nothing past the type.
_NTLM_CHALLENGE: Final = struct.pack("<8sIHHIIQ8sHHI", b"NTLMSSP\x00", 2, 0, 0, 56,
                                     0x00088201, 0x0123456789ABCDEF, bytes(8), 0, 0, 56)
