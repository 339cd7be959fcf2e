"""Entry point of the engine: :func:`open_session`.

An async context manager rather than a class: the connection's receiver
and keepalive tasks, and every task a session spawns (lease-break
acknowledgers...), need a nursery whose lifetime is exactly the session's,
and ``async with open_session(cfg) as session`` gives that structurally.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from smbfs.client.config import ClientConfig
from smbfs.client.connection import Connection
from smbfs.client.errors import SMBTimeoutError, single_error
from smbfs.client.session import Session
from smbfs.client.transport import FrameTransport

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_session(config: ClientConfig, *,
                       transport: FrameTransport | None = None) -> AsyncIterator[Session]:
    """Connect, negotiate, authenticate; on exit log off and close.

    ``transport`` replaces the TCP connection to ``config.host`` (tests run
    the engine against ``smbfs.testing.ScriptedServer`` this way).

    Errors from inside come out as themselves (SMBError,
    ConnectionLostError...), not wrapped in an ExceptionGroup: the
    background tasks never raise (they turn every failure into a dropped
    connection), so the body's exception is the only one there can be.
    """
    try:
        async with trio.open_nursery() as nursery:
            conns: list[Connection] = []
            try:
                with trio.move_on_after(config.first_contact_timeout) as first_contact:
                    conn = await Connection.connect(config, nursery, transport=transport)
                    conns.append(conn)
                    await conn.negotiate()
                    session = await Session.setup(conn, config, nursery)
                if first_contact.cancelled_caught:
                    raise SMBTimeoutError(
                        f"{config.host}:{config.port}: no answer within "
                        f"{config.first_contact_timeout:.0f}s (connect, NEGOTIATE and "
                        f"SESSION_SETUP)")
                try:
                    yield session
                finally:
                    with trio.CancelScope(shield=True):
                        await session.logoff()
                    conns.append(session.connection)  # a reconnect's, if any
            finally:
                for c in conns:
                    c.close()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise single_error(group)  # noqa: B904 - the group is its __cause__
