"""Write-behind while the server grants write caching (the W of a lease).

Why: without it every FUSE WRITE is answered only once the server answered
the SMB2 WRITE, and the kernel sends a file's next WRITE only after our
reply, so a single writer has one request on the wire and pays one round
trip per ``max_write`` bytes; a small new file pays CREATE, WRITE and CLOSE
one after another. A lease with write caching ([MS-SMB2] 2.2.13.2.8,
SMB2_LEASE_WRITE_CACHING) is the server's promise that no other client
opens the file until we flushed what we hold (it breaks our lease first and
waits for the acknowledgment), so holding data back cannot be seen by
anyone else.

The rules kept here (docs/filesystem.md, "Write-behind"):

* Only while the handle's lease has W: the FUSE write is answered once the
  data sits in our buffer. Contiguous writes through one handle coalesce up
  to the open's ``max_write``; a full buffer goes out at once. At most
  :data:`MAX_IN_FLIGHT` WRITEs per file are on the wire, and the mount holds
  at most ``limit`` dirty bytes (sent or not): beyond either, the FUSE write
  waits (backpressure). Two overlapping ranges are never on the wire
  together: a server may complete them in either order.
* Without W (another client has the file open, or the lease was broken)
  writes go through as before, after what is buffered for the file.
* Everything that would see the server's copy flushes the file first:
  reads, setattr (truncate, times), a refresh of the attributes, close(2)
  and fsync. Flush first, no overlay: simple, and the cases that pay for it
  (reading back what one just wrote, stat while writing) are rare next to
  the writes that no longer wait.
* Errors: a WRITE that fails in the background (ENOSPC on a full share, a
  quota, a handle lost for good) is kept for the file and raised at the
  next write, read, flush (close(2)) or fsync of it, once; the data of the
  failed range is lost, as with a local file system's writeback.
* A lease break that takes W away flushes the file before the break is
  acknowledged (:meth:`Writeback.on_break`, subscribed to the session's
  lease table; :meth:`Writeback.flush_node` for a break handler that wants
  to call it itself).
* close(2) drains (:meth:`Writeback.flush`); for a handle that wrote, the
  last buffered extent goes in one compound with the write time close(2)
  sets and the attribute query (:meth:`Writeback.flush_and_set`), so a
  small new file costs CREATE and that one round trip on the program's
  path; its CLOSE is deferred under H (smbfs.fs.leasecache). A tail still
  dirty at a release that closes goes in one compound with the CLOSE
  (:meth:`Writeback.before_close`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from smbfs.client import compound_ops
from smbfs.client.lease import BreakEvent
from smbfs.client.open import FileInfo, Open
from smbfs.client.reconnect import CONNECTED
from smbfs.client.tree import Tree
from smbfs.proto.oplock_break import LeaseState

if TYPE_CHECKING:
    from smbfs.fs.handles import Handle, HandleTable
    from smbfs.fs.inodes import Node

log = logging.getLogger(__name__)

W = int(LeaseState.SMB2_LEASE_WRITE_CACHING)

# WRITEs of one file on the wire at once: enough to keep a 1 MiB-per-request
# stream busy over a LAN round trip, few enough that one file does not take
# every credit of the session.
MAX_IN_FLIGHT = 8

# Dirty bytes (buffered or on the wire) of the whole mount before writers
# wait: bounds our memory whatever the number of files being written.
DIRTY_LIMIT = 64 * 1024 * 1024

# A buffer that stops growing (a writer that neither writes on nor closes)
# goes out after this many seconds: what a crash of this process could lose
# stays bounded, like the kernel's dirty_expire for a local disk.
MAX_AGE = 5.0


@dataclass(eq=False, slots=True)
class _Extent:
    offset: int
    # The FUSE write's own bytes (immutable, held without a copy) until a
    # second write joins it: then a bytearray they are gathered in.
    data: bytes | bytearray
    handle: Handle

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    def overlaps(self, other: _Extent) -> bool:
        return self.offset < other.end and other.offset < self.end


@dataclass(eq=False, slots=True)
class _Dirty:
    """One file's data not yet known to be on the server."""

    pending: _Extent | None = None  # still growing, not sent
    sending: list[_Extent] = field(default_factory=list)  # given to a WRITE
    slots: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(MAX_IN_FLIGHT))
    lock: trio.Lock = field(default_factory=trio.Lock)
    changed: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None
    peak_in_flight: int = 0
    aging: bool = False  # a timer will send ``pending`` if it stays
    # Extents taken from ``pending`` and not yet in ``sending`` (waiting
    # for a slot or for an overlapping WRITE): dirty all the same.
    queued: int = 0

    def signal(self) -> None:
        ev, self.changed = self.changed, trio.Event()
        ev.set()

    @property
    def idle(self) -> bool:
        return self.pending is None and not self.sending and not self.queued


