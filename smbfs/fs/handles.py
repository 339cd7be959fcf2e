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
(:func:`keep_pages`) is decided here too: it depends on which handles are
open on the file and on what the file looked like when its pages were
cached (``Node.page_sig``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from smbfs.client import compound_ops
from smbfs.client.open import FileInfo, Open
from smbfs.client.tree import Tree
from smbfs.fs.inodes import Node, new_lease_key


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
                   for h in self._by_node.get(node, ()))
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

    def below(self, path: str) -> list[Gated]:
        """The handles open on paths below the directory ``path``."""
        prefix = path.casefold() + "\\"
        return [h for h in (*self.files.values(), *self.dirs.values())
                if h.node.path.casefold().startswith(prefix) and not h.open.closed]

    def take_all(self) -> list[Open]:
        """Forget every handle and return their opens (to close at unmount)."""
        opens = [h.open for h in self.files.values()] + [d.open for d in self.dirs.values()]
        self.files.clear()
        self._by_node.clear()
        self.dirs.clear()
        return opens


# ------------------------------------------------------------ page cache


def page_sig(info: FileInfo) -> tuple[int, int | None, int | None]:
    """What a file's cached pages are known to match: size, write time and
    change time."""
    return info.size, info.write_ns, info.change_ns


async def keep_pages(tree: Tree, cache: str, handles: HandleTable, node: Node,
                     info: FileInfo) -> bool:
    """May the kernel keep the file's cached pages at this open?

    ``cache=loose``: yes (cifs.ko's loose mode; FUSE's auto_inval_data
    still drops them when a getattr shows a new mtime or size).
    ``cache=strict``: only when the server's copy provably did not
    change since the pages were cached: its size, write and change
    times equal those recorded when the pages were last known to match
    (an open, then a close that found them unchanged), NFS's
    close-to-open rule, read at an instant when nobody holds the file
    open for writing (Samba holds back the write time of a writer that
    has not closed yet: :func:`compound_ops.probe_no_writers`, one more
    round trip, only when the times match). docs/filesystem.md has the
    reasoning and its limits. Records ``info`` as what the pages match
    from now on."""
    sig = page_sig(info)
    keep = False
    if cache == "loose":
        keep = True
    elif cache == "strict" and node.page_sig == sig \
            and handles.of_node(node, writable=True) is None:
        probed = await compound_ops.probe_no_writers(tree, node.path)
        keep = probed is not None and page_sig(probed) == sig
    node.page_sig = sig
    return keep
