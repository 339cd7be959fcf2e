"""An open file or directory on a tree: create, read, write, flush, query
and set info, directory enumeration, locks, IOCTL, change notify, close
([MS-SMB2] 3.2.4.3 - 3.2.4.21).

Bulk I/O is the engine's hot path. A large read or write is cut into chunks
no larger than the negotiated MaxReadSize/MaxWriteSize (and
:attr:`Open.chunk_size`) and up to ``config.max_in_flight`` of them are on
the wire at once, so a Python client keeps the server and the link busy
instead of paying one round trip per MiB. ``peak_in_flight`` records the
highest concurrency actually reached (tests assert on it, not on timing).

What the FUSE layer needs about a file comes back as :class:`FileInfo`
(sizes, unix-ns times, attributes, inode candidate) so it never decodes
[MS-FSCC] itself.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TypeVar

import trio

from smbfs.client.connection import Response
from smbfs.client.errors import (
    ConnectionLostError,
    HandleClosedError,
    HandleLostError,
    SMBError,
    single_error,
)
from smbfs.client.lease import LEASE_RWH, Lease, LeaseTable
from smbfs.client.reconnect import ReconnectStats
from smbfs.client.session import Session
from smbfs.proto.change_notify import (
    ChangeNotifyFlags,
    ChangeNotifyRequest,
    ChangeNotifyResponse,
    FileNotifyInformation,
)
from smbfs.proto.close import CloseFlags, CloseRequest, CloseResponse
from smbfs.proto.constants import Dialect, GlobalCapabilities
from smbfs.proto.create import (
    AccessMask,
    CreateDisposition,
    CreateOptions,
    CreateRequest,
    CreateResponse,
    ImpersonationLevel,
    OplockLevel,
    ShareAccess,
)
from smbfs.proto.create_contexts import (
    AnyCreateContext,
    CreateDurableHandleReconnect,
    CreateDurableHandleReconnectV2,
    CreateDurableHandleRequest,
    CreateDurableHandleRequestV2,
    CreateDurableHandleResponse,
    CreateDurableHandleResponseV2,
    CreateQueryOnDiskIdRequest,
    CreateQueryOnDiskIdResponse,
    CreateRequestLease,
    CreateRequestLeaseV2,
)
from smbfs.proto.fileid import FileId
from smbfs.proto.fscc.attributes import FileAttributes, FileInformationClass
from smbfs.proto.fscc.directory import DirectoryEntry, decode_directory_buffer
from smbfs.proto.fscc.ea import FileFullEaEntry, FileFullEaInformation
from smbfs.proto.fscc.file_info import (
    FileAllInformation,
    FileBasicInformation,
    FileDispositionInformation,
    FileEndOfFileInformation,
    FileInternalInformation,
    FileLinkInformation,
    FileRenameInformation,
    FileStandardInformation,
)
from smbfs.proto.fscc.filesystem import (
    FileFsAttributeInformation,
    FileFsFullSizeInformation,
    FileSystemAttributes,
)
from smbfs.proto.fscc.reparse import (
    SYMLINK_FLAG_RELATIVE,
    SymbolicLinkReparseBuffer,
    decode_reparse,
)
from smbfs.proto.fscc.time import filetime_to_ns, ns_to_filetime
from smbfs.proto.fsctl import CtlCode
from smbfs.proto.info import InfoType, QueryInfoRequest, QueryInfoResponse, SetInfoRequest
from smbfs.proto.io import (
    FlushRequest,
    ReadRequest,
    ReadResponse,
    WriteRequest,
    WriteResponse,
)
from smbfs.proto.ioctl import SMB2_0_IOCTL_IS_FSCTL, IoctlRequest, IoctlResponse
from smbfs.proto.lock import LockElement, LockFlags, LockRequest
from smbfs.proto.message import Message
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.query_directory import (
    QueryDirectoryFlags,
    QueryDirectoryRequest,
    QueryDirectoryResponse,
)

log = logging.getLogger(__name__)

_S = NTStatus
_D = TypeVar("_D")
_MIB = 1024 * 1024
# A chunk this large already amortises the per-request Python cost; larger
# ones only cut the number of requests in flight for the same bytes.
DEFAULT_CHUNK = 1 * _MIB
# 2.0.2 and servers without LARGE_MTU: one credit, 64 KiB per request.
SMALL_MTU = 65536

DEFAULT_SHARE = (
    ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE
)
READ_WRITE = (
    AccessMask.FILE_READ_DATA | AccessMask.FILE_WRITE_DATA | AccessMask.FILE_APPEND_DATA
    | AccessMask.FILE_READ_ATTRIBUTES | AccessMask.FILE_WRITE_ATTRIBUTES
    | AccessMask.FILE_READ_EA | AccessMask.FILE_WRITE_EA | AccessMask.READ_CONTROL
    | AccessMask.SYNCHRONIZE
)
# Durable handles: how long (ms) the server keeps the open for us after a
# disconnect; 0 would let the server choose (Windows uses 60 s).
DURABLE_TIMEOUT_MS = 60_000


class RequestPipe(Protocol):
    """What an open needs of its tree (:class:`smbfs.client.tree.Tree`).

    Named structurally because the tree module sits above this one: its
    ``create`` makes Opens, so this module cannot import it back."""

    session: Session
    share_name: str

    @property
    def is_disk(self) -> bool: ...

    async def request(self, message: Message, *, payload_size: int = 0,
                      ok_statuses: Iterable[int] = frozenset(),
                      wait: bool = True) -> Response: ...

    async def compound(self, messages: Sequence[Message], *, related: bool = True,
                       ok_statuses: Iterable[int] = frozenset(),
                       payload_sizes: Sequence[int] | None = None
                       ) -> list[Response | SMBError]: ...

    def register_open(self, op: Open) -> None: ...

    def defer_close(self, op: Open) -> None: ...

    def forget_open(self, op: Open) -> None: ...

    def renamed(self, old: str, new: str) -> None: ...


# -------------------------------------------------------------- FileInfo


@dataclass(slots=True)
class FileInfo:
    """Attributes of a file, as the FUSE layer wants them.

    Times are unix nanoseconds (None when the server sent 0, "not set");
    ``file_id`` is the server's 64-bit file id (FileInternalInformation,
    QFid or the directory entry's FileId) when known, the inode candidate.
    """

    size: int
    allocation_size: int
    attributes: int
    creation_ns: int | None = None
    access_ns: int | None = None
    write_ns: int | None = None
    change_ns: int | None = None
    file_id: int | None = None
    nlink: int = 1
    name: str = ""

    @property
    def is_directory(self) -> bool:
        return bool(self.attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)

    @property
    def is_readonly(self) -> bool:
        return bool(self.attributes & FileAttributes.FILE_ATTRIBUTE_READONLY)

    @property
    def is_reparse_point(self) -> bool:
        return bool(self.attributes & FileAttributes.FILE_ATTRIBUTE_REPARSE_POINT)

    @classmethod
    def from_times(cls, ctime: int, atime: int, wtime: int, chtime: int, size: int,
                   alloc: int, attrs: int, *, file_id: int | None = None, nlink: int = 1,
                   name: str = "") -> FileInfo:
        return cls(
            size=size, allocation_size=alloc, attributes=attrs,
            creation_ns=filetime_to_ns(ctime), access_ns=filetime_to_ns(atime),
            write_ns=filetime_to_ns(wtime), change_ns=filetime_to_ns(chtime),
            file_id=file_id, nlink=nlink, name=name,
        )

    @classmethod
    def from_all_information(cls, buf: bytes | bytearray | memoryview) -> FileInfo:
        """From a FileAllInformation buffer, reading only its fixed part (so a
        name truncated by STATUS_BUFFER_OVERFLOW does not matter)."""
        b = FileBasicInformation.decode(buf, 0)
        s = FileStandardInformation.decode(buf, FileBasicInformation.SIZE)
        i = FileInternalInformation.decode(
            buf, FileBasicInformation.SIZE + FileStandardInformation.SIZE
        )
        return cls.from_times(
            b.creation_time, b.last_access_time, b.last_write_time, b.change_time,
            s.end_of_file, s.allocation_size, b.file_attributes,
            file_id=i.index_number, nlink=s.number_of_links,
        )

    @classmethod
    def from_directory_entry(cls, e: DirectoryEntry) -> FileInfo:
        return cls.from_times(
            getattr(e, "creation_time", 0), getattr(e, "last_access_time", 0),
            getattr(e, "last_write_time", 0), getattr(e, "change_time", 0),
            getattr(e, "end_of_file", 0), getattr(e, "allocation_size", 0),
            getattr(e, "file_attributes", 0), file_id=getattr(e, "file_id", None) or None,
            name=e.file_name,
        )


@dataclass(frozen=True, slots=True)
class FsSize:
    """The space of the filesystem behind a share ([MS-FSCC] 2.5.4
    FileFsFullSizeInformation), counted in allocation units of
    ``unit_size`` bytes: what statfs(2) reports."""

    unit_size: int
    total_units: int
    free_units: int  # ActualAvailableAllocationUnits: the volume's
    available_units: int  # CallerAvailableAllocationUnits: ours, after quotas

    @classmethod
    def from_fscc(cls, fs: FileFsFullSizeInformation) -> FsSize:
        return cls(max(1, fs.sectors_per_allocation_unit * fs.bytes_per_sector),
                   fs.total_allocation_units, fs.actual_available_allocation_units,
                   fs.caller_available_allocation_units)


@dataclass(frozen=True, slots=True)
class FsAttributes:
    """What the filesystem behind a share says about itself ([MS-FSCC]
    2.5.1 FileFsAttributeInformation). ``max_name`` is
    MaximumComponentNameLength as sent (0 when the server gives none)."""

    attributes: int
    max_name: int
    name: str

    @property
    def supports_eas(self) -> bool:
        return bool(self.attributes & FileSystemAttributes.FILE_SUPPORTS_EXTENDED_ATTRIBUTES)


@dataclass(frozen=True, slots=True)
class SymbolicLink:
    """A symbolic link reparse point ([MS-FSCC] 2.1.2.4)."""

    target: str  # SubstituteName
    print_name: str
    relative: bool


# ------------------------------------------------------------------ Open


def _normalize(path: str) -> str:
    """Share-relative path with backslashes and no leading/trailing one."""
    return path.replace("/", "\\").strip("\\")


class Open:
    """An open handle. Create it with ``await Open.create(tree, path, ...)``
    (or ``tree.create``); use it as an async context manager to close it.

    Attributes the caller may read: ``file_id``, ``path``, ``create_action``,
    ``info`` (a :class:`FileInfo` from the CREATE response), ``oplock_level``,
    ``lease`` (the :class:`~smbfs.client.lease.Lease` the server granted, or
    None), ``lease_state``, ``durable`` (the server granted a durable handle),
    ``durable_v2``, ``create_guid`` (kept for a durable v2 reconnect),
    ``request`` (the CREATE sent, for a reopen), ``peak_in_flight`` (the most
    requests this handle had on the wire at once), ``requests``.
    """

    def __init__(self, tree: RequestPipe, path: str, response: CreateResponse,
                 request: CreateRequest) -> None:
        self.tree = tree
        self.path = path
        self.file_id: FileId = response.file_id
        self.create_action = response.create_action
        # The CREATE as sent: a reconnect opens the file again from it
        # (same access, sharing, options, lease key; the current name).
        self.request = request
        # Why this handle is gone for good after a reconnect (None: alive),
        # and how many times it was taken back (a directory enumeration
        # started before a reopen must start again).
        self.lost: str | None = None
        self.generation = 0
        self.oplock_level = response.oplock_level
        self.lease: Lease | None = None
        self.durable = False
        self.durable_v2 = False
        self.durable_timeout = 0
        self.create_guid: uuid.UUID | None = None
        self.disk_file_id: int | None = None
        self.closed = False
        self.info = FileInfo.from_times(
            response.creation_time, response.last_access_time, response.last_write_time,
            response.change_time, response.end_of_file, response.allocation_size,
            response.file_attributes,
        )
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests = 0
        session = tree.session
        neg = session.connection.negotiated
        assert neg is not None
        large = bool(neg.capabilities & GlobalCapabilities.SMB2_GLOBAL_CAP_LARGE_MTU) and \
            neg.dialect != Dialect.SMB2_0_2
        # Per-request sizes; callers (the benchmark, tests) may lower them.
        cap = DEFAULT_CHUNK if large else SMALL_MTU
        self.max_read = max(1, min(neg.max_read_size, cap))
        self.max_write = max(1, min(neg.max_write_size, cap))
        self.max_transact = max(1, min(neg.max_transact_size, _MIB if large else SMALL_MTU))
        self.max_in_flight = max(1, session.config.max_in_flight)

    # ------------------------------------------------------------ create

    @classmethod
    async def create(
        cls,
        tree: RequestPipe,
        path: str,
        *,
        desired_access: int = READ_WRITE,
        share_access: int = DEFAULT_SHARE,
        disposition: int = CreateDisposition.FILE_OPEN,
        options: int = 0,
        attributes: int = 0,
        lease: bool | int = True,
        durable: bool = True,
        oplock: int | None = None,
        impersonation: int = ImpersonationLevel.Impersonation,
        query_on_disk_id: bool = True,
        contexts: Sequence[AnyCreateContext] = (),
        lease_key: bytes | None = None,
    ) -> Open:
        """SMB2 CREATE ([MS-SMB2] 3.2.4.3).

        ``lease``: True asks for a read/write/handle lease, an int asks for
        that lease state, False for none. Leases need 2.1+ and the server's
        SMB2_GLOBAL_CAP_LEASING (v1 on 2.1, v2 on 3.x, 3.2.4.3.8); directory
        leases need 3.x and SMB2_GLOBAL_CAP_DIRECTORY_LEASING. ``durable``
        asks for a durable handle where the dialect allows (DH2Q with a new
        CreateGuid on 3.x, DHnQ on 2.1: both need the handle-caching lease,
        3.2.4.3.5). On 2.0.2 neither is asked. ``oplock`` overrides the
        requested oplock level when no lease is asked. The server's answer
        decides: :attr:`lease` and :attr:`durable` say what was granted.
        ``query_on_disk_id`` asks for QFid so ``info.file_id`` is set.
        ``lease_key``: the file's own key (3.2.4.3 File.LeaseKey; the FUSE
        layer keeps one per file) instead of the session's key for this
        path; either way the session remembers key and path, and follows
        our renames, so compound operations on the path carry the same key.

        A key the server already files under another name (someone else
        renamed away the file we knew by this name, [MS-SMB2] 3.3.5.9.8)
        is refused with STATUS_INVALID_PARAMETER: the name is then a
        different file, and the create is sent again with a new key
        (``opened.lease.key`` says which).
        """
        async def attempt(key: bytes | None) -> Open:
            return await cls._create(
                tree, path, desired_access=desired_access, share_access=share_access,
                disposition=disposition, options=options, attributes=attributes, lease=lease,
                durable=durable, oplock=oplock, impersonation=impersonation,
                query_on_disk_id=query_on_disk_id, contexts=contexts, lease_key=key)

        try:
            return await attempt(lease_key)
        except SMBError as e:
            if e.status != _S.STATUS_INVALID_PARAMETER or not lease:
                raise
            tree.session.leases.unbind(tree.share_name, _normalize(path))
            log.info("%r: our lease key is filed under another name now; a new key", path)
            return await attempt(os.urandom(16))

    @classmethod
    async def _create(
        cls,
        tree: RequestPipe,
        path: str,
        *,
        desired_access: int,
        share_access: int,
        disposition: int,
        options: int,
        attributes: int,
        lease: bool | int,
        durable: bool,
        oplock: int | None,
        impersonation: int,
        query_on_disk_id: bool,
        contexts: Sequence[AnyCreateContext],
        lease_key: bytes | None,
    ) -> Open:
        path = _normalize(path)
        session = tree.session
        neg = session.connection.negotiated
        assert neg is not None
        dialect = neg.dialect
        is_dir = bool(options & CreateOptions.FILE_DIRECTORY_FILE)
        leasing = (
            dialect != Dialect.SMB2_0_2
            and bool(neg.capabilities & GlobalCapabilities.SMB2_GLOBAL_CAP_LEASING)
            and tree.is_disk
        )
        if is_dir:
            leasing = leasing and dialect.is_smb3 and bool(
                neg.capabilities & GlobalCapabilities.SMB2_GLOBAL_CAP_DIRECTORY_LEASING
            )
        want_state = 0
        if lease and leasing:
            want_state = int(LEASE_RWH) if lease is True else int(lease)
            if is_dir:  # a directory is never write-cached
                want_state &= ~0x04
            if ":" in path:  # 3.2.4.3.8: no handle caching on a named stream
                want_state &= ~0x02
        ctxs: list[AnyCreateContext] = list(contexts)
        table: LeaseTable | None = None
        lease_rec: Lease | None = None
        own_key = lease_key
        lease_key = b""
        requested_oplock = OplockLevel.SMB2_OPLOCK_LEVEL_NONE if oplock is None else oplock
        if want_state:
            table = session.leases
            if own_key is None:
                lease_key = table.lease_key_for(tree.share_name, path)
            else:
                lease_key = own_key
                table.bind_key(tree.share_name, path, lease_key)
            requested_oplock = OplockLevel.SMB2_OPLOCK_LEVEL_LEASE
            if dialect.is_smb3:
                flags, parent_key = table.parent_lease_fields(tree.share_name, path)
                ctxs.append(CreateRequestLeaseV2(lease_key=lease_key, lease_state=want_state,
                                                 flags=flags, parent_lease_key=parent_key))
            else:
                ctxs.append(CreateRequestLease(lease_key=lease_key, lease_state=want_state))
        create_guid: uuid.UUID | None = None
        handle_cached = bool(want_state & 0x02) or \
            requested_oplock == OplockLevel.SMB2_OPLOCK_LEVEL_BATCH
        if durable and handle_cached and not is_dir and tree.is_disk:
            if dialect.is_smb3:
                create_guid = uuid.uuid4()
                ctxs.append(CreateDurableHandleRequestV2(
                    timeout=DURABLE_TIMEOUT_MS, create_guid=create_guid,
                ))
            elif dialect == Dialect.SMB2_1:
                ctxs.append(CreateDurableHandleRequest())
        if query_on_disk_id and tree.is_disk:
            # The file id comes back with the open: the FUSE layer's inode
            # number without another round trip (3.2.4.3.10).
            ctxs.append(CreateQueryOnDiskIdRequest())
        request = CreateRequest(
            name=path, desired_access=desired_access, file_attributes=attributes,
            share_access=share_access, create_disposition=disposition,
            create_options=options, requested_oplock_level=requested_oplock,
            impersonation_level=impersonation, create_contexts=ctxs,
        )
        if requested_oplock != OplockLevel.SMB2_OPLOCK_LEVEL_NONE:
            # The break handler is in place before any break for this open
            # can arrive (it may follow the CREATE response immediately).
            session.leases.activate()
        if table is not None:
            lease_rec = table.begin_create(tree, path, lease_key)
        opened: Open | None = None
        granted: int | None = None
        epoch = 0
        version = 0
        try:
            resp = await tree.request(request)
            body = resp.decode(CreateResponse)
            opened = cls(tree, path, body, request)
            opened.create_guid = create_guid
            opened._apply_contexts(body)
            if body.oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_LEASE:
                v2 = body.context(CreateRequestLeaseV2)
                if v2 is not None and v2.lease_key == lease_key:
                    granted, epoch, version = v2.lease_state, v2.epoch, 2
                else:
                    v1 = body.context(CreateRequestLease)
                    if v1 is not None and v1.lease_key == lease_key:
                        granted, version = v1.lease_state, 1
            elif body.oplock_level != OplockLevel.SMB2_OPLOCK_LEVEL_NONE:
                session.leases.register_oplock(opened)
        finally:
            if table is not None and lease_rec is not None:
                table.end_create(lease_rec, opened, granted, epoch, version)
        if granted is not None and lease_rec is not None:
            opened.lease = lease_rec
        tree.register_open(opened)
        log.debug("create %r: %s action=%s oplock=%#x lease=%s durable=%s", path,
                  opened.file_id, opened.create_action, opened.oplock_level,
                  granted, opened.durable)
        return opened

    # ------------------------------------------------------- reconnect

    async def reclaim_durable(self, stats: ReconnectStats) -> bool | int:
        """A durable handle reclaimed as it was ([MS-SMB2] 3.2.4.4: DH2C
        with the same CreateGuid on 3.x, DHnC on 2.1, the same lease key,
        the current name). True when reclaimed (or nothing to do); else the
        NTSTATUS of the refusal (0: not durable)."""
        if self.closed or self.lost is not None:
            return True
        if not self.durable:
            return 0
        try:
            await self._reopen(reconnect=True)
        except SMBError as e:
            return e.status
        stats.handles_reclaimed += 1
        log.info("%r: durable handle reclaimed", self.path)
        return True

    async def reopen_by_name(self, stats: ReconnectStats) -> None:
        """When the server no longer has the handle (an smbd restart loses
        durable state) or it was never durable, the file is opened again by
        its current name, with the same access and sharing, and kept only if
        it is provably the same file (same on-disk file id, else same
        creation time): no write of ours was lost with the old handle
        (nothing is cached: every write was acknowledged by the server, and
        the ones in flight are replayed on the new handle). Otherwise this
        handle is lost, and says why, every time it is used."""
        if self.closed or self.lost is not None:
            return
        try:
            same = await self._reopen(reconnect=False)
        except SMBError as e:
            self._lose(f"cannot be reopened after the reconnect: {e.status_name}")
            stats.handles_lost += 1
            return
        if not same:
            self._lose("was replaced or recreated by someone else while the connection "
                       "was down")
            stats.handles_lost += 1
            return
        stats.handles_reopened += 1
        log.info("%r: reopened by name after the reconnect (same file)", self.path)

    async def close_reclaimed(self) -> None:
        """A durable handle closed by its user while the connection was
        down: take it back and close it, so the server does not keep it
        (with its share modes and lease) until the durable timeout."""
        try:
            await self._reopen(reconnect=True)
            await self.tree.request(CloseRequest(file_id=self.file_id))
        except SMBError as e:
            log.debug("%r: deferred close: %s", self.path, e.status_name)
        finally:
            self.tree.forget_open(self)

    def _lose(self, why: str) -> None:
        self.lost = why
        log.error("handle of %r lost: it %s; its users get EIO from now on", self.path, why)
        if self.lease is not None or self.oplock_level != OplockLevel.SMB2_OPLOCK_LEVEL_NONE:
            self.tree.session.leases.forget_open(self)

    async def _reopen(self, *, reconnect: bool) -> bool:
        """CREATE again from :attr:`request`: a durable reconnect, or a
        fresh open by the current name. Returns whether it is the same file
        (a reconnect always is); adopts the new handle only then."""
        sent = self.request
        ctxs: list[AnyCreateContext] = []
        lease_ctx = next((c for c in sent.create_contexts
                          if isinstance(c, CreateRequestLeaseV2 | CreateRequestLease)), None)
        if lease_ctx is not None:
            ctxs.append(lease_ctx)
        if reconnect:
            if self.durable_v2 and self.create_guid is not None:
                ctxs.append(CreateDurableHandleReconnectV2(
                    file_id=self.file_id, create_guid=self.create_guid))
            else:
                ctxs.append(CreateDurableHandleReconnect(file_id=self.file_id))
        else:
            new_guid: uuid.UUID | None = None
            for c in sent.create_contexts:
                if isinstance(c, CreateDurableHandleRequestV2):
                    new_guid = uuid.uuid4()
                    ctxs.append(CreateDurableHandleRequestV2(timeout=c.timeout,
                                                             create_guid=new_guid))
                elif isinstance(c, CreateDurableHandleRequest):
                    ctxs.append(c)
            if self.tree.is_disk:
                ctxs.append(CreateQueryOnDiskIdRequest())
        request = CreateRequest(
            name=self.path, desired_access=sent.desired_access, file_attributes=0,
            share_access=sent.share_access, create_disposition=CreateDisposition.FILE_OPEN,
            create_options=sent.create_options & ~CreateOptions.FILE_DELETE_ON_CLOSE,
            requested_oplock_level=sent.requested_oplock_level,
            impersonation_level=sent.impersonation_level, create_contexts=ctxs,
        )
        resp = await self.tree.request(request)
        body = resp.decode(CreateResponse)
        if not reconnect:
            qfid = body.context(CreateQueryOnDiskIdResponse)
            new_id = qfid.disk_file_id if qfid is not None and qfid.disk_file_id else None
            if new_id is not None and self.disk_file_id is not None:
                same = new_id == self.disk_file_id
            else:
                same = (body.creation_time == ns_to_filetime(self.info.creation_ns)
                        if self.info.creation_ns is not None else False)
            if not same:
                with trio.CancelScope(shield=True):
                    try:
                        await self.tree.request(CloseRequest(file_id=body.file_id))
                    except SMBError:
                        pass
                return False
            self.durable = self.durable_v2 = False
            self.create_guid = None
            self._apply_contexts(body)
            if self.durable_v2:
                self.create_guid = new_guid
        self.file_id = body.file_id
        self.oplock_level = body.oplock_level
        self.generation += 1
        self.tree.register_open(self)  # its new FileId too, for replays
        if self.lease is not None:
            v2 = body.context(CreateRequestLeaseV2)
            v1 = body.context(CreateRequestLease)
            granted = v2 if v2 is not None else v1
            if granted is not None and granted.lease_key == self.lease.key:
                self.lease.state = granted.lease_state
            else:
                self.lease.state = 0
        return True

    def _apply_contexts(self, body: CreateResponse) -> None:
        dh2 = body.context(CreateDurableHandleResponseV2)
        if dh2 is not None:
            self.durable = self.durable_v2 = True
            self.durable_timeout = dh2.timeout
        elif body.context(CreateDurableHandleResponse) is not None:
            self.durable = True
        qfid = body.context(CreateQueryOnDiskIdResponse)
        if qfid is not None and qfid.disk_file_id:
            self.disk_file_id = qfid.disk_file_id
            self.info.file_id = qfid.disk_file_id
        if not self.durable:
            self.create_guid = None

    @property
    def lease_state(self) -> int:
        return self.lease.state if self.lease is not None else 0

    @property
    def is_directory(self) -> bool:
        return self.info.is_directory

    # ------------------------------------------------------------- plumbing

    async def _request(self, message: Any, *, payload_size: int = 0,
                       ok_statuses: Iterable[int] = frozenset()) -> Any:
        self._check_open()
        self.requests += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        try:
            return await self.tree.request(message, payload_size=payload_size,
                                           ok_statuses=ok_statuses)
        finally:
            self.in_flight -= 1

    def _check_open(self) -> None:
        if self.closed:
            raise HandleClosedError(f"{self.path!r} is closed")
        if self.lost is not None:
            raise HandleLostError(f"{self.path!r} {self.lost}")

    # -------------------------------------------------------------- close

    async def close(self, *, post_query: bool = True) -> FileInfo | None:
        """SMB2 CLOSE; with ``post_query`` the server returns the final
        attributes (CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB), given back as FileInfo."""
        if self.closed:
            return None
        self.closed = True
        if self.lost is not None:
            self.tree.forget_open(self)
            return None  # the server has nothing to close
        try:
            resp = await self.tree.request(CloseRequest(
                file_id=self.file_id,
                flags=CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB if post_query else 0,
            ), wait=not self.tree.session.config.reconnect)
        except ConnectionLostError:
            if not self.tree.session.config.reconnect:
                raise
            # The connection is down: the close must not hold its caller (a
            # program's close(2), an unmount) for the outage. The server
            # closes a non-durable handle with the old session; a durable
            # one is reclaimed after the reconnect only to be closed.
            self.tree.defer_close(self)
            log.info("%r: closed while disconnected; the server's handle is closed after "
                     "the reconnect", self.path)
            return None
        except HandleLostError:
            return None  # lost while the CLOSE was in flight: closed all the same
        except SMBError as e:
            if e.replayed and e.status in (_S.STATUS_FILE_CLOSED, _S.STATUS_INVALID_HANDLE):
                return None  # the lost first attempt closed it
            raise
        finally:
            self.tree.forget_open(self)
            if self.lease is not None or self.oplock_level != OplockLevel.SMB2_OPLOCK_LEVEL_NONE:
                self.tree.session.leases.forget_open(self)
        body = resp.decode(CloseResponse)
        if not post_query or not body.flags & CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB:
            return None
        info = FileInfo.from_times(
            body.creation_time, body.last_access_time, body.last_write_time,
            body.change_time, body.end_of_file, body.allocation_size, body.file_attributes,
            file_id=self.info.file_id,
        )
        self.info = info
        return info

    async def __aenter__(self) -> Open:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.closed:
            return
        with trio.CancelScope(shield=exc_type is not None and issubclass(
                exc_type, trio.Cancelled)) as scope:
            scope.deadline = trio.current_time() + 10 if scope.shield else math.inf
            try:
                await self.close(post_query=False)
            except Exception as e:
                if exc is None:
                    raise
                log.debug("close after an error failed too: %s", e)

    # --------------------------------------------------------------- read

    async def read(self, offset: int, length: int) -> bytes | bytearray:
        """Up to ``length`` bytes from ``offset``; fewer only at end of file.

        Chunks are pipelined and copied into one buffer as they arrive (a
        bytearray when more than one chunk: no final copy).
        """
        if length <= 0:
            return b""
        if length <= self.max_read:
            return bytes(await self._read_chunk(offset, length))
        out = bytearray(length)
        n = await self.readinto(offset, out)
        del out[n:]
        return out

    async def readinto(self, offset: int, buf: bytearray | memoryview) -> int:
        """Read into ``buf``; returns the number of bytes read (short only at
        end of file). Each chunk is copied into place as it arrives and its
        receive buffer dropped at once, so memory stays at about
        max_in_flight chunks however large ``buf`` is."""
        mv = memoryview(buf).cast("B")

        def sink(start: int, data: memoryview) -> None:
            mv[start:start + len(data)] = data

        return await self._read_pipelined(offset, len(mv), sink)

    async def _read_chunk(self, offset: int, length: int) -> memoryview:
        try:
            resp = await self._request(
                ReadRequest(file_id=self.file_id, length=length, offset=offset),
                payload_size=length,
            )
        except SMBError as e:
            if e.status == _S.STATUS_END_OF_FILE:
                return memoryview(b"")
            raise
        data = resp.decode(ReadResponse).data
        if len(data) > length:
            # Not a failed read but a server that cannot be trusted: the
            # connection goes, like for any other malformed response.
            raise resp.malformed(f"READ returned {len(data)} bytes for {length} asked")
        return memoryview(data)

    async def _read_pipelined(self, offset: int, length: int,
                              sink: Callable[[int, memoryview], None]) -> int:
        """Read ``length`` bytes as pipelined chunks, handing each to
        ``sink(position, data)`` as it completes; returns the byte count up to
        the first short chunk (end of file)."""
        step = self.max_read
        n = math.ceil(length / step)
        eof = [n, 0]  # index of the first short chunk, and its length

        async def one(i: int, limit: trio.Semaphore) -> None:
            try:
                start = i * step
                want = min(step, length - start)
                got = await self._read_chunk(offset + start, want)
                if len(got) < want and i < eof[0]:
                    eof[0], eof[1] = i, len(got)
                if i <= eof[0]:
                    sink(start, got)
            finally:
                limit.release()

        await self._pipeline(n, one, lambda i: i > eof[0])
        if eof[0] == n:
            return length
        return eof[0] * step + eof[1]

    async def _pipeline(self, n: int, one: Any, stop: Any) -> None:
        """Run ``one(i, limit)`` for i in range(n), at most max_in_flight at a
        time, in order of issue; ``one`` releases ``limit`` when done."""
        limit = trio.Semaphore(self.max_in_flight)
        try:
            async with trio.open_nursery() as nursery:
                for i in range(n):
                    await limit.acquire()
                    if stop(i):
                        limit.release()
                        break
                    nursery.start_soon(one, i, limit)
        except BaseExceptionGroup as group:
            # Callers expect the SMBError / ConnectionLostError of a chunk, as
            # from a single request, not a group: the first real failure wins
            # (the others are its consequences: siblings cancelled).
            raise single_error(group)  # noqa: B904 - the group is its __cause__

    # -------------------------------------------------------------- write

    async def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` at ``offset``; returns the bytes written.

        The payload goes out as memoryview slices of the caller's buffer:
        nothing is copied here.
        """
        mv = memoryview(data).cast("B")
        total = len(mv)
        if total == 0:
            return 0
        step = self.max_write
        if total <= step:
            return await self._write_all(offset, mv)
        n = math.ceil(total / step)

        async def one(i: int, limit: trio.Semaphore) -> None:
            try:
                start = i * step
                await self._write_all(offset + start, mv[start:start + step])
            finally:
                limit.release()

        await self._pipeline(n, one, lambda i: False)
        return total

    async def _write_all(self, offset: int, mv: memoryview) -> int:
        """One chunk, finished with follow-up writes if the server took less."""
        done = 0
        while done < len(mv):
            part = mv[done:]
            resp = await self._request(
                WriteRequest(file_id=self.file_id, offset=offset + done, data=part),
                payload_size=len(part),
            )
            count = resp.decode(WriteResponse).count
            if count > len(part):
                raise resp.malformed(f"WRITE of {len(part)} bytes at {offset + done} "
                                     f"wrote {count}")
            if count == 0:
                raise SMBError(_S.STATUS_DISK_FULL, None,
                               f"WRITE of {len(part)} bytes at {offset + done} wrote 0")
            done += count
        return done

    async def flush(self) -> None:
        await self._request(FlushRequest(file_id=self.file_id))

    # ------------------------------------------------------- query / set

    async def query_info(self, info_class: int, *, info_type: int = InfoType.SMB2_0_INFO_FILE,
                         output_buffer_length: int | None = None,
                         additional_information: int = 0, input: bytes = b"",
                         allow_overflow: bool = False) -> memoryview:
        """SMB2 QUERY_INFO: the raw output buffer (decode with smbfs.proto.fscc).

        ``allow_overflow`` accepts STATUS_BUFFER_OVERFLOW (a truncated buffer)."""
        _resp, out = await self._query_info(
            info_class, info_type=info_type, output_buffer_length=output_buffer_length,
            additional_information=additional_information, input=input,
            allow_overflow=allow_overflow)
        return out

    async def query_info_as(self, decode: Callable[[memoryview], _D], info_class: int, *,
                            info_type: int = InfoType.SMB2_0_INFO_FILE,
                            output_buffer_length: int | None = None,
                            additional_information: int = 0, input: bytes = b"",
                            allow_overflow: bool = False) -> _D:
        """:meth:`query_info` and ``decode(buffer)`` (e.g.
        ``FileFsFullSizeInformation.decode``): a buffer the decoder rejects
        is a malformed response, so the connection is dropped and
        ConnectionLostError raised, like for any other malformed input,
        instead of a DecodeError reaching the caller."""
        resp, buf = await self._query_info(
            info_class, info_type=info_type, output_buffer_length=output_buffer_length,
            additional_information=additional_information, input=input,
            allow_overflow=allow_overflow)
        with resp.guard():
            return decode(buf)

    async def _query_info(self, info_class: int, *, info_type: int = InfoType.SMB2_0_INFO_FILE,
                          output_buffer_length: int | None = None,
                          additional_information: int = 0, input: bytes = b"",
                          allow_overflow: bool = False) -> tuple[Response, memoryview]:
        out_len = output_buffer_length or min(self.max_transact, 65536)
        ok = {_S.STATUS_BUFFER_OVERFLOW} if allow_overflow else set()
        resp = await self._request(
            QueryInfoRequest(info_type=info_type, file_info_class=info_class,
                             file_id=self.file_id, output_buffer_length=out_len,
                             additional_information=additional_information, input=input),
            payload_size=max(out_len, len(input)), ok_statuses=ok,
        )
        return resp, memoryview(resp.decode(QueryInfoResponse).output)

    async def query_all_information(self) -> FileAllInformation:
        resp, buf = await self._query_info(FileInformationClass.FileAllInformation)
        with resp.guard():
            return FileAllInformation.decode(buf)

    async def query_attributes(self) -> FileInfo:
        """Fresh attributes (FileAllInformation) as a FileInfo."""
        resp, buf = await self._query_info(FileInformationClass.FileAllInformation,
                                           allow_overflow=True)
        with resp.guard():
            info = FileInfo.from_all_information(buf)
        self.info = info
        return info

    async def query_fs_size(self) -> FsSize:
        """The share's filesystem space (statfs)."""
        fs = await self.query_info_as(FileFsFullSizeInformation.decode,
                                      FileFsFullSizeInformation.INFO_CLASS,
                                      info_type=InfoType.SMB2_0_INFO_FILESYSTEM)
        return FsSize.from_fscc(fs)

    async def query_fs_attributes(self) -> FsAttributes:
        """The share's filesystem capabilities, name length limit and name."""
        fa = await self.query_info_as(FileFsAttributeInformation.decode,
                                      FileFsAttributeInformation.INFO_CLASS,
                                      info_type=InfoType.SMB2_0_INFO_FILESYSTEM)
        return FsAttributes(fa.file_system_attributes, fa.maximum_component_name_length,
                            fa.file_system_name)

    async def query_eas(self, *, output_buffer_length: int = 65536
                        ) -> list[tuple[bytes, bytes]]:
        """Every extended attribute as (name, value), in the server's order.
        A file without EAs is an empty list, not an error (the server says
        STATUS_NO_EAS_ON_FILE, [MS-FSA] 2.1.5.11.8)."""
        try:
            info = await self.query_info_as(FileFullEaInformation.decode,
                                            FileInformationClass.FileFullEaInformation,
                                            output_buffer_length=output_buffer_length)
        except SMBError as e:
            if e.status in (_S.STATUS_NO_EAS_ON_FILE, _S.STATUS_NO_MORE_EAS):
                return []
            raise
        return [(e.name, e.value) for e in info.entries]

    async def set_ea(self, name: bytes, value: bytes) -> None:
        """Set one extended attribute; an empty ``value`` removes it
        ([MS-FSCC] 2.4.15). The handle needs FILE_WRITE_EA."""
        info = FileFullEaInformation([FileFullEaEntry(name, value)])
        await self.set_info(FileInformationClass.FileFullEaInformation, info.encode())

    async def link(self, new_path: str, *, replace: bool = False) -> None:
        """Make ``new_path`` a hard link to this file (FileLinkInformation)."""
        info = FileLinkInformation(_normalize(new_path), replace_if_exists=replace)
        await self.set_info(FileInformationClass.FileLinkInformation, info.encode())

    async def set_info(self, info_class: int, buffer: bytes, *,
                       info_type: int = InfoType.SMB2_0_INFO_FILE,
                       additional_information: int = 0) -> None:
        """SMB2 SET_INFO with an already encoded [MS-FSCC] buffer."""
        await self._request(
            SetInfoRequest(info_type=info_type, file_info_class=info_class,
                           file_id=self.file_id, buffer=buffer,
                           additional_information=additional_information),
            payload_size=len(buffer),
        )

    async def truncate(self, size: int) -> None:
        """Set the end of file (truncate or extend)."""
        await self.set_info(FileInformationClass.FileEndOfFileInformation,
                            FileEndOfFileInformation(size).encode())

    async def set_times(self, *, creation_ns: int | None = None, access_ns: int | None = None,
                        write_ns: int | None = None, change_ns: int | None = None,
                        attributes: int = 0) -> None:
        """FileBasicInformation: None leaves a time as it is (0 on the wire)."""
        info = FileBasicInformation(
            ns_to_filetime(creation_ns), ns_to_filetime(access_ns),
            ns_to_filetime(write_ns), ns_to_filetime(change_ns), attributes,
        )
        await self.set_info(FileInformationClass.FileBasicInformation, info.encode())

    async def rename(self, new_path: str, *, replace: bool = False) -> None:
        """Rename through this handle (it needs DELETE access)."""
        info = FileRenameInformation(_normalize(new_path), replace_if_exists=replace)
        old = self.path
        try:
            await self.set_info(FileInformationClass.FileRenameInformation, info.encode())
        except SMBError as e:
            # Replayed after a reconnect: the lost first attempt may have
            # renamed it already, and the target "exists" (it is this file).
            if not (e.replayed and e.status == _S.STATUS_OBJECT_NAME_COLLISION):
                raise
        self.tree.renamed(old, _normalize(new_path))

    async def set_delete_on_close(self, delete: bool = True) -> None:
        await self.set_info(FileInformationClass.FileDispositionInformation,
                            FileDispositionInformation(delete).encode())

    # ---------------------------------------------------------- directory

    async def query_directory(
        self, pattern: str = "*", *,
        info_class: int = FileInformationClass.FileIdBothDirectoryInformation,
        restart: bool = True, output_buffer_length: int | None = None,
    ) -> AsyncGenerator[DirectoryEntry, None]:
        """Every entry matching ``pattern``, following continuation until
        STATUS_NO_MORE_FILES ([MS-SMB2] 3.2.4.17, 3.2.4.17.1)."""
        out_len = output_buffer_length or self.max_transact
        flags = QueryDirectoryFlags.SMB2_RESTART_SCANS if restart else 0
        while True:
            try:
                resp = await self._request(
                    QueryDirectoryRequest(
                        file_information_class=info_class, file_id=self.file_id,
                        pattern=pattern, flags=flags, output_buffer_length=out_len,
                    ),
                    payload_size=out_len,
                )
            except SMBError as e:
                # NO_MORE_FILES ends a listing; NO_SUCH_FILE is the first
                # answer when nothing matches the pattern (3.3.5.18).
                if e.status in (_S.STATUS_NO_MORE_FILES, _S.STATUS_NO_SUCH_FILE):
                    return
                raise
            flags = 0
            out = resp.decode(QueryDirectoryResponse).output
            if not len(out):
                return
            # Decoded whole before yielding: a malformed buffer drops the
            # connection before any entry of it reaches the caller.
            with resp.guard():
                entries = decode_directory_buffer(info_class, out)
            for entry in entries:
                yield entry

    async def list_directory(self, pattern: str = "*") -> list[FileInfo]:
        """All entries (without "." and "..") as FileInfo, names in ``.name``.

        A reconnect in the middle reopens the directory, and the server's
        enumeration starts again on the new handle: the listing is then
        started again from scratch rather than continued (which would
        repeat entries)."""
        while True:
            generation = self.generation
            out: list[FileInfo] = []
            async with contextlib.aclosing(self.query_directory(pattern)) as entries:
                async for e in entries:
                    if self.generation != generation:
                        break
                    if e.file_name in (".", ".."):
                        continue
                    out.append(FileInfo.from_directory_entry(e))
            if self.generation == generation:
                return out
            log.info("listing of %r started again after a reconnect", self.path)

    # -------------------------------------------------------------- locks

    async def lock(self, offset: int, length: int, *, exclusive: bool = True,
                   wait: bool = False) -> None:
        """Lock a byte range. Without ``wait`` a conflict fails at once with
        STATUS_LOCK_NOT_GRANTED; with it the request pends until granted
        (cancel the trio scope to give up: the engine sends SMB2 CANCEL)."""
        flags = LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK if exclusive else \
            LockFlags.SMB2_LOCKFLAG_SHARED_LOCK
        if not wait:
            flags |= LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
        await self.lock_elements([LockElement(offset, length, int(flags))])

    async def unlock(self, offset: int, length: int) -> None:
        await self.lock_elements([
            LockElement(offset, length, int(LockFlags.SMB2_LOCKFLAG_UNLOCK))
        ])

    async def lock_elements(self, elements: Sequence[LockElement]) -> None:
        """One SMB2 LOCK with several ranges (all-or-nothing, 3.2.4.19)."""
        await self._request(LockRequest(file_id=self.file_id, locks=list(elements)))

    # -------------------------------------------------------------- ioctl

    async def ioctl(self, ctl_code: int, input: bytes = b"", *, max_output: int = 65536,
                    fsctl: bool = True, ok_statuses: Iterable[int] = ()) -> memoryview:
        """SMB2 IOCTL on this handle; returns the raw output buffer."""
        _resp, out = await _ioctl(self.tree, ctl_code, input, file_id=self.file_id,
                                  max_output=max_output, fsctl=fsctl,
                                  ok_statuses=ok_statuses, owner=self)
        return out

    async def ioctl_as(self, decode: Callable[[memoryview], _D], ctl_code: int,
                       input: bytes = b"", *, max_output: int = 65536,
                       fsctl: bool = True) -> _D:
        """:meth:`ioctl` and ``decode(output)``: an output the decoder
        rejects is a malformed response (connection dropped,
        ConnectionLostError), as for :meth:`query_info_as`."""
        resp, out = await _ioctl(self.tree, ctl_code, input, file_id=self.file_id,
                                 max_output=max_output, fsctl=fsctl, owner=self)
        with resp.guard():
            return decode(out)

    async def set_symbolic_link(self, target: str, *, relative: bool) -> None:
        """Make this (empty) file a symbolic link reparse point to ``target``
        (FSCTL_SET_REPARSE_POINT; open it with FILE_OPEN_REPARSE_POINT).
        ``target`` is in SMB form (backslashes)."""
        buf = SymbolicLinkReparseBuffer(target, target,
                                        SYMLINK_FLAG_RELATIVE if relative else 0).encode()
        await self.ioctl(CtlCode.FSCTL_SET_REPARSE_POINT, buf, max_output=0)

    async def get_symbolic_link(self) -> SymbolicLink | None:
        """The symbolic link this reparse point holds, or None when it holds
        another kind of reparse data (FSCTL_GET_REPARSE_POINT)."""
        data = await self.ioctl_as(decode_reparse, CtlCode.FSCTL_GET_REPARSE_POINT,
                                   max_output=16384)
        if not isinstance(data, SymbolicLinkReparseBuffer):
            return None
        return SymbolicLink(data.substitute_name, data.print_name, data.relative)

    # ------------------------------------------------------------- notify

    async def change_notify(self, completion_filter: int, *, watch_tree: bool = False,
                            output_buffer_length: int = 65536,
                            ) -> list[FileNotifyInformation] | None:
        """Wait for the next change under this directory ([MS-SMB2] 3.2.4.18).

        Returns the changes, or None when the server says "too many changes,
        re-read the directory" (STATUS_NOTIFY_ENUM_DIR). It may pend for ever:
        cancel the surrounding trio scope to stop waiting; the engine then sends
        SMB2 CANCEL and the connection stays usable.
        """
        flags = ChangeNotifyFlags.SMB2_WATCH_TREE if watch_tree else 0
        out_len = min(output_buffer_length, self.max_transact)
        resp = await self._request(
            ChangeNotifyRequest(file_id=self.file_id, completion_filter=completion_filter,
                                flags=flags, output_buffer_length=out_len),
            payload_size=out_len,
            ok_statuses={_S.STATUS_NOTIFY_ENUM_DIR, _S.STATUS_NOTIFY_CLEANUP},
        )
        if resp.status != _S.STATUS_SUCCESS:
            return None
        return resp.decode(ChangeNotifyResponse).entries

    def __repr__(self) -> str:
        return f"<Open {self.path!r} {self.file_id} lease={self.lease_state:#x}>"


