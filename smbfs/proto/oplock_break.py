"""SMB2 OPLOCK_BREAK: oplock and lease break notifications, acknowledgments
and responses ([MS-SMB2] 2.2.23 - 2.2.25).

All six share Command SMB2_OPLOCK_BREAK and are told apart by StructureSize:
24 for the oplock forms, 44 for a lease break notification and 36 for a
lease break acknowledgment/response. A server-initiated notification also
carries MessageId 0xFFFFFFFFFFFFFFFF ([MS-SMB2] 3.3.4.6), which is how the
engine tells an oplock break *notification* from the oplock break
*response* to its own acknowledgment: both have StructureSize 24.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self, TypeVar

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    checked_structure_size,
    unpack,
)
from smbfs.proto.constants import Command
from smbfs.proto.create import OplockLevel
from smbfs.proto.create_contexts import LeaseState
from smbfs.proto.fileid import FileId
from smbfs.proto.message import Message

# MessageId of an unsolicited break notification ([MS-SMB2] 3.3.4.6 / 3.3.4.7).
BREAK_NOTIFICATION_MESSAGE_ID: Final = 0xFFFFFFFFFFFFFFFF


# OplockLevel ([MS-SMB2] 2.2.23.1) and the lease state bits (2.2.23.2) are the
# ones CREATE grants; one definition each, re-exported here for the engine.
__all__ = [
    "BREAK_NOTIFICATION_MESSAGE_ID",
    "SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED",
    "LeaseBreakAcknowledgment",
    "LeaseBreakFlags",
    "LeaseBreakNotification",
    "LeaseBreakResponse",
    "LeaseState",
    "OplockBreakAcknowledgment",
    "OplockBreakNotification",
    "OplockBreakResponse",
    "OplockLevel",
    "decode_break",
    "decode_break_ack",
    "decode_break_response",
]


class LeaseBreakFlags(enum.IntFlag):
    """[MS-SMB2] 2.2.23.2 Flags."""

    SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED = 0x01


SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED: Final = 0x01

# StructureSize, OplockLevel, Reserved, Reserved2, FileId.
_OPLOCK: Final = struct.Struct("<HBBI16s")
# StructureSize, NewEpoch, Flags, LeaseKey, CurrentLeaseState, NewLeaseState,
# BreakReason, AccessMaskHint, ShareMaskHint.
_LEASE_NOTIFY: Final = struct.Struct("<HHI16sIIIII")
# StructureSize, Reserved, Flags, LeaseKey, LeaseState, LeaseDuration.
_LEASE_ACK: Final = struct.Struct("<HHI16sIQ")
_SIZE: Final = struct.Struct("<H")


def _lease_key(key: bytes) -> bytes:
    if len(key) != 16:
        raise ValueError(f"LeaseKey must be 16 bytes, not {len(key)}")
    return key


@dataclass(slots=True)
class _OplockForm(Message):
    """The 24-byte body shared by the three oplock (non-lease) forms; they
    differ only in name and in which direction they travel."""

    COMMAND: ClassVar[Command] = Command.SMB2_OPLOCK_BREAK
    STRUCTURE_SIZE: ClassVar[int] = 24
    WHAT: ClassVar[str]

    oplock_level: int
    file_id: FileId

    def encode_parts(self) -> list[Buffer]:
        return [_OPLOCK.pack(24, self.oplock_level, 0, 0, self.file_id.encode())]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, level, _r, _r2, _fid = unpack(_OPLOCK, msg, SMB2_HEADER_SIZE, cls.WHAT)
        checked_structure_size(size, 24, cls.WHAT)
        return cls(level, FileId.decode(msg, SMB2_HEADER_SIZE + 8))


@dataclass(slots=True)
class OplockBreakNotification(_OplockForm):
    """[MS-SMB2] 2.2.23.1: the highest level the server will accept back."""

    WHAT: ClassVar[str] = "Oplock Break Notification"


@dataclass(slots=True)
class OplockBreakAcknowledgment(_OplockForm):
    """[MS-SMB2] 2.2.24.1: not sent for a break from level II to none."""

    WHAT: ClassVar[str] = "Oplock Break Acknowledgment"


@dataclass(slots=True)
class OplockBreakResponse(_OplockForm):
    """[MS-SMB2] 2.2.25.1."""

    WHAT: ClassVar[str] = "Oplock Break Response"


@dataclass(slots=True)
class LeaseBreakNotification(Message):
    """[MS-SMB2] 2.2.23.2.

    ``new_epoch`` is meaningful only for SMB 3.x (lease V2). An
    acknowledgment is owed only when ``ack_required``; otherwise the break
    (e.g. from R to none) has already happened on the server.
    """

    COMMAND: ClassVar[Command] = Command.SMB2_OPLOCK_BREAK
    STRUCTURE_SIZE: ClassVar[int] = 44

    lease_key: bytes
    current_lease_state: int
    new_lease_state: int
    flags: int = 0
    new_epoch: int = 0
    break_reason: int = 0
    access_mask_hint: int = 0
    share_mask_hint: int = 0

    @property
    def ack_required(self) -> bool:
        return bool(self.flags & SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED)

    def encode_parts(self) -> list[Buffer]:
        return [_LEASE_NOTIFY.pack(
            self.STRUCTURE_SIZE, self.new_epoch, self.flags, _lease_key(self.lease_key),
            self.current_lease_state, self.new_lease_state, self.break_reason,
            self.access_mask_hint, self.share_mask_hint,
        )]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        (size, epoch, flags, key, current, new, reason, access_hint,
         share_hint) = unpack(_LEASE_NOTIFY, msg, SMB2_HEADER_SIZE, "Lease Break Notification")
        checked_structure_size(size, cls.STRUCTURE_SIZE, "Lease Break Notification")
        return cls(
            lease_key=bytes(key), current_lease_state=current, new_lease_state=new,
            flags=flags, new_epoch=epoch, break_reason=reason,
            access_mask_hint=access_hint, share_mask_hint=share_hint,
        )


@dataclass(slots=True)
class _LeaseAckForm(Message):
    """The 36-byte body shared by the lease break acknowledgment and response."""

    COMMAND: ClassVar[Command] = Command.SMB2_OPLOCK_BREAK
    STRUCTURE_SIZE: ClassVar[int] = 36
    WHAT: ClassVar[str]

    lease_key: bytes
    lease_state: int
    flags: int = 0
    lease_duration: int = 0

    def encode_parts(self) -> list[Buffer]:
        return [_LEASE_ACK.pack(36, 0, self.flags, _lease_key(self.lease_key),
                                self.lease_state, self.lease_duration)]

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        size, _r, flags, key, state, duration = unpack(
            _LEASE_ACK, msg, SMB2_HEADER_SIZE, cls.WHAT
        )
        checked_structure_size(size, 36, cls.WHAT)
        return cls(bytes(key), state, flags, duration)


@dataclass(slots=True)
class LeaseBreakAcknowledgment(_LeaseAckForm):
    """[MS-SMB2] 2.2.24.2: ``lease_state`` must be a subset of the
    notification's NewLeaseState."""

    WHAT: ClassVar[str] = "Lease Break Acknowledgment"


