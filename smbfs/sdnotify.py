"""systemd's readiness protocol (sd_notify) without libsystemd.

A ``Type=notify`` service tells systemd it is ready by sending the datagram
``READY=1`` to the unix socket named in ``$NOTIFY_SOCKET``; ``STOPPING=1``,
``STATUS=...`` and ``MAINPID=...`` follow the same path (systemd's
sd_notify(3) documents the variables). The protocol is one ``sendto`` per
message, so it is written here rather than pulling in a C binding.

A name starting with ``@`` is in Linux's abstract namespace: the ``@`` stands
for a leading NUL byte. Outside systemd (no ``$NOTIFY_SOCKET``) every call is
a cheap no-op, so callers need not check whether they run under systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

# A unix datagram socket whose reader is slow blocks the sender once its
# queue (net.unix.max_dgram_qlen, 10 by default) is full; a hung supervisor
# must not hang the mount, so a send waits at most this long.
SEND_TIMEOUT = 2.0

__all__ = ["notify", "socket_address"]


def socket_address(name: str | None = None) -> str | bytes | None:
    """The address to ``sendto`` for ``$NOTIFY_SOCKET`` (or ``name``), or None.

    Only absolute paths and abstract names are valid: systemd never hands out
    anything else, and a relative path would depend on the daemon's cwd.
    """
    if name is None:
        name = os.environ.get("NOTIFY_SOCKET")
    if not name:
        return None
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    log.debug("NOTIFY_SOCKET %r is neither a path nor an abstract name: ignored", name)
    return None


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STATUS=mounted\\nREADY=1"``).

    Returns True if a datagram was sent, False when not running under a
    notify-aware supervisor or when sending failed. Failures are logged, never
    raised: a missing notification must not bring the mount down (systemd
    will time the unit out and say so in its journal).
    """
    addr = socket_address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(state.encode(), addr)
    except OSError as e:
        log.warning("sd_notify(%s) to %r failed: %s", state.split("\n", 1)[0], addr, e)
        return False
    return True