async def ioctl(tree: RequestPipe, ctl_code: int, input: bytes = b"", *,
                file_id: FileId | None = None, max_output: int = 65536, fsctl: bool = True,
                ok_statuses: Iterable[int] = (), owner: Open | None = None) -> memoryview:
    """SMB2 IOCTL ([MS-SMB2] 3.2.4.20). ``file_id`` defaults to all ones, as
    FSCTLs that address the server rather than a file need (e.g.
    FSCTL_QUERY_NETWORK_INTERFACE_INFO, FSCTL_VALIDATE_NEGOTIATE_INFO).
    Returns the raw output buffer: decode it inside the response's guard
    (:meth:`Open.ioctl_as`) when it carries a structure."""
    _resp, out = await _ioctl(tree, ctl_code, input, file_id=file_id, max_output=max_output,
                              fsctl=fsctl, ok_statuses=ok_statuses, owner=owner)
    return out


async def _ioctl(tree: RequestPipe, ctl_code: int, input: bytes = b"", *,
                 file_id: FileId | None = None, max_output: int = 65536, fsctl: bool = True,
                 ok_statuses: Iterable[int] = (), owner: Open | None = None
                 ) -> tuple[Response, memoryview]:
    fid = file_id if file_id is not None else FileId(0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
    req = IoctlRequest(ctl_code=ctl_code, file_id=fid, input=input,
                       max_output_response=max_output,
                       flags=SMB2_0_IOCTL_IS_FSCTL if fsctl else 0)
    payload = max(len(input), max_output)
    if owner is not None:
        resp = await owner._request(req, payload_size=payload, ok_statuses=ok_statuses)
    else:
        resp = await tree.request(req, payload_size=payload, ok_statuses=ok_statuses)
    return resp, memoryview(resp.decode(IoctlResponse).output)
