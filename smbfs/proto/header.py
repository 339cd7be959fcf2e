"""The SMB2 packet header (sync and async forms), the TRANSFORM_HEADER of
encrypted messages, and compound chains ([MS-SMB2] 2.2.1, 2.2.41, 3.2.4.1.4).

The header is on every hot path, so it packs and unpacks with one
precompiled ``struct.Struct`` and can encode straight into a preallocated
buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from smbfs.proto.codec import (
    SMB2_HEADER_SIZE,
    Buffer,
    DecodeError,
    pad_to,
    unpack,
)
from smbfs.proto.constants import Command, HeaderFlags

SMB2_PROTOCOL_ID: Final = b"\xfeSMB"
SMB2_TRANSFORM_PROTOCOL_ID: Final = b"\xfdSMB"
SMB2_COMPRESSION_PROTOCOL_ID: Final = b"\xfcSMB"
SMB1_PROTOCOL_ID: Final = b"\xffSMB"

# ProtocolId, StructureSize, CreditCharge, Status/ChannelSequence, Command,
# CreditRequest/Response, Flags, NextCommand, MessageId, then 8 bytes that are
# (Reserved, TreeId) when sync or AsyncId when async, SessionId, Signature.
_SYNC: Final = struct.Struct("<4sHHIHHIIQIIQ16s")
_ASYNC: Final = struct.Struct("<4sHHIHHIIQQQ16s")
assert _SYNC.size == _ASYNC.size == SMB2_HEADER_SIZE

_ASYNC_FLAG: Final = int(HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND)
ZERO_SIGNATURE: Final = bytes(16)
SIGNATURE_OFFSET: Final = 48


@dataclass(slots=True)
class Smb2Header:
    """One SMB2 header.

    ``status`` holds the NTSTATUS in responses; in SMB 3.x requests the same
    four bytes carry ChannelSequence (low 16 bits) and Reserved, so callers
    set ``status = channel_sequence`` there. ``credits`` is CreditRequest in
    a request and CreditResponse in a response. ``process_id`` is the
    Reserved field of the sync form (ProcessId in older texts).
    """

    command: Command
    message_id: int = 0
    credit_charge: int = 0
    status: int = 0
    credits: int = 0
    flags: int = 0
    next_command: int = 0
    tree_id: int = 0
    async_id: int = 0
    session_id: int = 0
    signature: bytes = field(default=ZERO_SIGNATURE)
    process_id: int = 0

    @property
    def is_async(self) -> bool:
        return bool(self.flags & _ASYNC_FLAG)

    @property
    def is_response(self) -> bool:
        return bool(self.flags & HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)

    def encode_into(self, buf: bytearray | memoryview, offset: int = 0) -> None:
        if self.flags & _ASYNC_FLAG:
            _ASYNC.pack_into(
                buf, offset, SMB2_PROTOCOL_ID, SMB2_HEADER_SIZE, self.credit_charge,
                self.status, self.command, self.credits, self.flags, self.next_command,
                self.message_id, self.async_id, self.session_id, self.signature,
            )
        else:
            _SYNC.pack_into(
                buf, offset, SMB2_PROTOCOL_ID, SMB2_HEADER_SIZE, self.credit_charge,
                self.status, self.command, self.credits, self.flags, self.next_command,
                self.message_id, self.process_id, self.tree_id, self.session_id,
                self.signature,
            )

    def encode(self) -> bytes:
        buf = bytearray(SMB2_HEADER_SIZE)
        self.encode_into(buf)
        return bytes(buf)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Smb2Header:
        fields = unpack(_SYNC, buf, offset, "SMB2 header")
        (proto, size, charge, status, command, credits, flags, next_command,
         message_id, reserved, tree_id, session_id, signature) = fields
        if proto != SMB2_PROTOCOL_ID:
            raise DecodeError(f"SMB2 header: bad ProtocolId {bytes(proto)!r}")
        if size != SMB2_HEADER_SIZE:
            raise DecodeError(f"SMB2 header: StructureSize {size}, expected 64")
        try:
            cmd = Command(command)
        except ValueError:
            raise DecodeError(f"SMB2 header: unknown command {command:#x}") from None
        hdr = cls(
            command=cmd, message_id=message_id, credit_charge=charge, status=status,
            credits=credits, flags=flags, next_command=next_command,
            session_id=session_id, signature=bytes(signature),
        )
        if flags & _ASYNC_FLAG:
            hdr.async_id = reserved | (tree_id << 32)
        else:
            hdr.process_id = reserved
            hdr.tree_id = tree_id
        return hdr


# ProtocolId, Signature, Nonce, OriginalMessageSize, Reserved,
# Flags (3.1.1) / EncryptionAlgorithm (3.0), SessionId.
_TRANSFORM: Final = struct.Struct("<4s16s16sIHHQ")
SMB2_TRANSFORM_HEADER_SIZE: Final = _TRANSFORM.size  # 52
# The AEAD's associated data is the header from Nonce to the end ([MS-SMB2] 3.1.4.3).
TRANSFORM_AAD_OFFSET: Final = 20
SMB2_TRANSFORM_FLAG_ENCRYPTED: Final = 0x0001


@dataclass(slots=True)
class TransformHeader:
    """[MS-SMB2] 2.2.41 SMB2 TRANSFORM_HEADER.

    ``nonce`` is always 16 bytes on the wire; AES-CCM uses its first 11 and
    AES-GCM its first 12, the rest being zero.
    """

    original_message_size: int
    session_id: int
    nonce: bytes = bytes(16)
    signature: bytes = bytes(16)
    flags: int = SMB2_TRANSFORM_FLAG_ENCRYPTED

    def encode(self) -> bytes:
        return _TRANSFORM.pack(
            SMB2_TRANSFORM_PROTOCOL_ID, self.signature, self.nonce,
            self.original_message_size, 0, self.flags, self.session_id,
        )

    def aad(self) -> bytes:
        """The 32 bytes authenticated (not encrypted) by the AEAD."""
        return self.encode()[TRANSFORM_AAD_OFFSET:]

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> TransformHeader:
        proto, sig, nonce, size, _reserved, flags, session_id = unpack(
            _TRANSFORM, buf, offset, "TRANSFORM_HEADER"
        )
        if proto != SMB2_TRANSFORM_PROTOCOL_ID:
            raise DecodeError(f"TRANSFORM_HEADER: bad ProtocolId {bytes(proto)!r}")
        return cls(
            original_message_size=size, session_id=session_id, nonce=bytes(nonce),
            signature=bytes(sig), flags=flags,
        )


_NEXT_COMMAND: Final = struct.Struct("<I")


def split_compound(buf: Buffer) -> list[memoryview]:
    """Split a received compound chain into its messages, each starting at its
    own SMB2 header (so that buffer offsets inside it are usable directly).

    [MS-SMB2] 3.2.5.1: NextCommand is the offset of the next header from the
    start of this one; 0 ends the chain. Each must be 8-byte aligned and stay
    inside the buffer, and be large enough to hold a header.
    """
    mv = memoryview(buf)
    out: list[memoryview] = []
    start = 0
    while True:
        if len(mv) - start < SMB2_HEADER_SIZE:
            raise DecodeError("compound: message shorter than an SMB2 header")
        (next_command,) = _NEXT_COMMAND.unpack_from(mv, start + 20)
        if next_command == 0:
            out.append(mv[start:])
            return out
        if next_command < SMB2_HEADER_SIZE or next_command % 8:
            raise DecodeError(f"compound: bad NextCommand {next_command}")
        if start + next_command > len(mv):
            raise DecodeError("compound: NextCommand points past the end")
        out.append(mv[start : start + next_command])
        start += next_command


def chain_padding(message_len: int) -> bytes:
    """Zero bytes that pad a message (not the last) of a compound to 8 bytes."""
    return bytes(pad_to(message_len, 8))
