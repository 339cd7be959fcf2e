"""Helpers for the session-level tests (test_session, test_negotiate,
test_signing_encryption, test_faults).

They speak raw SMB2 messages through Session.request() so these tests do not
depend on the Tree/Open layer built on top.
"""

from __future__ import annotations

import hashlib
from typing import Any

from smbfs.client import Session
from smbfs.proto.close import CloseRequest
from smbfs.proto.create import (
    AccessMask,
    CreateDisposition,
    CreateOptions,
    CreateRequest,
    CreateResponse,
    ShareAccess,
)
from smbfs.proto.io import ReadRequest, ReadResponse, WriteRequest, WriteResponse
from smbfs.proto.tree import ShareFlags, TreeConnectRequest, TreeConnectResponse


class RawTree:
    def __init__(self, tree_id: int, share_flags: int) -> None:
        self.tree_id = tree_id
        self.share_flags = share_flags

    @property
    def encrypt(self) -> bool | None:
        return True if self.share_flags & ShareFlags.SMB2_SHAREFLAG_ENCRYPT_DATA else None


async def tree_connect(session: Session, share: str) -> RawTree:
    resp = await session.request(
        TreeConnectRequest(path=f"\\\\{session.config.target_name}\\{share}"))
    body = TreeConnectResponse.decode(resp.msg)
    return RawTree(resp.header.tree_id, body.share_flags)


async def write_read_close(session: Session, tree: RawTree, name: str, data: bytes) -> bytes:
    """CREATE (overwrite-if, delete on close), WRITE, READ back, CLOSE."""
    create = CreateRequest(
        name=name,
        desired_access=AccessMask.GENERIC_READ | AccessMask.GENERIC_WRITE | AccessMask.DELETE,
        share_access=ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
        create_disposition=CreateDisposition.FILE_OVERWRITE_IF,
        create_options=CreateOptions.FILE_NON_DIRECTORY_FILE | CreateOptions.FILE_DELETE_ON_CLOSE,
    )
    resp = await session.request(create, tree_id=tree.tree_id, encrypt=tree.encrypt)
    fid = CreateResponse.decode(resp.msg).file_id
    try:
        resp = await session.request(WriteRequest(file_id=fid, offset=0, data=data),
                                     tree_id=tree.tree_id, payload_size=len(data),
                                     encrypt=tree.encrypt)
        assert WriteResponse.decode(resp.msg).count == len(data)
        resp = await session.request(ReadRequest(file_id=fid, length=len(data), offset=0),
                                     tree_id=tree.tree_id, payload_size=len(data),
                                     encrypt=tree.encrypt)
        return bytes(ReadResponse.decode(resp.msg).data)
    finally:
        await session.request(CloseRequest(file_id=fid), tree_id=tree.tree_id,
                              encrypt=tree.encrypt)


def pattern(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-looking data."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def our_session(status: dict[str, Any], username: str) -> list[dict[str, Any]]:
    return [s for s in status.get("sessions", {}).values() if s.get("username") == username]


async def open_dir(session: Session, tree: RawTree, name: str = "") -> Any:
    """Open a directory (the share root by default) for CHANGE_NOTIFY."""
    create = CreateRequest(
        name=name,
        desired_access=AccessMask.FILE_LIST_DIRECTORY | AccessMask.FILE_READ_ATTRIBUTES
        | AccessMask.SYNCHRONIZE,
        share_access=ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE
        | ShareAccess.FILE_SHARE_DELETE,
        create_disposition=CreateDisposition.FILE_OPEN,
        create_options=CreateOptions.FILE_DIRECTORY_FILE,
    )
    resp = await session.request(create, tree_id=tree.tree_id, encrypt=tree.encrypt)
    return CreateResponse.decode(resp.msg).file_id
