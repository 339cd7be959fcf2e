"""Oplock and lease break notification / acknowledgment / response."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.message import Message
from smbfs.proto.oplock_break import (
    LeaseBreakAcknowledgment,
    LeaseBreakNotification,
    LeaseBreakResponse,
    LeaseState,
    OplockBreakAcknowledgment,
    OplockBreakNotification,
    OplockBreakResponse,
    OplockLevel,
    decode_break,
    decode_break_ack,
    decode_break_response,
)

from .fuzzing import u8, u16, u32, u64

file_ids = st.builds(FileId, u64, u64)
keys = st.binary(min_size=16, max_size=16)

RWH = (LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_WRITE_CACHING
       | LeaseState.SMB2_LEASE_HANDLE_CACHING)


def frame(m: Message) -> memoryview:
    return memoryview(Smb2Header(m.COMMAND).encode() + m.encode())


def test_sizes_tell_kinds_apart() -> None:
    on = OplockBreakNotification(OplockLevel.SMB2_OPLOCK_LEVEL_II, FileId(1, 2))
    ln = LeaseBreakNotification(b"K" * 16, RWH, LeaseState.SMB2_LEASE_READ_CACHING,
                                flags=1, new_epoch=3)
    assert len(on.encode()) == 24 and len(ln.encode()) == 44
    assert decode_break(frame(on)) == on
    got = decode_break(frame(ln))
    assert got == ln and isinstance(got, LeaseBreakNotification) and got.ack_required
    ob = OplockBreakResponse(0, FileId(1, 2))
    lb = LeaseBreakResponse(b"K" * 16, 1)
    assert len(lb.encode()) == 36
    assert decode_break_response(frame(ob)) == ob
    assert decode_break_response(frame(lb)) == lb
    oa = OplockBreakAcknowledgment(0, FileId(5, 6))
    la = LeaseBreakAcknowledgment(b"\x01" * 16, 0)
    assert decode_break_ack(frame(oa)) == oa
    assert decode_break_ack(frame(la)) == la


def test_lease_notification_layout() -> None:
    ln = LeaseBreakNotification(bytes(range(16)), 7, 1, flags=1, new_epoch=2)
    body = ln.encode()
    assert struct.unpack_from("<HHI", body) == (44, 2, 1)
    assert body[8:24] == bytes(range(16))
    assert struct.unpack_from("<II", body, 24) == (7, 1)


def test_bad_structure_size() -> None:
    msg = bytearray(frame(OplockBreakNotification(1, FileId(1, 1))))
    msg[SMB2_HEADER_SIZE] = 36  # neither 24 nor 44
    with pytest.raises(DecodeError):
        decode_break(memoryview(msg))
    with pytest.raises(DecodeError):
        decode_break(memoryview(msg[:SMB2_HEADER_SIZE + 1]))
    # A lease size but a body too short for a lease notification.
    short = bytearray(frame(OplockBreakNotification(1, FileId(1, 1))))
    short[SMB2_HEADER_SIZE] = 44
    with pytest.raises(DecodeError):
        decode_break(memoryview(short))


def test_lease_key_must_be_16_bytes() -> None:
    with pytest.raises(ValueError):
        LeaseBreakAcknowledgment(b"short", 0).encode()


@given(level=u8, fid=file_ids)
def test_oplock_roundtrip(level: int, fid: FileId) -> None:
    for cls in (OplockBreakNotification, OplockBreakAcknowledgment, OplockBreakResponse):
        m = cls(level, fid)
        assert cls.decode(frame(m)) == m


@given(key=keys, cur=u32, new=u32, flags=u32, epoch=u16, a=u32, b=u32, c=u32)
def test_lease_notification_roundtrip(key: bytes, cur: int, new: int, flags: int,
                                      epoch: int, a: int, b: int, c: int) -> None:
    m = LeaseBreakNotification(key, cur, new, flags, epoch, a, b, c)
    assert LeaseBreakNotification.decode(frame(m)) == m
    assert decode_break(frame(m)) == m


@given(key=keys, state=u32, flags=u32, duration=u64)
def test_lease_ack_roundtrip(key: bytes, state: int, flags: int, duration: int) -> None:
    for cls in (LeaseBreakAcknowledgment, LeaseBreakResponse):
        m = cls(key, state, flags, duration)
        assert cls.decode(frame(m)) == m