class Writeback:
    """The write-behind buffers of one mount."""

    def __init__(self, tree: Tree, handles: HandleTable, limit: int = DIRTY_LIMIT) -> None:
        self.tree = tree
        self.handles = handles
        self.limit = limit
        self.write_stamp_compounds = 0
        self._dirty: dict[Node, _Dirty] = {}
        self.dirty_bytes = 0
        self._budget = trio.Event()
        # Counters for tests and the bench.
        self.cached_writes = 0
        self.peak_in_flight = 0
        self.write_close_compounds = 0
        self._unsubscribe: Callable[[], None] | None = None

    # ---------------------------------------------------------- lifecycle

    def subscribe(self) -> None:
        """Flush on every break that takes W away, before its
        acknowledgment (the lease table acknowledges after its subscribers
        return). Idempotent; :meth:`unsubscribe` undoes it."""
        if self._unsubscribe is None:
            self._unsubscribe = self.tree.session.leases.subscribe(self.on_break)

    def unsubscribe(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def cached(self, op: Open) -> bool:
        """May writes through ``op`` be held back? Only under W, only while
        connected (cut off, we cannot know the lease still holds: the
        server may have given it and the file to another client by the
        time we are back), and not through a handle a reconnect could not
        take back (its writes fail at once, with EIO)."""
        return (op.lease is not None and bool(op.lease.state & W) and op.lost is None
                and self.tree.session.state == CONNECTED)

    def dirty(self, node: Node) -> bool:
        d = self._dirty.get(node)
        return d is not None and not d.idle

    # -------------------------------------------------------------- write

    async def write(self, h: Handle, off: int, buf: bytes) -> int | None:
        """Take a FUSE write into the buffer if the file's lease allows;
        None: not cached, the caller writes through (after this flushed
        what the file had buffered, to keep the order of writes)."""
        node = h.node
        n = len(buf)
        if self.cached(h.open):
            while self.dirty_bytes and self.dirty_bytes + n > self.limit:
                # Backpressure: our WRITEs in flight free the budget as
                # they are answered (each bounded by the engine's request
                # timeout). Buffers still growing in other files would
                # free nothing until their writers move: they go out now.
                for other, od in list(self._dirty.items()):
                    if od.pending is not None and other is not node:
                        self.tree.session.spawn(self._push, od)
                await self._budget.wait()
            while True:
                d = self._dirty.setdefault(node, _Dirty())
                async with d.lock:
                    if self._dirty.get(node) is not d:
                        continue  # flushed clean and dropped while we waited
                    # Checked again under the lock: a break that took W
                    # away meanwhile flushes after us, never before us.
                    if not self.cached(h.open):
                        break
                    self._raise_error(d)
                    await self._take(d, h, off, buf)
                    if node.info is not None:
                        node.info.size = max(node.info.size, off + n)
                    return n
        if node in self._dirty:
            await self.flush_node(node, report=True)
        return None

    async def _take(self, d: _Dirty, h: Handle, off: int, buf: bytes) -> None:
        """Add a write to ``d`` (its lock held): grow the pending buffer or
        start a new one, and send whatever is full."""
        n = len(buf)
        p = d.pending
        if p is not None and p.handle is h and off == p.end \
                and len(p.data) + n <= h.open.max_write:
            if isinstance(p.data, bytes):
                p.data = bytearray(p.data)
            p.data += buf
        else:
            if p is not None:
                d.pending = None
                await self._dispatch(d, p)
            d.pending = p = _Extent(off, buf if isinstance(buf, bytes) else bytes(buf), h)
        self.dirty_bytes += n
        self.cached_writes += 1
        if len(p.data) >= h.open.max_write:
            d.pending = None
            await self._dispatch(d, p)
        elif not d.aging:
            d.aging = True
            self.tree.session.spawn(self._age, d)

    async def _dispatch(self, d: _Dirty, ext: _Extent) -> None:
        """Put ``ext`` on the wire once no overlapping range is and a slot
        is free (the caller holds ``d.lock``, so extents leave in order)."""
        d.queued += 1
        try:
            while any(e.overlaps(ext) for e in d.sending):
                await d.changed.wait()
            await d.slots.acquire()
        finally:
            d.queued -= 1
        d.sending.append(ext)
        d.peak_in_flight = max(d.peak_in_flight, len(d.sending))
        self.peak_in_flight = max(self.peak_in_flight, len(d.sending))
        self.tree.session.spawn(self._send, d, ext)

    async def _push(self, d: _Dirty) -> None:
        """Send what ``d`` is still gathering."""
        try:
            async with d.lock:
                if d.pending is not None:
                    p, d.pending = d.pending, None
                    await self._dispatch(d, p)
        except Exception as e:  # a background task must not end the session
            log.debug("write-behind push failed: %s", e)

    async def _age(self, d: _Dirty) -> None:
        """Send a buffer that stopped growing after :data:`MAX_AGE`."""
        try:
            await trio.sleep(MAX_AGE)
        finally:
            d.aging = False
        await self._push(d)

    async def _send(self, d: _Dirty, ext: _Extent) -> None:
        try:
            async with ext.handle.using() as op:
                await op.write(ext.offset, ext.data)
        except Exception as e:
            log.info("write-behind of %d bytes at %d to %r failed: %s", len(ext.data),
                     ext.offset, ext.handle.node.path, e)
            if d.error is None:
                d.error = e
        finally:
            d.sending.remove(ext)
            d.slots.release()
            self._release_budget(len(ext.data))
            d.signal()

    def _release_budget(self, n: int) -> None:
        self.dirty_bytes -= n
        ev, self._budget = self._budget, trio.Event()
        ev.set()

    def _raise_error(self, d: _Dirty) -> None:
        if d.error is not None:
            e, d.error = d.error, None
            raise e

    # -------------------------------------------------------------- flush

    async def flush_node(self, node: Node, *, report: bool = False) -> None:
        """Put every byte buffered for ``node`` on the server. With
        ``report`` a background failure is raised (and forgotten); a break
        handler flushes without, the failure waits for the program."""
        d = self._dirty.get(node)
        if d is None:
            return
        async with d.lock:
            if d.pending is not None:
                p, d.pending = d.pending, None
                await self._dispatch(d, p)
        while d.sending:
            await d.changed.wait()
        if d.idle and d.error is None and self._dirty.get(node) is d:
            del self._dirty[node]
        if report:
            self._raise_error(d)

    async def flush_path(self, path: str) -> None:
        """Before a stat of ``path`` on the server: its size must include
        what we accepted (the kernel takes the answer as newer than our
        write replies)."""
        key = path.casefold()
        for node in [n for n in self._dirty if n.path.casefold() == key]:
            await self.flush_node(node)

    async def flush_in(self, directory: str) -> None:
        """Before a listing of ``directory`` on the server (readdirplus
        and lookup storms hand its sizes to the kernel)."""
        prefix = directory.casefold() + "\\" if directory else ""
        for node in [n for n in self._dirty if n.path.casefold().startswith(prefix)
                     and "\\" not in n.path[len(prefix):]]:
            await self.flush_node(node)

    async def on_break(self, event: BreakEvent) -> None:
        """Lease break subscriber: losing W means flushing first."""
        if not (event.old_state & W) or event.new_state & W or event.lease_key is None:
            return
        for node in [n for n in self._dirty if self._holds_key(n, event.lease_key)]:
            log.debug("lease break of %r: flushing its write-behind first", node.path)
            await self.flush_node(node)

    def _holds_key(self, node: Node, key: bytes) -> bool:
        d = self._dirty.get(node)
        if d is None:
            return False
        extents = ([d.pending] if d.pending is not None else []) + d.sending
        return any(e.handle.open.lease is not None and e.handle.open.lease.key == key
                   for e in extents) or node.lease_key == key

    async def flush(self, h: Handle) -> None:
        """close(2) of a descriptor of ``h``: the file's data on the server
        before it returns. Nothing is closed here: FUSE's flush is any
        close(2) of any copy of the descriptor (a forked child's exit, the
        close-on-exec of every program a shell starts), after which the
        handle may be used again."""
        await self.flush_node(h.node, report=True)

    def holds(self, node: Node) -> bool:
        """Is anything of ``node``'s not yet known to be on the server?"""
        d = self._dirty.get(node)
        return d is not None and not d.idle

    async def flush_and_set(self, h: Handle,
                            sets: list[tuple[int, bytes]]) -> FileInfo:
        """close(2) of a descriptor of ``h`` that wrote: the file's data on
        the server, then ``sets`` (its write time) applied and the
        attributes read back. When the last buffered extent is ``h``'s own
        and nothing else is on the wire, it goes in the same compound as
        the SET_INFO and the query: a small new file costs CREATE and this
        one round trip (the CLOSE is deferred)."""
        node = h.node
        d = self._dirty.get(node)
        if d is not None:
            async with d.lock:
                while d.sending or d.queued:
                    await d.changed.wait()
                p = d.pending
                if (p is not None and p.handle is h and not h.open.closed
                        and h.open.lost is None and h.gate is None and d.error is None):
                    d.pending = None
                    try:
                        info = await compound_ops.set_info_query(
                            h.open, sets, write=(p.offset, p.data))
                    finally:
                        self._release_budget(len(p.data))
                    if d.idle and self._dirty.get(node) is d:
                        del self._dirty[node]
                    self.write_stamp_compounds += 1
                    return info
            await self.flush_node(node, report=True)
        async with h.using() as op:
            return await compound_ops.set_info_query(op, sets)

    async def fsync(self, h: Handle) -> None:
        await self.flush_node(h.node, report=True)

    async def before_close(self, h: Handle) -> tuple[bool, FileInfo | None]:
        """Release of ``h`` (the last close of its last descriptor): the
        dirty tail goes to the server before the CLOSE, or with it in one
        compound when ``h`` is the file's only handle and holds the tail.
        Returns (closed already, what that CLOSE returned).

        A tail at release is data written after the last close(2): pages of
        a shared mapping written back after the descriptor was closed
        (munmap, msync, the kernel's writeback)."""
        node = h.node
        d = self._dirty.get(node)
        if d is None:
            return False, None
        try:
            async with d.lock:
                while d.sending or d.queued:
                    await d.changed.wait()
                p = d.pending
                if (p is not None and p.handle is h and node.open_handles == 1
                        and not h.open.closed and h.open.lost is None and h.gate is None
                        and d.error is None):
                    d.pending = None
                    try:
                        info = await compound_ops.write_close(self.tree, h.open, p.offset,
                                                              p.data)
                    finally:
                        self._release_budget(len(p.data))
                    self.write_close_compounds += 1
                    return True, info
            await self.flush_node(node, report=True)
        except Exception as e:
            # close(2) reported what it could; a release has nobody left
            # to tell.
            log.info("write-behind of %r failed at its last close: %s", node.path, e)
            return h.open.closed, None
        return False, None

    async def flush_all(self) -> None:
        """Unmount: whatever is still buffered goes out, best effort."""
        for node in list(self._dirty):
            try:
                await self.flush_node(node, report=True)
            except Exception as e:
                log.warning("write-behind of %r lost at unmount: %s", node.path, e)
