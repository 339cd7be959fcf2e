"""An authenticated SMB2 session and the request API the rest of the engine
builds on (:meth:`Session.request`, :meth:`Session.compound`).

Authentication is SPNEGO/NTLM/Kerberos through pyspnego; this module runs
the SESSION_SETUP loop, keeps the 3.1.1 preauth integrity hash of the
exchange, derives the keys ([MS-SMB2] 3.2.5.3.1) and decides, per request,
whether to sign or encrypt. A Session owns a list of :class:`Channel`
(one for now: multichannel binds more later, each with its own connection
and signing key).
"""

from __future__ import annotations

import contextvars
import logging
import struct
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import spnego
import spnego.exceptions
import trio

from smbfs.client.config import ClientConfig
from smbfs.client.connection import (
    BreakHandler,
    Connection,
    ProtocolViolation,
    Response,
    SessionSecurity,
)
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    EncryptionUnavailableError,
    KerberosUnavailableError,
    NegotiateError,
    SMBError,
)
from smbfs.client.kerberos import KerberosSpnego
from smbfs.client.lease import LeaseTable
from smbfs.client.reconnect import CONNECTED, Reconnector, ReconnectStats, StateCallback
from smbfs.proto.codec import DecodeError
from smbfs.proto.constants import Command, Dialect, HeaderFlags, SecurityMode
from smbfs.proto.create import CreateRequest
from smbfs.proto.create_contexts import CreateDurableHandleRequestV2
from smbfs.proto.crypto.encryption import Encryptor
from smbfs.proto.crypto.kdf import derive_session_keys
from smbfs.proto.crypto.preauth import PreauthHash
from smbfs.proto.crypto.signing import Signer
from smbfs.proto.fileid import RELATED
from smbfs.proto.fsctl import CtlCode, ValidateNegotiateInfoRequest, ValidateNegotiateInfoResponse
from smbfs.proto.ioctl import IoctlRequest, IoctlResponse
from smbfs.proto.message import Message
from smbfs.proto.ntstatus import NTStatus, is_success
from smbfs.proto.session_setup import SessionFlags, SessionSetupRequest, SessionSetupResponse
from smbfs.proto.simple import LogoffRequest
from smbfs.proto.tree import TreeConnectRequest, TreeDisconnectRequest

log = logging.getLogger(__name__)

_SUCCESS: Final = int(NTStatus.STATUS_SUCCESS)
_MORE: Final = int(NTStatus.STATUS_MORE_PROCESSING_REQUIRED)
_EXPIRED: Final = int(NTStatus.STATUS_NETWORK_SESSION_EXPIRED)
_SIGNED: Final = int(HeaderFlags.SMB2_FLAGS_SIGNED)
# True in the supervisor's task while it re-establishes the session: its own
# requests (SESSION_SETUP, TREE_CONNECT, the reclaiming CREATEs) go straight
# out instead of waiting at the gate they are opening.
_REESTABLISHING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "smbfs_reestablishing", default=False)
# How many connections one request may outlive before its loss is an error.
_MAX_REPLAYS: Final = 5
# A SPNEGO exchange takes 2-3 legs; a server that keeps asking for more is
# broken or hostile, and the loop must end.
_MAX_SETUP_LEGS: Final = 16


# [MS-NLMP] 2.2.2.5 NegotiateFlags used by the anonymous exchange.
_NTLMSSP_NEGOTIATE_UNICODE: Final = 0x00000001
_NTLMSSP_REQUEST_TARGET: Final = 0x00000004
_NTLMSSP_NEGOTIATE_NTLM: Final = 0x00000200
_NTLMSSP_ANONYMOUS: Final = 0x00000800
_NTLMSSP_NEGOTIATE_ALWAYS_SIGN: Final = 0x00008000
_NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY: Final = 0x00080000
_NTLMSSP_NEGOTIATE_128: Final = 0x20000000
_NTLMSSP_NEGOTIATE_56: Final = 0x80000000
_NTLMSSP_SIGNATURE: Final = b"NTLMSSP\x00"


