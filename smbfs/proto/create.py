"""SMB2 CREATE request/response ([MS-SMB2] 2.2.13, 2.2.14) and their flag
sets. Create contexts live in :mod:`smbfs.proto.create_contexts`; the
FileId type in :mod:`smbfs.proto.fileid` (re-exported here).

Timestamps are raw FILETIME ints (100 ns units since 1601-01-01 UTC).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self, TypeVar

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    checked_structure_size,
    from_utf16,
    optional_buffer,
    pad_to,
    unpack,
    utf16,
)
from smbfs.proto.constants import Command
from smbfs.proto.create_contexts import (
    AnyCreateContext,
    CreateContext,
    decode_create_contexts,
    encode_create_contexts,
    find_create_context,
)
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message


class OplockLevel(enum.IntEnum):
    """[MS-SMB2] 2.2.13 RequestedOplockLevel / 2.2.14 OplockLevel."""

    SMB2_OPLOCK_LEVEL_NONE = 0x00
    SMB2_OPLOCK_LEVEL_II = 0x01
    SMB2_OPLOCK_LEVEL_EXCLUSIVE = 0x08
    SMB2_OPLOCK_LEVEL_BATCH = 0x09
    SMB2_OPLOCK_LEVEL_LEASE = 0xFF


RequestedOplockLevel = OplockLevel


class ImpersonationLevel(enum.IntEnum):
    """[MS-SMB2] 2.2.13 ImpersonationLevel."""

    Anonymous = 0x00000000
    Identification = 0x00000001
    Impersonation = 0x00000002
    Delegate = 0x00000003


class ShareAccess(enum.IntFlag):
    """[MS-SMB2] 2.2.13 ShareAccess."""

    FILE_SHARE_NONE = 0x00000000
    FILE_SHARE_READ = 0x00000001
    FILE_SHARE_WRITE = 0x00000002
    FILE_SHARE_DELETE = 0x00000004


class CreateDisposition(enum.IntEnum):
    """[MS-SMB2] 2.2.13 CreateDisposition."""

    FILE_SUPERSEDE = 0x00000000
    FILE_OPEN = 0x00000001
    FILE_CREATE = 0x00000002
    FILE_OPEN_IF = 0x00000003
    FILE_OVERWRITE = 0x00000004
    FILE_OVERWRITE_IF = 0x00000005


class CreateOptions(enum.IntFlag):
    """[MS-SMB2] 2.2.13 CreateOptions."""

    FILE_DIRECTORY_FILE = 0x00000001
    FILE_WRITE_THROUGH = 0x00000002
    FILE_SEQUENTIAL_ONLY = 0x00000004
    FILE_NO_INTERMEDIATE_BUFFERING = 0x00000008
    FILE_SYNCHRONOUS_IO_ALERT = 0x00000010
    FILE_SYNCHRONOUS_IO_NONALERT = 0x00000020
    FILE_NON_DIRECTORY_FILE = 0x00000040
    FILE_COMPLETE_IF_OPLOCKED = 0x00000100
    FILE_NO_EA_KNOWLEDGE = 0x00000200
    FILE_OPEN_REMOTE_INSTANCE = 0x00000400
    FILE_RANDOM_ACCESS = 0x00000800
    FILE_DELETE_ON_CLOSE = 0x00001000
    FILE_OPEN_BY_FILE_ID = 0x00002000
    FILE_OPEN_FOR_BACKUP_INTENT = 0x00004000
    FILE_NO_COMPRESSION = 0x00008000
    FILE_OPEN_REQUIRING_OPLOCK = 0x00010000
    FILE_DISALLOW_EXCLUSIVE = 0x00020000
    FILE_RESERVE_OPFILTER = 0x00100000
    FILE_OPEN_REPARSE_POINT = 0x00200000
    FILE_OPEN_NO_RECALL = 0x00400000
    FILE_OPEN_FOR_FREE_SPACE_QUERY = 0x00800000


class AccessMask(enum.IntFlag):
    """[MS-SMB2] 2.2.13.1.1 File_Pipe_Printer_Access_Mask, with the directory
    names of 2.2.13.1.2 as aliases of the same bits."""

    FILE_READ_DATA = 0x00000001
    FILE_WRITE_DATA = 0x00000002
    FILE_APPEND_DATA = 0x00000004
    FILE_READ_EA = 0x00000008
    FILE_WRITE_EA = 0x00000010
    FILE_EXECUTE = 0x00000020
    FILE_DELETE_CHILD = 0x00000040
    FILE_READ_ATTRIBUTES = 0x00000080
    FILE_WRITE_ATTRIBUTES = 0x00000100
    DELETE = 0x00010000
    READ_CONTROL = 0x00020000
    WRITE_DAC = 0x00040000
    WRITE_OWNER = 0x00080000
    SYNCHRONIZE = 0x00100000
    ACCESS_SYSTEM_SECURITY = 0x01000000
    MAXIMUM_ALLOWED = 0x02000000
    GENERIC_ALL = 0x10000000
    GENERIC_EXECUTE = 0x20000000
    GENERIC_WRITE = 0x40000000
    GENERIC_READ = 0x80000000
    FILE_LIST_DIRECTORY = 0x00000001
    FILE_ADD_FILE = 0x00000002
    FILE_ADD_SUBDIRECTORY = 0x00000004
    FILE_TRAVERSE = 0x00000020


# Module-level names for the access bits, as the spec spells them.
FILE_READ_DATA: Final = AccessMask.FILE_READ_DATA
FILE_WRITE_DATA: Final = AccessMask.FILE_WRITE_DATA
FILE_APPEND_DATA: Final = AccessMask.FILE_APPEND_DATA
FILE_READ_EA: Final = AccessMask.FILE_READ_EA
FILE_WRITE_EA: Final = AccessMask.FILE_WRITE_EA
FILE_EXECUTE: Final = AccessMask.FILE_EXECUTE
FILE_DELETE_CHILD: Final = AccessMask.FILE_DELETE_CHILD
FILE_READ_ATTRIBUTES: Final = AccessMask.FILE_READ_ATTRIBUTES
FILE_WRITE_ATTRIBUTES: Final = AccessMask.FILE_WRITE_ATTRIBUTES
DELETE: Final = AccessMask.DELETE
READ_CONTROL: Final = AccessMask.READ_CONTROL
WRITE_DAC: Final = AccessMask.WRITE_DAC
WRITE_OWNER: Final = AccessMask.WRITE_OWNER
SYNCHRONIZE: Final = AccessMask.SYNCHRONIZE
ACCESS_SYSTEM_SECURITY: Final = AccessMask.ACCESS_SYSTEM_SECURITY
MAXIMUM_ALLOWED: Final = AccessMask.MAXIMUM_ALLOWED
GENERIC_ALL: Final = AccessMask.GENERIC_ALL
GENERIC_EXECUTE: Final = AccessMask.GENERIC_EXECUTE
GENERIC_WRITE: Final = AccessMask.GENERIC_WRITE
GENERIC_READ: Final = AccessMask.GENERIC_READ


class CreateResponseFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.14 Flags (3.x)."""

    SMB2_CREATE_FLAG_REPARSEPOINT = 0x01


