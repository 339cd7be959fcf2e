"""Name changes that POSIX allows and SMB refuses as asked: the workarounds
that make unlink, rename, link and symlink behave as programs expect.

* unlink of an open file: SMB would leave the name delete-pending until
  the last close; POSIX removes the name at once. The file is moved to a
  hidden name in the mount's root and marked delete-on-close.
* rename over an open file or an empty directory (SMB's ReplaceIfExists
  replaces neither), over a read-only file, and of a directory with opens
  below it (Samba refuses with STATUS_ACCESS_DENIED): cleared or worked
  around first.
* delete of a read-only file: its directory's writer may unlink it in
  POSIX; the read-only attribute is cleared first.

Each keeps the inode table current (:class:`~smbfs.fs.inodes.InodeTable`).
"""

from __future__ import annotations

import errno
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import NoReturn

import pyfuse3
import trio

from smbfs.client import paths
from smbfs.client.errors import SMBError
from smbfs.client.tree import Tree
from smbfs.fs import posix
from smbfs.fs.handles import Gated, Handle, HandleTable
from smbfs.fs.inodes import InodeTable, Node, join

# API vocabulary of the engine: Tree.create takes these values, and
# SMBError.status is an NTSTATUS code.
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions
from smbfs.proto.ntstatus import NTStatus

log = logging.getLogger(__name__)

_S = NTStatus
_A = AccessMask
_NOT_FOUND = (_S.STATUS_OBJECT_NAME_NOT_FOUND, _S.STATUS_OBJECT_PATH_NOT_FOUND)


async def _nothing_parked(node: Node | None = None, *, below: str | None = None) -> None:
    return None


