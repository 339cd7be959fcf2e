"""Exceptions raised by the engine.

Two families, because callers react differently to them:

* :class:`SMBError` -- the server answered, with an error NTSTATUS. The
  connection is fine; the operation failed (ENOENT, EACCES, ...).
* :class:`ConnectionLostError` -- there is no trustworthy answer: the
  transport was cut or reset, the peer stopped answering (echo or request
  timeout), or it sent something malformed or wrongly signed. The connection
  is dropped and every request in flight on it fails with this error.

:class:`SMBTimeoutError` is a *subclass* of :class:`ConnectionLostError`: a
request that gets neither a response nor an interim response within
``request_timeout`` means the peer is dead or broken, so the engine drops the
connection (freeing the credits that request held forever otherwise) and the
caller sees the same "reconnect needed" condition as for a cut.
"""

from __future__ import annotations

from smbfs.proto.constants import Command
from smbfs.proto.ntstatus import status_name as _status_name


class SMBError(Exception):
    """The server failed a request with ``status`` (an NTSTATUS value)."""

    def __init__(self, status: int, command: Command | None = None, message: str = "") -> None:
        self.status = status
        self.status_name = _status_name(status)
        self.command = command
        text = f"{self.status_name} (0x{status:08X})"
        if command is not None:
            text += f" on {command.name}"
        if message:
            text += f": {message}"
        super().__init__(text)


class AuthenticationError(SMBError):
    """Session setup failed: bad password, unknown user, no Kerberos ticket,
    or a server answer that cannot authenticate the session."""


class ConnectionLostError(Exception):
    """The connection is gone (cut, reset, dead peer, malformed or forged input)."""


class SMBTimeoutError(ConnectionLostError):
    """No response and no interim response within the request timeout, or no
    echo response within the echo interval: the peer is treated as dead."""


class NegotiateError(ConnectionLostError):
    """Negotiation failed (no common dialect, validate-negotiate mismatch,
    a required feature the server lacks): the connection cannot be used."""
