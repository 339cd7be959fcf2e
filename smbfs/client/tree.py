"""A tree connect: one share of the server on one session ([MS-SMB2] 3.2.4.2.4,
3.2.5.5, 3.2.4.22).

The tree is the pipe every file request goes through: it stamps its TreeId
and decides whether the request must be sealed (a share with
SMB2_SHAREFLAG_ENCRYPT_DATA is encrypted whatever the session says,
3.2.4.1.8), and it opens files (:meth:`Tree.create`). Nothing more: the
operations on paths (stat, rename, delete, EAs...) live above it in
:mod:`smbfs.client.paths`, so the import graph points one way
(paths -> tree -> open -> session -> connection).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from smbfs.client.connection import Response
from smbfs.client.errors import HandleLostError, SMBError
from smbfs.client.open import Open
from smbfs.client.reconnect import ReconnectStats
from smbfs.client.session import Session
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.tree import (
    ShareCapabilities,
    ShareFlags,
    ShareType,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
)

log = logging.getLogger(__name__)


class Tree:
    """A connected share. Create with ``await Tree.connect(session, share)``.

    Counters ``requests_sent`` and ``round_trips`` count what went to the
    server through this tree (a compound is one round trip however many
    requests it chains): the tests prove "stat in one round trip" with them.
    """

    def __init__(self, session: Session, share_name: str, tree_id: int,
                 response: TreeConnectResponse) -> None:
        self.session = session
        self.share_name = share_name
        self.tree_id = tree_id
        self.share_type = response.share_type
        self.share_flags = response.share_flags
        self.capabilities = response.capabilities
        self.maximal_access = response.maximal_access
        self.connected = True
        self.requests_sent = 0
        self.round_trips = 0
        self.unc = ""
        # The registry a reconnect works from: every open handle, and every
        # FileId each ever had (a request sent under an old one is replayed
        # under the current one).
        self.opens: set[Open] = set()
        self._by_file_id: dict[FileId, Open] = {}
        self._ids_of: dict[Open, list[FileId]] = {}  # so a close costs O(1), not O(opens)
        # Closed by their users while the connection was down: reclaimed
        # after the reconnect only to be closed (durable ones; the others
        # died with the old session).
        self._closing: list[Open] = []

    # ---------------------------------------------------------- lifecycle

    @classmethod
    async def connect(cls, session: Session, share_name: str) -> Tree:
        """TREE_CONNECT to ``share_name`` (a bare name like ``"share"`` or a
        full ``\\\\server\\share`` UNC path)."""
        if share_name.startswith(("\\\\", "//")):
            unc = share_name.replace("/", "\\")
            name = unc.rstrip("\\").rsplit("\\", 1)[-1]
        else:
            name = share_name.strip("\\/")
            unc = f"\\\\{session.config.target_name}\\{name}"
        resp = await session.request(TreeConnectRequest(path=unc))
        body = resp.decode(TreeConnectResponse)
        tree = cls(session, name, resp.header.tree_id, body)
        tree.unc = unc
        session.trees.append(tree)
        log.debug("tree connect %s: id %#x type %s flags %#x caps %#x", unc, tree.tree_id,
                  body.share_type, body.share_flags, body.capabilities)
        return tree

    # ---------------------------------------------------------- reconnect

    async def reconnect(self) -> None:
        """TREE_CONNECT again on the re-established session: a new TreeId
        for the same share (requests read it at every attempt)."""
        resp = await self.session.request(TreeConnectRequest(path=self.unc))
        body = resp.decode(TreeConnectResponse)
        old, self.tree_id = self.tree_id, resp.header.tree_id
        self.share_flags = body.share_flags
        self.capabilities = body.capabilities
        self.maximal_access = body.maximal_access
        log.debug("tree %s reconnected: id %#x -> %#x", self.unc, old, self.tree_id)

    async def reclaim_opens(self, stats: ReconnectStats) -> None:
        """Every open of this tree back, before any replayed request needs
        one: durable handles reclaimed, the rest reopened by name.

        A durable handle survives the loss of the *connection*: the server
        process notices it and keeps the open for the durable timeout. It
        does not survive the death of that process (an smbd child killed
        with SIGKILL, a server restart): Samba then refuses the reclaim
        (4.22 logs NT_STATUS_FATAL_APP_EXIT, "the process holding it
        died"; the client sees STATUS_OBJECT_NAME_NOT_FOUND), and the file
        is reopened by name, kept only if it is provably the same file."""
        closing, self._closing = self._closing, []
        for op in closing:
            await op.close_reclaimed()
        for op in list(self.opens):
            status = await op.reclaim_durable(stats)
            if status is True:
                continue
            if status:
                log.info("%r: durable reclaim refused (%s); reopening by name", op.path,
                         NTStatus(status).name if status in NTStatus._value2member_map_
                         else hex(status))
            await op.reopen_by_name(stats)

    def defer_close(self, op: Open) -> None:
        """``op`` was closed while the connection was down (see reclaim_opens)."""
        self.forget_open(op)
        if op.durable:
            self._closing.append(op)

    def register_open(self, op: Open) -> None:
        self.opens.add(op)
        self._by_file_id[op.file_id] = op
        self._ids_of.setdefault(op, []).append(op.file_id)

    def forget_open(self, op: Open) -> None:
        self.opens.discard(op)
        for fid in self._ids_of.pop(op, ()):
            if self._by_file_id.get(fid) is op:
                del self._by_file_id[fid]

    def remap_file_id(self, message: Message) -> Message | None:
        """``message`` under the current FileId of the open it names (None
        when it names no open of ours or the open kept its id). A request
        for a lost open raises :class:`HandleLostError`."""
        fid = getattr(message, "file_id", None)
        if not isinstance(fid, FileId):
            return None
        op = self._by_file_id.get(fid)
        if op is None:
            return None
        if op.lost is not None:
            raise HandleLostError(f"{op.path!r} {op.lost}")
        if op.file_id == fid:
            return None
        return dataclasses.replace(message, file_id=op.file_id)  # type: ignore[type-var]

    def renamed(self, old: str, new: str) -> None:
        """Our own rename of ``old`` (a file, or a directory with everything
        below it) to ``new``: the opens and lease keys follow, so a reopen
        after a reconnect uses the current name and the file keeps its
        lease key ([MS-SMB2] 3.2.4.3: the key belongs to the file)."""
        old_l = old.lower()
        for op in self.opens:
            p = op.path
            if p.lower() == old_l:
                op.path = new
            elif p.lower().startswith(old_l + "\\"):
                op.path = new + p[len(old):]
        self.session.leases.renamed(self.share_name, old, new)

    async def disconnect(self) -> None:
        """TREE_DISCONNECT; safe to call twice and after the connection died."""
        if not self.connected:
            return
        self.connected = False
        if self in self.session.trees:
            self.session.trees.remove(self)
        # On a share that demands encryption, the disconnect is sealed too.
        await self.session.request(TreeDisconnectRequest(), tree_id=self.tree_id,
                                   encrypt=self._encrypt)

    async def __aenter__(self) -> Tree:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            await self.disconnect()
        except Exception as e:  # the session may be gone already
            log.debug("tree disconnect on exit failed: %s", e)

    # -------------------------------------------------------- share facts

    @property
    def is_disk(self) -> bool:
        return self.share_type == ShareType.SMB2_SHARE_TYPE_DISK

    @property
    def is_pipe(self) -> bool:
        return self.share_type == ShareType.SMB2_SHARE_TYPE_PIPE

    @property
    def encrypt_data(self) -> bool:
        return bool(self.share_flags & ShareFlags.SMB2_SHAREFLAG_ENCRYPT_DATA)

    @property
    def continuously_available(self) -> bool:
        return bool(self.capabilities & ShareCapabilities.SMB2_SHARE_CAP_CONTINUOUS_AVAILABILITY)

    @property
    def _encrypt(self) -> bool | None:
        # None: let the session decide (it seals everything when it must).
        return True if self.encrypt_data else None

    # ----------------------------------------------------------- requests

    async def request(self, message: Message, *, payload_size: int = 0,
                      ok_statuses: Iterable[int] = frozenset(), wait: bool = True) -> Response:
        """One request on this tree (TreeId and sealing filled in);
        ``wait=False``: fail at once instead of waiting out a reconnect."""
        self.requests_sent += 1
        self.round_trips += 1
        return await self.session.request(
            message, payload_size=payload_size,
            ok_statuses=frozenset(ok_statuses), encrypt=self._encrypt, tree=self, wait=wait,
        )

    async def compound(self, messages: Sequence[Message], *, related: bool = True,
                       ok_statuses: Iterable[int] = frozenset(),
                       payload_sizes: Sequence[int] | None = None) -> list[Response | SMBError]:
        """A compound chain sent in one transport write: one round trip.
        ``payload_sizes``: per message, the bytes it moves (a WRITE's data,
        a READ's length), for its credit charge."""
        self.requests_sent += len(messages)
        self.round_trips += 1
        return await self.session.compound(
            list(messages), related=related,
            ok_statuses=frozenset(ok_statuses), encrypt=self._encrypt, tree=self,
            payload_sizes=payload_sizes,
        )

    # -------------------------------------------------------------- opens

    async def create(self, path: str, **kwargs: Any) -> Open:
        """Open or create ``path``; see :meth:`smbfs.client.open.Open.create`."""
        return await Open.create(self, path, **kwargs)

    def __repr__(self) -> str:
        return f"<Tree {self.share_name!r} id={self.tree_id:#x}>"
