"""The four-byte messages: ECHO, CANCEL, LOGOFF and TREE_DISCONNECT
([MS-SMB2] 2.2.7, 2.2.8, 2.2.11, 2.2.12, 2.2.28, 2.2.29, 2.2.30).

Each is StructureSize 4 plus two Reserved bytes. CANCEL has no response:
the server answers the cancelled request itself (STATUS_CANCELLED).
TREE_DISCONNECT lives in :mod:`smbfs.proto.tree` and reuses this base.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from smbfs.proto.codec import SMB2_HEADER_SIZE, Buffer, checked_structure_size, unpack
from smbfs.proto.constants import Command
from smbfs.proto.message import Message

_SIMPLE: Final = struct.Struct("<HH")  # StructureSize, Reserved


@dataclass(slots=True)
class SimpleMessage(Message):
    """StructureSize 4, Reserved: the body of several requests and responses."""

    STRUCTURE_SIZE: ClassVar[int] = 4
    _ENCODED: ClassVar[bytes] = _SIMPLE.pack(4, 0)

    def encode_parts(self) -> list[Buffer]:
        return [self._ENCODED]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, _reserved = unpack(_SIMPLE, msg, SMB2_HEADER_SIZE, cls.__name__)
        checked_structure_size(size, cls.STRUCTURE_SIZE, cls.__name__)
        return cls()


@dataclass(slots=True)
class EchoRequest(SimpleMessage):
    """[MS-SMB2] 2.2.28 SMB2 ECHO Request."""

    COMMAND: ClassVar[Command] = Command.SMB2_ECHO


@dataclass(slots=True)
class EchoResponse(SimpleMessage):
    """[MS-SMB2] 2.2.29 SMB2 ECHO Response."""

    COMMAND: ClassVar[Command] = Command.SMB2_ECHO


@dataclass(slots=True)
class CancelRequest(SimpleMessage):
    """[MS-SMB2] 2.2.30 SMB2 CANCEL Request. Sent with the MessageId (sync)
    or AsyncId (async) of the request to cancel, consuming no credit and no
    new MessageId ([MS-SMB2] 3.2.4.24)."""

    COMMAND: ClassVar[Command] = Command.SMB2_CANCEL


@dataclass(slots=True)
class LogoffRequest(SimpleMessage):
    """[MS-SMB2] 2.2.7 SMB2 LOGOFF Request."""

    COMMAND: ClassVar[Command] = Command.SMB2_LOGOFF


@dataclass(slots=True)
class LogoffResponse(SimpleMessage):
    """[MS-SMB2] 2.2.8 SMB2 LOGOFF Response."""

    COMMAND: ClassVar[Command] = Command.SMB2_LOGOFF
