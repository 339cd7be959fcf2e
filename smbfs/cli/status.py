"""The mount's one-line state: systemd's status line (``STATUS=`` through
sd_notify, shown by ``systemctl status smbfs@NAME``) and a log line at every
change of the session's link to the server.

Why a task of its own: the engine calls :meth:`MountStatus.changed` from its
own task (the reconnect supervisor), where nothing may block, and
``sd_notify`` is a blocking ``sendto`` (bounded, but still a wait). The
callback only records the newest line and wakes :meth:`MountStatus.run`,
which sends it from a worker thread. Only the newest line matters, so lines
that pile up behind a slow supervisor are coalesced, never queued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import trio

from smbfs.proto.constants import Dialect
from smbfs.sdnotify import notify

log = logging.getLogger(__name__)

# Session.state values (smbfs.client.session).
CONNECTED = "connected"
RECONNECTING = "reconnecting"
FAILED = "failed"


class ReconnectStats(Protocol):
    reconnects: int
    handles_lost: int


class WatchedSession(Protocol):
    """What is read of the engine's Session (smbfs.client.session)."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def stats(self) -> ReconnectStats: ...

    def on_state_change(self, fn: Callable[[str, str], None]) -> None: ...


def dialect_name(dialect: Dialect) -> str:
    """``SMB3_1_1`` -> ``3.1.1``, as users and ``smbstatus`` write it."""
    return dialect.name.removeprefix("SMB").replace("_", ".")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def connected_line(unc: str, dialect: Dialect, reconnects: int = 0,
                   handles_lost: int = 0) -> str:
    line = f"Connected to {unc} (SMB {dialect_name(dialect)}"
    if reconnects:
        line += (f"; reconnected {_plural(reconnects, 'time')}, "
                 f"{_plural(handles_lost, 'handle')} lost")
    return line + ")"


def reconnecting_line(unc: str, since: str, reason: str) -> str:
    return f"Reconnecting to {unc} since {since} ({reason})"


def failed_line(unc: str, since: str, reason: str) -> str:
    return f"Disconnected from {unc} since {since} ({reason})"


def _one_line(text: str) -> str:
    # A newline would end the STATUS= variable of the datagram.
    return " ".join(text.split()) or "no reason given"


class MountStatus:
    """The status of one mount of ``unc`` (``//server/share``)."""

    def __init__(self, unc: str, *, send: Callable[[str], object] = notify) -> None:
        self.unc = unc
        self._send = send
        self._session: WatchedSession | None = None
        self.line = f"Connecting to {unc}"
        self._pending: str | None = None
        self._wake = trio.Event()

    def attach(self, session: WatchedSession) -> None:
        """Follow ``session`` (serve()'s ``on_session``)."""
        self._session = session
        self.line = connected_line(self.unc, session.dialect)
        session.on_state_change(self.changed)

    def changed(self, state: str, detail: str) -> None:
        """The engine's state callback: never blocks."""
        session = self._session
        now = time.strftime("%H:%M:%S")
        reason = _one_line(detail)
        if state == CONNECTED and session is not None:
            stats = session.stats
            line = connected_line(self.unc, session.dialect, stats.reconnects,
                                  stats.handles_lost)
            log.warning("%s", line)
        elif state == RECONNECTING:
            line = reconnecting_line(self.unc, now, reason)
            log.warning("%s", line)
        else:
            line = failed_line(self.unc, now, reason)
            log.error("%s", line)
        self.line = line
        self._pending = line
        self._wake.set()

    async def run(self) -> None:
        """Send each new line as ``STATUS=`` (until cancelled)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            line, self._pending = self._pending, None
            if line is not None:
                await trio.to_thread.run_sync(self._send, f"STATUS={line}")
