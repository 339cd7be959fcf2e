"""One SMB2 connection: negotiate, the receiver task, credits, signing and
encryption on the wire, interim responses, CANCEL and the ECHO keepalive.

Concurrency model: any number of tasks call :meth:`Connection.transact`;
each registers a :class:`PendingRequest` (keyed by MessageId) *before* its
frame is sent, then sleeps on the request's event. ONE receiver task reads
frames, authenticates them (decrypts / verifies signatures), and completes
the matching pending requests. Anything the receiver cannot make sense of --
a frame that does not decode, a bad signature, a response to a MessageId
nobody is waiting for -- is a protocol violation: the connection is dropped
and every waiter fails with :class:`ConnectionLostError`. Wrong data is
never delivered.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, TypeVar

import trio

from smbfs.client.config import ClientConfig
from smbfs.client.credits import CreditWindow, credit_charge
from smbfs.client.errors import (
    ConnectionLostError,
    EncryptionUnavailableError,
    NegotiateError,
    SigningUnavailableError,
    SMBTimeoutError,
)
from smbfs.client.transport import FrameTransport, Transport
from smbfs.proto.codec import SMB2_HEADER_SIZE, Buffer, DecodeError, pad_to
from smbfs.proto.constants import (
    Cipher,
    Command,
    Dialect,
    GlobalCapabilities,
    HeaderFlags,
    SecurityMode,
    SigningAlgorithm,
)
from smbfs.proto.crypto.encryption import Encryptor, NonceGenerator
from smbfs.proto.crypto.preauth import PreauthHash
from smbfs.proto.crypto.signing import Signer, signing_algorithm_for
from smbfs.proto.header import (
    SMB2_COMPRESSION_PROTOCOL_ID,
    SMB2_PROTOCOL_ID,
    SMB2_TRANSFORM_HEADER_SIZE,
    SMB2_TRANSFORM_PROTOCOL_ID,
    Smb2Header,
    TransformHeader,
    split_compound,
)
from smbfs.proto.message import Message
from smbfs.proto.negotiate import (
    AnyNegotiateContext,
    EncryptionCapabilities,
    HashAlgorithm,
    NegotiateRequest,
    NegotiateResponse,
    NetnameNegotiateContextId,
    PreauthIntegrityCapabilities,
    SigningCapabilities,
)
from smbfs.proto.ntstatus import NTStatus, status_name
from smbfs.proto.simple import CancelRequest, EchoRequest

log = logging.getLogger(__name__)

UNSOLICITED_MESSAGE_ID: Final = 0xFFFFFFFFFFFFFFFF
_STATUS_PENDING: Final = int(NTStatus.STATUS_PENDING)
_SIGNED: Final = int(HeaderFlags.SMB2_FLAGS_SIGNED)
_RELATED: Final = int(HeaderFlags.SMB2_FLAGS_RELATED_OPERATIONS)
_ASYNC: Final = int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
_MIN_NEGOTIATED_SIZE: Final = 65536

# Cipher preference for 3.1.1: AES-128-GCM first. GCM costs ~10x less than
# CCM per byte here; AES-128 and AES-256 GCM both run at memory speed with
# AES-NI, and AES-128 is what Windows and Samba pick by default, so it is
# the most tested interoperable choice. AES-256 is offered for servers that
# insist on it; CCM last for servers without GCM.
CIPHER_PREFERENCE: Final = (
    Cipher.AES_128_GCM, Cipher.AES_256_GCM, Cipher.AES_128_CCM, Cipher.AES_256_CCM,
)
# Signing preference for 3.1.1: AES-GMAC (cheapest), then AES-CMAC, HMAC.
SIGNING_PREFERENCE: Final = (
    SigningAlgorithm.AES_GMAC, SigningAlgorithm.AES_CMAC, SigningAlgorithm.HMAC_SHA256,
)

BreakHandler = Callable[[Smb2Header, memoryview], None]


class ProtocolViolation(ConnectionLostError):
    """The server sent something malformed, forged or unexpected."""


_M = TypeVar("_M", bound=Message)


@dataclass(slots=True)
class Response:
    """One response message: its header and the whole message (header
    included).

    Decode the body with :meth:`decode` (or inside :meth:`guard`), not with
    ``SomeResponse.decode(resp.msg)`` directly: a body the server got wrong
    then drops the connection and raises :class:`ConnectionLostError`
    (malformed input gives a clear error and a dropped connection), rather
    than letting a raw DecodeError escape to the FUSE layer with the
    connection still trusted ([MS-SMB2] 3.2.5.1.7).
    """

    header: Smb2Header
    msg: memoryview
    connection: Connection | None = None
    # Sent again after a reconnect: an error may then mean "already done by
    # the lost attempt" (a rename whose source is gone), which the caller
    # reconciles by looking at the server's state.
    replayed: bool = False

    @property
    def status(self) -> int:
        return self.header.status

    def decode(self, cls: type[_M]) -> _M:
        """``cls.decode(self.msg)``; malformed input is a lost connection."""
        try:
            return cls.decode(self.msg)
        except DecodeError as e:
            raise self.malformed(str(e)) from e

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Decode anything carried by this response (an FSCC buffer, a
        directory listing...) inside this block: a DecodeError becomes a
        dropped connection and a ConnectionLostError."""
        try:
            yield
        except DecodeError as e:
            raise self.malformed(str(e)) from e

    def malformed(self, reason: str) -> ConnectionLostError:
        """Drop the connection this response came on for ``reason`` (a
        response that breaks the protocol); returns the error to raise."""
        exc = ProtocolViolation(f"malformed {self.header.command.name} response "
                                f"(MessageId {self.header.message_id}): {reason}")
        if self.connection is not None:
            self.connection._fail(exc)
        return exc