class CreateAction(enum.IntEnum):
    """[MS-SMB2] 2.2.14 CreateAction."""

    FILE_SUPERSEDED = 0x00000000
    FILE_OPENED = 0x00000001
    FILE_CREATED = 0x00000002
    FILE_OVERWRITTEN = 0x00000003


def _decode_contexts(
    msg: Buffer, offset: int, length: int, fixed_size: int, *, response: bool
) -> list[AnyCreateContext]:
    """The CreateContexts of a CREATE request or response: none when the
    length is 0, and they may not start inside the fixed body."""
    if not length:
        return []
    if offset < SMB2_HEADER_SIZE + fixed_size:
        raise DecodeError(f"CREATE: CreateContextsOffset {offset} overlaps the body")
    region = optional_buffer(msg, offset, length, "CREATE CreateContexts")
    return decode_create_contexts(region, response=response)


# StructureSize, SecurityFlags, RequestedOplockLevel, ImpersonationLevel,
# SmbCreateFlags, Reserved, DesiredAccess, FileAttributes, ShareAccess,
# CreateDisposition, CreateOptions, NameOffset, NameLength,
# CreateContextsOffset, CreateContextsLength.
_REQ: Final = struct.Struct("<HBBIQQIIIIIHHII")
assert _REQ.size == 56

_C = TypeVar("_C", bound=CreateContext)


