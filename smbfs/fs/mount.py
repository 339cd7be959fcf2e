"""Entry point of the FUSE layer: :func:`serve` mounts one share and serves
it until unmounted or cancelled. The CLI (``mount.smbfs``) calls it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from smbfs.client.config import ClientConfig
from smbfs.fs.errors import MountError
from smbfs.fs.options import FsOptions

log = logging.getLogger(__name__)

__all__ = ["MountError", "serve"]


async def serve(client_config: ClientConfig, share: str, subdir: str, mountpoint: str,
                options: FsOptions, *, on_ready: Callable[[], None] | None = None) -> None:
    """Connect, mount ``share`` (rooted at ``subdir``) on ``mountpoint``, call
    ``on_ready()`` once the mount works, serve until unmounted or cancelled,
    then close every handle, disconnect and log off.

    Before ``on_ready`` failures raise the engine's exceptions
    (AuthenticationError, SMBError, ConnectionLostError, OSError) or
    :class:`MountError`.
    """
    raise MountError("not implemented yet")
