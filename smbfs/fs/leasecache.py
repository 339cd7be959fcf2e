"""What the file leases of one mount let it cache, and what happens when
the server takes a lease back.

Every file open asks for a read/write/handle lease under the file's own
key (:meth:`smbfs.fs.handles.HandleTable.lease_key_for`). While our opens
of a file hold:

* **R** (read caching: nobody else writes the file): the kernel keeps the
  file's pages across opens (``keep_cache``, :func:`handles.keep_pages`)
  and its attributes are answered from our cache, the kernel being given a
  long attribute timeout (:data:`LEASED_ATTR_TIMEOUT`);
* **W** (write caching: nobody else has it open): writes may be cached
  (the write-behind of :mod:`smbfs.fs.writeback`, registered here as a
  flusher);
* **H** (handle caching: nobody needs our handle closed): a released
  handle is parked instead of closed for ``closetimeo`` seconds
  (:class:`handles.Parked`), so the next open of the file costs no round
  trip and keeps the lease, with all of the above, alive.

A break (:meth:`FileLeases.on_break`, a subscriber of the session's
:class:`~smbfs.client.lease.LeaseTable`, which acknowledges after it
returns) undoes what the lost bits allowed, in this order: dirty data is
written (W), the kernel drops the file's pages and attributes (R; off the
trio loop and bounded, :mod:`smbfs.fs.kernel`), parked handles are closed
(H, and on any break: nobody uses them, and the other client may be
waiting for them to go). Then the server hears the acknowledgment, and only then can the other
client's open proceed: what it sees is on the server, and what we show
afterwards is asked of the server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from smbfs.client.lease import BreakEvent
from smbfs.client.open import FileInfo
from smbfs.client.tree import Tree
from smbfs.fs.handles import HandleTable, Parked, page_sig
from smbfs.fs.inodes import InodeTable, Node
from smbfs.fs.kernel import KernelCache

# API vocabulary of the engine: lease states are the protocol's bits.
from smbfs.proto.oplock_break import LeaseState

log = logging.getLogger(__name__)

_R = int(LeaseState.SMB2_LEASE_READ_CACHING)
_H = int(LeaseState.SMB2_LEASE_HANDLE_CACHING)
_W = int(LeaseState.SMB2_LEASE_WRITE_CACHING)

# The attribute timeout the kernel is given for a file under a read lease:
# our cache is exact then, and a break or the lease's end tells the kernel
# to forget (KernelCache.drop_inode). Bounded all the same, so that a missed
# invalidation cannot pin wrong attributes for ever.
LEASED_ATTR_TIMEOUT = 300.0
# Bound on closing one parked handle (the server may be slow or gone).
CLOSE_TIMEOUT = 10.0

Flusher = Callable[[Node], Awaitable[None]]


class FileLeases:
    """The lease-driven file cache of one mount."""

    def __init__(self, tree: Tree, inodes: InodeTable, handles: HandleTable,
                 kernel: KernelCache) -> None:
        self.tree = tree
        self.inodes = inodes
        self.handles = handles
        self.kernel = kernel
        # Write out a node's cached dirty data (the write-behind registers
        # itself): called when W goes and before a parked handle closes.
        self.flushers: list[Flusher] = []
        self.breaks_handled = 0
        self.parked_closed = 0

    def start(self) -> None:
        self.tree.session.leases.subscribe(self.on_break)
        self.tree.session.on_state_change(self._session_state)

    # ------------------------------------------------------------ breaks

    async def on_break(self, event: BreakEvent) -> None:
        if event.lease_key is None:
            return  # an oplock: file opens here ask for leases only
        lost = event.old_state & ~event.new_state
        for node in self.handles.nodes_with_key(event.lease_key):
            self.breaks_handled += 1
            log.debug("lease break on %r: %#x -> %#x", node.path, event.old_state,
                      event.new_state)
            if lost & _W:
                await self.flush(node)
                if self.handles.of_node(node, writable=True) is not None:
                    # Pages dirtied through a shared mmap live in the
                    # kernel: dropping them writes them back (FUSE WRITEs
                    # served meanwhile), so they are on the server before
                    # the acknowledgment too.
                    await self.kernel.drop_inode(node.ino)
            if lost & _R:
                self._read_lease_gone(node)
                # Before the acknowledgment: the other client's write
                # may follow it at once.
                await self.kernel.drop_inode(node.ino)
            # Any break means another client wants the file: parked handles
            # (unused by definition) are closed rather than kept, as
            # cifs.ko does; a delete by the other client (Samba 4.17 breaks
            # only W for it) would otherwise stay pending until closetimeo.
            await self.close_parked(node)
            # Another client is about to change the file: what the close
            # told us is asked again at the next stat.
            self.inodes.invalidate(node)
            if not self.handles.opens_of(node):
                await self.kernel.drop_inode(node.ino, attr_only=True)

    async def flush(self, node: Node) -> None:
        for fn in self.flushers:
            await fn(node)

    def _read_lease_gone(self, node: Node) -> None:
        node.read_epoch += 1
        node.page_sig = None
        self.inodes.invalidate(node)

    def _session_state(self, old: str, new: str) -> None:
        """Back from a reconnect: leases may have been granted anew at a
        lower state, or a file reopened by name may have changed meanwhile,
        and no break told us. Everything cached under a lease is asked of
        the server again."""
        if new != "connected" or old == "connected":
            return
        nodes = set(self.handles.files_by_node()) | set(self.handles.parked)
        for node in nodes:
            self._read_lease_gone(node)
            self.kernel.drop_inode_soon(node.ino, attr_only=False)

    # ------------------------------------------------------ lease's end

    def last_close(self, node: Node) -> None:
        """Our last open of ``node`` is closed: the lease is gone without a
        break, and the kernel's long attribute timeout must go with it
        (the cached attributes fall back to their actimeo expiry)."""
        if self.handles.opens_of(node):
            return
        node.read_epoch += 1
        self.kernel.drop_inode_soon(node.ino, attr_only=True)

    def closed(self, node: Node, info: FileInfo | None) -> None:
        """Bookkeeping after a real close of one of ``node``'s opens, with
        the attributes the close returned."""
        if info is not None and node.pages_epoch == node.read_epoch:
            # A read lease covered the file since the pages were cached:
            # they are what the server holds now.
            node.page_sig = page_sig(info)
        elif info is None or page_sig(info) != node.page_sig:
            node.page_sig = None
        self.inodes.closed(node)
        self.last_close(node)

    # ---------------------------------------------------- deferred close

    async def close_parked(self, node: Node | None = None, *, below: str | None = None) -> None:
        """Close now the parked handles of ``node`` (or below ``below``):
        before a name change that a handle would stand in the way of, or
        when the server takes handle caching back."""
        for p in self.handles.take_parked(node, below=below):
            await self._close(p)

    async def _close(self, p: Parked) -> None:
        info = None
        try:
            await self.flush(p.node)
            with trio.move_on_after(CLOSE_TIMEOUT) as scope:
                scope.shield = True
                since = self.inodes.stamp()
                info = await p.open.close()
                if info is not None and p.node.info is not None:
                    info.file_id = p.node.server_id
                    info.nlink = p.node.info.nlink
                    self.inodes.set_info(p.node, info, since)
        except Exception as e:
            log.debug("deferred close of %r: %s", p.node.path, e)
        finally:
            self.parked_closed += 1
            self.closed(p.node, info)

    async def run(self) -> None:
        """Close parked handles at their deadlines (a task of the mount)."""
        while True:
            changed = self.handles.parked_changed
            with trio.move_on_at(self.handles.next_deadline()):
                await changed.wait()
                continue
            for p in self.handles.take_parked(expired_at=trio.current_time()):
                await self._close(p)
