"""SMB2 FLUSH, READ and WRITE ([MS-SMB2] 2.2.17 - 2.2.22).

These are the bulk-data hot path: a READ response's data comes back as a
memoryview into the received buffer and a WRITE request's data goes out as
the caller's own buffer, so no payload byte is copied by this layer.
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
    view,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message
from smbfs.proto.simple import SimpleMessage


class ReadFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.19 Flags (SMB 3.0.2 and later)."""

    SMB2_READFLAG_READ_UNBUFFERED = 0x01
    SMB2_READFLAG_REQUEST_COMPRESSED = 0x02  # SMB 3.1.1


class WriteFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.21 Flags."""

    SMB2_WRITEFLAG_WRITE_THROUGH = 0x00000001
    SMB2_WRITEFLAG_WRITE_UNBUFFERED = 0x00000002


class RdmaChannel(enum.IntEnum):
    """Values of the Channel field of READ and WRITE ([MS-SMB2] 2.2.19,
    2.2.21): which RDMA descriptors follow, if any (SMB 3.x). Not named
    ``Channel``: that is the engine's name for one connection of a session
    (smbfs.client.session.Channel, [MS-SMB2] 3.2.1.8)."""

    SMB2_CHANNEL_NONE = 0x00000000
    SMB2_CHANNEL_RDMA_V1 = 0x00000001
    SMB2_CHANNEL_RDMA_V1_INVALIDATE = 0x00000002
    SMB2_CHANNEL_RDMA_TRANSFORM = 0x00000003


# --------------------------------------------------------------------- FLUSH

_FLUSH_REQ: Final = struct.Struct("<HHI16s")


@dataclass(slots=True)
class FlushRequest(Message):
    """[MS-SMB2] 2.2.17."""

    COMMAND: ClassVar[Command] = Command.SMB2_FLUSH
    STRUCTURE_SIZE: ClassVar[int] = 24

    file_id: FileId

    def encode_parts(self) -> list[Buffer]:
        return [_FLUSH_REQ.pack(self.STRUCTURE_SIZE, 0, 0, self.file_id.encode())]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, _r1, _r2, _fid = unpack(_FLUSH_REQ, msg, SMB2_HEADER_SIZE, "FLUSH request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "FLUSH request")
        return cls(FileId.decode(msg, SMB2_HEADER_SIZE + 8))


@dataclass(slots=True)
class FlushResponse(SimpleMessage):
    """[MS-SMB2] 2.2.18: StructureSize 4 and Reserved, as ECHO's."""

    COMMAND: ClassVar[Command] = Command.SMB2_FLUSH


# ---------------------------------------------------------------------- READ

# StructureSize, Padding, Flags, Length, Offset, FileId, MinimumCount, Channel,
# RemainingBytes, ReadChannelInfoOffset, ReadChannelInfoLength.
_READ_REQ: Final = struct.Struct("<HBBIQ16sIIIHH")
_READ_REQ_BUFFER: Final = SMB2_HEADER_SIZE + _READ_REQ.size  # 0x70
# StructureSize, DataOffset, Reserved, DataLength, DataRemaining, Reserved2.
_READ_RSP: Final = struct.Struct("<HBBIII")
READ_RESPONSE_DATA_OFFSET: Final = SMB2_HEADER_SIZE + _READ_RSP.size  # 0x50


@dataclass(slots=True)
class ReadRequest(Message):
    """[MS-SMB2] 2.2.19.

    ``padding`` asks the server to place the data at that offset from the
    header (a hint; 0x50 is where it lands anyway).
    """

    COMMAND: ClassVar[Command] = Command.SMB2_READ
    STRUCTURE_SIZE: ClassVar[int] = 49

    file_id: FileId
    length: int
    offset: int
    minimum_count: int = 0
    remaining_bytes: int = 0
    flags: int = 0
    padding: int = READ_RESPONSE_DATA_OFFSET
    channel: int = RdmaChannel.SMB2_CHANNEL_NONE
    read_channel_info: bytes = b""

    def encode_parts(self) -> list[Buffer]:
        info = self.read_channel_info
        fixed = _READ_REQ.pack(
            self.STRUCTURE_SIZE, self.padding, self.flags, self.length, self.offset,
            self.file_id.encode(), self.minimum_count, self.channel, self.remaining_bytes,
            _READ_REQ_BUFFER if info else 0, len(info),
        )
        # 2.2.19 Buffer: "The client MUST set one byte of this field to 0" when
        # there is no channel info; servers reject an empty variable part.
        return [fixed, info if info else b"\x00"]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, padding, flags, length, offset, _fid, minimum_count, channel,
         remaining, info_off, info_len) = unpack(_READ_REQ, msg, SMB2_HEADER_SIZE,
                                                 "READ request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "READ request")
        info = optional_buffer(msg, info_off, info_len, "READ request ReadChannelInfo")
        return cls(
            file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 16), length=length,
            offset=offset, minimum_count=minimum_count, remaining_bytes=remaining,
            flags=flags, padding=padding, channel=channel, read_channel_info=bytes(info),
        )


