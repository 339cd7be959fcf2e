"""SMB2 QUERY_INFO and SET_INFO ([MS-SMB2] 2.2.37 - 2.2.40).

These messages only frame the information: the info class number travels
as an int and the info itself as a raw buffer (a memoryview into the
received message when decoded). smbfs.proto.fscc encodes and decodes the
[MS-FSCC] structures inside; [MS-DTYP] security descriptors likewise live
elsewhere.

The three "OutputBufferOffset/OutputBufferLength" responses (QUERY_INFO,
QUERY_DIRECTORY, CHANGE_NOTIFY) share :class:`OutputBufferResponse`.
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
    optional_buffer,
    unpack,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message


class InfoType(enum.IntEnum):
    """[MS-SMB2] 2.2.37 InfoType."""

    SMB2_0_INFO_FILE = 0x01
    SMB2_0_INFO_FILESYSTEM = 0x02
    SMB2_0_INFO_SECURITY = 0x03
    SMB2_0_INFO_QUOTA = 0x04


class SecurityInformation(enum.IntFlag):
    """[MS-SMB2] 2.2.37 / 2.2.39 AdditionalInformation for security queries."""

    OWNER_SECURITY_INFORMATION = 0x00000001
    GROUP_SECURITY_INFORMATION = 0x00000002
    DACL_SECURITY_INFORMATION = 0x00000004
    SACL_SECURITY_INFORMATION = 0x00000008
    LABEL_SECURITY_INFORMATION = 0x00000010
    ATTRIBUTE_SECURITY_INFORMATION = 0x00000020
    SCOPE_SECURITY_INFORMATION = 0x00000040
    BACKUP_SECURITY_INFORMATION = 0x00010000


class QueryInfoFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.37 Flags (FileFullEaInformation queries only)."""

    SL_RESTART_SCAN = 0x00000001
    SL_RETURN_SINGLE_ENTRY = 0x00000002
    SL_INDEX_SPECIFIED = 0x00000004


# An odd StructureSize promises at least one byte of Buffer; when a request
# has nothing to put there, it sends this one zero byte (as 2.2.19 spells
# out for READ) and leaves the offset/length pair zero.
_PAD: Final = b"\x00"


# ---------------------------------------------------- shared response framing

_OUT_RSP: Final = struct.Struct("<HHI")
OUTPUT_BUFFER_OFFSET: Final = SMB2_HEADER_SIZE + _OUT_RSP.size  # 0x48


class OutputBufferResponse(Message):
    """StructureSize 9, OutputBufferOffset, OutputBufferLength, Buffer: the body
    of the QUERY_INFO, QUERY_DIRECTORY and CHANGE_NOTIFY responses."""

    STRUCTURE_SIZE: ClassVar[int] = 9
    WHAT: ClassVar[str]

    output: Buffer

    def encode_parts(self) -> list[Buffer]:
        n = len(self.output)
        fixed = _OUT_RSP.pack(9, OUTPUT_BUFFER_OFFSET if n else 0, n)
        return [fixed, self.output] if n else [fixed, _PAD]

    @classmethod
    def _decode_output(cls, msg: memoryview) -> memoryview:
        size, off, length = unpack(_OUT_RSP, msg, SMB2_HEADER_SIZE, cls.WHAT)
        checked_structure_size(size, 9, cls.WHAT)
        if length and off < OUTPUT_BUFFER_OFFSET:
            raise DecodeError(f"{cls.WHAT}: OutputBufferOffset {off} overlaps the header")
        out = optional_buffer(msg, off, length, f"{cls.WHAT} output buffer")
        return out if length else memoryview(msg)[0:0]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        return cls(cls._decode_output(msg))  # type: ignore[call-arg]


# ---------------------------------------------------------------- QUERY_INFO

# StructureSize, InfoType, FileInfoClass, OutputBufferLength, InputBufferOffset,
# Reserved, InputBufferLength, AdditionalInformation, Flags, FileId.
_QUERY_REQ: Final = struct.Struct("<HBBIHHIII16s")
_QUERY_REQ_BUFFER: Final = SMB2_HEADER_SIZE + _QUERY_REQ.size  # 0x68


