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

import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from smbfs.client.connection import Response
from smbfs.client.errors import SMBError
from smbfs.client.open import Open
from smbfs.client.session import Session
from smbfs.proto.message import Message
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
        log.debug("tree connect %s: id %#x type %s flags %#x caps %#x", unc, tree.tree_id,
                  body.share_type, body.share_flags, body.capabilities)
        return tree

    async def disconnect(self) -> None:
        """TREE_DISCONNECT; safe to call twice and after the connection died."""
        if not self.connected:
            return
        self.connected = False
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
                      ok_statuses: Iterable[int] = frozenset()) -> Response:
        """One request on this tree (TreeId and sealing filled in)."""
        self.requests_sent += 1
        self.round_trips += 1
        return await self.session.request(
            message, tree_id=self.tree_id, payload_size=payload_size,
            ok_statuses=frozenset(ok_statuses), encrypt=self._encrypt,
        )

    async def compound(self, messages: Sequence[Message], *, related: bool = True,
                       ok_statuses: Iterable[int] = frozenset()) -> list[Response | SMBError]:
        """A compound chain sent in one transport write: one round trip."""
        self.requests_sent += len(messages)
        self.round_trips += 1
        return await self.session.compound(
            list(messages), tree_id=self.tree_id, related=related,
            ok_statuses=frozenset(ok_statuses), encrypt=self._encrypt,
        )

    # -------------------------------------------------------------- opens

    async def create(self, path: str, **kwargs: Any) -> Open:
        """Open or create ``path``; see :meth:`smbfs.client.open.Open.create`."""
        return await Open.create(self, path, **kwargs)

    def __repr__(self) -> str:
        return f"<Tree {self.share_name!r} id={self.tree_id:#x}>"