class Namespace:
    """The name changes of one mount, over its tree, inodes and handles."""

    def __init__(self, tree: Tree, inodes: InodeTable, handles: HandleTable) -> None:
        self.tree = tree
        self.inodes = inodes
        self.handles = handles
        # Close deferred-close handles now (smbfs.fs.leasecache): of one
        # node, or of everything below a directory. A parked handle would
        # keep a deleted name delete-pending, or make Samba refuse to
        # replace a file or rename a directory above it.
        self.close_parked: Callable[..., Awaitable[None]] = _nothing_parked

    def _is_open(self, node: Node | None) -> bool:
        return node is not None and bool(node.open_handles) and not node.is_dir \
            and self.handles.of_node(node) is not None

    # ---------------------------------------------------------------- unlink

    async def unlink(self, path: str) -> None:
        node = self.inodes.by_path(path)
        if node is not None:
            await self.close_parked(node)
        if node is not None and self._is_open(node):
            await self._hide(node, path)
        else:
            await self._delete(path)
            self.inodes.removed(path)

    async def _hide(self, node: Node, path: str) -> str:
        """Move an open file out of the way and mark it delete-on-close: its
        name disappears at once, our open handles keep working, the data
        goes when the last one closes (POSIX unlink of an open file)."""
        # In the mount's root, not the file's directory: that one must
        # stay removable (rmdir) while the file is still open.
        hidden = join(self.inodes.root.path, posix.HIDDEN_PREFIX + secrets.token_hex(8))
        await paths.rename(self.tree, path, hidden, replace=False)
        self.inodes.moved(path, hidden)
        await self._delete(hidden)
        self.inodes.removed(hidden)
        node.unlinked = True
        return hidden

    async def _delete(self, path: str) -> None:
        try:
            await paths.unlink(self.tree, path)
        except SMBError as e:
            if e.status != _S.STATUS_CANNOT_DELETE:
                raise
            # A read-only file: POSIX lets its directory's writer unlink it.
            await self.clear_readonly(path)
            await paths.unlink(self.tree, path)

    async def clear_readonly(self, path: str) -> None:
        async with await self.tree.create(
                path, desired_access=_A.FILE_WRITE_ATTRIBUTES | posix.ATTR_ACCESS,
                lease=False, durable=False) as op:
            info = await op.query_attributes()
            await op.set_times(attributes=posix.without_readonly(info.attributes))
        self.inodes.invalidate_path(path)

    # ---------------------------------------------------------------- rename

    async def rename(self, old: str, new: str, *, noreplace: bool) -> None:
        same = old.casefold() == new.casefold()
        src = self.inodes.by_path(old)
        if src is None or src.is_dir:
            await self.close_parked(below=old)
        target = self.inodes.by_path(new)
        if target is not None and not same:
            await self.close_parked(target)
        if not same and not noreplace:
            await self._clear_target(old, new)
        replace = not noreplace and not same
        try:
            await paths.rename(self.tree, old, new, replace=replace)
        except SMBError as e:
            below = self.handles.below(old)
            if e.status != _S.STATUS_ACCESS_DENIED or not below:
                raise
            await self._rename_with_opens_below(old, new, replace, below)
        else:
            self.inodes.moved(old, new)

    async def _rename_with_opens_below(self, old: str, new: str, replace: bool,
                                       below: list[Gated]) -> None:
        """Samba refuses to rename a directory with opens below it
        (STATUS_ACCESS_DENIED); POSIX does not care. Close our opens below,
        rename, reopen them at their new paths; their users wait at the
        gate meanwhile. Unlinked files are not closed (the close would
        delete them): then the refusal stands."""
        if any(posix.is_hidden(h.node.path.rsplit("\\", 1)[-1]) for h in below):
            raise pyfuse3.FUSEError(errno.EBUSY)
        renamed = False
        try:
            for h in below:
                await h.drain()
            for h in below:
                await h.open.close(post_query=False)
            await paths.rename(self.tree, old, new, replace=replace)
            renamed = True
            self.inodes.moved(old, new)
        finally:
            with trio.CancelScope(shield=True):
                for h in below:
                    req = h.open.request
                    try:
                        if isinstance(h, Handle):
                            # Closed above: the node's key is free again,
                            # for its new name.
                            key = self.handles.lease_key_for(h.node)
                            h.open = await self.tree.create(
                                h.node.path, desired_access=req.desired_access,
                                options=req.create_options, lease=True, durable=True,
                                lease_key=key)
                            h.lease_key = key
                            self.handles.opened_with(h.node, key)
                        else:
                            h.open = await self.tree.create(
                                h.node.path, desired_access=req.desired_access,
                                options=req.create_options, lease=False, durable=False)
                    except Exception as e:
                        log.error("reopen of %r after %s failed: %s", h.node.path,
                                  "rename" if renamed else "a failed rename", e)
                    h.reopen_gate()

    async def _clear_target(self, old: str, new: str) -> None:
        """POSIX rename replaces what SMB's ReplaceIfExists does not: an open
        file (hidden first, as unlink does) and an empty directory."""
        target = self.inodes.by_path(new)
        if target is not None and self._is_open(target):
            await self._hide(target, new)
            return
        try:
            tinfo = await paths.stat(self.tree, new)
        except SMBError as e:
            if e.status in _NOT_FOUND:
                return
            raise
        if not tinfo.is_directory:
            src = self.inodes.by_path(old)
            if src is not None and src.is_dir:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if tinfo.is_readonly:
                # SMB will not replace a read-only file; POSIX rename does.
                await self.clear_readonly(new)
            return
        src_info = await paths.stat(self.tree, old)
        if not src_info.is_directory:
            raise pyfuse3.FUSEError(errno.EISDIR)
        await paths.rmdir(self.tree, new)  # ENOTEMPTY when it is not empty
        self.inodes.removed(new)

    # ------------------------------------------------------------ link, symlink

    async def link(self, node: Node, path: str) -> None:
        """A hard link ``path`` to the file ``node``."""
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EPERM)
        await paths.link(self.tree, node.path, path)
        self.inodes.listed(path)

    async def symlink(self, path: str, target: str) -> NoReturn:
        """A Windows symbolic link reparse point ([MS-FSCC] 2.1.2.4), if the
        server takes one; Samba 4.17 without unix extensions does not, and
        the caller gets EPERM (docs/filesystem.md). Always raises: a link
        the server took is removed again, as nothing here is shown as
        S_IFLNK yet."""
        smb_target, relative = posix.symlink_target(target)
        op = await self.tree.create(
            path, desired_access=_A.FILE_WRITE_ATTRIBUTES | _A.FILE_WRITE_DATA | _A.DELETE
            | posix.ATTR_ACCESS, disposition=CreateDisposition.FILE_CREATE,
            options=CreateOptions.FILE_OPEN_REPARSE_POINT | CreateOptions.FILE_NON_DIRECTORY_FILE,
            lease=False, durable=False)
        try:
            await op.set_symbolic_link(smb_target, relative=relative)
        except SMBError as e:
            log.info("symlink %r: server refused the reparse point: %s", path, e.status_name)
            try:
                await op.set_delete_on_close()
            finally:
                await op.close(post_query=False)
            raise pyfuse3.FUSEError(errno.EPERM) from None
        await op.close(post_query=False)
        # The server took it but we cannot show reparse points as S_IFLNK
        # yet: say so rather than leave a half-made link.
        await paths.unlink(self.tree, path)
        raise pyfuse3.FUSEError(errno.EPERM)
