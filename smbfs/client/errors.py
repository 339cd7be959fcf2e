"""Exceptions raised by the engine.

Three families, because callers react differently to them:

* :class:`SMBError` -- the server answered, with an error NTSTATUS. The
  connection is fine; the operation failed (ENOENT, EACCES, ...).
* :class:`ConnectionLostError` -- there is no trustworthy answer: the
  transport was cut or reset, the peer stopped answering (echo or request
  timeout), or it sent something malformed or wrongly signed. The connection
  is dropped and every request in flight on it fails with this error.
* :class:`LocalError` -- the server was never asked: this side refused the
  operation (a handle we already closed, Kerberos or encryption this
  installation or this session cannot provide). Reporting these as invented
  NTSTATUS values would blame the server for our own state; they get their
  own types and errnos instead (EBADF, EOPNOTSUPP).

:class:`SMBTimeoutError` is a *subclass* of :class:`ConnectionLostError`: a
request that gets neither a response nor an interim response within
``request_timeout`` means the peer is dead or broken, so the engine drops the
connection (freeing the credits that request held forever otherwise) and the
caller sees the same condition as for a cut: the connection is gone (there is
no automatic reconnect yet).
"""

from __future__ import annotations

import trio

from smbfs.proto.constants import Command
from smbfs.proto.ntstatus import status_name as _status_name


class SMBError(Exception):
    """The server failed a request with ``status`` (an NTSTATUS value)."""

    def __init__(self, status: int, command: Command | None = None, message: str = "",
                 *, replayed: bool = False) -> None:
        self.status = status
        # The answer to a request sent again after a reconnect: the lost
        # first attempt may have done the work already (see Session._send).
        self.replayed = replayed
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


class ServerUnreachableError(ConnectionLostError):
    """A ``soft`` session gave up: the server stayed unreachable (no
    connection could be re-established) for ``ClientConfig.soft_timeout``."""


class HandleLostError(Exception):
    """After a reconnect the server no longer had this handle and it could
    not be reopened as provably the same file (deleted or replaced by
    another client, or the server refused): every later use of this one
    :class:`~smbfs.client.open.Open` fails with this error, the others
    carry on. Neither a server answer nor a local misuse, hence its own type."""


class LocalError(Exception):
    """The operation was refused on this side, without asking the server."""


class HandleClosedError(LocalError):
    """A request on an :class:`~smbfs.client.open.Open` this client already
    closed (its FileId may name another open by now: nothing is sent)."""


class FeatureUnavailableError(LocalError):
    """Something the caller asked for that this client cannot provide here."""


class KerberosUnavailableError(FeatureUnavailableError):
    """``auth="kerberos"`` without the python packages it needs
    (``pip install 'smbfs[kerberos]'``)."""


class EncryptionUnavailableError(FeatureUnavailableError):
    """Encryption was required but this session has no encryption key (SMB
    2.x, no common cipher, or a guest/anonymous session)."""


class SigningUnavailableError(FeatureUnavailableError):
    """Signing was asked for on a session without a signing key."""


def single_error(exc: BaseException) -> BaseException:
    """The one error an exception group from trio's nurseries stands for.

    Callers want the SMBError or ConnectionLostError a request failed with,
    as if no nursery were involved: nested groups are flattened, and
    ``trio.Cancelled`` siblings are dropped when there is a real error
    (they are its consequence: the nursery cancelled the others). When
    several real errors remain, the first is the cause and the rest its
    echoes (every chunk of a pipelined read sees the same lost connection).
    The group is kept as the error's ``__cause__`` so that nothing is lost
    from a traceback; an error that already has a cause of its own keeps
    it (it says more), and the group stays reachable as ``__context__``
    once the error is raised inside the ``except`` that caught it.
    Anything that is not a group is returned as it is.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves = _leaves(exc)
    real = [e for e in leaves if not isinstance(e, trio.Cancelled)]
    chosen = real[0] if real else (leaves[0] if leaves else exc)
    if chosen is not exc and chosen.__cause__ is None:
        chosen.__cause__ = exc
    return chosen


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        if isinstance(e, BaseExceptionGroup):
            out.extend(_leaves(e))
        else:
            out.append(e)
    return out
