"""Path operations done as one related compound: one round trip each
([MS-SMB2] 3.2.4.1.4).

``stat``, ``rename``, ``unlink``/``rmdir`` and ``mkdir`` are what a
filesystem does most on paths it does not hold open. Done naively each is
CREATE, then the operation, then CLOSE: three round trips. Chained as a
related compound (the later requests name the file with the all-ones FileId,
"the file the previous request opened") they cost one.

If we hold a lease on the path, the compound's CREATE carries the same lease
key: an open under our own lease key does not break our own lease (the
server would otherwise ask us to give up handle caching to ourselves, and a
rename or delete would wait on that break).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

from smbfs.client.connection import Response
from smbfs.client.errors import HandleClosedError, SMBError
from smbfs.client.open import DEFAULT_SHARE, FileInfo, Open, _normalize
from smbfs.client.tree import Tree
from smbfs.proto.close import CloseFlags, CloseRequest, CloseResponse
from smbfs.proto.create import (
    AccessMask,
    CreateDisposition,
    CreateOptions,
    CreateRequest,
    CreateResponse,
    OplockLevel,
)
from smbfs.proto.create_contexts import (
    AnyCreateContext,
    CreateRequestLease,
    CreateRequestLeaseV2,
)
from smbfs.proto.fileid import RELATED, FileId
from smbfs.proto.fscc.attributes import FileInformationClass
from smbfs.proto.fscc.file_info import (
    FileBasicInformation,
    FileDispositionInformation,
    FileEndOfFileInformation,
    FileRenameInformation,
)
from smbfs.proto.fscc.time import ns_to_filetime
from smbfs.proto.info import InfoType, QueryInfoRequest, QueryInfoResponse, SetInfoRequest
from smbfs.proto.io import WriteRequest, WriteResponse
from smbfs.proto.message import Message
from smbfs.proto.ntstatus import NTStatus

log = logging.getLogger(__name__)

# FileAllInformation: 100 fixed bytes then the name; the fixed part is all
# stat needs, so a truncated name (STATUS_BUFFER_OVERFLOW) is fine.
_STAT_OUTPUT = 4096


_GONE = frozenset({NTStatus.STATUS_OBJECT_NAME_NOT_FOUND, NTStatus.STATUS_OBJECT_PATH_NOT_FOUND})


async def _exists(tree: Tree, path: str) -> bool:
    try:
        await stat(tree, path)
    except SMBError as e:
        if e.status in _GONE:
            return False
        raise
    return True


def _lease_contexts(tree: Tree, path: str) -> tuple[int, list[AnyCreateContext]]:
    """(RequestedOplockLevel, contexts) for a CREATE of ``path`` in a chain.

    Under our lease key if we hold a lease on the path: ask for exactly
    what we hold (same key, no upgrade, no break). Otherwise, when we hold
    a lease on its directory, a v2 lease request for nothing (state 0)
    under a fresh key, only to carry that directory's key as
    ParentLeaseKey ([MS-SMB2] 2.2.13.2.10): the name change the chain makes
    then does not break our own directory lease."""
    leases = tree.session.leases
    flags, parent_key = leases.parent_lease_fields(tree.share_name, path)
    lease = leases.lease_for_path(tree.share_name, path)
    if lease is not None and lease.opens:
        if lease.version == 2:
            return OplockLevel.SMB2_OPLOCK_LEVEL_LEASE, [CreateRequestLeaseV2(
                lease_key=lease.key, lease_state=lease.state, flags=flags,
                parent_lease_key=parent_key)]
        return OplockLevel.SMB2_OPLOCK_LEVEL_LEASE, [CreateRequestLease(
            lease_key=lease.key, lease_state=lease.state)]
    if flags:
        return OplockLevel.SMB2_OPLOCK_LEVEL_LEASE, [CreateRequestLeaseV2(
            lease_key=os.urandom(16), lease_state=0, flags=flags,
            parent_lease_key=parent_key)]
    return OplockLevel.SMB2_OPLOCK_LEVEL_NONE, []


def _create(tree: Tree, path: str, access: int, *, disposition: int = CreateDisposition.FILE_OPEN,
            options: int = 0) -> CreateRequest:
    """The CREATE at the head of a chain, under our lease key if we hold one."""
    oplock, contexts = _lease_contexts(tree, path)
    return CreateRequest(
        name=path, desired_access=access, share_access=DEFAULT_SHARE,
        create_disposition=disposition, create_options=options,
        requested_oplock_level=oplock, create_contexts=contexts,
    )


async def _compound(tree: Tree, messages: Sequence[Message],
                    ok_statuses: frozenset[int] = frozenset()) -> list[Response | SMBError]:
    """A chain headed by a CREATE from :func:`_create`, sent as one compound.

    If that CREATE carried our lease key and the server refuses it with
    STATUS_INVALID_PARAMETER, the key no longer belongs to this name: another
    client renamed our file away (the server moved our lease with it,
    [MS-SMB2] 3.3.5.9.8 refuses a lease key already filed under another
    name). The name is forgotten for that key and the chain sent again
    without the lease context."""
    results = await tree.compound(messages, related=True, ok_statuses=ok_statuses)
    first, head = results[0], messages[0]
    if (isinstance(first, SMBError) and first.status == NTStatus.STATUS_INVALID_PARAMETER
            and isinstance(head, CreateRequest)
            and head.requested_oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_LEASE):
        tree.session.leases.unbind(tree.share_name, head.name)
        bare = dataclasses.replace(
            head, requested_oplock_level=OplockLevel.SMB2_OPLOCK_LEVEL_NONE,
            create_contexts=[c for c in head.create_contexts
                             if not isinstance(c, CreateRequestLeaseV2 | CreateRequestLease)])
        log.info("%r: our lease key is filed under another name now; sent without it",
                 head.name)
        results = await tree.compound([bare, *messages[1:]], related=True,
                                      ok_statuses=ok_statuses)
    return results


async def _chain(tree: Tree, messages: Sequence[Message],
                 ok_statuses: frozenset[int] = frozenset()) -> list[Response]:
    """Send the chain; raise the first failure (later ones are usually the
    same status cascaded by the server, 3.3.5.2.7.2)."""
    results = await _compound(tree, messages, ok_statuses)
    out: list[Response] = []
    for r in results:
        if isinstance(r, SMBError):
            raise r
        out.append(r)
    return out


async def stat(tree: Tree, path: str) -> FileInfo:
    """CREATE(read attributes) + QUERY_INFO(FileAllInformation) + CLOSE."""
    path = _normalize(path)
    create = _create(tree, path, AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE)
    query = QueryInfoRequest(
        info_type=InfoType.SMB2_0_INFO_FILE,
        file_info_class=FileInformationClass.FileAllInformation,
        file_id=RELATED, output_buffer_length=_STAT_OUTPUT,
    )
    close = CloseRequest(file_id=RELATED, flags=0)
    results = await _compound(tree, [create, query, close],
                                  ok_statuses=frozenset({NTStatus.STATUS_BUFFER_OVERFLOW}))
    for r in results[:2]:
        if isinstance(r, SMBError):
            raise r
    q = results[1]
    assert not isinstance(q, SMBError)
    with q.guard():  # malformed: a dropped connection, not a DecodeError
        info = FileInfo.from_all_information(q.decode(QueryInfoResponse).output)
    info.name = path.rsplit("\\", 1)[-1]
    return info


async def rename(tree: Tree, path: str, new_path: str, *, replace: bool = False) -> None:
    """CREATE(DELETE) + SET_INFO(FileRenameInformation) + CLOSE."""
    path = _normalize(path)
    create = _create(tree, path, AccessMask.DELETE | AccessMask.FILE_READ_ATTRIBUTES
                     | AccessMask.SYNCHRONIZE)
    target = _normalize(new_path)
    info = FileRenameInformation(target, replace_if_exists=replace)
    setinfo = SetInfoRequest(
        info_type=InfoType.SMB2_0_INFO_FILE,
        file_info_class=FileInformationClass.FileRenameInformation,
        file_id=RELATED, buffer=info.encode(),
    )
    try:
        results = await _compound(tree, [create, setinfo, CloseRequest(file_id=RELATED)])
        if not isinstance(results[0], SMBError) and isinstance(results[1], SMBError) \
                and results[1].status == NTStatus.STATUS_INTERNAL_ERROR:
            # The rename has to wait for another client to give up its
            # handle caching ([MS-SMB2] 3.3.4.7, a lease break); Samba 4.17
            # cannot wait in the middle of a compound and says
            # STATUS_INTERNAL_ERROR. The same rename, one request at a time.
            log.debug("rename %r: sent again uncompounded", path)
            await _rename_uncompounded(tree, create, setinfo)
        else:
            for r in results:
                if isinstance(r, SMBError):
                    raise r
    except SMBError as e:
        # Replayed after a reconnect with the source gone and the target
        # there: the lost first attempt did it. Not blindly repeated, not
        # reported as ENOENT.
        if not (e.replayed and e.status in _GONE and await _exists(tree, target)):
            raise
        log.info("rename %r -> %r: done by the attempt lost with the connection", path, target)
    tree.renamed(path, target)


async def _rename_uncompounded(tree: Tree, create: CreateRequest,
                               setinfo: SetInfoRequest) -> None:
    resp = await tree.request(create)
    file_id = resp.decode(CreateResponse).file_id
    try:
        await tree.request(dataclasses.replace(setinfo, file_id=file_id))
    finally:
        await tree.request(CloseRequest(file_id=file_id))


async def delete(tree: Tree, path: str, *, directory: bool | None = None) -> None:
    """CREATE(DELETE) + SET_INFO(FileDispositionInformation) + CLOSE.

    The disposition form (rather than FILE_DELETE_ON_CLOSE at create) makes a
    non-empty directory fail visibly with STATUS_DIRECTORY_NOT_EMPTY at the
    SET_INFO. ``directory`` True/False insists on the kind (rmdir/unlink);
    None deletes either.
    """
    path = _normalize(path)
    options = 0
    if directory is True:
        options = CreateOptions.FILE_DIRECTORY_FILE
    elif directory is False:
        options = CreateOptions.FILE_NON_DIRECTORY_FILE
    create = _create(tree, path, AccessMask.DELETE | AccessMask.FILE_READ_ATTRIBUTES
                     | AccessMask.SYNCHRONIZE, options=options)
    setinfo = SetInfoRequest(
        info_type=InfoType.SMB2_0_INFO_FILE,
        file_info_class=FileInformationClass.FileDispositionInformation,
        file_id=RELATED, buffer=FileDispositionInformation(True).encode(),
    )
    try:
        await _chain(tree, [create, setinfo, CloseRequest(file_id=RELATED)])
    except SMBError as e:
        # Replayed after a reconnect and gone: deleted by the lost attempt.
        if not (e.replayed and e.status in _GONE):
            raise
        log.info("delete %r: done by the attempt lost with the connection", path)


async def mkdir(tree: Tree, path: str) -> FileInfo:
    """CREATE(FILE_CREATE, directory) + CLOSE with post-query attributes."""
    path = _normalize(path)
    create = _create(tree, path, AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE,
                     disposition=CreateDisposition.FILE_CREATE,
                     options=CreateOptions.FILE_DIRECTORY_FILE)
    close = CloseRequest(file_id=RELATED, flags=CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)
    try:
        _, c = await _chain(tree, [create, close])
    except SMBError as e:
        # Replayed after a reconnect and there: made by the lost attempt if
        # it is a directory (a file of that name is somebody else's).
        if e.replayed and e.status == NTStatus.STATUS_OBJECT_NAME_COLLISION:
            info = await stat(tree, path)
            if info.is_directory:
                log.info("mkdir %r: done by the attempt lost with the connection", path)
                return info
        raise
    body = c.decode(CloseResponse)
    return FileInfo.from_times(
        body.creation_time, body.last_access_time, body.last_write_time, body.change_time,
        body.end_of_file, body.allocation_size, body.file_attributes,
        name=path.rsplit("\\", 1)[-1],
    )


async def set_info(tree: Tree, path: str, info_class: int, buffer: bytes, *,
                   access: int) -> None:
    """CREATE(``access``) + SET_INFO(``info_class``) + CLOSE: setattr on a
    path nobody holds open, in one round trip."""
    path = _normalize(path)
    create = _create(tree, path, access | AccessMask.SYNCHRONIZE)
    setinfo = SetInfoRequest(
        info_type=InfoType.SMB2_0_INFO_FILE, file_info_class=info_class,
        file_id=RELATED, buffer=buffer,
    )
    await _chain(tree, [create, setinfo, CloseRequest(file_id=RELATED)])


async def truncate(tree: Tree, path: str, size: int) -> None:
    """Set the end of file of ``path`` (truncate or extend)."""
    await set_info(tree, path, FileInformationClass.FileEndOfFileInformation,
                   FileEndOfFileInformation(size).encode(),
                   access=AccessMask.FILE_WRITE_DATA)


async def set_basic(tree: Tree, path: str, *, creation_ns: int | None = None,
                    access_ns: int | None = None, write_ns: int | None = None,
                    change_ns: int | None = None, attributes: int = 0) -> None:
    """Times (unix ns; None leaves one as it is) and attributes (0 leaves them)."""
    info = FileBasicInformation(
        ns_to_filetime(creation_ns), ns_to_filetime(access_ns), ns_to_filetime(write_ns),
        ns_to_filetime(change_ns), attributes,
    )
    await set_info(tree, path, FileInformationClass.FileBasicInformation, info.encode(),
                   access=AccessMask.FILE_WRITE_ATTRIBUTES)


def _stat_query(file_id: FileId = RELATED) -> QueryInfoRequest:
    return QueryInfoRequest(
        info_type=InfoType.SMB2_0_INFO_FILE,
        file_info_class=FileInformationClass.FileAllInformation,
        file_id=file_id, output_buffer_length=_STAT_OUTPUT,
    )


def _info_of(r: Response | SMBError, path: str) -> FileInfo:
    if isinstance(r, SMBError):
        raise r
    with r.guard():
        info = FileInfo.from_all_information(r.decode(QueryInfoResponse).output)
    info.name = path.rsplit("\\", 1)[-1]
    return info


async def set_info_stat(tree: Tree, path: str, sets: Sequence[tuple[int, bytes]], *,
                        access: int) -> FileInfo:
    """CREATE(``access``) + SET_INFO per ``(info_class, buffer)`` +
    QUERY_INFO(FileAllInformation) + CLOSE: a setattr on a path nobody holds
    open and the attributes it left, in one round trip instead of two."""
    path = _normalize(path)
    create = _create(tree, path, access | AccessMask.FILE_READ_ATTRIBUTES
                     | AccessMask.SYNCHRONIZE)
    chain: list[Message] = [create]
    chain += [SetInfoRequest(info_type=InfoType.SMB2_0_INFO_FILE, file_info_class=cls,
                             file_id=RELATED, buffer=buf) for cls, buf in sets]
    chain += [_stat_query(), CloseRequest(file_id=RELATED)]
    results = await _compound(tree, chain,
                                  ok_statuses=frozenset({NTStatus.STATUS_BUFFER_OVERFLOW}))
    for r in results[:-1]:
        if isinstance(r, SMBError):
            raise r
    return _info_of(results[-2], path)


async def set_info_query(op: Open, sets: Sequence[tuple[int, bytes]], *,
                         write: tuple[int, bytes | bytearray | memoryview] | None = None
                         ) -> FileInfo:
    """SET_INFO per ``(info_class, buffer)`` + QUERY_INFO(FileAllInformation)
    on an open handle, as one unrelated compound (each names the handle's
    FileId, so a failed SET_INFO does not cascade into the query,
    3.3.5.2.7.1): one round trip instead of one per request. ``write``
    (offset, data, at most the open's max_write) puts a WRITE first: the
    last buffered bytes of a file and the write time its close(2) sets go
    together."""
    if op.closed:
        raise HandleClosedError(f"{op.path!r} is closed")
    chain: list[Message] = []
    sizes: list[int] = []
    if write is not None:
        chain.append(WriteRequest(file_id=op.file_id, offset=write[0], data=write[1]))
        sizes.append(len(write[1]))
    chain.extend(
        SetInfoRequest(info_type=InfoType.SMB2_0_INFO_FILE, file_info_class=cls,
                       file_id=op.file_id, buffer=buf) for cls, buf in sets)
    chain.append(_stat_query(op.file_id))
    sizes.extend([0] * (len(chain) - len(sizes)))
    results = await op.tree.compound(
        chain, related=False, ok_statuses=frozenset({NTStatus.STATUS_BUFFER_OVERFLOW}),
        payload_sizes=sizes)
    for r in results[:-1]:
        if isinstance(r, SMBError):
            raise r
    if write is not None:
        wrote = results[0]
        assert not isinstance(wrote, SMBError)
        count = wrote.decode(WriteResponse).count
        if count != len(write[1]):
            raise SMBError(NTStatus.STATUS_DISK_FULL, None,
                           f"WRITE of {len(write[1])} bytes at {write[0]} wrote {count}")
    info = _info_of(results[-1], op.path)
    op.info = info
    return info


def basic_info(*, access_ns: int | None = None, write_ns: int | None = None,
               attributes: int = 0) -> tuple[int, bytes]:
    """The (class, buffer) of a FileBasicInformation SET_INFO that changes
    only the given times/attributes (0 on the wire leaves one as it is)."""
    info = FileBasicInformation(0, ns_to_filetime(access_ns), ns_to_filetime(write_ns), 0,
                                attributes)
    return FileInformationClass.FileBasicInformation, info.encode()


def end_of_file_info(size: int) -> tuple[int, bytes]:
    return (FileInformationClass.FileEndOfFileInformation,
            FileEndOfFileInformation(size).encode())


async def mkdir_stat(tree: Tree, path: str) -> FileInfo:
    """CREATE(FILE_CREATE, directory) + QUERY_INFO(FileAllInformation) +
    CLOSE: a new directory and its attributes with the file id (which the
    CLOSE post-query of :func:`mkdir` lacks), in one round trip."""
    path = _normalize(path)
    create = _create(tree, path, AccessMask.FILE_READ_ATTRIBUTES | AccessMask.SYNCHRONIZE,
                     disposition=CreateDisposition.FILE_CREATE,
                     options=CreateOptions.FILE_DIRECTORY_FILE)
    results = await tree.compound([create, _stat_query(), CloseRequest(file_id=RELATED)],
                                  related=True,
                                  ok_statuses=frozenset({NTStatus.STATUS_BUFFER_OVERFLOW}))
    for r in results[:2]:
        if isinstance(r, SMBError):
            if r.replayed and r.status == NTStatus.STATUS_OBJECT_NAME_COLLISION:
                # As in mkdir: made by the attempt lost with the connection.
                info = await stat(tree, path)
                if info.is_directory:
                    return info
            raise r
    return _info_of(results[1], path)


async def write_close(tree: Tree, op: Open, offset: int, data: bytes | bytearray) -> FileInfo | None:
    """The last WRITE of an open and its CLOSE as one compound: a small new
    file costs CREATE, then this, instead of three round trips.

    Related ([MS-SMB2] 3.2.4.1.4) so that a failed WRITE fails the CLOSE
    too (3.3.5.2.7.2: the server cascades the error): the handle then stays
    open, the error is raised, and the caller closes later as usual. If the
    CLOSE went through anyway, ``op`` is closed all the same. Returns the
    attributes the CLOSE reported (CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)."""
    fid = op.file_id
    results = await tree.compound(
        [WriteRequest(file_id=fid, offset=offset, data=data),
         CloseRequest(file_id=fid, flags=CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)],
        related=True, payload_sizes=[len(data), 0])
    wrote, closed = results
    info: FileInfo | None = None
    if not isinstance(closed, SMBError):
        op.closed = True
        tree.forget_open(op)
        if op.lease is not None or op.oplock_level != OplockLevel.SMB2_OPLOCK_LEVEL_NONE:
            tree.session.leases.forget_open(op)
        body = closed.decode(CloseResponse)
        if body.flags & CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB:
            info = FileInfo.from_times(
                body.creation_time, body.last_access_time, body.last_write_time,
                body.change_time, body.end_of_file, body.allocation_size, body.file_attributes,
                file_id=op.info.file_id)
            op.info = info
    if isinstance(wrote, SMBError):
        raise wrote
    count = wrote.decode(WriteResponse).count
    if count != len(data):
        raise SMBError(NTStatus.STATUS_DISK_FULL, None,
                       f"WRITE of {len(data)} bytes at {offset} wrote {count}")
    return info
