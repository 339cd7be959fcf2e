"""Directories whose names are known exactly: a directory lease, or a
change notification, covers them.

Why: with ``actimeo`` alone a name another client creates or deletes is
seen up to ``actimeo`` seconds late, and every lookup of an absent name
costs a round trip. A directory in active use (listed, or looked up in) is
*covered* here, up to MAX_COVERED of them, least recently used dropped
first, each by one handle held open on it:

* where the server grants directory leases (Samba 4.22): an RH lease on
  that handle. While it holds, nobody else changed a name in the
  directory (the server breaks it first), so its complete listing is
  exact: present names, and absent ones (ENOENT without a round trip). A
  break drops the listing, makes the kernel forget the names it was given
  and the directory's attributes, and is then acknowledged (by the lease
  table, after its subscribers return); the next use takes a new lease.
* elsewhere (Samba 4.17, most NAS): one CHANGE_NOTIFY outstanding on the
  handle ([MS-SMB2] 3.2.4.18). Each notification updates the listing by
  name (added, removed, renamed, modified) and makes the kernel forget
  those names; STATUS_NOTIFY_ENUM_DIR (the server lost count) drops the
  whole listing. The watch is sent before the listing is asked for, on
  the same connection, so no change falls between the two.

Our own name changes (create, mkdir, unlink, rmdir, rename, link) update a
covered listing in place: they carry the directory's lease key as
ParentLeaseKey (the engine adds it) so Samba does not break our own lease
for them, and the notifications they cause are recognised as already
applied. ``changes`` counts every change so that a listing whose request
crossed one is not kept.

What is exact is the set of names. The attributes a listing carries are
trusted for ``actimeo`` from when it was taken, like any other (on 4.22 a
directory lease is also broken by a size or time change of a child
closed by another client, but not while that client is still writing).

A reconnect (the handle is reopened, not reclaimed: directory handles are
not durable) may have hidden changes: every listing is dropped and the
kernel told to forget the covered names when the session is connected
again, and a listing is only used while its handle's generation is the
one it was taken on.

The kernel's entry timeout stays ``actimeo`` for covered names: the
kernel's own revalidation is answered here without a round trip, and a
name we forget to forget can be wrong for ``actimeo`` at most.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyfuse3
import trio

from smbfs.client.errors import LocalError, SMBError
from smbfs.client.lease import BreakEvent
from smbfs.client.open import FileInfo, Open
from smbfs.client.reconnect import CONNECTED
from smbfs.client.tree import Tree
from smbfs.fs import posix
from smbfs.fs.inodes import InodeTable, Node, join, parent_of
from smbfs.fs.kernel import KernelCache
from smbfs.proto.change_notify import CompletionFilter, FileAction, FileNotifyInformation
from smbfs.proto.create import AccessMask, CreateOptions
from smbfs.proto.create_contexts import LeaseState

log = logging.getLogger(__name__)

# Directories covered at once (each holds a handle on the server, and on a
# server without directory leases a CHANGE_NOTIFY).
MAX_COVERED = 64

WATCH_FILTER = int(
    CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME | CompletionFilter.FILE_NOTIFY_CHANGE_DIR_NAME
    | CompletionFilter.FILE_NOTIFY_CHANGE_ATTRIBUTES | CompletionFilter.FILE_NOTIFY_CHANGE_SIZE
    | CompletionFilter.FILE_NOTIFY_CHANGE_LAST_WRITE)

_ADDED = frozenset({FileAction.FILE_ACTION_ADDED, FileAction.FILE_ACTION_RENAMED_NEW_NAME})
_REMOVED = frozenset({FileAction.FILE_ACTION_REMOVED, FileAction.FILE_ACTION_RENAMED_OLD_NAME,
                      FileAction.FILE_ACTION_REMOVED_BY_DELETE})

# How long after our own change of a name a FILE_ACTION_MODIFIED of it is
# taken for the echo of that change (Samba 4.17 follows each create's ADDED
# with a MODIFIED): not a reason to forget the attributes we just got.
ECHO_WINDOW = 1.0

LEASE = "lease"
NOTIFY = "notify"


@dataclass(eq=False, slots=True)
class Covered:
    """One covered directory."""

    node: Node
    key: bytes  # the directory's lease key, kept across re-leases
    op: Open | None = None
    mode: str = ""  # LEASE or NOTIFY once established
    # casefolded name -> (name as listed, attributes or None: unknown, the
    # inode table's stamp they are from). The complete set of names while
    # not None.
    names: dict[str, tuple[str, FileInfo | None, int]] | None = None
    listed_at: float = 0.0  # trio clock, for the listing's attributes
    listed_stamp: int = 0  # the inode table's stamp before the listing
    generation: int = 0  # the handle's generation the listing was taken on
    changes: int = 0
    broken: bool = False  # lease broken (or watch ended): establish again
    establishing: trio.Event | None = None
    watch: trio.CancelScope | None = None
    # Names the kernel was given in this directory (forgotten on a drop).
    given: set[str] = field(default_factory=set)
    dropped: bool = False  # out of the set for good
    # Casefolded names we changed -> until when their MODIFIED is our echo.
    ours: dict[str, float] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        op = self.op
        return (self.names is not None and not self.broken and op is not None
                and not op.closed and op.lost is None and op.generation == self.generation)


class DirCache:
    """The covered directories of one mount. Inactive (every method a
    no-op answering "not covered") until :meth:`run` serves, and for
    ``cache=none``."""

    def __init__(self, tree: Tree, inodes: InodeTable, kernel: KernelCache, *,
                 enabled: bool, timeout: float, max_covered: int = MAX_COVERED) -> None:
        self.tree = tree
        self.inodes = inodes
        self.kernel = kernel
        self.enabled = enabled
        self.timeout = timeout
        self.max_covered = max_covered
        self._covered: OrderedDict[int, Covered] = OrderedDict()
        self._by_key: dict[bytes, Covered] = {}
        self._nursery: trio.Nursery | None = None
        self._unsubscribe: list[object] = []
        # Counters for tests and the status line.
        self.listings = 0
        self.established = 0
        self.breaks = 0
        self.notifications = 0
        self.hits = 0
        self.negative_hits = 0

    # ----------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve while the mount does (a task of its nursery)."""
        if not self.enabled:
            return
        leases = self.tree.session.leases
        unsubscribe = leases.subscribe(self._on_break)
        self.tree.session.on_state_change(self._on_state)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await trio.sleep_forever()
        finally:
            self._nursery = None
            unsubscribe()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.close()

    async def close(self) -> None:
        """Drop every covered directory and close its handle."""
        covered = list(self._covered.values())
        self._covered.clear()
        self._by_key.clear()
        for cov in covered:
            await self._retire(cov)

    def __len__(self) -> int:
        return len(self._covered)

    def covered(self, node: Node) -> Covered | None:
        return self._covered.get(node.ino)

    # ------------------------------------------------------------- coverage

    def use(self, node: Node) -> Covered | None:
        """``node`` (a directory) is being listed or looked up in: cover it
        (in the background) and mark it most recently used."""
        if self._nursery is None or not node.is_dir:
            return None
        cov = self._covered.get(node.ino)
        if cov is not None and cov.node is not node:
            self._drop(cov)  # the number is another directory's now
            cov = None
        if cov is None:
            cov = Covered(node, os.urandom(16))
            self._covered[node.ino] = cov
            self._by_key[cov.key] = cov
            while len(self._covered) > self.max_covered:
                _, old = self._covered.popitem(last=False)
                self._drop(old)
        else:
            self._covered.move_to_end(node.ino)
        if not cov.exact and cov.establishing is None:
            cov.establishing = trio.Event()
            self._nursery.start_soon(self._establish, cov)
        return cov

    async def wait_exact(self, node: Node) -> bool:
        """Wait until ``node``'s coverage has been tried (tests)."""
        cov = self._covered.get(node.ino)
        while cov is not None and cov.establishing is not None:
            await cov.establishing.wait()
        return cov is not None and cov.exact

    async def release(self, path: str) -> None:
        """Before our own rmdir or rename of ``path``: a handle we hold on
        it or below would keep a removed directory in existence (delete
        pending until the last close) and makes Samba refuse to rename a
        directory with opens below it. Drop those, closing their handles."""
        k = path.casefold()
        doomed = [c for c in self._covered.values()
                  if c.node.path.casefold() == k or c.node.path.casefold().startswith(k + "\\")]
        for cov in doomed:
            self._by_key.pop(cov.key, None)
            if self._covered.get(cov.node.ino) is cov:
                del self._covered[cov.node.ino]
            await self._retire(cov)

    def _drop(self, cov: Covered) -> None:
        """Out of the set: its handle closed and its watch ended (in the
        background); the kernel's entries expire by actimeo as elsewhere."""
        cov.dropped = True
        self._by_key.pop(cov.key, None)
        if self._covered.get(cov.node.ino) is cov:
            del self._covered[cov.node.ino]
        if self._nursery is not None:
            self._nursery.start_soon(self._retire, cov)

    async def _retire(self, cov: Covered) -> None:
        cov.dropped = True
        cov.names = None
        if cov.watch is not None:
            cov.watch.cancel()
        op, cov.op = cov.op, None
        if op is not None and not op.closed:
            await self._close_quietly(op)

    async def _establish(self, cov: Covered) -> None:
        done = cov.establishing
        try:
            await self._establish_once(cov)
        except (SMBError, OSError, LocalError) as e:
            # LocalError: e.g. the handle closed under us by a release.
            log.debug("covering %r: %s", cov.node.path, e)
        except Exception:
            log.exception("covering %r failed", cov.node.path)
        finally:
            cov.establishing = None
            if done is not None:
                done.set()

    async def _establish_once(self, cov: Covered) -> None:
        old = cov.op
        if old is not None:
            cov.op = None
            if cov.watch is not None:
                cov.watch.cancel()
            assert self._nursery is not None
            self._nursery.start_soon(self._close_quietly, old)
        path = cov.node.path
        op = await self.tree.create(
            path, desired_access=AccessMask.FILE_LIST_DIRECTORY | posix.ATTR_ACCESS
            | AccessMask.SYNCHRONIZE, options=CreateOptions.FILE_DIRECTORY_FILE,
            lease=int(LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_HANDLE_CACHING),
            durable=False, lease_key=cov.key)
        if cov.dropped or cov.node.path != path:
            await self._close_quietly(op)
            return
        cov.op = op
        cov.broken = False
        leased = op.lease is not None and bool(op.lease_state
                                               & LeaseState.SMB2_LEASE_READ_CACHING)
        if op.lease is not None and op.lease.key != cov.key:
            self._by_key.pop(cov.key, None)
            cov.key = op.lease.key
            self._by_key[cov.key] = cov
        cov.mode = LEASE if leased else NOTIFY
        # A watch under a lease too: Samba breaks directory leases for
        # changes made through SMB only; a change made directly on its
        # disk (a program on the server) reaches us as a notification
        # (Samba's inotify), a moment after it happened.
        assert self._nursery is not None
        await self._nursery.start(self._watch, cov, op)
        await self._list(cov)
        self.established += 1
        log.debug("covering %r by %s", path, cov.mode)

    async def _close_quietly(self, op: Open) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            try:
                await op.close(post_query=False)
            except Exception as e:
                log.debug("close of %r: %s", op.path, e)

    async def _list(self, cov: Covered) -> None:
        op = cov.op
        if op is None:
            return
        changes = cov.changes
        generation = op.generation
        since = self.inodes.stamp()
        at = trio.current_time()
        entries = await op.list_directory()
        self.listings += 1
        if cov.changes != changes or cov.broken or op.generation != generation \
                or cov.op is not op:
            cov.names = None  # crossed a change: not exact, asked again at next use
            return
        cov.names = {e.name.casefold(): (e.name, e, since) for e in entries
                     if not posix.is_hidden(e.name)}
        cov.listed_at, cov.listed_stamp, cov.generation = at, since, generation

    # --------------------------------------------------------------- answers

    def lookup(self, parent: Node, name: str, path: str) -> Node | None:
        """A lookup of ``name`` in ``parent``: the node from an exact
        listing (its attributes still fresh), or None (ask the server).
        Raises ENOENT when the listing says it is absent."""
        cov = self.use(parent)
        if cov is None or not cov.exact:
            return None
        assert cov.names is not None
        entry = cov.names.get(name.casefold())
        if entry is None:
            self.negative_hits += 1
            raise pyfuse3.FUSEError(2)  # ENOENT: exact while covered
        listed_name, info, stamp = entry
        if info is None or trio.current_time() - cov.listed_at >= self.timeout:
            return None
        node = self.inodes.by_path(path)
        if node is not None and node.changed > stamp:
            return None  # we changed it after the listing was asked for
        self.hits += 1
        return self.inodes.remember(join(parent.path, listed_name), dataclasses.replace(info),
                                    stamp)

    def listing(self, node: Node) -> list[FileInfo] | None:
        """An exact listing of ``node`` with fresh attributes for every
        entry (readdir without asking the server), or None."""
        cov = self.use(node)
        if cov is None or not cov.exact or cov.names is None:
            return None
        if trio.current_time() - cov.listed_at >= self.timeout:
            return None
        out = []
        for name, info, stamp in cov.names.values():
            if info is None:
                return None
            child = self.inodes.by_path(join(node.path, name))
            if child is not None and child.changed > stamp:
                # We changed that file (a write, a truncate) after its entry
                # was taken: its size or times there are old. The server's
                # listing, then.
                return None
            out.append(dataclasses.replace(info))
        return out

    def listing_stamp(self, node: Node) -> int:
        """The oldest epoch stamp of ``node``'s covered entries: what a
        cached listing's attributes are "as of" (InodeTable.remember)."""
        cov = self._covered.get(node.ino)
        if cov is None or not cov.names:
            return self.inodes.stamp()
        return min(stamp for _n, _i, stamp in cov.names.values())

    def listed(self, node: Node, entries: Iterable[FileInfo], since: int) -> None:
        """readdir listed ``node`` through its own handle (asked after stamp
        ``since``): renew the covered listing when nothing changed since."""
        cov = self._covered.get(node.ino)
        if cov is None or cov.op is None or cov.broken or cov.op.generation != cov.generation:
            return
        if cov.names is None or node.changed > since:
            return
        cov.names = {e.name.casefold(): (e.name, e, since) for e in entries}
        cov.listed_at = trio.current_time()
        cov.listed_stamp = since

    def given(self, node: Node) -> None:
        """The kernel was handed an entry for ``node``."""
        parent = self.inodes.by_path(parent_of(node.path))
        if parent is None:
            return
        cov = self._covered.get(parent.ino)
        if cov is not None:
            cov.given.add(node.path.rsplit("\\", 1)[-1])

    # --------------------------------------------------- our own changes

    def added(self, parent: Node, name: str, info: FileInfo | None) -> None:
        cov = self._covered.get(parent.ino)
        if cov is None:
            return
        cov.changes += 1
        self._ours(cov, name)
        if cov.names is not None:
            # A create's or stat's answer names no file: readdir needs it.
            cov.names[name.casefold()] = (name, dataclasses.replace(info, name=name)
                                          if info else None, self.inodes.stamp())

    def removed(self, parent: Node, name: str) -> None:
        cov = self._covered.get(parent.ino)
        if cov is None:
            return
        cov.changes += 1
        self._ours(cov, name)
        if cov.names is not None:
            cov.names.pop(name.casefold(), None)

    @staticmethod
    def _ours(cov: Covered, name: str) -> None:
        now = trio.current_time()
        if len(cov.ours) > 256:
            cov.ours = {k: t for k, t in cov.ours.items() if t > now}
        cov.ours[name.casefold()] = now + ECHO_WINDOW

    def renamed(self, old_parent: Node, old: str, new_parent: Node, new: str) -> None:
        """Our rename (after :meth:`InodeTable.moved`): the node's attributes
        move with the name (a notification of it may have come first)."""
        node = self.inodes.by_path(join(new_parent.path, new))
        self.removed(old_parent, old)
        self.added(new_parent, new, node.info if node is not None else None)

    # ------------------------------------------------------- remote changes

    def _forget_names(self, cov: Covered, names: Iterable[str]) -> None:
        """The inode table and the kernel forget ``names`` in ``cov``."""
        for n in names:
            node = self.inodes.by_path(join(cov.node.path, n))
            if node is not None:
                self.inodes.invalidate(node)
            self.kernel.forget_entry(cov.node.ino, n)
            cov.given.discard(n)

    def _invalidate_all(self, cov: Covered) -> None:
        names = set(cov.given)
        if cov.names is not None:
            names.update(listed for listed, _, _ in cov.names.values())
        cov.names = None
        cov.changes += 1
        self.inodes.invalidate(cov.node)
        self._forget_names(cov, names)

    async def _on_break(self, event: BreakEvent) -> None:
        """A lease break: drop what the lease covered, before the table
        acknowledges it. Never waits for an entry invalidation (those are
        queued); the directory's attributes are dropped, bounded."""
        cov = self._by_key.get(event.lease_key) if event.lease_key is not None else None
        if cov is None:
            return
        self.breaks += 1
        if event.new_state & LeaseState.SMB2_LEASE_READ_CACHING:
            return  # only handle caching given up: the names stay exact
        cov.broken = True
        self._invalidate_all(cov)
        if not event.new_state & LeaseState.SMB2_LEASE_HANDLE_CACHING:
            # Handle caching withdrawn: someone needs our handle gone (a
            # delete, a rename of the directory or above). Closed after the
            # acknowledgment, by a task of our own.
            op, cov.op = cov.op, None
            if cov.watch is not None:
                cov.watch.cancel()
            if op is not None and self._nursery is not None:
                self._nursery.start_soon(self._close_quietly, op)
        await self.kernel.drop_inode(cov.node.ino, attr_only=True)

    def _on_state(self, state: str, detail: str) -> None:
        """Connected again after a cut: what changed meanwhile is unknown."""
        if state != CONNECTED:
            return
        for cov in list(self._covered.values()):
            self._invalidate_all(cov)
            self.kernel.drop_inode_soon(cov.node.ino, attr_only=True)

    async def _watch(self, cov: Covered, op: Open,
                     task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """One CHANGE_NOTIFY outstanding on ``op`` until the directory is
        dropped or the handle ends; each answer applied, then re-armed."""
        with trio.CancelScope() as scope:
            cov.watch = scope
            started = False
            try:
                while not cov.dropped and cov.op is op:
                    generation = op.generation
                    if not started:
                        started = True
                        task_status.started()
                    changes = await op.change_notify(WATCH_FILTER)
                    self.notifications += 1
                    if changes is None or op.generation != generation:
                        # ENUM_DIR (the server lost count), or across a reopen.
                        self._invalidate_all(cov)
                        await self.kernel.drop_inode(cov.node.ino, attr_only=True)
                        if op.closed:
                            break
                        continue
                    await self._apply(cov, changes)
            except SMBError as e:
                log.debug("watch of %r ended: %s", op.path, e)
                if cov.op is op:
                    cov.broken = True
                    self._invalidate_all(cov)
            finally:
                if not started:
                    task_status.started()
                if cov.watch is scope:
                    cov.watch = None

    async def _apply(self, cov: Covered, changes: list[FileNotifyInformation]) -> None:
        cov.changes += 1
        forget: set[str] = set()
        modified: list[Node] = []
        dir_changed = False
        for c in changes:
            name = c.file_name
            if "\\" in name:  # not watching the tree: only direct children expected
                name = name.rsplit("\\", 1)[-1]
            k = name.casefold()
            names = cov.names
            if c.action in _ADDED:
                dir_changed = True
                if names is not None and k in names:
                    continue  # ours, applied already
                if names is not None:
                    names[k] = (name, None, 0)
                forget.add(name)
            elif c.action in _REMOVED:
                dir_changed = True
                if names is not None and k not in names:
                    continue  # ours, applied already
                if names is not None:
                    names.pop(k, None)
                forget.add(name)
            else:
                if cov.ours.get(k, 0.0) > trio.current_time():
                    continue  # the echo of our own change
                if names is not None and k in names:
                    names[k] = (names[k][0], None, 0)
                node = self.inodes.by_path(join(cov.node.path, name))
                if node is not None:
                    self.inodes.invalidate(node)
                    modified.append(node)
        if forget:
            self._forget_names(cov, forget)
        if dir_changed:
            self.inodes.invalidate(cov.node)
            await self.kernel.drop_inode(cov.node.ino, attr_only=True)
        for node in modified:
            await self.kernel.drop_inode(node.ino, attr_only=True)
