"""pyfuse3 operations on one tree connect: what the kernel asks, in SMB.

The handlers here are thin: they find the node or handle, call the engine
and keep the inode table current. The decisions live next door, as in the
Linux cifs client's split of inode.c/file.c/dir.c/xattr.c:

* :mod:`smbfs.fs.posix`: the pure POSIX decisions (names, access masks and
  dispositions from open flags, mode <-> DOS attributes, errnos needing no
  I/O);
* :mod:`smbfs.fs.namespace`: unlink, rename, link and symlink where SMB
  refuses what POSIX allows;
* :mod:`smbfs.fs.handles`: the open handles and the page-cache decision;
* :mod:`smbfs.fs.xattrs`: ``user.`` xattrs as SMB EAs;
* :mod:`smbfs.fs.inodes`: nodes, the attribute cache, the lookup-storm
  prefetch.

Every handler runs concurrently with the others (pyfuse3 on trio starts one
task per request); none holds a lock across a network call. Every exception
leaves as a FUSEError with the errno of the one NTSTATUS table
(:func:`smbfs.fs.errors.to_fuse_error`): pyfuse3 only catches FUSEError,
anything else would end the main loop.

Caching (see docs/filesystem.md): every file open asks for a
read/write/handle lease and a durable handle under the node's own lease
key (:meth:`HandleTable.lease_key_for`); what the lease promises is cached
exactly while it holds (:mod:`smbfs.fs.leasecache`: attributes answered
locally, pages kept across opens, deferred close), and undone before a
break is acknowledged. Directories in active use are covered by a
directory lease or a change notification (:mod:`smbfs.fs.dircache`).
Everything else is trusted for ``actimeo`` seconds (the kernel is told the
same timeouts); our own name changes keep the parent's attributes and, in
directories we made, answer lookups of absent names; lookup storms list the
directory once. Writes are held back while the file's lease has W
(:mod:`smbfs.fs.writeback`); the kernel's writeback cache stays off
(docs/filesystem.md says why).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from smbfs.client import compound_ops, paths
from smbfs.client.errors import SMBError
from smbfs.client.open import FileInfo, Open
from smbfs.client.tree import Tree
from smbfs.fs import posix, xattrs
from smbfs.fs.dircache import DirCache
from smbfs.fs.errors import to_fuse_error
from smbfs.fs.handles import Handle, HandleTable, keep_pages, page_sig
from smbfs.fs.inodes import InodeTable, LookupPrefetch, Node, join, new_lease_key, parent_of
from smbfs.fs.kernel import KernelCache
from smbfs.fs.leasecache import LEASED_ATTR_TIMEOUT, FileLeases
from smbfs.fs.namespace import Namespace
from smbfs.fs.options import FsOptions
from smbfs.fs.writeback import Writeback

# API vocabulary of the engine: Tree.create takes AccessMask and
# CreateOptions values, and SMBError.status is an NTSTATUS code.
from smbfs.proto.create import AccessMask, CreateOptions
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.oplock_break import LeaseState

log = logging.getLogger(__name__)

_A = AccessMask
P = ParamSpec("P")
T = TypeVar("T")

_QUIET = frozenset({"read", "write", "readdir"})


def _fuse_op(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Turn every failure of a handler into a FUSEError."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if log.isEnabledFor(logging.DEBUG) and fn.__name__ not in _QUIET:
            log.debug("%s%r", fn.__name__, args[1:3])
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise to_fuse_error(e, fn.__name__) from None

    return wrapper


@dataclass(slots=True)
class FsFacts:
    """What the share's filesystem says about itself at mount time."""

    attributes: int = 0
    max_name: int = posix.NAME_MAX
    name: str = ""
    writable: bool = True
    announces_eas: bool = False
    eas_probe: bool = False

    @property
    def eas(self) -> bool:
        # Samba 4.17 serves EAs without announcing
        # FILE_SUPPORTS_EXTENDED_ATTRIBUTES, hence the probe as well.
        return self.eas_probe or self.announces_eas


