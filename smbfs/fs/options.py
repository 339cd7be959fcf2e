"""Mount options of the FUSE layer, named as mount.cifs names them.

The CLI parses ``-o uid=...,file_mode=...`` into :class:`FsOptions`; the
filesystem only reads it. Defaults follow mount.cifs so that users get what
they expect from ``mount -t cifs``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

CacheMode = Literal["strict", "loose", "none"]


@dataclass(slots=True)
class FsOptions:
    """How the mounted tree looks to local programs.

    ``uid``/``gid`` own every file (SMB without unix extensions has no
    per-file unix owner to show); ``forceuid``/``forcegid`` are accepted for
    mount.cifs compatibility and mean the same here. ``file_mode`` and
    ``dir_mode`` are the permission bits shown; the read-only attribute
    clears their write bits. ``actimeo`` bounds how long attributes and
    directory entries are trusted without a lease. ``closetimeo``: how long a
    released file handle is kept open while its lease caches handles
    (deferred close; cifs.ko's name and default). ``rsize``/``wsize`` cap
    the engine's chunk sizes (None: what the server negotiated).
    ``fsname`` is the source shown by ``mount`` and ``df`` ("//server/share").
    """

    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)
    forceuid: bool = False
    forcegid: bool = False
    file_mode: int = 0o755
    dir_mode: int = 0o755
    read_only: bool = False
    cache: CacheMode = "strict"
    actimeo: float = 1.0
    closetimeo: float = 5.0
    noserverino: bool = False
    # Cover directories in active use with a directory lease or
    # CHANGE_NOTIFY (smbfs.fs.dircache). Off until the whole suite passes
    # with it: changes made on the server's own disk are seen by neither.
    dircache: bool = False
    allow_other: bool = False
    rsize: int | None = None
    wsize: int | None = None
    fsname: str = "smbfs"
    debug: bool = False
