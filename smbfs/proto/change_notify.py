"""SMB2 CHANGE_NOTIFY ([MS-SMB2] 2.2.35, 2.2.36) and the FILE_NOTIFY_INFORMATION
entries of its response ([MS-FSCC] 2.7.1, 2.4.42 in older texts).

A CHANGE_NOTIFY normally goes async (STATUS_PENDING) and completes when
something changes, or with STATUS_NOTIFY_ENUM_DIR when the server lost
track and the client must re-list the directory: both are the engine's.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    checked_structure_size,
    unpack,
    utf16,
    utf16_at,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.fscc._util import chain
from smbfs.proto.info import OutputBufferResponse
from smbfs.proto.message import Message


class ChangeNotifyFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.35 Flags."""

    SMB2_WATCH_TREE = 0x0001


class CompletionFilter(enum.IntFlag):
    """[MS-SMB2] 2.2.35 CompletionFilter."""

    FILE_NOTIFY_CHANGE_FILE_NAME = 0x00000001
    FILE_NOTIFY_CHANGE_DIR_NAME = 0x00000002
    FILE_NOTIFY_CHANGE_ATTRIBUTES = 0x00000004
    FILE_NOTIFY_CHANGE_SIZE = 0x00000008
    FILE_NOTIFY_CHANGE_LAST_WRITE = 0x00000010
    FILE_NOTIFY_CHANGE_LAST_ACCESS = 0x00000020
    FILE_NOTIFY_CHANGE_CREATION = 0x00000040
    FILE_NOTIFY_CHANGE_EA = 0x00000080
    FILE_NOTIFY_CHANGE_SECURITY = 0x00000100
    FILE_NOTIFY_CHANGE_STREAM_NAME = 0x00000200
    FILE_NOTIFY_CHANGE_STREAM_SIZE = 0x00000400
    FILE_NOTIFY_CHANGE_STREAM_WRITE = 0x00000800


class FileAction(enum.IntEnum):
    """[MS-FSCC] 2.7.1 Action."""

    FILE_ACTION_ADDED = 0x00000001
    FILE_ACTION_REMOVED = 0x00000002
    FILE_ACTION_MODIFIED = 0x00000003
    FILE_ACTION_RENAMED_OLD_NAME = 0x00000004
    FILE_ACTION_RENAMED_NEW_NAME = 0x00000005
    FILE_ACTION_ADDED_STREAM = 0x00000006
    FILE_ACTION_REMOVED_STREAM = 0x00000007
    FILE_ACTION_MODIFIED_STREAM = 0x00000008
    FILE_ACTION_REMOVED_BY_DELETE = 0x00000009
    FILE_ACTION_ID_NOT_TUNNELLED = 0x0000000A
    FILE_ACTION_TUNNELLED_ID_COLLISION = 0x0000000B


# StructureSize, Flags, OutputBufferLength, FileId, CompletionFilter, Reserved.
_CN_REQ: Final = struct.Struct("<HHI16sII")
# NextEntryOffset, Action, FileNameLength.
_NOTIFY: Final = struct.Struct("<III")


@dataclass(frozen=True, slots=True)
class FileNotifyInformation:
    """[MS-FSCC] 2.7.1 FILE_NOTIFY_INFORMATION, without its chaining field.

    ``action`` stays a plain int: an action this module does not know is
    still reported rather than failing the whole batch.
    """

    action: int
    file_name: str


def encode_notify_information(entries: list[FileNotifyInformation]) -> bytes:
    """Chain entries as a server does: each padded to 4 bytes, the last with
    NextEntryOffset 0."""
    parts: list[bytes] = []
    for e in entries:
        name = utf16(e.file_name)
        parts.append(_NOTIFY.pack(0, e.action, len(name)) + name)
    return chain(parts, 4)


def decode_notify_information(buf: Buffer) -> list[FileNotifyInformation]:
    """Walk a FILE_NOTIFY_INFORMATION chain.

    Each NextEntryOffset must move forward by at least a whole entry header
    and be a multiple of 4 ([MS-FSCC] 2.7.1), so a hostile chain can neither
    loop nor make entries overlap; every FileName is bounds-checked.
    """
    entries: list[FileNotifyInformation] = []
    pos = 0
    while True:
        next_off, action, name_len = unpack(_NOTIFY, buf, pos, "FILE_NOTIFY_INFORMATION")
        name_start = pos + _NOTIFY.size
        if next_off and name_start + name_len > pos + next_off:
            raise DecodeError("FILE_NOTIFY_INFORMATION: FileName runs into the next entry")
        name = utf16_at(buf, name_start, name_len, "FILE_NOTIFY_INFORMATION FileName")
        entries.append(FileNotifyInformation(action, name))
        if next_off == 0:
            return entries
        if next_off % 4:
            raise DecodeError(f"FILE_NOTIFY_INFORMATION: NextEntryOffset {next_off} "
                              "not a multiple of 4")
        pos += next_off
        if pos >= len(buf):
            raise DecodeError("FILE_NOTIFY_INFORMATION: NextEntryOffset past the buffer")


@dataclass(slots=True)
class ChangeNotifyRequest(Message):
    """[MS-SMB2] 2.2.35."""

    COMMAND: ClassVar[Command] = Command.SMB2_CHANGE_NOTIFY
    STRUCTURE_SIZE: ClassVar[int] = 32

    file_id: FileId
    completion_filter: int
    flags: int = 0
    output_buffer_length: int = 65536

    def encode_parts(self) -> list[Buffer]:
        return [_CN_REQ.pack(self.STRUCTURE_SIZE, self.flags, self.output_buffer_length,
                             self.file_id.encode(), self.completion_filter, 0)]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, flags, out_len, _fid, cfilter, _r = unpack(
            _CN_REQ, msg, SMB2_HEADER_SIZE, "CHANGE_NOTIFY request"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "CHANGE_NOTIFY request")
        return cls(FileId.decode(msg, SMB2_HEADER_SIZE + 8), cfilter, flags, out_len)


@dataclass(slots=True)
class ChangeNotifyResponse(OutputBufferResponse):
    """[MS-SMB2] 2.2.36. ``output`` is the raw chain; :attr:`entries` decodes it.

    An empty output (a successful completion with no entries) means the
    changes did not fit in OutputBufferLength: re-list the directory.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_CHANGE_NOTIFY
    WHAT: ClassVar[str] = "CHANGE_NOTIFY response"

    output: Buffer = field(default=b"")

    @property
    def entries(self) -> list[FileNotifyInformation]:
        if not self.output:
            return []
        return decode_notify_information(self.output)

    @classmethod
    def from_entries(cls, entries: list[FileNotifyInformation]) -> ChangeNotifyResponse:
        return cls(encode_notify_information(entries) if entries else b"")

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        """Decode and validate the whole chain now, so that a malformed one is a
        DecodeError here rather than later, at the consumer."""
        rsp = cls(cls._decode_output(msg))
        if rsp.output:
            decode_notify_information(rsp.output)
        return rsp
