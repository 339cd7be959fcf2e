"""The reconnect supervisor: one per session, when ``ClientConfig.reconnect``.

A lost connection (a cut, a reset, a dead peer found by ECHO, a malformed
or forged frame) is not the end of a session: the supervisor connects again
with a bounded exponential backoff, and the session re-establishes itself on
the new connection (NEGOTIATE, SESSION_SETUP with PreviousSessionId, tree
connects, durable handles reclaimed; :meth:`Session._reestablish`). Requests
wait at :meth:`Reconnector.wait_connected` meanwhile and are then replayed by
the session. The kernel client reopens handles lazily, on first use; smbfs
does it eagerly, so a durable handle is reclaimed before the server's
durable timeout runs out even if nobody touches it.

``hard`` waits for the server forever (a program blocked on the mount can
still be killed: FUSE requests are interruptible by SIGKILL); ``soft``, the
default as in mount.cifs, fails the waiting operations with
:class:`ServerUnreachableError` once the server has been unreachable for
``soft_timeout`` seconds, and keeps trying in the background so that the
mount comes back by itself when the server does.

Between session and connection in the import order: it knows the session
only through :class:`ReconnectHost`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from smbfs.client.config import ClientConfig
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    NegotiateError,
    ServerUnreachableError,
    SMBError,
)

log = logging.getLogger(__name__)

StateCallback = Callable[[str, str], None]

CONNECTED = "connected"
RECONNECTING = "reconnecting"
FAILED = "failed"  # logged off, or reconnect turned off: nothing more will happen


@dataclass
class ReconnectStats:
    """What a mount reports about its connection's history (the status
    command of a later issue shows these)."""

    reconnects: int = 0
    attempts: int = 0
    handles_reclaimed: int = 0  # durable handles taken back (DH2C/DHnC)
    handles_reopened: int = 0  # reopened by name, provably the same file
    handles_lost: int = 0  # neither: their users get HandleLostError
    last_reconnect_seconds: float = 0.0


class ReconnectHost(Protocol):
    config: ClientConfig

    async def _reestablish(self) -> None: ...


class Reconnector:
    """The state of a session's link to its server, and the task that mends it."""

    def __init__(self, host: ReconnectHost, config: ClientConfig) -> None:
        self._host = host
        self._config = config
        self.state = CONNECTED
        self.stats = ReconnectStats()
        self._connected = trio.Event()
        self._connected.set()
        self._lost = trio.Event()  # set while a reconnect is due
        self._lost_at = 0.0
        self._cause = ""
        self._callbacks: list[StateCallback] = []
        self._generation = 0  # bumped by every successful reconnect

    @property
    def generation(self) -> int:
        """Changes with every re-established connection: a caller that saw
        generation g fail knows a retry on g+1 is on a new connection."""
        return self._generation

    def on_state_change(self, fn: StateCallback) -> None:
        """``fn(state, detail)`` at every change; called from the
        supervisor's task (or the receiver's): it must not block."""
        self._callbacks.append(fn)

    def _set_state(self, state: str, detail: str) -> None:
        self.state = state
        for fn in list(self._callbacks):
            try:
                fn(state, detail)
            except Exception:  # a status line must never break the engine
                log.exception("state callback failed")

    # ------------------------------------------------------------- the gate

    def connection_lost(self, generation: int, exc: BaseException) -> None:
        """A connection of generation ``generation`` died: start mending it
        (once; later reports about the same connection are ignored)."""
        if generation != self._generation or self.state != CONNECTED:
            return
        self._lost_at = trio.current_time()
        self._cause = str(exc) or type(exc).__name__
        self._connected = trio.Event()
        self._lost.set()
        self._set_state(RECONNECTING, self._cause)
        log.warning("connection to %s:%d lost (%s): reconnecting", self._config.host,
                    self._config.port, self._cause)

    def give_up(self, detail: str) -> None:
        """No more reconnects (logoff, shutdown): wake every waiter with an error."""
        self._set_state(FAILED, detail)
        self._connected.set()

    async def wait_connected(self) -> None:
        """Return once the session is connected; raise if it never will be
        (soft timeout, or given up)."""
        while not self._connected.is_set():
            if self._config.hard:
                await self._connected.wait()
                continue
            deadline = self._lost_at + self._config.soft_timeout
            with trio.move_on_at(deadline):
                await self._connected.wait()
            if not self._connected.is_set():
                raise ServerUnreachableError(
                    f"{self._config.host}:{self._config.port} unreachable for "
                    f"{self._config.soft_timeout:.0f}s ({self._cause})")
        if self.state == FAILED:
            raise ConnectionLostError(f"session gone: {self._cause}")

    # ----------------------------------------------------------- the task

    async def run(self) -> None:
        """The supervisor task: sleeps until a connection is lost, then
        reconnects with a bounded exponential backoff, for ever (soft only
        bounds how long *operations* wait, not the mending)."""
        while True:
            await self._lost.wait()
            if self.state == FAILED:
                return
            backoff = self._config.reconnect_backoff_min
            while True:
                self.stats.attempts += 1
                start = trio.current_time()
                try:
                    with trio.fail_after(self._config.first_contact_timeout):
                        await self._host._reestablish()
                except (OSError, ConnectionLostError, trio.TooSlowError) as e:
                    log.info("reconnect to %s:%d failed (%s); next try in %.2fs",
                             self._config.host, self._config.port, e or type(e).__name__,
                             backoff)
                except (AuthenticationError, NegotiateError, SMBError) as e:
                    # The server is there but refuses us now (password changed,
                    # dialects changed, share gone): keep trying, an admin may
                    # fix it; say why.
                    log.error("reconnect to %s:%d refused: %s", self._config.host,
                              self._config.port, e)
                except Exception:
                    # A bug here must not take the whole mount down with the
                    # supervisor: log it and try again after the backoff.
                    log.exception("reconnect to %s:%d failed unexpectedly",
                                  self._config.host, self._config.port)
                else:
                    took = trio.current_time() - self._lost_at
                    self.stats.reconnects += 1
                    self.stats.last_reconnect_seconds = took
                    self._generation += 1
                    self._lost = trio.Event()
                    self._set_state(CONNECTED, f"reconnected after {took:.2f}s")
                    self._connected.set()
                    log.debug("reconnect attempt took %.3fs", trio.current_time() - start)
                    break
                if self.state == FAILED:
                    return
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self._config.reconnect_backoff_max)