class _AnonymousNtlm:
    """The NTLM anonymous (null session) exchange, [MS-NLMP] 3.1.5.1.2:
    pyspnego refuses empty credentials, and anonymous needs no crypto at all
    -- an AUTHENTICATE_MESSAGE with empty user and domain, a one-zero-byte
    LmChallengeResponse, an empty NtChallengeResponse and no session key."""

    _FLAGS: Final = (_NTLMSSP_NEGOTIATE_UNICODE | _NTLMSSP_REQUEST_TARGET
                     | _NTLMSSP_NEGOTIATE_NTLM | _NTLMSSP_NEGOTIATE_ALWAYS_SIGN
                     | _NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
                     | _NTLMSSP_NEGOTIATE_128 | _NTLMSSP_NEGOTIATE_56)

    def __init__(self) -> None:
        self.complete = False
        self._state = 0

    @property
    def session_key(self) -> bytes:
        raise ValueError("an anonymous session has no session key")

    def step(self, token: bytes | None) -> bytes | None:
        if self._state == 0:
            self._state = 1
            # NEGOTIATE_MESSAGE (2.2.1.1): no domain/workstation supplied.
            return struct.pack("<8sII8s8s", _NTLMSSP_SIGNATURE, 1, self._FLAGS,
                               bytes(8), bytes(8))
        if self._state == 1:
            if (token is None or len(token) < 24 or token[:8] != _NTLMSSP_SIGNATURE
                    or int.from_bytes(token[8:12], "little") != 2):
                raise ValueError("expected an NTLM CHALLENGE_MESSAGE")
            self._state = 2
            self.complete = True
            # AUTHENTICATE_MESSAGE (2.2.1.3) without Version/MIC: 64 bytes of
            # fixed fields, then the payload (only LmChallengeResponse = Z(1)).
            payload_at = 64
            empty = struct.pack("<HHI", 0, 0, payload_at + 1)
            lm = struct.pack("<HHI", 1, 1, payload_at)
            return b"".join((
                _NTLMSSP_SIGNATURE, struct.pack("<I", 3), lm, empty, empty, empty, empty,
                empty, struct.pack("<I", self._FLAGS | _NTLMSSP_ANONYMOUS), b"\x00",
            ))
        return None


class TreeRef(Protocol):
    """What the session needs of a tree it sends for (the tree module is
    above this one): its current TreeId, which a reconnect changes."""

    tree_id: int


class Reconnectable(Protocol):
    """A tree as the reconnect sees it: connect again, then take back its
    opens ([MS-SMB2] 3.2.4.4: tree connects before durable reclaims)."""

    async def reconnect(self) -> None: ...

    async def reclaim_opens(self, stats: ReconnectStats) -> None: ...

    def remap_file_id(self, message: Message) -> Message | None: ...


def _replay_flag_wanted(first: Message) -> bool:
    """Whether a replayed chain carries SMB2_FLAGS_REPLAY_OPERATION.

    The flag lets the server match a CREATE to the open it may already have
    made, by its CreateGuid ([MS-SMB2] 3.3.5.9.10), and tells it a request
    on a durable handle is a repeat. A CREATE without a durable v2 context
    has nothing to be matched by: Samba answers such a "replay" of an open
    of an existing file with STATUS_ACCESS_DENIED, so it goes as a plain
    request (its outcome is reconciled by the caller instead)."""
    if isinstance(first, CreateRequest):
        return any(isinstance(c, CreateDurableHandleRequestV2) for c in first.create_contexts)
    return True


@runtime_checkable
class _Remapper(Protocol):
    def remap_file_id(self, message: Message) -> Message | None: ...


class Channel:
    """One connection of a session, with that channel's signing key."""

    def __init__(self, connection: Connection, security: SessionSecurity | None) -> None:
        self.connection = connection
        self.security = security


