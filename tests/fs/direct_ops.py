"""SmbOperations driven directly (no kernel, no mount) on a session of its
own: for tests that count round trips on the tree or call handlers in an
order a kernel would not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from smbfs.client import ClientConfig, Tree, open_session
from smbfs.devserver import PrivateSamba
from smbfs.fs.operations import SmbOperations
from smbfs.fs.options import FsOptions


@asynccontextmanager
async def direct_ops(samba: PrivateSamba, **options: Any) -> AsyncIterator[SmbOperations]:
    """Operations on ``samba``'s rw share, started, with ``options``
    (FsOptions fields; actimeo 60 unless given); every handle closed and the
    tree disconnected at the end."""
    cfg = ClientConfig(host=samba.host, port=samba.port, username=samba.user.name,
                       password=samba.user.password)
    async with open_session(cfg) as session:
        tree = await Tree.connect(session, samba.shares.rw)
        o = SmbOperations(tree, "", FsOptions(**{"actimeo": 60, **options}))
        await o.start()
        try:
            yield o
        finally:
            await o.close_all()
            await tree.disconnect()
