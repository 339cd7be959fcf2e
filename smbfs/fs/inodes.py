"""The inode table and the attribute cache of the FUSE layer.

Why one module: the lease-driven cache of a later issue needs one place to
invalidate what we believe about a path (``InodeTable.invalidate``,
``invalidate_path``, ``invalidate_all``) when a lease breaks; everything the
filesystem trusts without asking the server lives here.

Inode numbers are the server's 64-bit file ids (FileInternalInformation /
the directory entry's FileId) unless ``noserverino``: then a local counter
keyed by path. Either way the kernel's lookup counts are honoured: a node
lives while the kernel references it (or a handle is open on it) and is
dropped at ``forget``, so memory follows the kernel's dentry cache, not the
size of the share.

The lookup-storm prefetch (:class:`LookupPrefetch`) lives here too: it is a
policy over the same node state (misses, listings, epochs).

Paths are share-relative, backslash separated, without a leading backslash
(the form CREATE wants); the root node's path is the mounted subdirectory
("" for the share root).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pyfuse3
import trio

from smbfs.client.errors import SMBError
from smbfs.client.open import FileInfo

log = logging.getLogger(__name__)

ROOT_INODE = pyfuse3.ROOT_INODE
# Local inode numbers (noserverino, or a server id we cannot use) come from
# a range server ids of Samba (dev/ino derived) do not reach in practice.
_LOCAL_BASE = 1 << 62


def join(parent: str, name: str) -> str:
    return f"{parent}\\{name}" if parent else name


def parent_of(path: str) -> str:
    return path.rsplit("\\", 1)[0] if "\\" in path else ""


def _key(path: str) -> str:
    # Samba serves SMB2 case-insensitively: "A" and "a" are one file.
    return path.casefold()


def new_lease_key() -> bytes:
    """A fresh SMB2 lease key: 16 random bytes, chosen by the client
    ([MS-SMB2] 2.2.13.2.8; 3.2.4.3 keeps one per file it opens)."""
    return os.urandom(16)


def _same_file(node: Node, info: FileInfo) -> bool:
    """Is ``info`` (same server id, another path) the file ``node`` knew?

    A file may be a hard link: yes. A directory cannot be: it was renamed
    or deleted behind our back and its id reused (Samba's ids derive from
    the disk's inode numbers), and the kernel may still hold the old inode
    with cached children, so it must be a new inode. Nor can a file we
    unlinked while open: its last name went with our delete-on-close, so
    its id showing up again is the server reusing the number for a new file
    (ext4 does so at once), which must not inherit the old node's nlink 0
    (the kernel refuses link() on it with ENOENT). Birth times are not
    used: servers without a stored one synthesise it, so it is no identity.
    """
    return not (node.is_dir or info.is_directory or node.unlinked)


@dataclass(eq=False, slots=True)
class Node:
    """What we know about one inode."""

    ino: int
    path: str
    is_dir: bool
    lookups: int = 0
    info: FileInfo | None = None
    expires: float = 0.0  # trio clock: attributes trusted until then
    open_handles: int = 0
    server_id: int | None = None
    # Extra names of a hard-linked file we have seen, so an unlink of one
    # name can move the node to another.
    aliases: set[str] = field(default_factory=set)
    # Unlinked while open (renamed to a hidden name, delete pending).
    unlinked: bool = False
    # The table's epoch at our last change of this node (write, setattr...).
    changed: int = 0
    # A directory's complete set of names (casefolded), known because our
    # own mkdir made it (renewed by later listings of such a directory, see
    # LookupPrefetch), kept current by our own changes; trusted until
    # ``listed_until`` (trio clock) to answer lookups of other names ENOENT.
    # Not from readdir: a listing taken by any program (a scanner of /tmp)
    # would then hide names other clients create just after it, which a
    # lookup without it finds at once.
    listing: set[str] | None = None
    listed_until: float = 0.0
    # (size, write_ns, change_ns) of the server's copy that the kernel's
    # cached pages of this file show; None: unknown, drop them at open.
    page_sig: tuple[int, int | None, int | None] | None = None
    # Bumped each time our read lease on the file ends (a break, our last
    # close): pages cached while it held (``pages_epoch`` equal to it) are
    # exact only as long as it does not move (handles.keep_pages).
    read_epoch: int = 0
    pages_epoch: int = -1
    # Lookup storms in a directory (stat of many names after a remount):
    # misses counted since ``miss_since``; past a few, one listing answers
    # the rest (``prefetch``: casefolded name -> attributes, trusted until
    # ``prefetch_until``, asked at epoch ``prefetch_stamp``).
    misses: int = 0
    miss_since: float = 0.0
    prefetch: dict[str, FileInfo] | None = None
    prefetch_until: float = 0.0
    prefetch_stamp: int = 0
    prefetching: trio.Event | None = None
    # The lease key of every open of this file (b"": none made yet, see
    # new_lease_key). One key per file, kept across renames: all our
    # handles to it share one lease, so our own opens never break each
    # other's caching, and a durable handle's lease survives a reconnect
    # under the same key. ``lease_path`` is the name the server files that
    # lease under while one of our handles holds it: the server moves it
    # with every rename of the file (so do :meth:`InodeTable.moved` and a
    # rename noticed by :meth:`InodeTable.remember`), but not to another
    # hard link of it.
    lease_key: bytes = b""
    lease_path: str = ""


class InodeTable:
    """Inodes by number and by path, with per-node attribute expiry."""

    def __init__(self, root_path: str, *, serverino: bool, actimeo: float) -> None:
        self.serverino = serverino
        self.actimeo = actimeo
        self._by_ino: dict[int, Node] = {}
        self._by_path: dict[str, int] = {}
        # Server ids whose number a stale inode still holds -> local number.
        self._remap: dict[int, int] = {}
        self._counter = itertools.count(_LOCAL_BASE if serverino else ROOT_INODE + 1)
        # Bumped by every local change: attributes from a request sent before
        # a change to their node are not cached (the kernel's attr_version,
        # for our cache). A listing taken while a file was being written
        # would otherwise pin its old size for actimeo.
        self.epoch = 0
        self.root = Node(ROOT_INODE, root_path, True, lookups=1)
        self._by_ino[ROOT_INODE] = self.root
        self._by_path[_key(root_path)] = ROOT_INODE

    def __len__(self) -> int:
        return len(self._by_ino)

    # ------------------------------------------------------------ access

    def get(self, ino: int) -> Node:
        node = self._by_ino.get(ino)
        if node is None:
            # The kernel only names inodes we gave it and has not forgotten.
            raise pyfuse3.FUSEError(2)  # ENOENT, defensively
        return node

    def by_path(self, path: str) -> Node | None:
        ino = self._by_path.get(_key(path))
        return None if ino is None else self._by_ino.get(ino)

    # ------------------------------------------------------ registration

    def _number_for(self, path: str, info: FileInfo) -> int:
        if self.serverino and info.file_id and info.file_id != ROOT_INODE \
                and info.file_id < _LOCAL_BASE:
            return self._remap.get(info.file_id, info.file_id)
        ino = self._by_path.get(_key(path))
        if ino is not None and ino != ROOT_INODE and not self.serverino:
            return ino
        return next(self._counter)

    def stamp(self) -> int:
        """Take before sending a request whose answer carries attributes."""
        return self.epoch

    def remember(self, path: str, info: FileInfo, since: int | None = None) -> Node:
        """The node for ``path`` with attributes ``info`` (creating or
        re-pointing it); ``since``: the :meth:`stamp` taken before asking.
        The caller adds a lookup if the kernel gets it."""
        if _key(path) == _key(self.root.path):
            self.set_info(self.root, info, since)
            return self.root
        old_ino = self._by_path.get(_key(path))
        if self.serverino and not info.file_id and old_ino is not None:
            ino = old_ino  # e.g. a create response without a file id
        else:
            ino = self._number_for(path, info)
        node = self._by_ino.get(ino)
        if node is not None and node is not self.root and _key(node.path) != _key(path) \
                and not _same_file(node, info):
            if node.lookups <= 0 and node.open_handles <= 0:
                self._evict(node)
            else:
                ino = next(self._counter)
                if info.file_id:
                    # Later sightings of this id are the new file.
                    self._remap[info.file_id] = ino
            node = self._by_ino.get(ino)
        if old_ino is not None and old_ino != ino:
            # Another file now has this name (replaced by rename or by
            # another client): the old node keeps living for the kernel
            # until forgotten, but no longer owns the name.
            old = self._by_ino.get(old_ino)
            if old is not None:
                self._drop_name(old, path)
        if node is None:
            node = Node(ino, path, info.is_directory, server_id=info.file_id)
            self._by_ino[ino] = node
        elif _key(node.path) != _key(path):
            if node.is_dir or self.by_path(node.path) is not node:
                # Renamed behind our back: the server moved our lease too.
                if _key(node.lease_path) == _key(node.path):
                    node.lease_path = path
                node.path = path
            else:
                node.aliases.add(node.path)  # a hard link: both names live
                node.path = path
        node.is_dir = info.is_directory
        self._by_path[_key(path)] = ino
        self.set_info(node, info, since)
        return node

    def _evict(self, node: Node) -> None:
        del self._by_ino[node.ino]
        if node.server_id is not None and self._remap.get(node.server_id) == node.ino:
            del self._remap[node.server_id]
        for p in (node.path, *node.aliases):
            if self._by_path.get(_key(p)) == node.ino:
                del self._by_path[_key(p)]

    def set_info(self, node: Node, info: FileInfo, since: int | None = None) -> None:
        """Cache ``info`` for actimeo, unless the node changed after the
        request that fetched it was sent (then keep it, but as stale)."""
        node.info = info
        if since is not None and node.changed > since:
            node.expires = 0.0
        else:
            node.expires = trio.current_time() + self.actimeo

    def fresh_info(self, node: Node, leased: bool = False) -> FileInfo | None:
        """The cached attributes if still trusted: for actimeo, or while
        ``leased`` (a read lease of ours says nobody else changes the
        file) until a change of ours or a break invalidates them."""
        if node.info is not None and (trio.current_time() < node.expires
                                      or (leased and node.expires > 0.0)):
            return node.info
        return None

    # -------------------------------------------------------- invalidate

    def invalidate(self, node: Node) -> None:
        """Forget the cached attributes of ``node`` (next getattr asks);
        also what every local change of ``node`` calls."""
        self.epoch += 1
        node.changed = self.epoch
        node.expires = 0.0
        node.listing = None
        node.prefetch = None

    def touched(self, node: Node) -> None:
        """We changed an entry of directory ``node`` (create, unlink,
        rename...): its times moved on the server, nothing else that a
        directory shows can have. Keep its cached attributes (the kernel
        asks for them before every create, for the permission check) with
        the times set to now, instead of a round trip to learn them; an
        answer to a request sent before the change is still not cached."""
        self.epoch += 1
        node.changed = self.epoch
        node.prefetch = None  # names changed: the listing no longer says
        if node.info is not None and node.expires > 0.0:
            now = time.time_ns()
            node.info.write_ns = node.info.change_ns = now

    def content_changed(self, node: Node) -> None:
        """We changed ``node``'s data or attributes: a listing of its
        directory taken before must not describe it, even once the node
        itself (and its ``changed`` epoch) has been forgotten."""
        d = self.by_path(parent_of(node.path))
        if d is not None:
            self.epoch += 1
            d.changed = self.epoch  # and not one still being taken
            d.prefetch = None

    # --------------------------------------------- negative entries

    def set_listing(self, node: Node, names: set[str], since: int | None = None) -> None:
        """``names`` (casefolded) is everything ``node`` holds, as asked
        after :meth:`stamp` ``since``; not kept if we changed the directory
        meanwhile."""
        if self.actimeo <= 0 or (since is not None and node.changed > since):
            return
        node.listing = names
        node.listed_until = trio.current_time() + self.actimeo

    def known_absent(self, node: Node, name: str) -> bool:
        """Does a complete, fresh listing of ``node`` say ``name`` is not there?"""
        listing = node.listing
        return listing is not None and name.casefold() not in listing \
            and trio.current_time() < node.listed_until

    def listed(self, path: str) -> None:
        """We made ``path``: add it to its directory's listing."""
        d = self.by_path(parent_of(path))
        if d is not None and d.listing is not None:
            d.listing.add(path.rsplit("\\", 1)[-1].casefold())

    def unlisted(self, path: str) -> None:
        d = self.by_path(parent_of(path))
        if d is not None and d.listing is not None:
            d.listing.discard(path.rsplit("\\", 1)[-1].casefold())

    def invalidate_path(self, path: str) -> None:
        node = self.by_path(path)
        if node is not None:
            self.invalidate(node)

    def invalidate_all(self) -> None:
        self.epoch += 1
        for node in self._by_ino.values():
            node.changed = self.epoch
            node.expires = 0.0
            node.listing = None
            node.prefetch = None

    # ------------------------------------------------------ name changes

    def _drop_name(self, node: Node, path: str) -> None:
        if self._by_path.get(_key(path)) == node.ino:
            del self._by_path[_key(path)]
        node.aliases.discard(path)
        if _key(node.path) == _key(path) and node.aliases:
            node.path = node.aliases.pop()

    def removed(self, path: str) -> None:
        """``path`` no longer names anything (unlink/rmdir)."""
        self.unlisted(path)
        ino = self._by_path.get(_key(path))
        if ino is None:
            return
        node = self._by_ino.get(ino)
        if node is None:
            del self._by_path[_key(path)]
            return
        self._drop_name(node, path)
        if node.info is not None:
            node.info.nlink = max(0, node.info.nlink - 1)
        self.invalidate(node)

    def moved(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new``: re-point the node and, for a
        directory, every node below it."""
        self.unlisted(old)
        self.listed(new)
        target = self._by_path.get(_key(new))
        moving = self._by_path.get(_key(old))
        if target is not None and target != moving:
            t = self._by_ino.get(target)
            if t is not None:
                self._drop_name(t, new)
            else:
                del self._by_path[_key(new)]
        if moving is None:
            return
        node = self._by_ino[moving]
        self._by_path.pop(_key(old), None)
        node.aliases.discard(old)
        if _key(node.lease_path) == _key(old):
            node.lease_path = new
        node.path = new
        self._by_path[_key(new)] = node.ino
        self.invalidate(node)
        if node.is_dir:
            prefix = _key(old) + "\\"
            for other in self._by_ino.values():
                if _key(other.lease_path).startswith(prefix):
                    other.lease_path = new + other.lease_path[len(old):]
                if _key(other.path).startswith(prefix):
                    self._by_path.pop(_key(other.path), None)
                    other.path = new + other.path[len(old):]
                    self._by_path[_key(other.path)] = other.ino

    # --------------------------------------------------- lookup counting

    def lookup(self, node: Node, n: int = 1) -> None:
        node.lookups += n

    def forget(self, ino: int, n: int) -> None:
        node = self._by_ino.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups -= n
        self._maybe_drop(node)

    def _maybe_drop(self, node: Node) -> None:
        if node.lookups > 0 or node.open_handles > 0 or node.ino == ROOT_INODE:
            return
        if self._by_ino.get(node.ino) is node:
            self._evict(node)

    def opened(self, node: Node) -> None:
        node.open_handles += 1

    def closed(self, node: Node) -> None:
        node.open_handles -= 1
        self._maybe_drop(node)


# ----------------------------------------------------------- lookup storms

# Lookup misses in one directory within actimeo before it is listed once to
# answer the others (a listing costs about three round trips).
PREFETCH_AFTER = 4

Lister = Callable[[str], Awaitable[list[FileInfo]]]


class LookupPrefetch:
    """Lookup storms (a stat of every file after a remount, ``make``, ``git
    status``): after PREFETCH_AFTER lookup misses in one directory within
    actimeo, list the directory once and answer lookups there from that
    listing for actimeo (what rclone does for its fast stats; a readdirplus
    does the same for ls -l). Only positive answers: a name not listed is
    still asked for (another client may just have made it).

    ``list_dir(path)`` lists a directory (the caller's engine call)."""

    def __init__(self, table: InodeTable, timeout: float, list_dir: Lister) -> None:
        self.table = table
        self.timeout = timeout
        self._list_dir = list_dir

    async def answer(self, parent: Node, name: str, path: str) -> Node | None:
        """The node for a lookup of ``name`` in ``parent`` from a listing,
        or None: ask the server."""
        now = trio.current_time()
        if parent.prefetching is not None:
            await parent.prefetching.wait()
        elif parent.prefetch is None or now >= parent.prefetch_until:
            parent.prefetch = None
            if now - parent.miss_since > self.timeout:
                parent.misses, parent.miss_since = 0, now
            parent.misses += 1
            if parent.misses < PREFETCH_AFTER:
                return None
            parent.misses = 0
            await self._prefetch(parent)
        listing = parent.prefetch
        if listing is None or trio.current_time() >= parent.prefetch_until:
            return None
        info = listing.get(name.casefold())
        if info is None:
            return None
        node = self.table.by_path(path)
        if node is not None and node.changed > parent.prefetch_stamp:
            return None  # we changed it after the listing was asked for
        # A copy: the node's info is updated in place (write), the
        # listing's entry must not follow it.
        return self.table.remember(path, dataclasses.replace(info), parent.prefetch_stamp)

    async def _prefetch(self, parent: Node) -> None:
        done = parent.prefetching = trio.Event()
        since = self.table.stamp()
        try:
            entries = await self._list_dir(parent.path)
        except SMBError as e:
            log.debug("listing %r for lookups: %s", parent.path, e)
            return
        finally:
            parent.prefetching = None
            done.set()
        if parent.changed > since:
            return  # we changed its names meanwhile
        parent.prefetch = {e.name.casefold(): e for e in entries}
        if parent.listing is not None:
            # A directory we made, whose names we knew: this listing renews
            # that knowledge for actimeo (negative entries keep working in a
            # long create storm, e.g. tar -x of a big directory).
            self.table.set_listing(parent, set(parent.prefetch), since)
        parent.prefetch_stamp = since
        parent.prefetch_until = trio.current_time() + self.timeout
