"""SMB2 LOCK request/response."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.lock import (
    VALID_LOCK_FLAGS,
    LockElement,
    LockFlags,
    LockRequest,
    LockResponse,
    lock_sequence,
)
from smbfs.proto.message import Message

from .fuzzing import u32, u64

file_ids = st.builds(FileId, u64, u64)
elements = st.builds(LockElement, u64, u64, u32)


def frame(m: Message) -> memoryview:
    return memoryview(Smb2Header(m.COMMAND).encode() + m.encode())


def test_lock_layout() -> None:
    req = LockRequest(
        FileId(1, 2),
        [LockElement(0, 100, LockFlags.SMB2_LOCKFLAG_EXCLUSIVE_LOCK
                     | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY),
         LockElement(200, 10, LockFlags.SMB2_LOCKFLAG_SHARED_LOCK)],
        lock_sequence=lock_sequence(number=3, index=7),
    )
    body = req.encode()
    assert len(body) == 24 + 2 * 24
    assert struct.unpack_from("<HHI", body) == (48, 2, 0x73)
    assert struct.unpack_from("<QQII", body, 24) == (0, 100, 0x12, 0)
    got = LockRequest.decode(frame(req))
    assert got == req
    assert (got.lock_sequence_number, got.lock_sequence_index) == (3, 7)
    assert LockResponse.decode(frame(LockResponse())) == LockResponse()


def test_valid_flag_combinations() -> None:
    assert len(VALID_LOCK_FLAGS) == 5
    assert LockFlags.SMB2_LOCKFLAG_UNLOCK in VALID_LOCK_FLAGS
    assert (LockFlags.SMB2_LOCKFLAG_UNLOCK | LockFlags.SMB2_LOCKFLAG_FAIL_IMMEDIATELY
            not in VALID_LOCK_FLAGS)


def test_lock_sequence_range() -> None:
    assert lock_sequence(0xF, 0x0FFFFFFF) == 0xFFFFFFFF
    with pytest.raises(ValueError):
        lock_sequence(16, 1)


def test_lock_needs_an_element() -> None:
    with pytest.raises(ValueError):
        LockRequest(FileId(1, 1)).encode()
    msg = bytearray(frame(LockRequest(FileId(1, 1), [LockElement(0, 1, 1)])))
    struct.pack_into("<H", msg, SMB2_HEADER_SIZE + 2, 0)
    with pytest.raises(DecodeError):
        LockRequest.decode(memoryview(msg))
    struct.pack_into("<H", msg, SMB2_HEADER_SIZE + 2, 0xFFFF)  # claims 65535 locks
    with pytest.raises(DecodeError):
        LockRequest.decode(memoryview(msg))


@given(fid=file_ids, locks=st.lists(elements, min_size=1, max_size=8), seq=u32)
def test_lock_roundtrip(fid: FileId, locks: list[LockElement], seq: int) -> None:
    m = LockRequest(fid, locks, seq)
    assert LockRequest.decode(frame(m)) == m