@dataclass(slots=True)
class NegotiatedInfo:
    """What NEGOTIATE settled for this connection ([MS-SMB2] 3.2.5.2)."""

    dialect: Dialect
    server_guid: uuid.UUID
    server_security_mode: int
    capabilities: int
    max_transact_size: int
    max_read_size: int
    max_write_size: int
    security_buffer: bytes
    signing_algorithm: SigningAlgorithm
    cipher: Cipher | None
    preauth_hash: PreauthHash | None
    # What the client offered, repeated by FSCTL_VALIDATE_NEGOTIATE_INFO.
    client_dialects: list[int] = field(default_factory=list)
    client_security_mode: int = 0
    client_capabilities: int = 0

    @property
    def multi_credit(self) -> bool:
        """Whether CreditCharge applies (2.1+ with LARGE_MTU)."""
        return self.dialect != Dialect.SMB2_0_2 and bool(
            self.capabilities & GlobalCapabilities.SMB2_GLOBAL_CAP_LARGE_MTU
        )

    @property
    def server_requires_signing(self) -> bool:
        return bool(self.server_security_mode & SecurityMode.SMB2_NEGOTIATE_SIGNING_REQUIRED)

    @property
    def supports_encryption(self) -> bool:
        return self.cipher is not None


class SessionSecurity:
    """The keys one session uses on this connection (one channel's view):
    a signing key (per channel) and the session's encryption keys."""

    def __init__(
        self,
        session_id: int,
        *,
        signer: Signer | None,
        signing_required: bool,
        encryptor: Encryptor | None = None,
        decryptor: Encryptor | None = None,
        encrypt_data: bool = False,
    ) -> None:
        self.session_id = session_id
        self.signer = signer
        self.signing_required = signing_required
        self.encryptor = encryptor
        self.decryptor = decryptor
        self.encrypt_data = encrypt_data
        self.nonces = NonceGenerator(encryptor.cipher) if encryptor is not None else None

    def __repr__(self) -> str:
        return f"SessionSecurity({self.session_id:#x}, signing_required={self.signing_required})"


@dataclass(slots=True, eq=False)
class PendingRequest:
    """An outstanding request: everything needed to send it again later
    (message object, tree, session, flags) plus its completion state."""

    message: Message
    message_id: int
    charge: int
    session_id: int
    tree_id: int
    flags: int
    encrypted: bool
    event: trio.Event = field(default_factory=trio.Event)
    response: Response | None = None
    error: BaseException | None = None
    async_id: int | None = None
    cancelled: bool = False
    # Bounds the wait for the first answer; lifted by an interim response.
    scope: trio.CancelScope | None = None