@dataclass(slots=True)
class CreateRequest(Message):
    """[MS-SMB2] 2.2.13 SMB2 CREATE Request.

    ``name`` is relative to the share root, with backslashes and no leading
    one ("" opens the root). The name is followed by the 8-byte aligned
    create context chain.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_CREATE
    STRUCTURE_SIZE: ClassVar[int] = 57

    name: str = ""
    desired_access: int = 0
    file_attributes: int = 0
    share_access: int = 0
    create_disposition: int = CreateDisposition.FILE_OPEN
    create_options: int = 0
    requested_oplock_level: int = OplockLevel.SMB2_OPLOCK_LEVEL_NONE
    impersonation_level: int = ImpersonationLevel.Impersonation
    create_contexts: list[AnyCreateContext] = field(default_factory=list)
    security_flags: int = 0
    smb_create_flags: int = 0

    def encode_parts(self) -> list[Buffer]:
        name = utf16(self.name)
        if len(name) > 0xFFFF:
            raise ValueError("CREATE name longer than 65535 bytes")
        name_offset = SMB2_HEADER_SIZE + _REQ.size
        ctx_offset = 0
        ctx = b""
        pad = b""
        if self.create_contexts:
            ctx = encode_create_contexts(self.create_contexts)
            pad = bytes(pad_to(name_offset + len(name), 8))
            ctx_offset = name_offset + len(name) + len(pad)
        elif not name:
            # StructureSize 57 counts one byte of Buffer: never send it empty.
            pad = b"\0"
        fixed = _REQ.pack(
            self.STRUCTURE_SIZE, self.security_flags, self.requested_oplock_level,
            self.impersonation_level, self.smb_create_flags, 0, self.desired_access,
            self.file_attributes, self.share_access, self.create_disposition,
            self.create_options, name_offset, len(name), ctx_offset, len(ctx),
        )
        return [fixed, name, pad, ctx]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        (size, security_flags, oplock, impersonation, create_flags, _r, access,
         attributes, share, disposition, options, name_offset, name_len, ctx_offset,
         ctx_len) = unpack(_REQ, msg, SMB2_HEADER_SIZE, "CREATE request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "CREATE request")
        name = from_utf16(
            optional_buffer(msg, name_offset, name_len, "CREATE Name"), "CREATE Name"
        )
        contexts = _decode_contexts(msg, ctx_offset, ctx_len, _REQ.size, response=False)
        return cls(
            name=name, desired_access=access, file_attributes=attributes,
            share_access=share, create_disposition=disposition, create_options=options,
            requested_oplock_level=oplock, impersonation_level=impersonation,
            create_contexts=contexts, security_flags=security_flags,
            smb_create_flags=create_flags,
        )

    def context(self, cls_: type[_C]) -> _C | None:
        return find_create_context(self.create_contexts, cls_)


# StructureSize, OplockLevel, Flags, CreateAction, CreationTime, LastAccessTime,
# LastWriteTime, ChangeTime, AllocationSize, EndofFile, FileAttributes,
# Reserved2, FileId (persistent, volatile), CreateContextsOffset,
# CreateContextsLength.
_RESP: Final = struct.Struct("<HBBIQQQQQQIIQQII")
assert _RESP.size == 88


@dataclass(slots=True)
class CreateResponse(Message):
    """[MS-SMB2] 2.2.14 SMB2 CREATE Response."""

    COMMAND: ClassVar[Command] = Command.SMB2_CREATE
    STRUCTURE_SIZE: ClassVar[int] = 89

    file_id: FileId = field(default_factory=lambda: FileId(0, 0))
    oplock_level: int = 0
    flags: int = 0
    create_action: int = 0
    creation_time: int = 0
    last_access_time: int = 0
    last_write_time: int = 0
    change_time: int = 0
    allocation_size: int = 0
    end_of_file: int = 0
    file_attributes: int = 0
    create_contexts: list[AnyCreateContext] = field(default_factory=list)

    def encode_parts(self) -> list[Buffer]:
        ctx = encode_create_contexts(self.create_contexts) if self.create_contexts else b""
        # The fixed part ends at 64 + 88 = 152, already 8-byte aligned.
        ctx_offset = SMB2_HEADER_SIZE + _RESP.size if ctx else 0
        fixed = _RESP.pack(
            self.STRUCTURE_SIZE, self.oplock_level, self.flags, self.create_action,
            self.creation_time, self.last_access_time, self.last_write_time,
            self.change_time, self.allocation_size, self.end_of_file,
            self.file_attributes, 0, self.file_id.persistent, self.file_id.volatile,
            ctx_offset, len(ctx),
        )
        return [fixed, ctx or b"\0"]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        (size, oplock, flags, action, ctime, atime, wtime, chtime, alloc, eof, attrs,
         _r, persistent, volatile, ctx_offset, ctx_len) = unpack(
            _RESP, msg, SMB2_HEADER_SIZE, "CREATE response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "CREATE response")
        contexts = _decode_contexts(msg, ctx_offset, ctx_len, _RESP.size, response=True)
        return cls(
            file_id=FileId(persistent, volatile), oplock_level=oplock, flags=flags,
            create_action=action, creation_time=ctime, last_access_time=atime,
            last_write_time=wtime, change_time=chtime, allocation_size=alloc,
            end_of_file=eof, file_attributes=attrs, create_contexts=contexts,
        )

    def context(self, cls_: type[_C]) -> _C | None:
        """The first returned context of class ``cls_`` (e.g.
        ``CreateRequestLeaseV2`` for the granted lease), or None."""
        return find_create_context(self.create_contexts, cls_)


__all__ = [
    "ACCESS_SYSTEM_SECURITY",
    "DELETE",
    "FILE_APPEND_DATA",
    "FILE_DELETE_CHILD",
    "FILE_EXECUTE",
    "FILE_READ_ATTRIBUTES",
    "FILE_READ_DATA",
    "FILE_READ_EA",
    "FILE_WRITE_ATTRIBUTES",
    "FILE_WRITE_DATA",
    "FILE_WRITE_EA",
    "GENERIC_ALL",
    "GENERIC_EXECUTE",
    "GENERIC_READ",
    "GENERIC_WRITE",
    "MAXIMUM_ALLOWED",
    "READ_CONTROL",
    "SYNCHRONIZE",
    "WRITE_DAC",
    "WRITE_OWNER",
    "AccessMask",
    "CreateAction",
    "CreateDisposition",
    "CreateOptions",
    "CreateRequest",
    "CreateResponse",
    "CreateResponseFlags",
    "FileId",
    "ImpersonationLevel",
    "OplockLevel",
    "RequestedOplockLevel",
    "ShareAccess",
]
