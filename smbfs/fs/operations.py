"""pyfuse3 operations on one tree connect: what the kernel asks, in SMB.

Every handler runs concurrently with the others (pyfuse3 on trio starts one
task per request); none holds a lock across a network call. Every exception
leaves as a FUSEError with the errno of the one NTSTATUS table
(:func:`smbfs.fs.errors.to_fuse_error`): pyfuse3 only catches FUSEError,
anything else would end the main loop.

Caching (see docs/filesystem.md): attributes and directory entries are
trusted for ``actimeo`` seconds (the kernel is told the same timeouts); our
own name changes keep the parent's attributes and, in directories we made,
answer lookups of absent names; lookup storms list the directory once.
File pages are kept across opens with ``cache=loose``, and with
``cache=strict`` only when provably unchanged (:meth:`SmbOperations._keep_pages`).
Writes go straight to the server (no writeback cache). There is no
lease-driven cache yet, so opens ask for no lease (and hence no durable
handle): the engine's lease keys follow paths, which a rename of an open
file (our unlink of open files) would leave stale.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import logging
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import pyfuse3
import trio

from smbfs.client import compound_ops, paths
from smbfs.client.errors import SMBError
from smbfs.client.open import READ_WRITE, FileInfo, Open
from smbfs.client.tree import Tree
from smbfs.fs.errors import to_fuse_error
from smbfs.fs.inodes import InodeTable, Node, join, parent_of
from smbfs.fs.options import FsOptions
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions
from smbfs.proto.fscc.attributes import FileAttributes, FileInformationClass
from smbfs.proto.fscc.ea import FileFullEaEntry, FileFullEaInformation
from smbfs.proto.fscc.file_info import FileLinkInformation
from smbfs.proto.fscc.filesystem import (
    FileFsAttributeInformation,
    FileFsFullSizeInformation,
    FileSystemAttributes,
)
from smbfs.proto.fscc.reparse import SYMLINK_FLAG_RELATIVE, SymbolicLinkReparseBuffer
from smbfs.proto.fsctl import CtlCode
from smbfs.proto.info import InfoType
from smbfs.proto.ntstatus import NTStatus

log = logging.getLogger(__name__)

_S = NTStatus
_A = AccessMask
P = ParamSpec("P")
T = TypeVar("T")

# Unlinked-but-open files are renamed to this prefix and hidden from listings
# (POSIX unlink semantics over Windows delete-pending, docs/filesystem.md).
HIDDEN_PREFIX = ".smbfs-deleted-"
# [MS-FSCC] 2.1.5: characters a file name component cannot hold on the wire.
_FORBIDDEN = frozenset('\\:*?"<>|') | frozenset(chr(c) for c in range(1, 32))
_READ_ACCESS = (_A.FILE_READ_DATA | _A.FILE_READ_ATTRIBUTES | _A.FILE_READ_EA
                | _A.READ_CONTROL | _A.SYNCHRONIZE)
_ATTR_ACCESS = _A.FILE_READ_ATTRIBUTES | _A.SYNCHRONIZE
_BLKSIZE = 1024 * 1024
# Lookup misses in one directory within actimeo before it is listed once to
# answer the others (a listing costs about three round trips).
PREFETCH_AFTER = 4
_EA_OUT = 65536


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


def _page_sig(info: FileInfo) -> tuple[int, int | None, int | None]:
    return info.size, info.write_ns, info.change_ns


def _decode_name(name: bytes) -> str:
    try:
        return os.fsdecode(name).encode("utf-8", "strict").decode("utf-8")
    except UnicodeError:
        # Not UTF-8: SMB names are UTF-16, so bytes that decode to nothing
        # cannot be sent (EILSEQ: illegal byte sequence).
        raise pyfuse3.FUSEError(errno.EILSEQ) from None


def check_name(name: str) -> None:
    """Refuse a name the server cannot store, with EINVAL (docs/filesystem.md)."""
    if not name or name in (".", "..") or any(c in _FORBIDDEN for c in name) \
            or name[-1] in ". ":
        raise pyfuse3.FUSEError(errno.EINVAL)
    if name.startswith(HIDDEN_PREFIX):
        raise pyfuse3.FUSEError(errno.EINVAL)


def _could_exist(name: str) -> bool:
    # A trailing dot or space is refused for new names only: Samba stores
    # and lists such names (made on its disk by others), so they must be
    # reachable.
    return bool(name) and not any(c in _FORBIDDEN for c in name)


@dataclass(eq=False, slots=True)
class _Gated:
    """An SMB open behind a FUSE handle, which a directory rename may have
    to close and reopen under the handle's feet (Samba refuses to rename a
    directory with opens below it): users go through :meth:`using`, which
    waits while the open is being swapped."""

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
class Handle(_Gated):
    writable: bool = False


@dataclass(eq=False, slots=True)
class DirHandle(_Gated):
    entries: list[FileInfo] | None = None
    since: int = 0  # the inode table's stamp when the listing was asked for


@dataclass(slots=True)
class FsFacts:
    """What the share's filesystem says about itself at mount time."""

    attributes: int = 0
    max_name: int = 255
    name: str = ""
    writable: bool = True

    eas_probe: bool = False

    @property
    def eas(self) -> bool:
        # Samba 4.17 serves EAs without announcing
        # FILE_SUPPORTS_EXTENDED_ATTRIBUTES, hence the probe as well.
        return self.eas_probe or bool(
            self.attributes & FileSystemAttributes.FILE_SUPPORTS_EXTENDED_ATTRIBUTES)


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
        self.handles: dict[int, Handle] = {}
        # The file handles of each node, for getattr/setattr through a handle.
        self._node_handles: dict[Node, list[Handle]] = {}
        self.dirs: dict[int, DirHandle] = {}
        self._next_fh = 1
        self.facts = FsFacts()
        self.root_open: Open | None = None

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the root (for statfs and capabilities) and learn the share."""
        root = self.inodes.root
        self.root_open = await self.tree.create(
            root.path, desired_access=_READ_ACCESS & ~_A.FILE_READ_EA,
            options=CreateOptions.FILE_DIRECTORY_FILE, lease=False, durable=False,
        )
        info = await self.root_open.query_attributes()
        self.inodes.set_info(root, info)
        root.server_id = info.file_id
        try:
            buf = await self.root_open.query_info(
                FileFsAttributeInformation.INFO_CLASS,
                info_type=InfoType.SMB2_0_INFO_FILESYSTEM)
            fa = FileFsAttributeInformation.decode(buf)
            self.facts.attributes = fa.file_system_attributes
            self.facts.max_name = fa.maximum_component_name_length or 255
            self.facts.name = fa.file_system_name
        except SMBError as e:
            log.debug("FileFsAttributeInformation: %s", e)
        self.facts.eas_probe = await self._probe_eas()
        maximal = self.tree.maximal_access
        self.facts.writable = bool(maximal & (_A.FILE_WRITE_DATA | _A.GENERIC_WRITE
                                              | _A.GENERIC_ALL)) if maximal else True
        log.debug("share %s: fs %r attributes %#x writable %s", self.tree.share_name,
                  self.facts.name, self.facts.attributes, self.facts.writable)

    async def _probe_eas(self) -> bool:
        """Does the share take EAs? Ask for the root's (an empty answer is
        fine; STATUS_EAS_NOT_SUPPORTED is not)."""
        try:
            await self._all_eas(self.inodes.root)
        except SMBError as e:
            if e.status in (_S.STATUS_EAS_NOT_SUPPORTED, _S.STATUS_NOT_SUPPORTED,
                            _S.STATUS_INVALID_DEVICE_REQUEST):
                return False
            log.debug("EA probe: %s", e)
        return True

    async def close_all(self) -> None:
        """Close every handle still open (after unmount), best effort."""
        opens = [h.open for h in self.handles.values()] + \
            [d.open for d in self.dirs.values()]
        if self.root_open is not None:
            opens.append(self.root_open)
        self.handles.clear()
        self._node_handles.clear()
        self.dirs.clear()
        for op in opens:
            try:
                await op.close(post_query=False)
            except Exception as e:
                log.debug("close of %r at unmount failed: %s", op.path, e)

    def _new_fh(self) -> int:
        fh = self._next_fh
        self._next_fh += 1
        return fh

    # ------------------------------------------------------------ attributes

    def attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        info = node.info
        assert info is not None
        o = self.options
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = self.timeout
        a.attr_timeout = self.timeout
        if node.is_dir:
            mode = stat.S_IFDIR | (o.dir_mode & 0o7777)
        else:
            mode = stat.S_IFREG | (o.file_mode & 0o7777)
            if info.is_readonly:
                mode &= ~0o222
        a.st_mode = mode
        if node.is_dir:
            a.st_nlink = 1
        else:
            a.st_nlink = 0 if node.unlinked else max(info.nlink, 1)
        a.st_uid = o.uid
        a.st_gid = o.gid
        a.st_rdev = 0
        a.st_size = 0 if node.is_dir else info.size
        a.st_blksize = _BLKSIZE
        a.st_blocks = (info.allocation_size + 511) // 512
        mtime = info.write_ns or 0
        a.st_mtime_ns = mtime
        a.st_atime_ns = info.access_ns or mtime
        a.st_ctime_ns = info.change_ns or mtime
        a.st_birthtime_ns = info.creation_ns or 0
        return a

    def _handle_of(self, node: Node, *, writable: bool = False) -> Handle | None:
        for h in self._node_handles.get(node, ()):
            if not h.open.closed and (h.writable or not writable):
                return h
        return None

    async def _refresh(self, node: Node) -> FileInfo:
        """Fresh attributes from the server: through an open handle when we
        have one (it survives an unlink), else a one-round-trip stat."""
        since = self.inodes.stamp()
        h = self._handle_of(node)
        if h is not None:
            async with h.using() as op:
                info = await op.query_attributes()
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
        return self.attributes(node)

    async def _stat_path(self, path: str) -> Node:
        since = self.inodes.stamp()
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
        n = _decode_name(name)
        if n == ".":
            return self._entry(parent)
        if n == "..":
            p = self.inodes.by_path(parent_of(parent.path)) or self.inodes.root
            return self._entry(p)
        if not _could_exist(n) or len(n) > self.facts.max_name:
            raise pyfuse3.FUSEError(errno.ENOENT if len(n) <= 255 else errno.ENAMETOOLONG)
        path = join(parent.path, n)
        node = self.inodes.by_path(path)
        if node is not None and self.inodes.fresh_info(node) is not None:
            return self._entry(node)
        if self.inodes.known_absent(parent, n):
            # Not in a directory we made less than actimeo ago, whose names
            # our own changes keep current: the kernel's lookup before every
            # create there costs no round trip (docs/filesystem.md,
            # negative entries).
            raise pyfuse3.FUSEError(errno.ENOENT)
        if self.timeout > 0:
            node = await self._from_prefetch(parent, n, path)
            if node is not None:
                return self._entry(node)
            if self.inodes.known_absent(parent, n):
                raise pyfuse3.FUSEError(errno.ENOENT)
        try:
            node = await self._stat_path(path)
        except SMBError as e:
            if e.status == _S.STATUS_DELETE_PENDING:
                raise pyfuse3.FUSEError(errno.ENOENT) from None
            raise
        return self._entry(node)

    async def _from_prefetch(self, parent: Node, name: str, path: str) -> Node | None:
        """A lookup miss in ``parent``: after PREFETCH_AFTER misses within
        actimeo, list the directory once and answer lookups from that
        listing for actimeo (what rclone does for its fast stats; a
        readdirplus does the same for ls -l). Only positive answers: a
        name not listed is still asked for (another client may just have
        made it)."""
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
        node = self.inodes.by_path(path)
        if node is not None and node.changed > parent.prefetch_stamp:
            return None  # we changed it after the listing was asked for
        # A copy: the node's info is updated in place (write), the
        # listing's entry must not follow it.
        return self.inodes.remember(path, dataclasses.replace(info), parent.prefetch_stamp)

    async def _prefetch(self, parent: Node) -> None:
        done = parent.prefetching = trio.Event()
        since = self.inodes.stamp()
        try:
            async with await self.tree.create(
                    parent.path, desired_access=_A.FILE_LIST_DIRECTORY | _ATTR_ACCESS,
                    options=CreateOptions.FILE_DIRECTORY_FILE, lease=False,
                    durable=False) as op:
                entries = await op.list_directory()
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
            self.inodes.set_listing(parent, set(parent.prefetch), since)
        parent.prefetch_stamp = since
        parent.prefetch_until = trio.current_time() + self.timeout

    @_fuse_op
    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            self.inodes.forget(ino, n)
        log.debug("forgot %d inodes, %d left", len(inode_list), len(self.inodes))

    @_fuse_op
    async def getattr(self, inode: int,
                      ctx: pyfuse3.RequestContext | None = None) -> pyfuse3.EntryAttributes:
        node = self.inodes.get(inode)
        if self.inodes.fresh_info(node) is None:
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
        handle = self.handles.get(fh) if fh is not None else None
        if handle is None or not handle.writable:
            # futimens/fchmod arrive without fh: still use our writable
            # handle if there is one, or Samba's update of the write time
            # at that handle's close would undo an explicit mtime (cp -a).
            handle = self._handle_of(node, writable=True)
        sets = self._setattr_infos(node, attr, fields)
        if not sets:
            # A chmod that changes nothing SMB stores: nothing to send.
            return await self.getattr(inode, ctx)
        # The change and the attributes it left go in one compound (a
        # refresh after it would cost a second round trip).
        self.inodes.invalidate(node)
        self.inodes.content_changed(node)
        since = self.inodes.stamp()
        if handle is not None:
            async with handle.using() as op:
                info = await compound_ops.set_info_query(op, sets)
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
        attrs = self._mode_attributes(node, attr, fields)
        if fields.update_atime or fields.update_mtime or attrs:
            sets.append(compound_ops.basic_info(
                access_ns=attr.st_atime_ns if fields.update_atime else None,
                write_ns=attr.st_mtime_ns if fields.update_mtime else None,
                attributes=attrs))
        return sets

    def _mode_attributes(self, node: Node, attr: pyfuse3.EntryAttributes,
                         fields: pyfuse3.SetattrFields) -> int:
        """The FileAttributes a chmod asks for (0: no change): only the
        owner write bit is stored, as the DOS read-only attribute."""
        if not fields.update_mode or node.is_dir:
            return 0
        cur = (node.info.attributes if node.info else 0) & ~int(
            FileAttributes.FILE_ATTRIBUTE_NORMAL)
        ro = int(FileAttributes.FILE_ATTRIBUTE_READONLY)
        new = (cur & ~ro) if attr.st_mode & 0o200 else (cur | ro)
        if new == cur:
            return 0
        return new or int(FileAttributes.FILE_ATTRIBUTE_NORMAL)

    # ------------------------------------------------------------ directories

    @_fuse_op
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self.inodes.get(inode)
        op = await self.tree.create(
            node.path,
            desired_access=_A.FILE_LIST_DIRECTORY | _A.FILE_READ_ATTRIBUTES | _A.SYNCHRONIZE,
            options=CreateOptions.FILE_DIRECTORY_FILE, lease=False, durable=False,
        )
        fh = self._new_fh()
        self.dirs[fh] = DirHandle(fh, node, op)
        self.inodes.opened(node)
        return fh

    @_fuse_op
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        d = self.dirs[fh]
        if start_id == 0 or d.entries is None:
            d.since = self.inodes.stamp()
            async with d.using() as op:
                entries = await op.list_directory()
            d.entries = [e for e in entries if not e.name.startswith(HIDDEN_PREFIX)]
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

    def _dot_attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        if node.info is None:
            node.info = FileInfo(0, 0, int(FileAttributes.FILE_ATTRIBUTE_DIRECTORY))
        return self.attributes(node)

    @_fuse_op
    async def releasedir(self, fh: int) -> None:
        d = self.dirs.pop(fh, None)
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
        n = _decode_name(name)
        check_name(n)
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
        node = self.inodes.remember(path, info, since)
        self.inodes.set_listing(node, set())  # new, hence empty
        return self._entry(node)

    @_fuse_op
    async def rmdir(self, parent_inode: int, name: bytes,
                    ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes.get(parent_inode)
        n = _decode_name(name)
        self._check_writable()
        path = join(parent.path, n)
        await paths.rmdir(self.tree, path)
        self.inodes.removed(path)
        self.inodes.touched(parent)

    # ------------------------------------------------------------------ files

    def _access_for(self, flags: int) -> tuple[int, bool]:
        acc = flags & os.O_ACCMODE
        if acc == os.O_RDONLY:
            return _READ_ACCESS, False
        # Write opens also read: the kernel reads pages around partial writes
        # to a shared writable mmap.
        return READ_WRITE, True

    async def _keep_pages(self, node: Node, info: FileInfo) -> bool:
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
        reasoning and its limits."""
        sig = _page_sig(info)
        keep = False
        if self.options.cache == "loose":
            keep = True
        elif self.options.cache == "strict" and node.page_sig == sig \
                and self._handle_of(node, writable=True) is None:
            probed = await compound_ops.probe_no_writers(self.tree, node.path)
            keep = probed is not None and _page_sig(probed) == sig
        node.page_sig = sig
        return keep

    def _register(self, node: Node, op: Open, writable: bool,
                  keep_cache: bool = False) -> pyfuse3.FileInfo:
        rsize, wsize = self.options.rsize, self.options.wsize
        if rsize:
            op.max_read = max(1, min(op.max_read, rsize))
        if wsize:
            op.max_write = max(1, min(op.max_write, wsize))
        fh = self._new_fh()
        h = Handle(fh, node, op, writable=writable)
        self.handles[fh] = h
        self._node_handles.setdefault(node, []).append(h)
        self.inodes.opened(node)
        fi = pyfuse3.FileInfo(fh=fh)
        fi.keep_cache = keep_cache
        fi.direct_io = self.options.cache == "none"
        return fi

    @_fuse_op
    async def open(self, inode: int, flags: int,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self.inodes.get(inode)
        access, writable = self._access_for(flags)
        if writable or flags & os.O_TRUNC:
            self._check_writable()
        op = await self.tree.create(node.path, desired_access=access, lease=False,
                                    durable=False,
                                    options=CreateOptions.FILE_NON_DIRECTORY_FILE)
        try:
            if flags & os.O_TRUNC and writable:
                await op.truncate(0)
                self.inodes.invalidate(node)
                node.page_sig = None
                keep = False
            else:
                keep = await self._keep_pages(node, op.info)
        except BaseException:
            with trio.CancelScope(shield=True):
                await op.close(post_query=False)
            raise
        return self._register(node, op, writable, keep)

    @_fuse_op
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self.inodes.get(parent_inode)
        n = _decode_name(name)
        check_name(n)
        self._check_writable()
        path = join(parent.path, n)
        if flags & os.O_EXCL:
            disposition = CreateDisposition.FILE_CREATE
        elif flags & os.O_TRUNC:
            disposition = CreateDisposition.FILE_OVERWRITE_IF
        else:
            disposition = CreateDisposition.FILE_OPEN_IF
        access, _ = self._access_for(flags)
        try:
            op = await self.tree.create(path, desired_access=access | _A.FILE_WRITE_ATTRIBUTES,
                                        disposition=disposition, query_on_disk_id=True,
                                        lease=False, durable=False,
                                        options=CreateOptions.FILE_NON_DIRECTORY_FILE)
        except BaseException:
            parent.listing = None  # e.g. another client made the name
            raise
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
        node.server_id = info.file_id
        node.page_sig = _page_sig(op.info)  # the pages are dropped at this open
        fi = self._register(node, op, True)
        return fi, self._entry(node)

    @_fuse_op
    async def read(self, fh: int, off: int, size: int) -> bytes:
        async with self.handles[fh].using() as op:
            data = await op.read(off, size)
        return data  # type: ignore[return-value]  # bytearray is a buffer too

    @_fuse_op
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self.handles[fh]
        if not h.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        async with h.using() as op:
            n = await op.write(off, buf)
        node = h.node
        if node.info is not None:
            # Keep the size we know current without a round trip; times come
            # with the next refresh.
            node.info.size = max(node.info.size, off + n)
        self.inodes.invalidate(node)
        return n

    @_fuse_op
    async def flush(self, fh: int) -> None:
        # Nothing is buffered here (writes are synchronous), so close(2) has
        # no data to push; SMB2 FLUSH is for fsync only (like cifs.ko).
        return None

    @_fuse_op
    async def fsync(self, fh: int, datasync: bool) -> None:
        h = self.handles.get(fh)
        if h is not None and h.writable:
            async with h.using() as op:
                await op.flush()

    @_fuse_op
    async def release(self, fh: int) -> None:
        h = self.handles.pop(fh, None)
        if h is None:
            return
        if h.writable:
            self.inodes.content_changed(h.node)
        hs = self._node_handles.get(h.node, [])
        if h in hs:
            hs.remove(h)
        if not hs:
            self._node_handles.pop(h.node, None)
        try:
            since = self.inodes.stamp()
            async with h.using() as op:
                info = await op.close()
            if info is None or _page_sig(info) != h.node.page_sig:
                # Changed while open (by us or anyone): the pages may not
                # match what the server holds.
                h.node.page_sig = None
            if info is not None and h.node.info is not None and not h.node.is_dir:
                info.file_id = h.node.server_id
                info.nlink = h.node.info.nlink
                self.inodes.set_info(h.node, info, since)
        finally:
            self.inodes.closed(h.node)

    # ------------------------------------------------------------ name changes

    async def _hide(self, node: Node, path: str) -> str:
        """Move an open file out of the way and mark it delete-on-close: its
        name disappears at once, our open handles keep working, the data
        goes when the last one closes (POSIX unlink of an open file)."""
        # In the mount's root, not the file's directory: that one must
        # stay removable (rmdir) while the file is still open.
        hidden = join(self.inodes.root.path, HIDDEN_PREFIX + secrets.token_hex(8))
        await paths.rename(self.tree, path, hidden, replace=False)
        self.inodes.moved(path, hidden)
        await self._delete(hidden, directory=False)
        self.inodes.removed(hidden)
        node.unlinked = True
        return hidden

    async def _delete(self, path: str, *, directory: bool) -> None:
        try:
            if directory:
                await paths.rmdir(self.tree, path)
            else:
                await paths.unlink(self.tree, path)
        except SMBError as e:
            if directory or e.status != _S.STATUS_CANNOT_DELETE:
                raise
            # A read-only file: POSIX lets its directory's writer unlink it.
            await self._clear_readonly(path)
            await paths.unlink(self.tree, path)

    async def _clear_readonly(self, path: str) -> None:
        async with await self.tree.create(
                path, desired_access=_A.FILE_WRITE_ATTRIBUTES | _ATTR_ACCESS,
                lease=False, durable=False) as op:
            info = await op.query_attributes()
            attrs = info.attributes & ~int(FileAttributes.FILE_ATTRIBUTE_READONLY)
            await op.set_times(attributes=attrs or int(FileAttributes.FILE_ATTRIBUTE_NORMAL))
        self.inodes.invalidate_path(path)

    @_fuse_op
    async def unlink(self, parent_inode: int, name: bytes,
                     ctx: pyfuse3.RequestContext) -> None:
        parent = self.inodes.get(parent_inode)
        n = _decode_name(name)
        self._check_writable()
        path = join(parent.path, n)
        node = self.inodes.by_path(path)
        if node is not None and node.open_handles and not node.is_dir \
                and self._handle_of(node) is not None:
            await self._hide(node, path)
        else:
            await self._delete(path, directory=False)
            self.inodes.removed(path)
        self.inodes.touched(parent)

    @_fuse_op
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise pyfuse3.FUSEError(errno.EINVAL)  # SMB has no atomic exchange
        old_parent = self.inodes.get(parent_inode_old)
        new_parent = self.inodes.get(parent_inode_new)
        old = join(old_parent.path, _decode_name(name_old))
        nn = _decode_name(name_new)
        check_name(nn)
        self._check_writable()
        new = join(new_parent.path, nn)
        noreplace = bool(flags & pyfuse3.RENAME_NOREPLACE)
        same = old.casefold() == new.casefold()
        if not same and not noreplace:
            await self._clear_target(old, new)
        replace = not noreplace and not same
        try:
            await paths.rename(self.tree, old, new, replace=replace)
        except SMBError as e:
            below = self._opens_below(old)
            if e.status != _S.STATUS_ACCESS_DENIED or not below:
                raise
            await self._rename_with_opens_below(old, new, replace, below)
        else:
            self.inodes.moved(old, new)
        self.inodes.touched(old_parent)
        self.inodes.touched(new_parent)

    def _opens_below(self, path: str) -> list[_Gated]:
        prefix = path.casefold() + "\\"
        return [h for h in (*self.handles.values(), *self.dirs.values())
                if h.node.path.casefold().startswith(prefix) and not h.open.closed]

    async def _rename_with_opens_below(self, old: str, new: str, replace: bool,
                                       below: list[_Gated]) -> None:
        """Samba refuses to rename a directory with opens below it
        (STATUS_ACCESS_DENIED); POSIX does not care. Close our opens below,
        rename, reopen them at their new paths; their users wait at the
        gate meanwhile. Unlinked files are not closed (the close would
        delete them): then the refusal stands."""
        if any(h.node.path.rsplit("\\", 1)[-1].startswith(HIDDEN_PREFIX) for h in below):
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
        if target is not None and target.open_handles and not target.is_dir \
                and self._handle_of(target) is not None:
            await self._hide(target, new)
            return
        try:
            tinfo = await paths.stat(self.tree, new)
        except SMBError as e:
            if e.status in (_S.STATUS_OBJECT_NAME_NOT_FOUND, _S.STATUS_OBJECT_PATH_NOT_FOUND):
                return
            raise
        if not tinfo.is_directory:
            src = self.inodes.by_path(old)
            if src is not None and src.is_dir:
                raise pyfuse3.FUSEError(errno.ENOTDIR)
            if tinfo.is_readonly:
                # SMB will not replace a read-only file; POSIX rename does.
                await self._clear_readonly(new)
            return
        src_info = await paths.stat(self.tree, old)
        if not src_info.is_directory:
            raise pyfuse3.FUSEError(errno.EISDIR)
        await paths.rmdir(self.tree, new)  # ENOTEMPTY when it is not empty
        self.inodes.removed(new)

    @_fuse_op
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.inodes.get(inode)
        parent = self.inodes.get(new_parent_inode)
        n = _decode_name(new_name)
        check_name(n)
        self._check_writable()
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EPERM)
        path = join(parent.path, n)
        async with await self.tree.create(
                node.path, desired_access=_A.FILE_WRITE_ATTRIBUTES | _ATTR_ACCESS,
                lease=False, durable=False) as op:
            info = FileLinkInformation(path, replace_if_exists=False)
            await op.set_info(FileInformationClass.FileLinkInformation, info.encode())
        self.inodes.listed(path)
        self.inodes.touched(parent)
        new_node = await self._stat_path(path)
        if new_node is not node:
            self.inodes.invalidate(node)
        return self._entry(new_node)

    @_fuse_op
    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        """A Windows symbolic link reparse point ([MS-FSCC] 2.1.2.4), if the
        server takes one; Samba 4.17 without unix extensions does not, and
        the caller gets EPERM (docs/filesystem.md)."""
        parent = self.inodes.get(parent_inode)
        n = _decode_name(name)
        check_name(n)
        self._check_writable()
        path = join(parent.path, n)
        tgt = _decode_name(target)
        buf = SymbolicLinkReparseBuffer(
            tgt.replace("/", "\\"), tgt.replace("/", "\\"),
            SYMLINK_FLAG_RELATIVE if not tgt.startswith("/") else 0,
        ).encode()
        op = await self.tree.create(
            path, desired_access=_A.FILE_WRITE_ATTRIBUTES | _A.FILE_WRITE_DATA | _A.DELETE
            | _ATTR_ACCESS, disposition=CreateDisposition.FILE_CREATE,
            options=CreateOptions.FILE_OPEN_REPARSE_POINT | CreateOptions.FILE_NON_DIRECTORY_FILE,
            lease=False, durable=False)
        try:
            await op.ioctl(CtlCode.FSCTL_SET_REPARSE_POINT, buf, max_output=0)
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

    @_fuse_op
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)  # nothing here is shown as a symlink

    @_fuse_op
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # no FIFOs or devices over SMB
        fi, attrs = await self.create(parent_inode, name, mode, os.O_WRONLY | os.O_EXCL, ctx)
        await self.release(fi.fh)
        return attrs

    # ------------------------------------------------------------- statfs

    @_fuse_op
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        assert self.root_open is not None
        buf = await self.root_open.query_info(
            FileFsFullSizeInformation.INFO_CLASS,
            info_type=InfoType.SMB2_0_INFO_FILESYSTEM)
        fs = FileFsFullSizeInformation.decode(buf)
        s = pyfuse3.StatvfsData()
        bsize = max(1, fs.sectors_per_allocation_unit * fs.bytes_per_sector)
        s.f_bsize = bsize
        s.f_frsize = bsize
        s.f_blocks = fs.total_allocation_units
        s.f_bfree = fs.actual_available_allocation_units
        s.f_bavail = fs.caller_available_allocation_units
        s.f_files = 0
        s.f_ffree = 0
        s.f_favail = 0
        s.f_namemax = self.facts.max_name
        return s

    # ------------------------------------------------------------- xattrs

    def _ea_name(self, name: bytes) -> bytes:
        """``user.foo`` -> SMB EA ``foo``; other namespaces are not ours."""
        if not self.facts.eas:
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        if not name.startswith(b"user.") or len(name) <= 5:
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        ea = name[5:]
        if len(ea) > 255 or not ea.isascii():
            raise pyfuse3.FUSEError(errno.EINVAL)
        return ea

    async def _all_eas(self, node: Node) -> list[FileFullEaEntry]:
        async with await self.tree.create(
                node.path, desired_access=_A.FILE_READ_EA | _ATTR_ACCESS,
                options=CreateOptions.FILE_DIRECTORY_FILE if node.is_dir else 0,
                lease=False, durable=False) as op:
            try:
                buf = await op.query_info(FileInformationClass.FileFullEaInformation,
                                          output_buffer_length=_EA_OUT)
            except SMBError as e:
                if e.status in (_S.STATUS_NO_EAS_ON_FILE, _S.STATUS_NO_MORE_EAS):
                    return []
                raise
        return [e for e in FileFullEaInformation.decode(buf).entries if e.value]

    async def _set_ea(self, node: Node, ea: bytes, value: bytes) -> None:
        async with await self.tree.create(
                node.path, desired_access=_A.FILE_WRITE_EA | _ATTR_ACCESS,
                options=CreateOptions.FILE_DIRECTORY_FILE if node.is_dir else 0,
                lease=False, durable=False) as op:
            info = FileFullEaInformation([FileFullEaEntry(ea, value)])
            await op.set_info(FileInformationClass.FileFullEaInformation, info.encode())

    @_fuse_op
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.inodes.get(inode)
        ea = self._ea_name(name).lower()
        for e in await self._all_eas(node):
            if e.name.lower() == ea:
                return e.value
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    @_fuse_op
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        node = self.inodes.get(inode)
        if not self.facts.eas:
            return []
        return [b"user." + e.name for e in await self._all_eas(node)]

    @_fuse_op
    async def setxattr(self, inode: int, name: bytes, value: bytes,
                       ctx: pyfuse3.RequestContext) -> None:
        node = self.inodes.get(inode)
        ea = self._ea_name(name)
        self._check_writable()
        if not value:
            # An empty value deletes an SMB EA ([MS-FSCC] 2.4.15): it cannot
            # be stored, so say so instead of silently removing.
            raise pyfuse3.FUSEError(errno.EINVAL)
        if len(value) > 65535:
            raise pyfuse3.FUSEError(errno.E2BIG)
        await self._set_ea(node, ea, value)

    @_fuse_op
    async def removexattr(self, inode: int, name: bytes,
                          ctx: pyfuse3.RequestContext) -> None:
        node = self.inodes.get(inode)
        ea = self._ea_name(name)
        self._check_writable()
        names = {e.name.lower(): e.name for e in await self._all_eas(node)}
        if ea.lower() not in names:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        await self._set_ea(node, names[ea.lower()], b"")
