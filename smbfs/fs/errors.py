"""Errors of the FUSE layer and the one place NTSTATUS becomes errno."""

from __future__ import annotations

import errno
import logging

import pyfuse3

from smbfs.client.errors import (
    ConnectionLostError,
    FeatureUnavailableError,
    HandleClosedError,
    HandleLostError,
    LocalError,
    ServerUnreachableError,
    SMBError,
)

# API vocabulary of the engine: SMBError.status is an NTSTATUS code, and the
# one NTSTATUS -> errno table is kept with the codes it maps (sans-IO data).
from smbfs.proto.ntstatus import errno_for_status

log = logging.getLogger(__name__)


class MountError(Exception):
    """The mount cannot start for a local reason (mount point missing or not
    a directory, subdirectory missing on the share): one line for the CLI."""


class NoAnswerError(Exception):
    """The server took the TCP connection but negotiate and session setup
    did not complete within ``ClientConfig.first_contact_timeout``: a port
    that accepts and stays silent (a wedged smbd, something else listening,
    a firewall that answers SYNs). Its own type because a timeout later on,
    with the mount up, means something else."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        super().__init__(f"{host}:{port}: the server accepted the connection but did not "
                         f"answer within {timeout:.0f} s")


def to_fuse_error(exc: BaseException, what: str = "") -> pyfuse3.FUSEError:
    """Turn an engine exception into the FUSEError the kernel gets."""
    if isinstance(exc, pyfuse3.FUSEError):
        return exc
    if isinstance(exc, SMBError):
        err = errno_for_status(exc.status)
        if err == errno.EIO:
            # EIO is also what unmapped statuses become: name it so the gap
            # can be filled in the table.
            log.warning("%s: %s -> EIO", what, exc.status_name)
        else:
            log.debug("%s: %s -> %s", what, exc.status_name, errno.errorcode.get(err, err))
        return pyfuse3.FUSEError(err)
    if isinstance(exc, ServerUnreachableError | HandleLostError):
        # EIO for both, as for any other lost connection: every file system
        # call documents it, and NFS soft mounts return it (nfs(5)). Linux's
        # SMB client differs: EHOSTDOWN when a soft mount gives up
        # (fs/smb/client, cifs_wait_for_server_reconnect), and for a file it
        # could not reopen the reopen's own error (cifs_reopen_file), which
        # for a read(2) on an open fd would mislead (ENOENT). Logged at
        # debug only: during an outage every operation fails this way, and
        # the engine and the mount log the outage and each lost handle once.
        log.debug("%s: %s -> EIO", what, exc)
        return pyfuse3.FUSEError(errno.EIO)
    if isinstance(exc, ConnectionLostError):
        log.error("%s: connection lost: %s", what, exc)
        return pyfuse3.FUSEError(errno.EIO)
    if isinstance(exc, LocalError):
        # Refused here, never sent: the errno says what is wrong on our side.
        if isinstance(exc, HandleClosedError):
            err = errno.EBADF
        elif isinstance(exc, FeatureUnavailableError):
            err = errno.EOPNOTSUPP
        else:
            err = errno.EIO
        log.debug("%s: %s -> %s", what, exc, errno.errorcode.get(err, err))
        return pyfuse3.FUSEError(err)
    if isinstance(exc, OSError) and exc.errno:
        return pyfuse3.FUSEError(exc.errno)
    log.exception("%s: unexpected error", what, exc_info=exc)
    return pyfuse3.FUSEError(errno.EIO)
