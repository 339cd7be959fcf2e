"""A Tree on one of the test Samba servers, for tests above the raw
session layer (tests/client/test_files_*, tests/proto/*_samba).

The generous request timeout is for a loaded 2-core machine, not for Samba:
a test that fails should fail on its own assertion, not on a timeout.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from smbfs.client import ClientConfig, open_session
from smbfs.client.tree import Tree


def config_for(server: Any, **kw: Any) -> ClientConfig:
    """A ClientConfig logging in as the server's test user; ``kw`` overrides."""
    opts: dict[str, Any] = dict(host=server.host, port=server.port, username=server.user.name,
                                password=server.user.password, request_timeout=30,
                                echo_interval=30)
    opts.update(kw)
    return ClientConfig(**opts)


@asynccontextmanager
async def tree_on(server: Any, share: str = "share", **kw: Any) -> AsyncIterator[Tree]:
    """A session and a tree connect to ``share``, both closed on exit."""
    async with open_session(config_for(server, **kw)) as session, \
            await Tree.connect(session, share) as tree:
        yield tree


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the shared server) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