class Connection:
    """A transport plus the SMB2 state bound to it."""

    def __init__(self, config: ClientConfig, transport: FrameTransport) -> None:
        self.config = config
        self.transport = transport
        self.credits = CreditWindow()
        self.negotiated: NegotiatedInfo | None = None
        self.security: dict[int, SessionSecurity] = {}
        self.break_handler: BreakHandler | None = None
        # Called once when the connection dies, from whichever task noticed:
        # the session's reconnect supervisor starts from here even when no
        # request was in flight (an idle cut, a dead peer found by ECHO).
        self.on_lost: Callable[[Connection, ConnectionLostError], None] | None = None
        self._pending: dict[int, PendingRequest] = {}
        self._dead: ConnectionLostError | None = None
        self._tasks_scope = trio.CancelScope()
        self._last_receive = 0.0
        self.closed_event = trio.Event()
        # Instrumentation read by tests and benchmarks.
        self.frames_sent = 0
        self.frames_received = 0
        self.peak_in_flight = 0
        self.cancels_sent = 0
        self.echoes_sent = 0

    # -- life cycle ----------------------------------------------------------

    @classmethod
    async def connect(cls, config: ClientConfig, nursery: trio.Nursery, *,
                      transport: FrameTransport | None = None) -> Connection:
        """Open the TCP connection and start the receiver in ``nursery``.

        ``transport``: an already open one to use instead of TCP to
        ``config.host`` (``smbfs.testing``'s in-memory pipe to a scripted
        server); the connection owns it from here.
        """
        if transport is None:
            transport = await Transport.connect(
                config.host, config.port, max_frame=config.max_frame_size,
                timeout=config.connect_timeout,
            )
        conn = cls(config, transport)
        nursery.start_soon(conn._run_tasks)
        return conn

    async def _run_tasks(self) -> None:
        self._last_receive = trio.current_time()
        with self._tasks_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(self._echo_loop)
        self._fail(ConnectionLostError("connection closed"))

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Drop the connection now; pending requests fail."""
        self._fail(ConnectionLostError("connection closed by the client"))

    def _fail(self, exc: ConnectionLostError) -> None:
        if self._dead is not None:
            return
        self._dead = exc
        if not isinstance(exc, ProtocolViolation | SMBTimeoutError):
            log.debug("connection to %s:%s closed: %s", self.config.host, self.config.port, exc)
        else:
            log.warning("dropping connection to %s:%s: %s", self.config.host,
                        self.config.port, exc)
        self.transport.close()
        self.credits.close(exc)
        pending, self._pending = self._pending, {}
        for p in pending.values():
            p.error = exc
            p.event.set()
        self._tasks_scope.cancel()
        self.closed_event.set()
        if self.on_lost is not None:
            self.on_lost(self, exc)

    def handle_protocol_error(self, reason: str) -> None:
        """Drop the connection for something the server got wrong that a
        layer above the receiver noticed (e.g. a bad session setup signature)."""
        self._fail(ProtocolViolation(reason))

    def _check_alive(self) -> None:
        if self._dead is not None:
            raise ConnectionLostError(str(self._dead)) from self._dead

    # -- negotiate -----------------------------------------------------------

    async def negotiate(self) -> NegotiatedInfo:
        """NEGOTIATE with the configured dialect range ([MS-SMB2] 3.2.4.2.2.2)."""
        cfg = self.config
        dialects = [d for d in (Dialect.SMB2_0_2, Dialect.SMB2_1, Dialect.SMB3_0,
                                Dialect.SMB3_0_2, Dialect.SMB3_1_1)
                    if cfg.min_dialect <= d <= cfg.max_dialect]
        if not dialects:
            raise NegotiateError(f"empty dialect range {cfg.min_dialect!r}..{cfg.max_dialect!r}")
        security_mode = SecurityMode.SMB2_NEGOTIATE_SIGNING_ENABLED
        if cfg.require_signing:
            security_mode |= SecurityMode.SMB2_NEGOTIATE_SIGNING_REQUIRED
        capabilities = 0
        if dialects[-1] >= Dialect.SMB2_1:
            capabilities |= GlobalCapabilities.SMB2_GLOBAL_CAP_LEASING
            capabilities |= GlobalCapabilities.SMB2_GLOBAL_CAP_LARGE_MTU
        if dialects[-1].is_smb3:
            capabilities |= GlobalCapabilities.SMB2_GLOBAL_CAP_ENCRYPTION
            if cfg.directory_leasing:
                capabilities |= GlobalCapabilities.SMB2_GLOBAL_CAP_DIRECTORY_LEASING
        contexts: list[AnyNegotiateContext] = []
        if Dialect.SMB3_1_1 in dialects:
            contexts = [
                PreauthIntegrityCapabilities(hash_algorithms=[HashAlgorithm.SHA_512],
                                             salt=os.urandom(32)),
                EncryptionCapabilities(ciphers=[int(c) for c in CIPHER_PREFERENCE]),
                SigningCapabilities(signing_algorithms=[int(a) for a in SIGNING_PREFERENCE]),
                # The name the client used for the server (2.2.3.1.4): lets
                # a clustered or multi-homed server tell which one it is.
                NetnameNegotiateContextId(net_name=cfg.target_name),
            ]
        request = NegotiateRequest(
            dialects=[int(d) for d in dialects], security_mode=int(security_mode),
            capabilities=int(capabilities), client_guid=cfg.client_guid,
            negotiate_contexts=contexts,
        )
        sent: list[bytes] = []
        [resp] = await self.transact([request], sent=sent)
        if resp.status != NTStatus.STATUS_SUCCESS:
            self.close()
            raise NegotiateError(f"NEGOTIATE failed: {status_name(resp.status)} "
                                 f"(0x{resp.status:08X}); offered {[d.name for d in dialects]}")
        body = resp.decode(NegotiateResponse)
        offered = {int(d): d for d in dialects}
        dialect = offered.get(body.dialect_revision)
        if dialect is None:
            self.close()
            raise NegotiateError(f"server chose dialect 0x{body.dialect_revision:04x}, "
                                 f"not one of those offered")
        small = min(body.max_transact_size, body.max_read_size, body.max_write_size)
        if small < _MIN_NEGOTIATED_SIZE:
            # [MS-SMB2] 3.2.5.2: the client SHOULD disconnect. Sizes are cut
            # to these maxima, so a tiny (or zero) one would turn one read
            # into millions of requests.
            self.close()
            raise NegotiateError(
                f"server limits MaxTransactSize/MaxReadSize/MaxWriteSize to "
                f"{body.max_transact_size}/{body.max_read_size}/{body.max_write_size}, "
                f"below {_MIN_NEGOTIATED_SIZE}")
        preauth: PreauthHash | None = None
        cipher: Cipher | None = None
        signing_id: SigningAlgorithm | None = None
        if dialect == Dialect.SMB3_1_1:
            pi = body.find_context(PreauthIntegrityCapabilities)
            if pi is None or list(pi.hash_algorithms) != [HashAlgorithm.SHA_512]:
                self.close()
                raise NegotiateError("3.1.1 server did not select SHA-512 preauth integrity")
            preauth = PreauthHash()
            preauth.update(sent[0])
            preauth.update(resp.msg)
            enc = body.find_context(EncryptionCapabilities)
            if enc is not None and enc.ciphers:
                if len(enc.ciphers) != 1 or enc.ciphers[0] not in (0, *CIPHER_PREFERENCE):
                    self.close()
                    raise NegotiateError(f"server selected cipher(s) {enc.ciphers!r}")
                cipher = Cipher(enc.ciphers[0]) if enc.ciphers[0] else None
            sc = body.find_context(SigningCapabilities)
            if sc is not None and sc.signing_algorithms:
                if (len(sc.signing_algorithms) != 1
                        or sc.signing_algorithms[0] not in SIGNING_PREFERENCE):
                    self.close()
                    raise NegotiateError(f"server selected signing {sc.signing_algorithms!r}")
                signing_id = SigningAlgorithm(sc.signing_algorithms[0])
        elif dialect.is_smb3 and body.capabilities & GlobalCapabilities.SMB2_GLOBAL_CAP_ENCRYPTION:
            cipher = Cipher.AES_128_CCM  # the only cipher of 3.0/3.0.2
        info = NegotiatedInfo(
            dialect=dialect, server_guid=body.server_guid,
            server_security_mode=body.security_mode, capabilities=body.capabilities,
            max_transact_size=body.max_transact_size, max_read_size=body.max_read_size,
            max_write_size=body.max_write_size, security_buffer=bytes(body.security_buffer),
            signing_algorithm=signing_algorithm_for(dialect, signing_id), cipher=cipher,
            preauth_hash=preauth, client_dialects=list(request.dialects),
            client_security_mode=request.security_mode,
            client_capabilities=request.capabilities,
        )
        self.negotiated = info
        log.info("negotiated %s with %s:%s (signing %s, cipher %s)", dialect.name,
                 self.config.host, self.config.port, info.signing_algorithm.name,
                 cipher.name if cipher else "none")
        return info

    # -- sending -------------------------------------------------------------

    def _build(
        self,
        messages: Sequence[Message],
        bodies: Sequence[list[Buffer]],
        mids: Sequence[int],
        charges: Sequence[int],
        *,
        session_id: int,
        tree_id: int,
        related: bool,
        sign: bool,
        credit_requests: Sequence[int],
        flags: int,
    ) -> list[Buffer]:
        """Put headers on encoded bodies (a compound chain if several): the
        frame's parts. Each message is signed over itself including its
        padding ([MS-SMB2] 3.2.4.1.4)."""
        sec = self.security.get(session_id)
        charge_field = self.negotiated is not None and self.negotiated.multi_credit
        parts: list[Buffer] = []
        n = len(messages)
        for i, message in enumerate(messages):
            body = bodies[i]
            body_len = sum(len(b) for b in body)
            pad = pad_to(SMB2_HEADER_SIZE + body_len) if i < n - 1 else 0
            hflags = flags
            if related and i > 0:
                hflags |= _RELATED
            if sign:
                hflags |= _SIGNED
            header = Smb2Header(
                command=message.COMMAND, message_id=mids[i],
                credit_charge=charges[i] if charge_field else 0,
                credits=credit_requests[i], flags=hflags,
                next_command=(SMB2_HEADER_SIZE + body_len + pad) if i < n - 1 else 0,
                tree_id=tree_id, session_id=session_id,
            )
            hbuf = bytearray(SMB2_HEADER_SIZE)
            header.encode_into(hbuf)
            msg_parts: list[Buffer] = [hbuf, *body]
            if pad:
                msg_parts.append(bytes(pad))
            if sign:
                if sec is None or sec.signer is None:
                    raise SigningUnavailableError("signing requested without a signing key")
                if len(msg_parts) > 1 and sum(len(p) for p in msg_parts) <= 65536:
                    # Small message: one buffer (GMAC signs it in place).
                    joined = bytearray(b"".join(msg_parts))
                    sec.signer.sign(joined)
                    msg_parts = [joined]
                else:
                    sec.signer.sign(msg_parts)
            parts.extend(msg_parts)
        return parts

    async def transact(
        self,
        messages: Sequence[Message],
        *,
        session_id: int = 0,
        tree_id: int = 0,
        related: bool = False,
        payload_sizes: Sequence[int] | None = None,
        sign: bool = False,
        encrypt: bool = False,
        sent: list[bytes] | None = None,
        timeout: float | None = None,
        replay: bool = False,
    ) -> list[Response]:
        """Send ``messages`` as one frame (a compound if more than one) and
        wait for every response. Statuses are not interpreted here.

        ``sent``, when given, receives the plain bytes of each message (for
        the preauth integrity hash). ``replay`` marks a request sent again
        after a reconnect: SMB2_FLAGS_REPLAY_OPERATION on 3.x ([MS-SMB2]
        3.2.4.1: the server then recognises a CREATE it already executed by
        its CreateGuid instead of running it twice). Cancelling the caller sends SMB2 CANCEL
        for the requests still unanswered; their late responses are
        consumed and discarded by the receiver.
        """
        self._check_alive()
        n = len(messages)
        sizes = payload_sizes or [0] * n
        multi = self.negotiated is not None and self.negotiated.multi_credit
        charges = [credit_charge(s, multi) for s in sizes]
        bound = self.config.request_timeout if timeout is None else timeout
        # Encode first: a message that fails to encode must not waste
        # MessageIds (a hole in the sequence would stall the server's window).
        bodies = [m.encode_parts() for m in messages]
        sec = self.security.get(session_id)
        if not encrypt and sec is not None and sec.encrypt_data and sec.encryptor is not None:
            # A session that must be encrypted never sends (and so never
            # accepts) a plaintext message, whatever the caller asked
            # ([MS-SMB2] 3.2.4.1.8).
            encrypt = True
        if encrypt and (sec is None or sec.encryptor is None):
            raise EncryptionUnavailableError("encryption requested without an encryption key")
        if sign and not encrypt and (sec is None or sec.signer is None):
            raise SigningUnavailableError("signing requested without a signing key")
        # Credits: wait (bounded) for the whole chain at once, so its
        # MessageIds are consecutive and a compound never holds half a
        # window while waiting for the rest.
        with trio.move_on_after(bound) as credit_scope:
            first = await self.credits.acquire(sum(charges))
        if credit_scope.cancelled_caught:
            # Every credit is held by requests the server keeps pending: this
            # connection cannot make progress. errors.py promises that an
            # SMBTimeoutError means a dropped connection, so drop it rather
            # than leave it alive and stuck.
            exc = SMBTimeoutError(f"no credits granted within {bound}s")
            self._fail(exc)
            raise exc
        mids = []
        m = first
        for c in charges:
            mids.append(m)
            m += c
        requests = [self.credits.request_for(c) for c in charges]
        hflags = 0
        if replay and self.negotiated is not None and self.negotiated.dialect.is_smb3:
            hflags = int(HeaderFlags.SMB2_FLAGS_REPLAY_OPERATION)
        pendings: list[PendingRequest] = []
        # From here the MessageIds are spent: the frame must go out whatever
        # happens, so this part is shielded (and bounded).
        with trio.CancelScope(shield=True):
            with trio.move_on_after(bound) as send_scope:
                parts = self._build(
                    messages, bodies, mids, charges, session_id=session_id, tree_id=tree_id,
                    related=related, sign=sign and not encrypt, credit_requests=requests,
                    flags=hflags,
                )
                if sent is not None:
                    sent.append(b"".join(parts))
                for i, message in enumerate(messages):
                    p = PendingRequest(
                        message=message, message_id=mids[i], charge=charges[i],
                        session_id=session_id, tree_id=tree_id, flags=hflags,
                        encrypted=encrypt,
                    )
                    p.scope = trio.CancelScope(deadline=trio.current_time() + bound)
                    self._pending[mids[i]] = p
                    pendings.append(p)
                self.peak_in_flight = max(self.peak_in_flight, len(self._pending))
                if encrypt:
                    assert sec is not None and sec.encryptor is not None
                    assert sec.nonces is not None
                    parts = sec.encryptor.encrypt(parts, session_id, sec.nonces())  # type: ignore[assignment]
                try:
                    await self.transport.send_frame(parts)
                except ConnectionLostError as e:
                    self._fail(e)
                    raise
                self.frames_sent += 1
            if send_scope.cancelled_caught:
                self._fail(SMBTimeoutError(f"send stalled for {bound}s"))
        # No _check_alive() here: a request whose response arrived before the
        # connection died has its answer; the others carry the error (_fail).
        try:
            return [await self._wait(p) for p in pendings]
        except trio.Cancelled:
            # The caller's scope was cancelled (not a request timeout: that
            # is caught by the request's own scope): CANCEL every request of
            # the chain still unanswered.
            for p in pendings:
                if not p.event.is_set() and not p.cancelled:
                    await self._send_cancel(p)
            raise

    async def _wait(self, p: PendingRequest) -> Response:
        assert p.scope is not None
        with p.scope:
            await p.event.wait()
        if not p.event.is_set():
            exc = SMBTimeoutError(
                f"no response to {p.message.COMMAND.name} (MessageId {p.message_id}) "
                f"within {self.config.request_timeout}s"
            )
            self._fail(exc)
            raise exc
        if p.error is not None:
            raise ConnectionLostError(str(p.error)) from p.error
        assert p.response is not None
        return p.response

    async def _send_cancel(self, p: PendingRequest) -> None:
        """[MS-SMB2] 3.2.4.24: CANCEL carries the MessageId of the request
        (and its AsyncId once an interim response gave one); it consumes no
        credit and gets no response. The request stays registered so that
        its final response (STATUS_CANCELLED or a result) is consumed."""
        p.cancelled = True
        if self._dead is not None:
            return
        flags = 0
        header = Smb2Header(command=Command.SMB2_CANCEL, message_id=p.message_id,
                            session_id=p.session_id, tree_id=p.tree_id)
        if p.async_id is not None:
            flags |= _ASYNC
            header.async_id = p.async_id
        sec = self.security.get(p.session_id)
        if p.encrypted and (sec is None or sec.encryptor is None or sec.nonces is None):
            # The session's keys are gone (logged off): a CANCEL for a sealed
            # request must not go out in the clear; its answer, if any, is
            # still consumed.
            return
        sign = (sec is not None and sec.signer is not None and sec.signing_required
                and not p.encrypted)
        if sign:
            flags |= _SIGNED
        header.flags = flags
        buf = bytearray(SMB2_HEADER_SIZE)
        header.encode_into(buf)
        frame: list[Buffer] = [buf + CancelRequest().encode()]
        if sign:
            assert sec is not None and sec.signer is not None
            msg = bytearray(frame[0])
            sec.signer.sign(msg)
            frame = [msg]
        if p.encrypted:
            assert sec is not None and sec.encryptor is not None and sec.nonces is not None
            frame = sec.encryptor.encrypt(frame, p.session_id, sec.nonces())  # type: ignore[assignment]
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.request_timeout):
            try:
                await self.transport.send_frame(frame)
                self.cancels_sent += 1
                log.debug("sent CANCEL for MessageId %d (AsyncId %s)", p.message_id, p.async_id)
            except ConnectionLostError as e:
                self._fail(e)

    # -- receiving -----------------------------------------------------------

    async def _receive_loop(self) -> None:
        try:
            while True:
                frame = await self.transport.receive_frame()
                self._last_receive = trio.current_time()
                self.frames_received += 1
                self.handle_frame(frame)
        except ConnectionLostError as e:
            self._fail(e)
        except Exception as e:  # never let a bug take the process down silently
            log.exception("receiver failed")
            self._fail(ProtocolViolation(f"receiver failed: {e!r}"))

    def handle_frame(self, frame: memoryview) -> None:
        """Authenticate and dispatch one received frame. Synchronous and
        free of I/O, so it can be fed arbitrary bytes in tests; any problem
        drops the connection (raising nothing but to :meth:`_fail`)."""
        try:
            self._dispatch_frame(frame)
        except ProtocolViolation as e:
            self._fail(e)
        except DecodeError as e:
            self._fail(ProtocolViolation(f"malformed message from server: {e}"))

    def _dispatch_frame(self, frame: memoryview) -> None:
        proto = bytes(frame[:4])
        sealed_for: int | None = None  # SessionId whose key decrypted the frame
        if proto == SMB2_TRANSFORM_PROTOCOL_ID:
            th = TransformHeader.decode(frame)
            sec = self.security.get(th.session_id)
            if sec is None or sec.decryptor is None:
                raise ProtocolViolation(f"encrypted message for unknown session {th.session_id:#x}")
            if th.original_message_size != len(frame) - SMB2_TRANSFORM_HEADER_SIZE:
                raise ProtocolViolation("TRANSFORM_HEADER OriginalMessageSize mismatch")
            frame = memoryview(sec.decryptor.decrypt(frame))  # IntegrityError is a DecodeError
            sealed_for = th.session_id
            if bytes(frame[:4]) != SMB2_PROTOCOL_ID:
                raise ProtocolViolation("decrypted message is not an SMB2 message")
        elif proto == SMB2_COMPRESSION_PROTOCOL_ID:
            raise ProtocolViolation("compressed message, compression was not negotiated")
        elif proto != SMB2_PROTOCOL_ID:
            raise ProtocolViolation(f"unknown protocol id {proto!r}")
        for msg in split_compound(frame):
            self._dispatch_message(Smb2Header.decode(msg), msg, sealed_for)
        if self.credits.starved and not self._pending:
            # [MS-SMB2] 3.3.1.2: the server must never leave the client
            # without credits. With none held and no response due, no
            # request can ever be sent again: fail now, not after every
            # later request has waited out its timeout.
            raise ProtocolViolation("server left the client with no credits and "
                                    "nothing outstanding")

    def _dispatch_message(self, hdr: Smb2Header, msg: memoryview,
                          sealed_for: int | None) -> None:
        if not hdr.is_response:
            raise ProtocolViolation(f"{hdr.command.name} from the server is not a response")
        if hdr.message_id == UNSOLICITED_MESSAGE_ID:
            # [MS-SMB2] 3.2.5.19: oplock/lease break notifications; never
            # signed (3.2.5.1.3: no verification for this MessageId).
            if hdr.command != Command.SMB2_OPLOCK_BREAK:
                raise ProtocolViolation(f"unsolicited {hdr.command.name}")
            _check_body_shape(hdr, msg)
            self.credits.grant(hdr.credits)
            if self.break_handler is None:
                log.warning("break notification with no handler registered")
                return
            try:
                self.break_handler(hdr, msg)
            except Exception:
                log.exception("break handler failed")
            return
        p = self._pending.get(hdr.message_id)
        if p is None:
            raise ProtocolViolation(f"response to MessageId {hdr.message_id} "
                                    f"that is not outstanding")
        if hdr.command != p.message.COMMAND:
            raise ProtocolViolation(f"{hdr.command.name} response to a "
                                    f"{p.message.COMMAND.name} request")
        # An interim response MUST be async (3.3.4.2); a sync STATUS_PENDING
        # is still not a final answer, so it is waited past the same way.
        interim = hdr.status == _STATUS_PENDING
        self._authenticate(hdr, msg, p, sealed_for, interim)
        _check_body_shape(hdr, msg)
        self.credits.grant(hdr.credits)
        if interim:
            # [MS-SMB2] 3.2.5.1.5: keep the AsyncId, keep waiting; the final
            # response may take as long as it needs (change notify, lock),
            # liveness is then the ECHO keepalive's job.
            if hdr.is_async:
                p.async_id = hdr.async_id
            if p.scope is not None:
                p.scope.deadline = math.inf
            return
        if hdr.is_async and p.async_id is not None and hdr.async_id != p.async_id:
            # [MS-SMB2] 3.2.5.1.5: the final answer to an async request
            # carries the AsyncId its interim response gave.
            raise ProtocolViolation(f"final response with AsyncId {hdr.async_id:#x}, "
                                    f"the interim gave {p.async_id:#x}")
        del self._pending[hdr.message_id]
        if p.cancelled:
            log.debug("discarding response to cancelled MessageId %d (status 0x%08X)",
                      hdr.message_id, hdr.status)
            return
        p.response = Response(hdr, msg, self)
        p.event.set()

    def _authenticate(self, hdr: Smb2Header, msg: memoryview, p: PendingRequest,
                      sealed_for: int | None, interim: bool) -> None:
        """[MS-SMB2] 3.2.5.1.3: verify what must be signed or encrypted.

        The keys are those of the session the *request* was sent on, never
        of whatever SessionId the response claims: a forged SessionId must
        not select "no key" and so skip verification.
        """
        if p.session_id and hdr.session_id != p.session_id:
            raise ProtocolViolation(f"response for SessionId {hdr.session_id:#x} to a request "
                                    f"on {p.session_id:#x}")
        if sealed_for is not None:
            if p.session_id and sealed_for != p.session_id:
                raise ProtocolViolation("response sealed with another session's key")
            return  # the AEAD tag authenticated the whole frame
        if p.encrypted:
            # Interim responses too: the server encrypts every response to an
            # encrypted request (3.3.4.1.4), and a forged plaintext
            # STATUS_PENDING would lift the request's timeout.
            raise ProtocolViolation(f"unencrypted response to an encrypted "
                                    f"{hdr.command.name} request")
        sec = self.security.get(p.session_id) if p.session_id else None
        signer = sec.signer if sec is not None else None
        if hdr.flags & _SIGNED:
            # Without a key (session setup in progress, guest) there is
            # nothing to check; the session verifies its final
            # SESSION_SETUP response itself.
            if signer is not None and not signer.verify(msg):
                raise ProtocolViolation(f"bad signature on {hdr.command.name} response "
                                        f"(MessageId {hdr.message_id})")
            return
        if (sec is not None and sec.signing_required and signer is not None
                and not interim and hdr.command != Command.SMB2_SESSION_SETUP
                and hdr.status not in _UNSIGNED_OK):
            raise ProtocolViolation(f"unsigned {hdr.command.name} response on a signed session")

    # -- keepalive -----------------------------------------------------------

    async def _echo_loop(self) -> None:
        """Dead-peer detection: after ``echo_interval`` without any frame
        from the server, send ECHO; no answer within another interval
        drops the connection (the cut ends every waiter promptly)."""
        interval = self.config.echo_interval
        while True:
            await trio.sleep(interval / 4)
            if self.negotiated is None:
                continue
            if trio.current_time() - self._last_receive < interval:
                continue
            self.echoes_sent += 1
            try:
                await self.transact([EchoRequest()], timeout=interval)
            except SMBTimeoutError as e:
                # Also when the ECHO could not even get a credit: nothing has
                # come from the peer for two intervals. Returning without
                # dropping would leave a connection with no keepalive at all.
                log.warning("no ECHO response within %ss: peer is dead", interval)
                self._fail(e)
                return
            except ConnectionLostError:
                return


# [MS-SMB2] 2.2.x StructureSize of each response body. Odd sizes count one
# byte of the variable part, which may be absent.
_RESPONSE_STRUCTURE_SIZE: Final = {
    Command.SMB2_NEGOTIATE: 65, Command.SMB2_SESSION_SETUP: 9, Command.SMB2_LOGOFF: 4,
    Command.SMB2_TREE_CONNECT: 16, Command.SMB2_TREE_DISCONNECT: 4, Command.SMB2_CREATE: 89,
    Command.SMB2_CLOSE: 60, Command.SMB2_FLUSH: 4, Command.SMB2_READ: 17,
    Command.SMB2_WRITE: 17, Command.SMB2_LOCK: 4, Command.SMB2_IOCTL: 49,
    Command.SMB2_ECHO: 4, Command.SMB2_QUERY_DIRECTORY: 9, Command.SMB2_CHANGE_NOTIFY: 9,
    Command.SMB2_QUERY_INFO: 9, Command.SMB2_SET_INFO: 2,
}
_ERROR_STRUCTURE_SIZE: Final = 9  # [MS-SMB2] 2.2.2 SMB2 ERROR Response
_OPLOCK_BREAK_SIZES: Final = frozenset({24, 36, 44})  # 2.2.23.x, 2.2.25.x


def _check_body_shape(hdr: Smb2Header, msg: memoryview) -> None:
    """Reject a response whose body is not even the right fixed size, in the
    receiver, so a truncated or garbled message is a dropped connection for
    every caller rather than a DecodeError in one of them (callers still
    decode with the bounds-checked decoders)."""
    if len(msg) < SMB2_HEADER_SIZE + 2:
        raise ProtocolViolation(f"{hdr.command.name} response without a body")
    size = int.from_bytes(msg[SMB2_HEADER_SIZE : SMB2_HEADER_SIZE + 2], "little")
    if hdr.command == Command.SMB2_OPLOCK_BREAK:
        ok = size in _OPLOCK_BREAK_SIZES or (size == _ERROR_STRUCTURE_SIZE and hdr.status)
    else:
        expected = _RESPONSE_STRUCTURE_SIZE.get(hdr.command)
        ok = size == expected or (hdr.status != 0 and size == _ERROR_STRUCTURE_SIZE)
    if not ok:
        raise ProtocolViolation(f"{hdr.command.name} response with StructureSize {size} "
                                f"(status 0x{hdr.status:08X})")
    if len(msg) < SMB2_HEADER_SIZE + (size & ~1):
        raise ProtocolViolation(f"{hdr.command.name} response truncated "
                                f"({len(msg) - SMB2_HEADER_SIZE} body bytes)")


# Statuses a server may return unsigned on a signed session: it can no longer
# sign for a session it has expired or deleted ([MS-SMB2] 3.3.4.1.1).
_UNSIGNED_OK: Final = frozenset({
    int(NTStatus.STATUS_USER_SESSION_DELETED),
    int(NTStatus.STATUS_NETWORK_SESSION_EXPIRED),
})
