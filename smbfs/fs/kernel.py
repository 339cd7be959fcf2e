"""Telling the kernel to drop what it caches of the mount (FUSE's reverse
invalidation): a file's attributes and pages, a directory's entries.

Why a module of its own: every cache decision that rests on a lease or a
change notification ends here when the server withdraws it, and the calls
have two traps that only this module should have to know about:

* ``pyfuse3.invalidate_inode`` blocks while the kernel writes back dirty
  pages of the inode (mmap'ed writes), and that writeback is FUSE WRITE
  requests this same process must serve; ``pyfuse3.invalidate_entry``
  blocks while a related request (a lookup, create, unlink, rename... of
  the parent) is being handled. Both run in a worker thread, never on the
  trio loop.
* An entry invalidation may therefore wait for one of our own handlers,
  which may itself be waiting for the server, which may be waiting for the
  acknowledgment of a break: a break handler must never wait for one.
  :meth:`KernelCache.forget_entry` only queues; :meth:`drop_inode` is
  awaited (a break must drop pages before it is acknowledged) but bounded.

Before the mount is live (and in tests that drive the operations without
a kernel) there is nothing to tell: every call is a no-op.
"""

from __future__ import annotations

import errno
import functools
import logging
import math

import pyfuse3
import trio

log = logging.getLogger(__name__)

# Bound on one inode invalidation (pages of a big mmap'ed file being
# written back): past it the break is acknowledged anyway, the kernel's
# pages are dropped when the call returns.
DROP_TIMEOUT = 10.0


class KernelCache:
    """The kernel side of one mount's caches."""

    def __init__(self) -> None:
        self.live = False
        self._entries_send, self._entries_recv = \
            trio.open_memory_channel[tuple[int, bytes]](math.inf)
        self._limiter = trio.CapacityLimiter(4)
        self.inodes_dropped = 0
        self.entries_dropped = 0

    async def run(self) -> None:
        """Serve queued entry invalidations while the mount is live (a task
        of the mount's nursery)."""
        async for parent, name in self._entries_recv:
            if not self.live:
                continue
            await trio.to_thread.run_sync(self._inval_entry, parent, name,
                                          limiter=self._limiter)

    def _inval_entry(self, parent: int, name: bytes) -> None:
        try:
            pyfuse3.invalidate_entry(parent, name)
            self.entries_dropped += 1
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                log.debug("invalidate_entry(%d, %r): %s", parent, name, e)

    def _inval_inode(self, ino: int, attr_only: bool) -> None:
        try:
            pyfuse3.invalidate_inode(ino, attr_only)
            self.inodes_dropped += 1
        except OSError as e:
            if e.errno != errno.ENOENT:  # the kernel forgot it already
                log.debug("invalidate_inode(%d): %s", ino, e)

    def forget_entry(self, parent_ino: int, name: str | bytes) -> None:
        """Make the kernel look ``name`` up in ``parent_ino`` again. Never
        blocks, never waits: queued for a worker thread."""
        if not self.live:
            return
        raw = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
        self._entries_send.send_nowait((parent_ino, raw))

    async def drop_inode(self, ino: int, *, attr_only: bool = False) -> None:
        """Make the kernel ask for ``ino``'s attributes (and, unless
        ``attr_only``, its pages) again; returns when it has dropped them
        or after DROP_TIMEOUT."""
        if not self.live:
            return
        with trio.move_on_after(DROP_TIMEOUT) as scope:
            await trio.to_thread.run_sync(self._inval_inode, ino, attr_only,
                                          limiter=self._limiter, abandon_on_cancel=True)
        if scope.cancelled_caught:
            log.warning("the kernel took more than %.0f s to drop inode %d's cache",
                        DROP_TIMEOUT, ino)

    def drop_inode_soon(self, ino: int, *, attr_only: bool = True) -> None:
        """Like :meth:`drop_inode`, without waiting (from code that must not
        block: a lease given up at a close)."""
        if not self.live:
            return
        trio.lowlevel.spawn_system_task(functools.partial(self.drop_inode, ino,
                                                          attr_only=attr_only))

    def close(self) -> None:
        self.live = False
        self._entries_send.close()
