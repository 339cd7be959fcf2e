"""Open FUSE handles and the page-cache decision taken at each open.

A FUSE file or directory handle holds one engine :class:`Open`. It sits
behind a gate (:class:`Gated`) because a rename of a directory may have to
close and reopen the opens below it (Samba refuses to rename a directory
with opens below it: :mod:`smbfs.fs.namespace`); users wait at the gate
meanwhile instead of using a closed open.

Which lease key an open of a file uses (:meth:`HandleTable.lease_key_for`)
is decided here: the file's own, unless our handles hold it under another
of the file's names.

Whether the kernel may keep a file's cached pages at an open
(:func:`keep_pages`) is decided here too: it depends on the lease our
handles hold on the file and on what the file looked like when its pages
were cached (``Node.page_sig``, ``Node.pages_epoch``).

Deferred close (:class:`Parked`): a released file handle whose lease
caches handles (H) is kept open for ``closetimeo`` seconds, as cifs.ko
does, so that the next open of the file costs no round trip and the
lease, with everything cached under it, lives on in between.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from smbfs.client.open import FileInfo, Open
from smbfs.fs.inodes import Node, new_lease_key

# API vocabulary of the engine: lease states are the protocol's bits.
from smbfs.proto.oplock_break import LeaseState


@dataclass(eq=False, slots=True)
class Gated:
    """An SMB open behind a FUSE handle, which a directory rename may have
    to close and reopen under the handle's feet: users go through
    :meth:`using`, which waits while the open is being swapped."""

    fh: int
    node: Node
    open: Open
    busy: int = field(default=0, kw_only=True)
    gate: trio.Event | None = field(default=None, kw_only=True)
    idle: trio.Event | None = field(default=None, kw_only=True)

    @asynccontextmanager
    async def using(self) -> AsyncIterator[Open]:
        while self.gate is not None:
            await self.gate.wait()
        self.busy += 1
        try:
            yield self.open
        finally:
            self.busy -= 1
            if self.busy == 0 and self.idle is not None:
                self.idle.set()

    async def drain(self) -> None:
        """Close the gate and wait for the users inside to finish."""
        self.gate = trio.Event()
        while self.busy:
            self.idle = trio.Event()
            await self.idle.wait()
        self.idle = None

    def reopen_gate(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.set()


@dataclass(eq=False, slots=True)
class Handle(Gated):
    writable: bool = False
    # The lease key the open was made with (None: the engine's own).
    lease_key: bytes | None = None
    # Written (or truncated) through this handle since the last close(2)
    # of it (FUSE flush): then the write time is set explicitly at that
    # close(2). Why: Samba sets the write time of a handle that wrote when
    # the handle closes (legacy Windows semantics), which is at FUSE
    # release, after close(2) returned, or closetimeo later for a parked
    # handle; an mtime that moves after close(2) breaks close-to-open for
    # every other client (and make). An explicitly set time stays.
    dirty: bool = False


@dataclass(eq=False, slots=True)
class Parked:
    """A released file handle whose close is deferred until ``deadline``
    (trio clock): its open, its lease key and whether it may write."""

    node: Node
    open: Open
    writable: bool
    lease_key: bytes | None
    deadline: float


@dataclass(eq=False, slots=True)
class DirHandle(Gated):
    entries: list[FileInfo] | None = None
    since: int = 0  # the inode table's stamp when the listing was asked for


class HandleTable:
    """Every open FUSE handle by number, and the file handles of each node
    (getattr/setattr through a handle, unlink of an open file)."""

    def __init__(self) -> None:
        self.files: dict[int, Handle] = {}
        self.dirs: dict[int, DirHandle] = {}
        self._by_node: dict[Node, list[Handle]] = {}
        self._next_fh = 1
        # Deferred closes by node, oldest first; the closer wakes at the
        # earliest deadline (``parked_changed`` says the set changed).
        self.parked: dict[Node, list[Parked]] = {}
        self._queue: dict[Parked, None] = {}  # all of them, oldest first
        self.parked_changed = trio.Event()

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    def add_file(self, node: Node, op: Open, writable: bool,
                 lease_key: bytes | None = None) -> Handle:
        h = Handle(self._new_fh(), node, op, writable=writable, lease_key=lease_key)
        self.files[h.fh] = h
        self._by_node.setdefault(node, []).append(h)
        self.opened_with(node, lease_key)
        return h

    def lease_key_for(self, node: Node) -> bytes | None:
        """The lease key for an open of ``node.path``: the node's own
        (made on first use), or None (the engine's key for that path) when
        our handles hold the node's key under another name of the file.

        Why: a server keeps one name per lease and fails a CREATE that
        presents a lease key in use on another name with
        STATUS_INVALID_PARAMETER ([MS-SMB2] 3.3.5.9.8; Samba's lease_match
        does so too); the name of a renamed file follows the rename, but a
        hard link is another name (``Node.path`` may move to it)."""
        if not node.lease_key:
            node.lease_key = new_lease_key()
        held = any(h.lease_key == node.lease_key and not h.open.closed
                   for h in (*self._by_node.get(node, ()), *self.parked.get(node, ())))
        if held and node.lease_path.casefold() != node.path.casefold():
            return None
        return node.lease_key

    def adopt_key(self, node: Node, lease_key: bytes | None) -> None:
        """A create made with ``lease_key`` (new, as for a new file) turned
        out to be ``node``, a node we already had (an O_CREAT of a name
        just made elsewhere, or a file id the server reused): unless our
        handles hold the node's own key, the created open's key becomes
        the node's, so that the next open of the file shares its lease."""
        if lease_key is None or lease_key == node.lease_key:
            return
        if not any(h.lease_key == node.lease_key and not h.open.closed
                   for h in self._by_node.get(node, ())):
            node.lease_key = lease_key

    def opened_with(self, node: Node, lease_key: bytes | None) -> None:
        """An open of ``node.path`` was made with ``lease_key``: from now on
        the server files the node's lease under that name."""
        if lease_key is not None and lease_key == node.lease_key:
            node.lease_path = node.path

    # ------------------------------------------------------------ leases

    def opens_of(self, node: Node) -> list[Open]:
        """Our live opens of ``node``: its handles' and its parked ones."""
        ops = [h.open for h in self._by_node.get(node, ()) if not h.open.closed]
        ops.extend(p.open for p in self.parked.get(node, ()) if not p.open.closed)
        return ops

    def lease_state(self, node: Node) -> int:
        """What the server lets us cache of ``node`` right now: the state
        of the lease our opens of it hold (0 if none)."""
        state = 0
        for op in self.opens_of(node):
            if op.lease is not None:
                state |= op.lease.state
        return state

    def read_cached(self, node: Node) -> bool:
        """Does a lease of ours promise that nobody else changes ``node``?"""
        return bool(self.lease_state(node) & LeaseState.SMB2_LEASE_READ_CACHING)

    def files_by_node(self) -> list[Node]:
        """The nodes with open file handles."""
        return list(self._by_node)

    def parked_open(self, node: Node, *, writable: bool = False) -> Open | None:
        """A parked open of ``node`` (a writable one if asked) to send a
        request through, leaving it parked."""
        for p in self.parked.get(node, ()):
            if not p.open.closed and (p.writable or not writable):
                return p.open
        return None

    def nodes_with_key(self, key: bytes) -> list[Node]:
        """The nodes whose opens (live or parked) hold the lease ``key``."""
        found = [n for n, hs in self._by_node.items()
                 if any(h.open.lease is not None and h.open.lease.key == key for h in hs)]
        found.extend(n for n, ps in self.parked.items() if n not in found
                     and any(p.open.lease is not None and p.open.lease.key == key for p in ps))
        return found

    # ---------------------------------------------------- deferred close

    def park(self, h: Handle, deadline: float) -> None:
        p = Parked(h.node, h.open, h.writable, h.lease_key, deadline)
        self.parked.setdefault(h.node, []).append(p)
        # Deadlines only grow (now + closetimeo), so the queue stays in
        # deadline order; the closer needs waking only for a new earliest.
        first = not self._queue
        self._queue[p] = None
        if first:
            self._wake()

    def _forget_parked(self, p: Parked) -> None:
        self._queue.pop(p, None)
        ps = self.parked.get(p.node)
        if ps is not None:
            if p in ps:
                ps.remove(p)
            if not ps:
                del self.parked[p.node]

    def unpark(self, node: Node, access: int) -> Parked | None:
        """A parked open of ``node`` granting at least ``access``, taken out
        of the parked set (None: the caller opens anew)."""
        for p in reversed(self.parked.get(node, ())):  # the newest first
            if not p.open.closed and \
                    p.open.request.desired_access & access == access:
                self._forget_parked(p)
                return p
        return None

    def take_parked(self, node: Node | None = None, *, below: str | None = None,
                    expired_at: float | None = None) -> list[Parked]:
        """Take out (to close) the parked opens of ``node``, of every node
        below the directory ``below``, past their deadline at
        ``expired_at``, or (no argument) all of them."""
        if node is not None:
            out = list(self.parked.get(node, ()))
        elif expired_at is not None:
            out = []
            for p in self._queue:
                if p.deadline > expired_at:
                    break
                out.append(p)
        elif below is not None:
            prefix = below.casefold() + "\\"
            out = [p for p in self._queue if p.node.path.casefold().startswith(prefix)]
        else:
            out = list(self._queue)
        for p in out:
            self._forget_parked(p)
        return out

    def next_deadline(self) -> float:
        for p in self._queue:
            return p.deadline
        return math.inf

    def _wake(self) -> None:
        ev, self.parked_changed = self.parked_changed, trio.Event()
        ev.set()

    def add_dir(self, node: Node, op: Open) -> DirHandle:
        d = DirHandle(self._new_fh(), node, op)
        self.dirs[d.fh] = d
        return d

    def pop_file(self, fh: int) -> Handle | None:
        h = self.files.pop(fh, None)
        if h is None:
            return None
        hs = self._by_node.get(h.node, [])
        if h in hs:
            hs.remove(h)
        if not hs:
            self._by_node.pop(h.node, None)
        return h

    def pop_dir(self, fh: int) -> DirHandle | None:
        return self.dirs.pop(fh, None)

    def of_node(self, node: Node, *, writable: bool = False) -> Handle | None:
        """An open file handle of ``node`` (a writable one if asked)."""
        for h in self._by_node.get(node, ()):
            if not h.open.closed and (h.writable or not writable):
                return h
        return None

    def of_node_all(self, node: Node) -> list[Handle]:
        return list(self._by_node.get(node, ()))

    def below(self, path: str) -> list[Gated]:
        """The handles open on paths below the directory ``path``."""
        prefix = path.casefold() + "\\"
        return [h for h in (*self.files.values(), *self.dirs.values())
                if h.node.path.casefold().startswith(prefix) and not h.open.closed]

    def take_all(self) -> list[Open]:
        """Forget every handle and return their opens (to close at unmount)."""
        opens = [h.open for h in self.files.values()] + [d.open for d in self.dirs.values()]
        opens.extend(p.open for p in self.take_parked())
        self.files.clear()
        self._by_node.clear()
        self.dirs.clear()
        return opens


# ------------------------------------------------------------ page cache


def page_sig(info: FileInfo) -> tuple[int, int | None, int | None]:
    """What a file's cached pages are known to match: size, write time and
    change time."""
    return info.size, info.write_ns, info.change_ns


_R = int(LeaseState.SMB2_LEASE_READ_CACHING)
_W = int(LeaseState.SMB2_LEASE_WRITE_CACHING)


def keep_pages(cache: str, node: Node, lease_state: int, info: FileInfo) -> bool:
    """May the kernel keep the file's cached pages at this open?

    ``cache=loose``: yes (cifs.ko's loose mode; FUSE's auto_inval_data
    still drops them when a getattr shows a new mtime or size).
    ``cache=strict``: when the server promises they are right:

    * a read lease of ours has covered the file without a break since
      the pages were last known to match (``Node.pages_epoch`` is still
      the node's ``read_epoch``): nobody else can have written it; no
      round trip, no time comparison;
    * or this open got read *and* write caching, so nobody else has the
      file open now (any writer has closed, and with it Samba's held-back
      write time is final), and the size, write and change times equal
      those recorded when the pages last matched (NFS's close-to-open
      rule);
    * otherwise they are dropped.

    Records what the pages match from now on. docs/filesystem.md has the
    reasoning and its limits."""
    sig = page_sig(info)
    if cache == "loose":
        keep = True
    elif cache != "strict":
        keep = False
    elif lease_state & _R and node.pages_epoch == node.read_epoch:
        keep = True
    else:
        keep = bool(lease_state & _R and lease_state & _W) and node.page_sig == sig
    node.page_sig = sig
    node.pages_epoch = node.read_epoch if lease_state & _R else -1
    return keep
