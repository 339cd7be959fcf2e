"""SMB2 QUERY_DIRECTORY ([MS-SMB2] 2.2.33, 2.2.34).

The response's output buffer is a chain of [MS-FSCC] 2.4 directory entries
in the requested information class; it is handed out as a memoryview for
smbfs.proto.fscc to walk, never copied here.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    checked_structure_size,
    unpack,
    utf16,
    utf16_at,
)
from smbfs.proto.constants import Command
from smbfs.proto.fileid import FileId
from smbfs.proto.info import OutputBufferResponse
from smbfs.proto.message import Message


class QueryDirectoryFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.33 Flags."""

    SMB2_RESTART_SCANS = 0x01
    SMB2_RETURN_SINGLE_ENTRY = 0x02
    SMB2_INDEX_SPECIFIED = 0x04
    SMB2_REOPEN = 0x10  # implies SMB2_RESTART_SCANS, with a new pattern


# StructureSize, FileInformationClass, Flags, FileIndex, FileId, FileNameOffset,
# FileNameLength, OutputBufferLength.
_QD_REQ: Final = struct.Struct("<HBBI16sHHI")
_QD_REQ_BUFFER: Final = SMB2_HEADER_SIZE + _QD_REQ.size  # 0x60


@dataclass(slots=True)
class QueryDirectoryRequest(Message):
    """[MS-SMB2] 2.2.33.

    ``file_information_class`` is an [MS-FSCC] 2.4 class number (e.g.
    FileIdBothDirectoryInformation = 0x25); ``pattern`` is the search
    pattern ("*" for everything). An empty pattern is sent as offset and
    length 0 (the server then keeps the previous one).
    """

    COMMAND: ClassVar[Command] = Command.SMB2_QUERY_DIRECTORY
    STRUCTURE_SIZE: ClassVar[int] = 33

    file_information_class: int
    file_id: FileId
    pattern: str = "*"
    flags: int = 0
    file_index: int = 0
    output_buffer_length: int = 65536

    def encode_parts(self) -> list[Buffer]:
        name = utf16(self.pattern)
        if len(name) > 0xFFFF:
            raise ValueError("QUERY_DIRECTORY pattern longer than 65535 bytes")
        fixed = _QD_REQ.pack(
            self.STRUCTURE_SIZE, self.file_information_class, self.flags, self.file_index,
            self.file_id.encode(), _QD_REQ_BUFFER if name else 0, len(name),
            self.output_buffer_length,
        )
        return [fixed, name if name else b"\x00"]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, info_class, flags, index, _fid, name_off, name_len,
         out_len) = unpack(_QD_REQ, msg, SMB2_HEADER_SIZE, "QUERY_DIRECTORY request")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "QUERY_DIRECTORY request")
        pattern = (utf16_at(msg, name_off, name_len, "QUERY_DIRECTORY FileName")
                   if name_len else "")
        return cls(
            file_information_class=info_class, file_id=FileId.decode(msg, SMB2_HEADER_SIZE + 8),
            pattern=pattern, flags=flags, file_index=index, output_buffer_length=out_len,
        )


@dataclass(slots=True)
class QueryDirectoryResponse(OutputBufferResponse):
    """[MS-SMB2] 2.2.34. ``output`` holds the raw [MS-FSCC] 2.4 entries.

    The end of a listing is not an empty response but the error status
    STATUS_NO_MORE_FILES, handled by the engine before this decoder.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_QUERY_DIRECTORY
    WHAT: ClassVar[str] = "QUERY_DIRECTORY response"

    output: Buffer = field(default=b"")