class SmbOperations(pyfuse3.Operations):
    """The filesystem. ``await start()`` before mounting, ``await
    close_all()`` after unmounting."""

    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(self, tree: Tree, root_path: str, options: FsOptions) -> None:
        super().__init__()
        self.tree = tree
        self.options = options
        timeout = 0.0 if options.cache == "none" else max(0.0, options.actimeo)
        self.timeout = timeout
        self.inodes = InodeTable(root_path, serverino=not options.noserverino,
                                 actimeo=timeout)
        self.handles = HandleTable()
        self.names = Namespace(tree, self.inodes, self.handles)
        self.prefetch = LookupPrefetch(self.inodes, timeout, self._list_for_lookups)
        self.facts = FsFacts()
        self.root_open: Open | None = None
        # What the kernel caches; told to drop it when a lease or a
        # notification says the server's copy changed.
        self.kernel = KernelCache()
        self.leases = FileLeases(tree, self.inodes, self.handles, self.kernel)
        self.names.close_parked = self.leases.close_parked
        self.closetimeo = 0.0 if options.cache == "none" else max(0.0, options.closetimeo)
        # Directories in active use, their names exact while a directory
        # lease or a change notification covers them (smbfs.fs.dircache).
        self.dircache = DirCache(tree, self.inodes, self.kernel,
                                 enabled=options.dircache and options.cache != "none"
                                 and timeout > 0,
                                 timeout=timeout)
        # Write-behind under a W lease (smbfs.fs.writeback): hooks in
        # write/read/flush/fsync/release/setattr/_refresh.
        self.writeback = Writeback(tree, self.handles)
        self.leases.flushers.append(self.writeback.flush_node)

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the root (for statfs and capabilities) and learn the share."""
        root = self.inodes.root
        self.root_open = await self.tree.create(
            root.path, desired_access=posix.READ_ACCESS & ~_A.FILE_READ_EA,
            options=CreateOptions.FILE_DIRECTORY_FILE, lease=False, durable=False,
        )
        info = await self.root_open.query_attributes()
        self.inodes.set_info(root, info)
        root.server_id = info.file_id
        try:
            fa = await self.root_open.query_fs_attributes()
            self.facts.attributes = fa.attributes
            self.facts.announces_eas = fa.supports_eas
            self.facts.max_name = fa.max_name or posix.NAME_MAX
            self.facts.name = fa.name
        except SMBError as e:
            log.debug("FileFsAttributeInformation: %s", e)
        self.facts.eas_probe = await xattrs.probe(self.tree, root)
        self.writeback.subscribe()
        self.leases.start()
        maximal = self.tree.maximal_access
        self.facts.writable = bool(maximal & (_A.FILE_WRITE_DATA | _A.GENERIC_WRITE
                                              | _A.GENERIC_ALL)) if maximal else True
        log.debug("share %s: fs %r attributes %#x writable %s", self.tree.share_name,
                  self.facts.name, self.facts.attributes, self.facts.writable)

    async def run(self) -> None:
        """The mount's background work while it serves: the kernel's
        invalidations and the deferred closes."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.kernel.run)
            nursery.start_soon(self.leases.run)
            nursery.start_soon(self.dircache.run)

    async def close_all(self) -> None:
        """Close every handle still open (after unmount), best effort."""
        await self.writeback.flush_all()
        self.writeback.unsubscribe()
        await self.dircache.close()
        opens = self.handles.take_all()
        if self.root_open is not None:
            opens.append(self.root_open)
        for op in opens:
            try:
                await op.close(post_query=False)
            except Exception as e:
                log.debug("close of %r at unmount failed: %s", op.path, e)

    # ------------------------------------------------------------ attributes

    def attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        attr_timeout = self.timeout
        if attr_timeout > 0 and not node.is_dir and self.handles.read_cached(node):
            # Exact while the read lease holds; its break or end tells the
            # kernel to forget (leasecache).
            attr_timeout = LEASED_ATTR_TIMEOUT
        return posix.entry_attributes(node, self.options, self.timeout, attr_timeout)

    def _fresh(self, node: Node) -> FileInfo | None:
        """Cached attributes still to be trusted: for actimeo, or while a
        read lease of ours covers the file."""
        leased = self.timeout > 0 and not node.is_dir and self.handles.read_cached(node)
        return self.inodes.fresh_info(node, leased)

    async def _refresh(self, node: Node) -> FileInfo:
        """Fresh attributes from the server: through an open handle when we
        have one (it survives an unlink), else a one-round-trip stat."""
        since = self.inodes.stamp()
        if self.writeback.dirty(node):
            # The size we wrote, not the server's; after the stamp, so a
            # write taken meanwhile leaves the answer untrusted.
            await self.writeback.flush_node(node)
        h = self.handles.of_node(node)
        parked = self.handles.parked_open(node) if h is None else None
        if h is not None:
            async with h.using() as op:
                info = await op.query_attributes()
        elif parked is not None:
            info = await parked.query_attributes()
        elif node is self.inodes.root and self.root_open is not None:
            info = await self.root_open.query_attributes()
        else:
            info = await paths.stat(self.tree, node.path)
        if not info.file_id:
            info.file_id = node.server_id
        self.inodes.set_info(node, info, since)
        return info

    def _entry(self, node: Node) -> pyfuse3.EntryAttributes:
        """Attributes handed to the kernel with a new reference to ``node``."""
        self.inodes.lookup(node)
        self.dircache.given(node)
        return self.attributes(node)

    async def _stat_path(self, path: str) -> Node:
        since = self.inodes.stamp()
        await self.writeback.flush_path(path)
        info = await paths.stat(self.tree, path)
        return self.inodes.remember(path, info, since)

    def _check_writable(self) -> None:
        if self.options.read_only or not self.facts.writable:
            raise pyfuse3.FUSEError(errno.EROFS)

    # -------------------------------------------------------------- lookup

    @_fuse_op
    async def lookup(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        if n == ".":
            return self._entry(parent)
        if n == "..":
            p = self.inodes.by_path(parent_of(parent.path)) or self.inodes.root
            return self._entry(p)
        posix.check_lookup_name(n, self.facts.max_name)
        path = join(parent.path, n)
        node = self.inodes.by_path(path)
        # Not _fresh: a file lease says nothing about the file's name
        # (another client may delete or rename it without breaking R).
        if node is not None and self.inodes.fresh_info(node) is not None:
            self.dircache.use(parent)
            return self._entry(node)
        # A covered directory answers from its exact listing (ENOENT too).
        node = self.dircache.lookup(parent, n, path)
        if node is not None:
            return self._entry(node)
        if self.inodes.known_absent(parent, n):
            # Not in a directory we made less than actimeo ago, whose names
            # our own changes keep current: the kernel's lookup before every
            # create there costs no round trip (docs/filesystem.md,
            # negative entries).
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.timeout > 0:
            node = await self.prefetch.answer(parent, n, path)
            if node is not None:
                return self._entry(node)
            if self.inodes.known_absent(parent, n):
                raise pyfuse3.FUSEError(errno.ENOENT)
        try:
            node = await self._stat_path(path)
        except SMBError as e:
            if e.status == NTStatus.STATUS_DELETE_PENDING:
                raise pyfuse3.FUSEError(errno.ENOENT) from None
            raise
        return self._entry(node)

    async def _list_for_lookups(self, path: str) -> list[FileInfo]:
        await self.writeback.flush_in(path)
        async with await self.tree.create(
                path, desired_access=_A.FILE_LIST_DIRECTORY | posix.ATTR_ACCESS,
                options=CreateOptions.FILE_DIRECTORY_FILE, lease=False,
                durable=False) as op:
            return await op.list_directory()

    @_fuse_op
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            self.inodes.forget(ino, n)
        log.debug("forgot %d inodes, %d left", len(inode_list), len(self.inodes))

    @_fuse_op
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        node = self.inodes.get(inode)
        if self._fresh(node) is None:
            await self._refresh(node)
        return self.attributes(node)

    @_fuse_op
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes,
                      fields: pyfuse3.SetattrFields, fh: int | None,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.inodes.get(inode)
        want_size = fields.update_size
        want_times = fields.update_atime or fields.update_mtime
        want_mode = fields.update_mode and not node.is_dir
        if not (want_size or want_times or want_mode):
            # chown: SMB without unix extensions has no per-file owner; like
            # cifs.ko we accept and ignore it (the owner shown is uid=/gid=).
            return await self.getattr(inode, ctx)
        self._check_writable()
        await self.writeback.flush_node(node, report=True)  # writes before a truncate
        handle = self.handles.files.get(fh) if fh is not None else None
        if handle is None or not handle.writable:
            # futimens/fchmod arrive without fh: still use our writable
            # handle if there is one, or Samba's update of the write time
            # at that handle's close would undo an explicit mtime (cp -a).
            handle = self.handles.of_node(node, writable=True)
        parked = self.handles.parked_open(node, writable=True) if handle is None else None
        sets = self._setattr_infos(node, attr, fields)
        if not sets:
            # A chmod that changes nothing SMB stores: nothing to send.
            return await self.getattr(inode, ctx)
        # The change and the attributes it left go in one compound (a
        # refresh after it would cost a second round trip).
        self.inodes.invalidate(node)
        self.inodes.content_changed(node)
        since = self.inodes.stamp()
        if fields.update_mtime:
            # The program's time wins over the one a close(2) would set.
            for other in self.handles.of_node_all(node):
                other.dirty = False
        elif fields.update_size and handle is not None:
            handle.dirty = True
        if handle is not None:
            async with handle.using() as op:
                info = await compound_ops.set_info_query(op, sets)
        elif parked is not None:
            info = await compound_ops.set_info_query(parked, sets)
        else:
            access = 0
            if fields.update_size:
                access |= _A.FILE_WRITE_DATA
            if len(sets) > int(fields.update_size):
                access |= _A.FILE_WRITE_ATTRIBUTES
            info = await compound_ops.set_info_stat(self.tree, node.path, sets, access=access)
        if not info.file_id:
            info.file_id = node.server_id
        self.inodes.set_info(node, info, since)
        return self.attributes(node)

    def _setattr_infos(self, node: Node, attr: pyfuse3.EntryAttributes,
                       fields: pyfuse3.SetattrFields) -> list[tuple[int, bytes]]:
        sets: list[tuple[int, bytes]] = []
        if fields.update_size:
            sets.append(compound_ops.end_of_file_info(attr.st_size))
        attrs = 0
        if fields.update_mode and not node.is_dir:
            attrs = posix.mode_attributes(node.info.attributes if node.info else 0,
                                          attr.st_mode)
        if fields.update_atime or fields.update_mtime or attrs:
            sets.append(compound_ops.basic_info(
                access_ns=attr.st_atime_ns if fields.update_atime else None,
                write_ns=attr.st_mtime_ns if fields.update_mtime else None,
                attributes=attrs))
        return sets

    # ------------------------------------------------------------ directories

    @_fuse_op
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.inodes.get(inode)
        op = await self.tree.create(
            node.path,
            desired_access=_A.FILE_LIST_DIRECTORY | _A.FILE_READ_ATTRIBUTES | _A.SYNCHRONIZE,
            options=CreateOptions.FILE_DIRECTORY_FILE, lease=False, durable=False,
        )
        d = self.handles.add_dir(node, op)
        self.inodes.opened(node)
        return d.fh

    @_fuse_op
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        d = self.handles.dirs[fh]
        if start_id == 0 or d.entries is None:
            d.since = self.inodes.stamp()
            cached = self.dircache.listing(d.node)
            if cached is not None:
                d.entries = cached
                d.since = self.dircache.listing_stamp(d.node)
            else:
                await self.writeback.flush_in(d.node.path)  # sizes the kernel will believe
                async with d.using() as op:
                    entries = await op.list_directory()
                d.entries = [e for e in entries if not posix.is_hidden(e.name)]
                self.dircache.listed(d.node, d.entries, d.since)
        base = d.node.path
        # "." and ".." first (ls -a shows them; the kernel does not make them
        # up); per libfuse they carry no lookup reference.
        if start_id < 1:
            if not pyfuse3.readdir_reply(token, b".", self._dot_attrs(d.node), 1):
                return
        if start_id < 2:
            up = self.inodes.by_path(parent_of(base)) if d.node is not self.inodes.root \
                else None
            if not pyfuse3.readdir_reply(token, b"..", self._dot_attrs(up or self.inodes.root),
                                         2):
                return
        for i in range(max(0, start_id - 2), len(d.entries)):
            info = d.entries[i]
            # The listing's attributes are as good as a stat: cache them so
            # the lookups/getattrs of `ls -l` cost no round trip.
            node = self.inodes.remember(join(base, info.name), info, d.since)
            if not pyfuse3.readdir_reply(token, os.fsencode(info.name),
                                         self.attributes(node), i + 3):
                self.inodes.forget(node.ino, 0)
                break
            self.inodes.lookup(node)
            self.dircache.given(node)

    def _dot_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        if node.info is None:
            node.info = posix.placeholder_dir_info()
        return self.attributes(node)

    @_fuse_op
    async def releasedir(self, fh: int) -> None:
        d = self.handles.pop_dir(fh)
        if d is None:
            return
        self.inodes.closed(d.node)
        async with d.using() as op:
            await op.close(post_query=False)

    @_fuse_op
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None

    @_fuse_op
    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        posix.check_name(n)
        self._check_writable()
        path = join(parent.path, n)
        since = self.inodes.stamp()
        try:
            # With the query in the compound: the file id (our inode
            # number) without a second round trip.
            info = await compound_ops.mkdir_stat(self.tree, path)
        except BaseException:
            parent.listing = None  # e.g. it existed after all
            raise
        self.inodes.listed(path)
        self.inodes.touched(parent)
        self.dircache.added(parent, n, info)
        node = self.inodes.remember(path, info, since)
        self.inodes.set_listing(node, set())  # new, hence empty
        return self._entry(node)

    @_fuse_op
    async def rmdir(self, parent_inode: int, name: bytes,
                    ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        self._check_writable()
        path = join(parent.path, n)
        await self.dircache.release(path)
        await paths.rmdir(self.tree, path)
        self.inodes.removed(path)
        self.inodes.touched(parent)
        self.dircache.removed(parent, n)

    # ------------------------------------------------------------------ files

    def _register(self, node: Node, op: Open, writable: bool, keep_cache: bool = False,
                  lease_key: bytes | None = None) -> pyfuse3.FileInfo:
        rsize, wsize = self.options.rsize, self.options.wsize
        if rsize:
            op.max_read = max(1, min(op.max_read, rsize))
        if wsize:
            op.max_write = max(1, min(op.max_write, wsize))
        h = self.handles.add_file(node, op, writable, lease_key)
        self.inodes.opened(node)
        fi = pyfuse3.FileInfo(fh=h.fh)
        fi.keep_cache = keep_cache
        fi.direct_io = self.options.cache == "none"
        return fi

    @_fuse_op
    async def open(self, inode: int, flags: int,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.inodes.get(inode)
        access, writable = posix.access_for(flags)
        if writable or flags & os.O_TRUNC:
            self._check_writable()
        if flags & os.O_TRUNC:
            await self.writeback.flush_node(node)  # buffered writes before the truncate
        parked = self.handles.unpark(node, access)
        if parked is not None:
            # Deferred close: the handle released a moment ago serves this
            # open, no round trip (its lease was kept all along).
            try:
                fi = await self._open_with(node, parked.open, flags, writable,
                                           parked.lease_key)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await parked.open.close(post_query=False)
                    self.leases.closed(node, None)
                raise
            self.inodes.closed(node)  # the parked open's count moves to the handle
            return fi
        key = self.handles.lease_key_for(node)
        op = await self.tree.create(node.path, desired_access=access, lease=True,
                                    durable=True, lease_key=key,
                                    options=CreateOptions.FILE_NON_DIRECTORY_FILE)
        if op.lease is not None and op.lease.key != key:
            # Ours is filed under another name (the file was renamed away by
            # someone else): this name is another file, with the key it got.
            key = op.lease.key
            self.handles.adopt_key(node, key)
        try:
            return await self._open_with(node, op, flags, writable, key)
        except BaseException:
            with trio.CancelScope(shield=True):
                await op.close(post_query=False)
            raise

    async def _open_with(self, node: Node, op: Open, flags: int, writable: bool,
                             key: bytes | None) -> pyfuse3.FileInfo:
        """Register ``op`` (new, or parked until now) as a handle of
        ``node`` opened with ``flags``, deciding about the cached pages."""
        state = self.handles.lease_state(node) | (op.lease.state if op.lease else 0)
        truncate = bool(flags & os.O_TRUNC) and writable
        if truncate:
            await op.truncate(0)
            self.inodes.invalidate(node)
            node.page_sig = None
            keep = False
        else:
            keep = keep_pages(self.options.cache, node, state, op.info)
        fi = self._register(node, op, writable, keep, key)
        if truncate:
            self.handles.files[fi.fh].dirty = True
        return fi

    @_fuse_op
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        posix.check_name(n)
        self._check_writable()
        path = join(parent.path, n)
        access, _ = posix.access_for(flags)
        # A name we know keeps its node's key (O_CREAT of an existing file);
        # a new file gets a new key, which becomes its node's.
        known = self.inodes.by_path(path)
        if known is not None:
            await self.writeback.flush_node(known)  # before an O_TRUNC of it
        key = self.handles.lease_key_for(known) if known is not None and not known.is_dir \
            else new_lease_key()
        try:
            op = await self.tree.create(path, desired_access=access | _A.FILE_WRITE_ATTRIBUTES,
                                        disposition=posix.create_disposition(flags),
                                        query_on_disk_id=True, lease=True, durable=True,
                                        lease_key=key,
                                        options=CreateOptions.FILE_NON_DIRECTORY_FILE)
        except BaseException:
            parent.listing = None  # e.g. another client made the name
            raise
        if op.lease is not None:
            key = op.lease.key  # a new one if ours is filed under another name now
        self.inodes.listed(path)
        self.inodes.touched(parent)
        info = op.info
        if not info.file_id and self.inodes.serverino:
            try:
                info = await op.query_attributes()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await op.close(post_query=False)
                raise
        node = self.inodes.remember(path, info)
        self.dircache.added(parent, n, info)
        node.server_id = info.file_id
        node.page_sig = page_sig(op.info)  # the pages are dropped at this open
        self.handles.adopt_key(node, key)
        fi = self._register(node, op, True, lease_key=key)
        return fi, self._entry(node)

    @_fuse_op
    async def read(self, fh: int, off: int, size: int) -> bytes:
        h = self.handles.files[fh]
        if self.writeback.dirty(h.node):
            await self.writeback.flush_node(h.node, report=True)
        async with h.using() as op:
            data = await op.read(off, size)
        return data  # type: ignore[return-value]  # bytearray is a buffer too

    @_fuse_op
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self.handles.files[fh]
        if not h.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        cached = await self.writeback.write(h, off, buf)  # under W: buffered
        if cached is not None:
            h.dirty = True
            self.inodes.invalidate(h.node)
            return cached
        async with h.using() as op:
            n = await op.write(off, buf)
        h.dirty = True
        node = h.node
        if node.info is not None:
            # Keep the size we know current without a round trip; times come
            # with the next refresh.
            node.info.size = max(node.info.size, off + n)
        self.inodes.invalidate(node)
        return n

    @_fuse_op
    async def flush(self, fh: int) -> None:
        # close(2): what the write-behind holds goes to the server first;
        # SMB2 FLUSH is for fsync only (like cifs.ko). A handle that wrote
        # then gets its write time set, with the attributes it leaves in the
        # same round trip (Handle.dirty says why).
        h = self.handles.files.get(fh)
        if h is None or not h.writable:
            return
        if not h.dirty:
            await self.writeback.flush(h)
            return
        if self.tree.session.state != "connected" and not self.writeback.holds(h.node):
            # The data is on the server; only the write time is left, and a
            # close(2) (a fork's close-on-exec included) must not wait for
            # a reconnect for that. The release closes the handle then, and
            # the server sets the time.
            return
        h.dirty = False
        node = h.node
        self.inodes.invalidate(node)
        since = self.inodes.stamp()
        # The last buffered bytes, the write time and the attributes it
        # leaves in one round trip where possible.
        info = await self.writeback.flush_and_set(
            h, [compound_ops.basic_info(write_ns=time.time_ns() // 100 * 100)])
        if not info.file_id:
            info.file_id = node.server_id
        self.inodes.set_info(node, info, since)

    @_fuse_op
    async def fsync(self, fh: int, datasync: bool) -> None:
        h = self.handles.files.get(fh)
        if h is not None and h.writable:
            await self.writeback.fsync(h)
            async with h.using() as op:
                await op.flush()

    @_fuse_op
    async def release(self, fh: int) -> None:
        h = self.handles.pop_file(fh)
        if h is None:
            return
        if h.writable:
            self.inodes.content_changed(h.node)
        if self._may_park(h):
            # Deferred close: kept open (and the node with it) until
            # closetimeo passes or the server wants handle caching back.
            self.handles.park(h, trio.current_time() + self.closetimeo)
            return
        info = None
        try:
            since = self.inodes.stamp()
            # The write-behind's dirty tail (written after the last
            # close(2)): drained, or sent with the CLOSE in one compound.
            done, info = await self.writeback.before_close(h)
            if not done:
                async with h.using() as op:
                    info = await op.close()
            if info is not None and h.node.info is not None and not h.node.is_dir:
                info.file_id = h.node.server_id
                info.nlink = h.node.info.nlink
                self.inodes.set_info(h.node, info, since)
        finally:
            self.leases.closed(h.node, info)

    def _may_park(self, h: Handle) -> bool:
        op = h.open
        return (self.closetimeo > 0 and not h.dirty and not h.node.unlinked
                and not op.closed
                and op.lease is not None
                and bool(op.lease.state & LeaseState.SMB2_LEASE_HANDLE_CACHING))

    # ------------------------------------------------------------ name changes

    @_fuse_op
    async def unlink(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        self._check_writable()
        await self.names.unlink(join(parent.path, n))
        self.inodes.touched(parent)
        self.dircache.removed(parent, n)

    @_fuse_op
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        noreplace = posix.check_rename_flags(flags)
        old_parent = self.inodes.get(parent_inode_old)
        new_parent = self.inodes.get(parent_inode_new)
        old = join(old_parent.path, posix.decode_name(name_old))
        nn = posix.decode_name(name_new)
        posix.check_name(nn)
        self._check_writable()
        await self.dircache.release(old)
        await self.dircache.release(join(new_parent.path, nn))  # a directory replaced
        await self.names.rename(old, join(new_parent.path, nn), noreplace=noreplace)
        self.inodes.touched(old_parent)
        self.inodes.touched(new_parent)
        self.dircache.renamed(old_parent, old.rsplit("\\", 1)[-1], new_parent, nn)

    @_fuse_op
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.inodes.get(inode)
        parent = self.inodes.get(new_parent_inode)
        n = posix.decode_name(new_name)
        posix.check_name(n)
        self._check_writable()
        path = join(parent.path, n)
        await self.names.link(node, path)
        self.inodes.touched(parent)
        new_node = await self._stat_path(path)
        self.dircache.added(parent, n, new_node.info)
        if new_node is not node:
            self.inodes.invalidate(node)
        return self._entry(new_node)

    @_fuse_op
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        parent = self.inodes.get(parent_inode)
        n = posix.decode_name(name)
        posix.check_name(n)
        self._check_writable()
        await self.names.symlink(join(parent.path, n), posix.decode_name(target))

    @_fuse_op
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)  # nothing here is shown as a symlink

    @_fuse_op
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        posix.check_mknod(mode)
        fi, attrs = await self.create(parent_inode, name, mode, os.O_WRONLY | os.O_EXCL, ctx)
        await self.release(fi.fh)
        return attrs

    # ------------------------------------------------------------- statfs

    @_fuse_op
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        assert self.root_open is not None
        size = await self.root_open.query_fs_size()
        s = pyfuse3.StatvfsData()
        s.f_bsize = size.unit_size
        s.f_frsize = size.unit_size
        s.f_blocks = size.total_units
        s.f_bfree = size.free_units
        s.f_bavail = size.available_units
        s.f_files = 0
        s.f_ffree = 0
        s.f_favail = 0
        s.f_namemax = self.facts.max_name
        return s

    # ------------------------------------------------------------- xattrs

    @_fuse_op
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.inodes.get(inode)
        return await xattrs.get(self.tree, node, name, self.facts.eas)

    @_fuse_op
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        node = self.inodes.get(inode)
        return await xattrs.names(self.tree, node, self.facts.eas)

    @_fuse_op
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        node = self.inodes.get(inode)
        ea = posix.ea_name(name, self.facts.eas)
        self._check_writable()
        await xattrs.store(self.tree, node, ea, value)

    @_fuse_op
    async def removexattr(self, inode: int, name: bytes,
                          ctx: pyfuse3.RequestContext) -> None:
        node = self.inodes.get(inode)
        ea = posix.ea_name(name, self.facts.eas)
        self._check_writable()
        await xattrs.remove(self.tree, node, ea)
