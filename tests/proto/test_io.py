"""FLUSH / READ / WRITE round trips, the no-copy READ and WRITE paths, and
fuzzing of their decoders."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import RELATED, FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.io import (
    READ_RESPONSE_DATA_OFFSET,
    WRITE_REQUEST_DATA_OFFSET,
    FlushRequest,
    FlushResponse,
    ReadFlags,
    ReadRequest,
    ReadResponse,
    WriteFlags,
    WriteRequest,
    WriteResponse,
)
from smbfs.proto.message import Message

from .fuzzing import u8, u32, u64

file_ids = st.builds(FileId, u64, u64)


def frame(m: Message) -> memoryview:
    """The message as received: header then body, in a fresh buffer."""
    return memoryview(bytearray(Smb2Header(m.COMMAND).encode() + m.encode()))


def roundtrip(m: Message) -> None:
    assert type(m).decode(frame(m)) == m


def test_fileid() -> None:
    fid = FileId(0x1122334455667788, 0x99AABBCCDDEEFF00)
    raw = fid.encode()
    assert raw == bytes.fromhex("887766554433221100ffeeddccbbaa99")
    assert FileId.decode(b"xx" + raw, 2) == fid
    assert {fid: 1}[FileId.decode(raw)] == 1
    assert RELATED.encode() == b"\xff" * 16 and RELATED.is_related
    with pytest.raises(DecodeError):
        FileId.decode(raw[:15])


def test_flush() -> None:
    req = FlushRequest(FileId(1, 2))
    body = req.encode()
    assert len(body) == 24 and body[:2] == b"\x18\x00"
    roundtrip(req)
    roundtrip(FlushResponse())
    assert FlushResponse().encode() == b"\x04\x00\x00\x00"


def test_read_request_layout() -> None:
    req = ReadRequest(FileId(1, 2), length=65536, offset=4096, minimum_count=1,
                      flags=ReadFlags.SMB2_READFLAG_READ_UNBUFFERED)
    body = req.encode()
    assert len(body) == 49  # 48 fixed + the mandatory one byte of Buffer
    assert body[-1] == 0
    assert struct.unpack_from("<HBBIQ", body) == (49, 0x50, 1, 65536, 4096)
    roundtrip(req)


def test_read_request_channel_info() -> None:
    req = ReadRequest(FileId(3, 4), 10, 0, channel=1, read_channel_info=b"\x01" * 16)
    body = req.encode()
    assert struct.unpack_from("<HH", body, 44) == (0x70, 16)
    roundtrip(req)


def test_read_response_no_copy() -> None:
    payload = bytes(range(256)) * 4
    received = bytearray(Smb2Header(ReadResponse.COMMAND).encode()
                         + ReadResponse(payload).encode())
    rsp = ReadResponse.decode(memoryview(received))
    assert isinstance(rsp.data, memoryview)
    assert rsp.data.obj is received  # a view into the received buffer, not a copy
    assert rsp.data == payload
    received[READ_RESPONSE_DATA_OFFSET] ^= 0xFF  # same memory
    assert rsp.data[0] == payload[0] ^ 0xFF
    # Empty data is still a view of the same buffer.
    empty = bytearray(Smb2Header(ReadResponse.COMMAND).encode() + ReadResponse().encode())
    empty_data = ReadResponse.decode(memoryview(empty)).data
    assert isinstance(empty_data, memoryview) and empty_data.obj is empty


def test_read_response_bad_offsets() -> None:
    good = bytearray(frame(ReadResponse(b"abcd")))
    bad = bytearray(good)
    struct.pack_into("<I", bad, SMB2_HEADER_SIZE + 4, 0xFFFFFFFF)  # DataLength 4 GiB
    with pytest.raises(DecodeError):
        ReadResponse.decode(memoryview(bad))
    bad = bytearray(good)
    bad[SMB2_HEADER_SIZE + 2] = 0x10  # DataOffset inside the header
    with pytest.raises(DecodeError):
        ReadResponse.decode(memoryview(bad))
    bad = bytearray(good)
    bad[SMB2_HEADER_SIZE] = 16  # StructureSize
    with pytest.raises(DecodeError):
        ReadResponse.decode(memoryview(bad))


def test_write_request_parts_no_copy() -> None:
    data = memoryview(bytearray(b"hello world"))
    req = WriteRequest(FileId(5, 6), offset=99, data=data,
                       flags=WriteFlags.SMB2_WRITEFLAG_WRITE_THROUGH)
    parts = req.encode_parts()
    assert len(parts) == 2
    assert parts[1] is data
    assert len(parts[0]) == 48
    assert struct.unpack_from("<HHIQ", parts[0]) == (49, 0x70, 11, 99)
    assert WRITE_REQUEST_DATA_OFFSET == 0x70
    got = WriteRequest.decode(frame(req))
    assert got == req and bytes(got.data) == b"hello world"


def test_write_request_empty_and_channel_info() -> None:
    req = WriteRequest(FileId(1, 1), offset=0)
    assert len(req.encode()) == 49
    roundtrip(req)
    roundtrip(WriteRequest(FileId(1, 1), 0, b"ab", channel=1, write_channel_info=b"x" * 16))


def test_write_response() -> None:
    rsp = WriteResponse(count=1 << 20)
    assert len(rsp.encode()) == 16
    roundtrip(rsp)


@given(fid=file_ids, length=u32, offset=u64, mc=u32, rem=u32, flags=u8, pad=u8,
       ch=u32, info=st.binary(max_size=40))
def test_read_request_roundtrip(fid: FileId, length: int, offset: int, mc: int, rem: int,
                                flags: int, pad: int, ch: int, info: bytes) -> None:
    roundtrip(ReadRequest(fid, length, offset, mc, rem, flags, pad, ch, info))


@given(data=st.binary(max_size=300), rem=u32)
def test_read_response_roundtrip(data: bytes, rem: int) -> None:
    roundtrip(ReadResponse(data, rem))


@given(fid=file_ids, offset=u64, data=st.binary(max_size=300), flags=u32, rem=u32,
       ch=u32, info=st.binary(max_size=40))
def test_write_request_roundtrip(fid: FileId, offset: int, data: bytes, flags: int,
                                 rem: int, ch: int, info: bytes) -> None:
    roundtrip(WriteRequest(fid, offset, data, flags, rem, ch, info))


@given(fid=file_ids, count=u32, rem=u32)
def test_flush_write_response_roundtrip(fid: FileId, count: int, rem: int) -> None:
    roundtrip(FlushRequest(fid))
    roundtrip(WriteResponse(count, rem))