@dataclass(slots=True)
class LeaseBreakResponse(_LeaseAckForm):
    """[MS-SMB2] 2.2.25.2."""

    WHAT: ClassVar[str] = "Lease Break Response"


_O = TypeVar("_O", bound=_OplockForm)
_L = TypeVar("_L", bound=Message)


def _decode_by_size(msg: memoryview, what: str, oplock: type[_O], lease: type[_L]) -> _O | _L:
    """The oplock or the lease form, told apart by StructureSize alone."""
    (size,) = unpack(_SIZE, msg, SMB2_HEADER_SIZE, what)
    if size == oplock.STRUCTURE_SIZE:
        return oplock.decode(msg)
    if size == lease.STRUCTURE_SIZE:
        return lease.decode(msg)
    raise DecodeError(f"{what}: unexpected StructureSize {size}")


def decode_break(msg: memoryview) -> OplockBreakNotification | LeaseBreakNotification:
    """Decode an unsolicited SMB2_OPLOCK_BREAK from the server, whichever kind."""
    return _decode_by_size(
        msg, "OPLOCK_BREAK notification", OplockBreakNotification, LeaseBreakNotification
    )


def decode_break_response(msg: memoryview) -> OplockBreakResponse | LeaseBreakResponse:
    """Decode the server's answer to an oplock or lease break acknowledgment."""
    return _decode_by_size(msg, "OPLOCK_BREAK response", OplockBreakResponse, LeaseBreakResponse)


def decode_break_ack(msg: memoryview) -> OplockBreakAcknowledgment | LeaseBreakAcknowledgment:
    """Decode a client's acknowledgment (server side / tests)."""
    return _decode_by_size(
        msg, "OPLOCK_BREAK acknowledgment", OplockBreakAcknowledgment, LeaseBreakAcknowledgment
    )