@dataclass(slots=True)
class QueryInfoRequest(Message):
    """[MS-SMB2] 2.2.37.

    ``input`` is an SMB2_QUERY_QUOTA_INFO for quota queries or a
    FILE_GET_EA_INFORMATION list for FileFullEaInformation, else empty.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_QUERY_INFO
    STRUCTURE_SIZE: ClassVar[int] = 41

    info_type: int
    file_info_class: int
    file_id: FileId
    output_buffer_length: int = 65536
    additional_information: int = 0
    flags: int = 0
    input: Buffer = field(default=b"")

    def encode_parts(self) -> list[Buffer]:
        n = len(self.input)
        fixed = _QUERY_REQ.pack(
            self.STRUCTURE_SIZE, self.info_type, self.file_info_class,
            self.output_buffer_length, _QUERY_REQ_BUFFER if n else 0, 0, n,
            self.additional_information, self.flags, self.file_id.encode(),
        )
        return [fixed, self.input] if n else [fixed, _PAD]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, info_type, info_class, out_len, in_off, _r, in_len, additional, flags,
         _fid) = unpack(_QUERY_REQ, msg, SMB2_HEADER_SIZE, "QUERY_INFO request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "QUERY_INFO request")
        return cls(
            info_type=info_type, file_info_class=info_class,
            file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 24), output_buffer_length=out_len,
            additional_information=additional, flags=flags,
            input=optional_buffer(msg, in_off, in_len, "QUERY_INFO input buffer"),
        )


@dataclass(slots=True)
class QueryInfoResponse(OutputBufferResponse):
    """[MS-SMB2] 2.2.38. ``output`` is the raw [MS-FSCC] / [MS-DTYP] structure."""

    COMMAND: ClassVar[Command] = Command.SMB2_QUERY_INFO
    WHAT: ClassVar[str] = "QUERY_INFO response"

    output: Buffer = field(default=b"")


# --------------------------------------------------------------- quota query

# ReturnSingle, RestartScan, Reserved, SidListLength, StartSidLength, StartSidOffset.
_QUOTA_INFO: Final = struct.Struct("<BBHIII")


@dataclass(slots=True)
class QueryQuotaInfo:
    """[MS-SMB2] 2.2.37.1 SMB2_QUERY_QUOTA_INFO, the input of a quota query.

    ``sid_list`` (FILE_GET_QUOTA_INFORMATION entries, format 1) and
    ``start_sid`` (a SID, format 2) are raw bytes; at most one is non-empty.
    """

    return_single: bool = False
    restart_scan: bool = False
    sid_list: bytes = b""
    start_sid: bytes = b""

    def encode(self) -> bytes:
        if self.sid_list and self.start_sid:
            raise ValueError("SMB2_QUERY_QUOTA_INFO: give a SID list or a start SID, not both")
        return _QUOTA_INFO.pack(
            int(self.return_single), int(self.restart_scan), 0, len(self.sid_list),
            len(self.start_sid), 0,
        ) + self.sid_list + self.start_sid

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> QueryQuotaInfo:
        single, restart, _r, list_len, sid_len, sid_off = unpack(
            _QUOTA_INFO, buf, offset, "SMB2_QUERY_QUOTA_INFO"
        )
        sids = offset + _QUOTA_INFO.size
        sid_list = optional_buffer(buf, sids, list_len, "SMB2_QUERY_QUOTA_INFO SidBuffer")
        start = optional_buffer(buf, sids + sid_off, sid_len, "SMB2_QUERY_QUOTA_INFO StartSid")
        return cls(bool(single), bool(restart), bytes(sid_list), bytes(start))


# ------------------------------------------------------------------ SET_INFO

# StructureSize, InfoType, FileInfoClass, BufferLength, BufferOffset, Reserved,
# AdditionalInformation, FileId.
_SET_REQ: Final = struct.Struct("<HBBIHHI16s")
_SET_REQ_BUFFER: Final = SMB2_HEADER_SIZE + _SET_REQ.size  # 0x60
_SET_RSP: Final = struct.Struct("<H")


@dataclass(slots=True)
class SetInfoRequest(Message):
    """[MS-SMB2] 2.2.39. ``buffer`` (the encoded info) is sent as its own part."""

    COMMAND: ClassVar[Command] = Command.SMB2_SET_INFO
    STRUCTURE_SIZE: ClassVar[int] = 33

    info_type: int
    file_info_class: int
    file_id: FileId
    buffer: Buffer = field(default=b"")
    additional_information: int = 0

    def encode_parts(self) -> list[Buffer]:
        n = len(self.buffer)
        fixed = _SET_REQ.pack(
            self.STRUCTURE_SIZE, self.info_type, self.file_info_class, n,
            _SET_REQ_BUFFER if n else 0, 0, self.additional_information,
            self.file_id.encode(),
        )
        return [fixed, self.buffer] if n else [fixed, _PAD]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, info_type, info_class, length, off, _r, additional,
         _fid) = unpack(_SET_REQ, msg, SMB2_HEADER_SIZE, "SET_INFO request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "SET_INFO request")
        return cls(
            info_type=info_type, file_info_class=info_class,
            file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 16),
            buffer=optional_buffer(msg, off, length, "SET_INFO buffer"),
            additional_information=additional,
        )


@dataclass(slots=True)
class SetInfoResponse(Message):
    """[MS-SMB2] 2.2.40: StructureSize alone."""

    COMMAND: ClassVar[Command] = Command.SMB2_SET_INFO
    STRUCTURE_SIZE: ClassVar[int] = 2

    def encode_parts(self) -> list[Buffer]:
        return [_SET_RSP.pack(self.STRUCTURE_SIZE)]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size,) = unpack(_SET_RSP, msg, SMB2_HEADER_SIZE, "SET_INFO response")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "SET_INFO response")
        return cls()
