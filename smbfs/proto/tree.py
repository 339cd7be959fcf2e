"""SMB2 TREE_CONNECT and TREE_DISCONNECT ([MS-SMB2] 2.2.9 - 2.2.12).

The SMB 3.1.1 extended form of the request (SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT,
2.2.9.1, carrying tree connect contexts such as the remoted identity) is not
implemented: smbfs never sends it, and decoding a request that sets the flag
raises DecodeError rather than misreading the extension as a path.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    checked_structure_size,
    from_utf16,
    optional_buffer,
    unpack,
    utf16,
)
from smbfs.proto.constants import Command
from smbfs.proto.message import Message
from smbfs.proto.simple import SimpleMessage


class TreeConnectFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.9 Flags (3.1.1; Reserved in earlier dialects)."""

    SMB2_TREE_CONNECT_FLAG_CLUSTER_RECONNECT = 0x0001
    SMB2_TREE_CONNECT_FLAG_REDIRECT_TO_OWNER = 0x0002
    SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT = 0x0004


class ShareType(enum.IntEnum):
    """[MS-SMB2] 2.2.10 ShareType."""

    SMB2_SHARE_TYPE_DISK = 0x01
    SMB2_SHARE_TYPE_PIPE = 0x02
    SMB2_SHARE_TYPE_PRINT = 0x03


class ShareFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.10 ShareFlags. The caching policy is a 2-bit field
    (mask SMB2_SHAREFLAG_CACHING_MASK), not independent bits."""

    SMB2_SHAREFLAG_MANUAL_CACHING = 0x00000000
    SMB2_SHAREFLAG_AUTO_CACHING = 0x00000010
    SMB2_SHAREFLAG_VDO_CACHING = 0x00000020
    SMB2_SHAREFLAG_NO_CACHING = 0x00000030
    SMB2_SHAREFLAG_DFS = 0x00000001
    SMB2_SHAREFLAG_DFS_ROOT = 0x00000002
    SMB2_SHAREFLAG_RESTRICT_EXCLUSIVE_OPENS = 0x00000100
    SMB2_SHAREFLAG_FORCE_SHARED_DELETE = 0x00000200
    SMB2_SHAREFLAG_ALLOW_NAMESPACE_CACHING = 0x00000400
    SMB2_SHAREFLAG_ACCESS_BASED_DIRECTORY_ENUM = 0x00000800
    SMB2_SHAREFLAG_FORCE_LEVELII_OPLOCK = 0x00001000
    SMB2_SHAREFLAG_ENABLE_HASH_V1 = 0x00002000
    SMB2_SHAREFLAG_ENABLE_HASH_V2 = 0x00004000
    SMB2_SHAREFLAG_ENCRYPT_DATA = 0x00008000
    SMB2_SHAREFLAG_IDENTITY_REMOTING = 0x00040000
    SMB2_SHAREFLAG_COMPRESS_DATA = 0x00100000
    SMB2_SHAREFLAG_ISOLATED_TRANSPORT = 0x00200000


SMB2_SHAREFLAG_CACHING_MASK: Final = 0x00000030


class ShareCapabilities(enum.IntFlag):
    """[MS-SMB2] 2.2.10 Capabilities."""

    SMB2_SHARE_CAP_DFS = 0x00000008
    SMB2_SHARE_CAP_CONTINUOUS_AVAILABILITY = 0x00000010
    SMB2_SHARE_CAP_SCALEOUT = 0x00000020
    SMB2_SHARE_CAP_CLUSTER = 0x00000040
    SMB2_SHARE_CAP_ASYMMETRIC = 0x00000080
    SMB2_SHARE_CAP_REDIRECT_TO_OWNER = 0x00000100


# StructureSize, Flags/Reserved, PathOffset, PathLength.
_REQ: Final = struct.Struct("<HHHH")
# StructureSize, ShareType, Reserved, ShareFlags, Capabilities, MaximalAccess.
_RESP: Final = struct.Struct("<HBBIII")
assert _RESP.size == 16


@dataclass(slots=True)
class TreeConnectRequest(Message):
    """[MS-SMB2] 2.2.9 SMB2 TREE_CONNECT Request; ``path`` is ``\\\\server\\share``."""

    COMMAND: ClassVar[Command] = Command.SMB2_TREE_CONNECT
    STRUCTURE_SIZE: ClassVar[int] = 9

    path: str = ""
    flags: int = 0

    def encode_parts(self) -> list[Buffer]:
        if self.flags & TreeConnectFlags.SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT:
            raise ValueError("TREE_CONNECT extension (2.2.9.1) is not supported")
        path = utf16(self.path)
        if len(path) > 0xFFFF:
            raise ValueError("TREE_CONNECT path longer than 65535 bytes")
        fixed = _REQ.pack(
            self.STRUCTURE_SIZE, self.flags, SMB2_HEADER_SIZE + _REQ.size, len(path)
        )
        return [fixed, path or b"\0"]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, flags, path_offset, path_len = unpack(
            _REQ, msg, SMB2_HEADER_SIZE, "TREE_CONNECT request"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "TREE_CONNECT request")
        if flags & TreeConnectFlags.SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT:
            raise DecodeError("TREE_CONNECT request: extension form is not supported")
        raw = optional_buffer(msg, path_offset, path_len, "TREE_CONNECT Path")
        return cls(path=from_utf16(raw, "TREE_CONNECT Path"), flags=flags)


@dataclass(slots=True)
class TreeConnectResponse(Message):
    """[MS-SMB2] 2.2.10 SMB2 TREE_CONNECT Response."""

    COMMAND: ClassVar[Command] = Command.SMB2_TREE_CONNECT
    STRUCTURE_SIZE: ClassVar[int] = 16

    share_type: int = ShareType.SMB2_SHARE_TYPE_DISK
    share_flags: int = 0
    capabilities: int = 0
    maximal_access: int = 0

    @property
    def caching_policy(self) -> int:
        """One of the SMB2_SHAREFLAG_*_CACHING values."""
        return self.share_flags & SMB2_SHAREFLAG_CACHING_MASK

    @property
    def encrypt_data(self) -> bool:
        return bool(self.share_flags & ShareFlags.SMB2_SHAREFLAG_ENCRYPT_DATA)

    def encode_parts(self) -> list[Buffer]:
        return [
            _RESP.pack(
                self.STRUCTURE_SIZE, self.share_type, 0, self.share_flags,
                self.capabilities, self.maximal_access,
            )
        ]

    @classmethod
    def decode(cls, msg: Buffer) -> Self:
        size, share_type, _r, share_flags, caps, access = unpack(
            _RESP, msg, SMB2_HEADER_SIZE, "TREE_CONNECT response"
        )
        checked_structure_size(size, cls.STRUCTURE_SIZE, "TREE_CONNECT response")
        return cls(
            share_type=share_type, share_flags=share_flags, capabilities=caps,
            maximal_access=access,
        )


@dataclass(slots=True)
class TreeDisconnectRequest(SimpleMessage):
    """[MS-SMB2] 2.2.11 SMB2 TREE_DISCONNECT Request."""

    COMMAND: ClassVar[Command] = Command.SMB2_TREE_DISCONNECT


@dataclass(slots=True)
class TreeDisconnectResponse(SimpleMessage):
    """[MS-SMB2] 2.2.12 SMB2 TREE_DISCONNECT Response."""

    COMMAND: ClassVar[Command] = Command.SMB2_TREE_DISCONNECT