@dataclass(slots=True)
class ReadResponse(Message):
    """[MS-SMB2] 2.2.20.

    ``data`` is a memoryview into the received message when decoded: the
    caller owns the lifetime of that buffer and may hand the view straight to
    FUSE without a copy.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_READ
    STRUCTURE_SIZE: ClassVar[int] = 17

    data: Buffer = field(default=b"")
    data_remaining: int = 0

    def encode_parts(self) -> list[Buffer]:
        fixed = _READ_RSP.pack(
            self.STRUCTURE_SIZE, READ_RESPONSE_DATA_OFFSET, 0, len(self.data),
            self.data_remaining, 0,
        )
        return [fixed, self.data]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, data_off, _r, data_len, remaining, _r2 = unpack(
            _READ_RSP, msg, SMB2_HEADER_SIZE, "READ response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "READ response")
        if data_len == 0:
            data = memoryview(msg)[0:0]
        else:
            if data_off < SMB2_HEADER_SIZE + _READ_RSP.size:
                raise DecodeError(f"READ response: DataOffset {data_off} inside the header")
            data = view(msg, data_off, data_len, "READ response data")
        return cls(data=data, data_remaining=remaining)


# --------------------------------------------------------------------- WRITE

# StructureSize, DataOffset, Length, Offset, FileId, Channel, RemainingBytes,
# WriteChannelInfoOffset, WriteChannelInfoLength, Flags.
_WRITE_REQ: Final = struct.Struct("<HHIQ16sIIHHI")
WRITE_REQUEST_DATA_OFFSET: Final = SMB2_HEADER_SIZE + _WRITE_REQ.size  # 0x70
# StructureSize, Reserved, Count, Remaining, WriteChannelInfoOffset/Length.
_WRITE_RSP: Final = struct.Struct("<HHIIHH")


@dataclass(slots=True)
class WriteRequest(Message):
    """[MS-SMB2] 2.2.21.

    ``data`` is sent as its own part (the caller's buffer, not copied).
    Channel info, used only with RDMA, follows the data.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_WRITE
    STRUCTURE_SIZE: ClassVar[int] = 49

    file_id: FileId
    offset: int
    data: Buffer = field(default=b"")
    flags: int = 0
    remaining_bytes: int = 0
    channel: int = RdmaChannel.SMB2_CHANNEL_NONE
    write_channel_info: bytes = b""

    def encode_parts(self) -> list[Buffer]:
        n = len(self.data)
        info = self.write_channel_info
        fixed = _WRITE_REQ.pack(
            self.STRUCTURE_SIZE, WRITE_REQUEST_DATA_OFFSET, n, self.offset,
            self.file_id.encode(), self.channel, self.remaining_bytes,
            WRITE_REQUEST_DATA_OFFSET + n if info else 0, len(info), self.flags,
        )
        if info:
            return [fixed, self.data, info]
        if n == 0:
            # An odd StructureSize promises a variable part of at least one byte.
            return [fixed, b"\x00"]
        return [fixed, self.data]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, data_off, length, offset, _fid, channel, remaining, info_off, info_len,
         flags) = unpack(_WRITE_REQ, msg, SMB2_HEADER_SIZE, "WRITE request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "WRITE request")
        data = optional_buffer(msg, data_off, length, "WRITE request data")
        info = optional_buffer(msg, info_off, info_len, "WRITE request WriteChannelInfo")
        return cls(
            file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 16), offset=offset, data=data,
            flags=flags, remaining_bytes=remaining, channel=channel,
            write_channel_info=bytes(info),
        )


@dataclass(slots=True)
class WriteResponse(Message):
    """[MS-SMB2] 2.2.22. Only ``count`` matters; the rest is reserved."""

    COMMAND: ClassVar[Command] = Command.SMB2_WRITE
    STRUCTURE_SIZE: ClassVar[int] = 17

    count: int
    remaining: int = 0

    def encode_parts(self) -> list[Buffer]:
        return [_WRITE_RSP.pack(self.STRUCTURE_SIZE, 0, self.count, self.remaining, 0, 0)]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, _r, count, remaining, _io, _il = unpack(
            _WRITE_RSP, msg, SMB2_HEADER_SIZE, "WRITE response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "WRITE response")
        return cls(count=count, remaining=remaining)