class Session:
    """An authenticated session on one (for now) channel.

    Create it with :func:`smbfs.client.client.open_session`, which also
    owns the nursery its background tasks run in.
    """

    def __init__(self, connection: Connection, config: ClientConfig, nursery: trio.Nursery) -> None:
        self.config = config
        self.channels: list[Channel] = [Channel(connection, None)]
        self.session_id = 0
        self.is_guest = False
        self.is_anonymous = False
        self.encrypt_data = False
        self.signing_required = False
        self._nursery = nursery
        self._reauth_lock = trio.Lock()
        self._generation = 0  # bumped by each successful (re)authentication
        # Session.SessionKey ([MS-SMB2] 3.2.5.3.1): kept because binding a
        # further channel (multichannel, not built yet) derives that
        # channel's signing key from it.
        self._session_key: bytes | None = None
        self._logged_off = False
        self._established = False  # set after the first successful setup
        self._established_id = 0  # the SessionId a reconnect names as previous
        # Leases and oplocks this session holds; their break acknowledger
        # starts with the first open that asks for one.
        self.leases = LeaseTable(self)
        self._break_handler: BreakHandler | None = None
        # The registry a reconnect works from: every connected tree (each
        # with its opens). Trees add and remove themselves.
        self.trees: list[Reconnectable] = []
        self._reconnector = Reconnector(self, config)
        connection.on_lost = self._on_connection_lost

    @property
    def state(self) -> str:
        """"connected", "reconnecting" or "failed"."""
        return self._reconnector.state

    @property
    def stats(self) -> ReconnectStats:
        return self._reconnector.stats

    def on_state_change(self, fn: StateCallback) -> None:
        """``fn(state, detail)`` whenever the session's link changes state
        (the mount's systemd status line follows it). Must not block."""
        self._reconnector.on_state_change(fn)

    def _on_connection_lost(self, conn: Connection, exc: ConnectionLostError) -> None:
        if conn is not self.connection or not self._established:
            return
        if self.config.reconnect and not self._logged_off:
            self._reconnector.connection_lost(self._reconnector.generation, exc)

    # -- the contract's accessors --------------------------------------------

    @property
    def connection(self) -> Connection:
        return self.channels[0].connection

    @property
    def dialect(self) -> Dialect:
        neg = self.connection.negotiated
        assert neg is not None, "session on a connection that was not negotiated"
        return neg.dialect

    def register_break_handler(self, fn: BreakHandler) -> None:
        """``fn(header, msg)`` is called from the receiver task for every
        unsolicited SMB2_OPLOCK_BREAK; it must not block. It stays installed
        on every connection this session uses from now on (a reconnect's too)."""
        self._break_handler = fn
        for ch in self.channels:
            ch.connection.break_handler = fn

    def spawn(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a background task that lives as long as the session."""
        self._nursery.start_soon(async_fn, *args)

    # -- authentication ------------------------------------------------------

    @classmethod
    async def setup(cls, connection: Connection, config: ClientConfig,
                    nursery: trio.Nursery) -> Session:
        session = cls(connection, config, nursery)
        await session._authenticate()
        if session.dialect in (Dialect.SMB3_0, Dialect.SMB3_0_2):
            await session._validate_negotiate()
        session._established = True
        session._established_id = session.session_id
        if config.reconnect:
            nursery.start_soon(session._reconnector.run)
        return session

    async def _reestablish(self) -> None:
        token = _REESTABLISHING.set(True)
        try:
            await self._reestablish_now()
        finally:
            _REESTABLISHING.reset(token)

    async def _reestablish_now(self) -> None:
        """The session again on a new connection ([MS-SMB2] 3.2.4.4 and
        3.2.4.2.3): NEGOTIATE, SESSION_SETUP with PreviousSessionId (the
        server then tears the old session down and lets its durable handles
        be reclaimed), VALIDATE_NEGOTIATE on 3.0/3.0.2, every tree connected
        again, then every open taken back. Called by the supervisor only."""
        old = self.connection
        old.on_lost = None
        old.close()
        conn = await Connection.connect(self.config, self._nursery)
        try:
            await conn.negotiate()
            # The last session the server knew us by, even when an earlier
            # attempt of this reconnect got as far as a session of its own.
            previous = self._established_id
            self.channels = [Channel(conn, None)]
            conn.break_handler = self._break_handler
            self.session_id = 0
            await self._authenticate(previous_session_id=previous)
            if self.dialect in (Dialect.SMB3_0, Dialect.SMB3_0_2):
                await self._validate_negotiate()
            for tree in list(self.trees):
                await tree.reconnect()
            for tree in list(self.trees):
                await tree.reclaim_opens(self.stats)
        except BaseException:
            conn.close()
            raise
        conn.on_lost = self._on_connection_lost
        self._established_id = self.session_id
        stats = self.stats
        log.warning("reconnected to %s:%d (%s): session %#x, %d trees; handles "
                    "reclaimed %d, reopened %d, lost %d (totals)", self.config.host,
                    self.config.port, self.dialect.name, self.session_id, len(self.trees),
                    stats.handles_reclaimed, stats.handles_reopened, stats.handles_lost)

    async def _validate_negotiate(self) -> None:
        """[MS-SMB2] 3.2.5.5 / 3.2.5.14.12: in 3.0 and 3.0.2 the client
        repeats its NEGOTIATE in a signed FSCTL_VALIDATE_NEGOTIATE_INFO and
        drops the connection unless the server's signed answer matches what
        was negotiated -- the defence against a downgrade by a man in the
        middle. It needs a tree: done once per session on IPC$ (3.1.1 has
        preauth integrity instead; guest/anonymous sessions cannot sign)."""
        if self.is_guest or self.is_anonymous:
            return
        conn = self.connection
        neg = conn.negotiated
        assert neg is not None
        resp = await self.request(
            TreeConnectRequest(path=f"\\\\{self.config.target_name}\\IPC$"))
        tree_id = resp.header.tree_id
        vni = ValidateNegotiateInfoRequest(
            capabilities=neg.client_capabilities, guid=self.config.client_guid,
            security_mode=neg.client_security_mode, dialects=list(neg.client_dialects))
        ioctl = IoctlRequest(ctl_code=CtlCode.FSCTL_VALIDATE_NEGOTIATE_INFO, file_id=RELATED,
                             input=vni.encode(), max_output_response=24)
        enc = self.encrypt_data
        [resp] = await conn.transact([ioctl], session_id=self.session_id, tree_id=tree_id,
                                     sign=not enc, encrypt=enc)
        problem = ""
        if resp.status != _SUCCESS:
            problem = f"status 0x{resp.status:08X}"
        elif not enc and not resp.header.flags & HeaderFlags.SMB2_FLAGS_SIGNED:
            problem = "unsigned response"  # a signed one was verified by the receiver
        else:
            try:
                got = ValidateNegotiateInfoResponse.decode(IoctlResponse.decode(resp.msg).output)
            except DecodeError as e:
                problem = f"malformed response: {e}"
            else:
                if (got.capabilities != neg.capabilities or got.guid != neg.server_guid
                        or got.security_mode != neg.server_security_mode
                        or got.dialect != neg.dialect):
                    problem = f"mismatch: server says {got!r}"
        if problem:
            conn.handle_protocol_error(f"FSCTL_VALIDATE_NEGOTIATE_INFO failed: {problem}")
            raise NegotiateError(f"validate negotiate failed ({problem}): possible downgrade "
                                 f"attack, connection dropped")
        log.debug("validate negotiate OK for session %#x", self.session_id)
        await self.request(TreeDisconnectRequest(), tree_id=tree_id)

    def _auth_context(self) -> Any:
        cfg = self.config
        try:
            if cfg.auth == "kerberos":
                return self._kerberos_context()
            if cfg.auth == "anonymous":
                return _AnonymousNtlm()
            user = cfg.username or ("guest" if cfg.auth == "guest" else "")
            password = "" if cfg.auth == "guest" else cfg.password
            if cfg.domain and "\\" not in user and "@" not in user:
                user = f"{cfg.domain}\\{user}"
            # Raw NTLMSSP (no SPNEGO wrapper): Samba and Windows both accept
            # it, and it never wanders off to Kerberos behind our back.
            return spnego.client(user, password, hostname=cfg.target_name, service="cifs",
                                 protocol="ntlm")
        except (ImportError, ValueError, spnego.exceptions.SpnegoError) as e:
            raise AuthenticationError(
                NTStatus.STATUS_LOGON_FAILURE, Command.SMB2_SESSION_SETUP,
                f"cannot start {cfg.auth} authentication: {e}"
                + (" (Kerberos needs the python 'gssapi' package and a ticket: run kinit)"
                   if cfg.auth == "kerberos" else "")) from e

    def _kerberos_context(self) -> KerberosSpnego:
        """Kerberos in SPNEGO offering Kerberos alone (smbfs.client.kerberos):
        a missing ticket or python-gssapi is an error here, never a quiet
        fall back to NTLM. With a password the TGT is fetched in memory
        (no kinit, nothing written to the user's ccache); without one the
        default ccache (KRB5CCNAME) supplies the tickets."""
        cfg = self.config
        try:
            import gssapi  # noqa: F401
            import krb5  # noqa: F401
        except ImportError as e:
            raise KerberosUnavailableError(
                f"Kerberos needs the python packages 'gssapi' and 'krb5' "
                f"(pip install 'smbfs[kerberos]', see docs/kerberos.md): {e}") from e
        user = cfg.username or None
        if user and cfg.domain and "@" not in user:
            user = f"{user}@{cfg.domain.upper()}"
        return KerberosSpnego(user, cfg.password or None, hostname=cfg.target_name,
                              service="cifs")

    def _kerberos_hint(self, error: str) -> str:
        if "not found in Kerberos database" in error:
            # The KDC has no cifs/<name>: usually an IP address or an alias
            # was used where the server's own host name is needed.
            return (f" (the KDC knows no service principal cifs/{self.config.target_name}: "
                    f"use the server's host name, as registered in the domain, not an "
                    f"address or alias)")
        return " (no usable Kerberos ticket? run kinit)"

    def _step(self, ctx: Any, token: bytes | None) -> bytes | None:
        try:
            out = ctx.step(token)
        except (spnego.exceptions.SpnegoError, ImportError, ValueError) as e:
            hint = ""
            if self.config.auth == "kerberos":
                hint = self._kerberos_hint(str(e))
            raise AuthenticationError(
                NTStatus.STATUS_LOGON_FAILURE, Command.SMB2_SESSION_SETUP,
                f"{self.config.auth} authentication failed locally: {e}{hint}") from e
        return bytes(out) if out else None

    async def _authenticate(self, previous_session_id: int = 0) -> None:
        """The SESSION_SETUP loop ([MS-SMB2] 3.2.4.2.3, 3.2.5.3). On the
        current SessionId when re-authenticating (keys are kept).
        ``previous_session_id``: the session this one replaces after a
        reconnect."""
        conn = self.connection
        neg = conn.negotiated
        assert neg is not None
        reauth = self.session_id != 0
        ctx = self._auth_context()
        token = self._step(ctx, None)
        preauth: PreauthHash | None = None
        if neg.preauth_hash is not None and not reauth:
            preauth = neg.preauth_hash.copy()
        security_mode = SecurityMode.SMB2_NEGOTIATE_SIGNING_ENABLED
        if self.config.require_signing:
            security_mode |= SecurityMode.SMB2_NEGOTIATE_SIGNING_REQUIRED
        session_id = self.session_id
        sec = conn.security.get(session_id) if reauth else None
        for _leg in range(_MAX_SETUP_LEGS):
            request = SessionSetupRequest(security_mode=int(security_mode),
                                          previous_session_id=previous_session_id,
                                          security_buffer=token or b"")
            sent: list[bytes] = []
            sign = reauth and sec is not None and sec.signer is not None and not sec.encrypt_data
            encrypt = reauth and sec is not None and sec.encrypt_data
            [resp] = await conn.transact([request], session_id=session_id, sent=sent,
                                         sign=sign, encrypt=encrypt)
            status = resp.status
            if status not in (_SUCCESS, _MORE):
                raise AuthenticationError(status, Command.SMB2_SESSION_SETUP,
                                          f"as {self.config.username or self.config.auth!r}")
            try:
                body = SessionSetupResponse.decode(resp.msg)
            except DecodeError as e:
                conn.handle_protocol_error(f"bad SESSION_SETUP response: {e}")
                raise ConnectionLostError(str(e)) from e
            if session_id == 0:
                session_id = resp.header.session_id
            elif resp.header.session_id != session_id:
                conn.handle_protocol_error("SESSION_SETUP response for another SessionId")
                raise ConnectionLostError("SESSION_SETUP response for another SessionId")
            if preauth is not None:
                preauth.update(sent[0])
            if status == _MORE:
                if preauth is not None:
                    preauth.update(resp.msg)
                token = self._step(ctx, body.security_buffer)
                continue
            # STATUS_SUCCESS: the last token (mechListMIC) may still be due.
            if body.security_buffer and not ctx.complete:
                self._step(ctx, body.security_buffer)
            if isinstance(ctx, KerberosSpnego) and not ctx.complete:
                # No AP-REP: the server never proved it holds the service key.
                raise AuthenticationError(
                    NTStatus.STATUS_LOGON_FAILURE, Command.SMB2_SESSION_SETUP,
                    "Kerberos mutual authentication did not complete")
            if reauth:
                self._check_reauth_response(resp, sec)
            else:
                self._finish_setup(ctx, resp, body, session_id, preauth)
            self._generation += 1
            log.info("session %#x %sauthenticated (%s%s%s)", session_id,
                     "re" if reauth else "", self.config.auth,
                     ", signing" if self.signing_required else "",
                     ", encryption" if self.encrypt_data else "")
            return
        raise AuthenticationError(NTStatus.STATUS_LOGON_FAILURE, Command.SMB2_SESSION_SETUP,
                                  "too many SESSION_SETUP legs")

    def _check_reauth_response(self, resp: Response, sec: SessionSecurity | None) -> None:
        """The receiver lets SESSION_SETUP responses through unverified (on a
        first logon there is no key yet); on re-authentication the session's
        keys exist and are kept ([MS-SMB2] 3.2.5.3.1), so a final response
        that could be forged must verify like any other, or the connection
        is dropped. An encrypted one was already authenticated by the AEAD."""
        if sec is None or sec.signer is None or sec.encrypt_data:
            return
        conn = self.connection
        if not resp.header.flags & _SIGNED:
            if sec.signing_required or self.dialect == Dialect.SMB3_1_1:
                conn.handle_protocol_error("re-authentication response is not signed")
                raise ConnectionLostError("re-authentication response is not signed")
            return
        if not sec.signer.verify(resp.msg):
            conn.handle_protocol_error("bad signature on the re-authentication response")
            raise ConnectionLostError("bad signature on the re-authentication response")

    def _finish_setup(self, ctx: Any, resp: Response, body: SessionSetupResponse,
                      session_id: int, preauth: PreauthHash | None) -> None:
        conn = self.connection
        neg = conn.negotiated
        assert neg is not None
        flags = body.session_flags
        self.session_id = session_id
        self.is_guest = bool(flags & SessionFlags.SMB2_SESSION_FLAG_IS_GUEST)
        # Samba 4.17 answers an NTLM anonymous logon with SessionFlags 0, not
        # IS_NULL: what we asked for decides too (there is no key either way).
        self.is_anonymous = (bool(flags & SessionFlags.SMB2_SESSION_FLAG_IS_NULL)
                             or isinstance(ctx, _AnonymousNtlm))
        if self.is_guest or self.is_anonymous:
            # No session key worth the name: nothing is signed or sealed
            # ([MS-SMB2] 3.2.5.3.1).
            if self.config.require_signing or self.config.require_encryption:
                raise AuthenticationError(
                    NTStatus.STATUS_ACCESS_DENIED, Command.SMB2_SESSION_SETUP,
                    "server made this a guest/anonymous session, which cannot be "
                    "signed or encrypted as required")
            security = SessionSecurity(session_id, signer=None, signing_required=False)
            conn.security[session_id] = security
            self.channels[0].security = security
            return
        try:
            key = bytes(ctx.session_key)
        except Exception as e:
            raise AuthenticationError(NTStatus.STATUS_LOGON_FAILURE,
                                      Command.SMB2_SESSION_SETUP,
                                      f"no session key from {self.config.auth}: {e}") from e
        self._session_key = key
        keys = derive_session_keys(neg.dialect, key,
                                   preauth.value if preauth is not None else None, neg.cipher)
        signer = Signer(neg.signing_algorithm, keys.signing_key)
        # [MS-SMB2] 3.2.5.3.1: the final response of a 3.1.1 session setup
        # is signed and must verify; in older dialects verify it if signed.
        if resp.header.flags & _SIGNED or neg.dialect == Dialect.SMB3_1_1:
            if not resp.header.flags & _SIGNED:
                conn.handle_protocol_error("final SESSION_SETUP response is not signed")
                raise ConnectionLostError("final SESSION_SETUP response is not signed")
            if not signer.verify(resp.msg):
                conn.handle_protocol_error("bad signature on the final SESSION_SETUP response")
                raise ConnectionLostError("bad signature on the final SESSION_SETUP response")
        self.signing_required = neg.server_requires_signing or self.config.require_signing
        encrypt = bool(flags & SessionFlags.SMB2_SESSION_FLAG_ENCRYPT_DATA)
        encryptor = decryptor = None
        if neg.cipher is not None and keys.encryption_key and keys.decryption_key:
            encryptor = Encryptor(neg.cipher, keys.encryption_key)
            decryptor = Encryptor(neg.cipher, keys.decryption_key)
        if self.config.require_encryption:
            if encryptor is None:
                raise EncryptionUnavailableError(
                    f"encryption required but {neg.dialect.name} without a common cipher "
                    f"cannot encrypt")
            encrypt = True
        self.encrypt_data = encrypt
        security = SessionSecurity(
            session_id, signer=signer, signing_required=self.signing_required,
            encryptor=encryptor, decryptor=decryptor, encrypt_data=encrypt,
        )
        conn.security[session_id] = security
        self.channels[0].security = security

    async def reauthenticate(self) -> None:
        """Re-run SESSION_SETUP on the same SessionId ([MS-SMB2] 3.2.4.2.3),
        e.g. after STATUS_NETWORK_SESSION_EXPIRED."""
        generation = self._generation
        async with self._reauth_lock:
            if self._generation != generation:
                return  # another task re-authenticated while we waited
            await self._authenticate()

    # -- requests ------------------------------------------------------------

    def _pick_channel(self) -> Channel:
        return self.channels[0]

    def _should_encrypt(self, encrypt: bool | None) -> bool:
        if encrypt is None:
            return self.encrypt_data
        if encrypt and not self.encrypt_data:
            sec = self.channels[0].security
            if sec is None or sec.encryptor is None:
                raise EncryptionUnavailableError(
                    "encryption required but not available on this session")
        return encrypt

    def _should_sign(self, command: Command, encrypted: bool, channel: Channel) -> bool:
        sec = channel.security
        if encrypted or sec is None or sec.signer is None:
            return False
        if sec.signing_required:
            return True
        # [MS-SMB2] 3.2.4.1.1: 3.1.1 TREE_CONNECT is always signed.
        return command == Command.SMB2_TREE_CONNECT and self.dialect == Dialect.SMB3_1_1

    @staticmethod
    def _status_ok(status: int, ok_statuses: Collection[int]) -> bool:
        # Success and informational statuses (STATUS_NOTIFY_ENUM_DIR...)
        # pass; warnings (STATUS_BUFFER_OVERFLOW...) only when asked for.
        return status in ok_statuses or is_success(status)

    async def _send(self, messages: Sequence[Message], *, tree_id: int, related: bool,
                    payload_sizes: Sequence[int] | None, encrypt: bool | None,
                    tree: TreeRef | None = None, wait: bool = True) -> list[Response]:
        """Send and wait, through reconnects when the session has them.

        A request whose connection is lost waits for the supervisor to
        re-establish the session, then goes again with the replay flag, the
        tree's new TreeId and the FileId its open was reclaimed with
        (:meth:`_for_replay`). Its responses say ``replayed``: a
        non-idempotent caller (rename, delete, mkdir) then reconciles an
        error with the server's state instead of reporting it.

        ``wait=False``: not through a reconnect; a lost (or not yet mended)
        connection raises ConnectionLostError at once (a CLOSE, which the
        open defers to after the reconnect instead of holding its caller,
        perhaps an unmount, for the outage).
        """
        reauthenticated = False
        replay = False
        replays = 0
        inside_reconnect = _REESTABLISHING.get()
        while True:
            if self._logged_off:
                raise ConnectionLostError("session is logged off")
            if self.config.reconnect and not inside_reconnect:
                if not wait and self.state != CONNECTED:
                    raise ConnectionLostError(f"not connected ({self.state})")
                await self._reconnector.wait_connected()
            generation = self._reconnector.generation
            channel = self._pick_channel()
            conn = channel.connection
            if replay or generation:
                # Built before a reconnect (or sent again after one): its
                # FileId may be one the server has since given back anew.
                messages = self._for_replay(messages, tree)
            enc = self._should_encrypt(encrypt)
            sign = self._should_sign(messages[0].COMMAND, enc, channel)
            try:
                responses = await conn.transact(
                    messages, session_id=self.session_id,
                    tree_id=tree.tree_id if tree is not None else tree_id, related=related,
                    payload_sizes=payload_sizes, sign=sign, encrypt=enc,
                    replay=replay and _replay_flag_wanted(messages[0]),
                )
            except ConnectionLostError as e:
                if (not self.config.reconnect or inside_reconnect or not self._established
                        or self._logged_off or not wait):
                    if conn is self.connection and self.config.reconnect:
                        self._reconnector.connection_lost(generation, e)
                    raise
                if conn is self.connection:
                    self._reconnector.connection_lost(generation, e)
                replays += 1
                if replays > _MAX_REPLAYS:
                    # The same request has now taken down one fresh connection
                    # after another (a request the server chokes on, or one
                    # it never answers): an error, not an endless loop.
                    raise
                log.debug("%s lost with its connection (%s): replaying after the reconnect",
                          messages[0].COMMAND.name, e)
                replay = True
                continue
            if not reauthenticated and any(r.status == _EXPIRED for r in responses):
                log.info("session %#x expired: re-authenticating", self.session_id)
                reauthenticated = True
                await self.reauthenticate()
                continue
            if replay:
                for r in responses:
                    r.replayed = True
            return responses

    def _for_replay(self, messages: Sequence[Message], tree: TreeRef | None) -> list[Message]:
        """``messages`` with each FileId that names a reclaimed open replaced
        by the one the server gave it back with (a lost open raises
        :class:`HandleLostError`)."""
        out: list[Message] = []
        owner = tree if isinstance(tree, _Remapper) else None
        for m in messages:
            new = owner.remap_file_id(m) if owner is not None else None
            out.append(m if new is None else new)
        return out

    async def request(
        self,
        message: Message,
        *,
        tree_id: int = 0,
        payload_size: int = 0,
        ok_statuses: Collection[int] = frozenset(),
        encrypt: bool | None = None,
        tree: TreeRef | None = None,
        wait: bool = True,
    ) -> Response:
        """Send one request and wait for its final response.

        ``payload_size`` sets the CreditCharge (READ length, WRITE length,
        IOCTL/QUERY_DIRECTORY output size...). Raises :class:`SMBError` for
        an error or warning status not in ``ok_statuses``;
        :class:`ConnectionLostError` if the connection dies. A trio cancel
        sends SMB2 CANCEL. ``encrypt=None`` follows the session; Tree passes
        True for shares with SMB2_SHAREFLAG_ENCRYPT_DATA. ``tree`` (instead
        of ``tree_id``): the tree whose current TreeId and reclaimed FileIds a
        replay after a reconnect uses.
        """
        [resp] = await self._send([message], tree_id=tree_id, related=False,
                                  payload_sizes=[payload_size], encrypt=encrypt, tree=tree,
                                  wait=wait)
        if not self._status_ok(resp.status, ok_statuses):
            raise SMBError(resp.status, message.COMMAND, replayed=resp.replayed)
        return resp

    async def compound(
        self,
        messages: Sequence[Message],
        *,
        tree_id: int = 0,
        related: bool = True,
        ok_statuses: Collection[int] = frozenset(),
        encrypt: bool | None = None,
        payload_sizes: Sequence[int] | None = None,
        tree: TreeRef | None = None,
    ) -> list[Response | SMBError]:
        """Send ``messages`` as one compound chain in one transport send
        (related: each after the first uses the previous FileId) and return
        one result per message, an :class:`SMBError` in place of a failed
        one ([MS-SMB2] 3.2.4.1.4)."""
        if not messages:
            return []
        responses = await self._send(messages, tree_id=tree_id, related=related,
                                     payload_sizes=payload_sizes, encrypt=encrypt, tree=tree)
        out: list[Response | SMBError] = []
        for m, r in zip(messages, responses, strict=True):
            out.append(r if self._status_ok(r.status, ok_statuses)
                       else SMBError(r.status, m.COMMAND, replayed=r.replayed))
        return out

    # -- teardown ------------------------------------------------------------

    async def logoff(self) -> None:
        """LOGOFF, best effort and bounded: the connection is closed right
        after anyway."""
        if self._logged_off or not self.connection.alive or self.state != CONNECTED:
            self._logged_off = True
            self._reconnector.give_up("logged off")
            return
        try:
            with trio.move_on_after(min(5.0, self.config.request_timeout)):
                await self.request(LogoffRequest())
        except (SMBError, ConnectionLostError, ProtocolViolation) as e:
            log.debug("LOGOFF failed: %s", e)
        finally:
            self._logged_off = True
            self._reconnector.give_up("logged off")
            for ch in self.channels:
                ch.connection.security.pop(self.session_id, None)
