"""QUERY_INFO / SET_INFO requests and responses, SMB2_QUERY_QUOTA_INFO."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.info import (
    OUTPUT_BUFFER_OFFSET,
    InfoType,
    QueryInfoRequest,
    QueryInfoResponse,
    QueryQuotaInfo,
    SecurityInformation,
    SetInfoRequest,
    SetInfoResponse,
)
from smbfs.proto.message import Message

from .fuzzing import u8, u32, u64

file_ids = st.builds(FileId, u64, u64)

FileStandardInformation = 5
FileEndOfFileInformation = 20


def frame(m: Message) -> memoryview:
    return memoryview(bytearray(Smb2Header(m.COMMAND).encode() + m.encode()))


def test_query_info_layout() -> None:
    req = QueryInfoRequest(InfoType.SMB2_0_INFO_FILE, FileStandardInformation, FileId(1, 2),
                           output_buffer_length=24)
    body = req.encode()
    assert len(body) == 41  # 40 fixed + one pad byte when there is no input
    assert struct.unpack_from("<HBBIHHIII", body) == (41, 1, 5, 24, 0, 0, 0, 0, 0)
    assert QueryInfoRequest.decode(frame(req)) == req
    sec = QueryInfoRequest(
        InfoType.SMB2_0_INFO_SECURITY, 0, FileId(1, 2),
        additional_information=SecurityInformation.OWNER_SECURITY_INFORMATION
        | SecurityInformation.DACL_SECURITY_INFORMATION)
    assert QueryInfoRequest.decode(frame(sec)).additional_information == 5


def test_query_info_with_input() -> None:
    quota = QueryQuotaInfo(restart_scan=True, start_sid=b"\x01\x01" + bytes(6) + b"\x05\0\0\0")
    req = QueryInfoRequest(InfoType.SMB2_0_INFO_QUOTA, 0, FileId(3, 4), input=quota.encode())
    body = req.encode()
    assert struct.unpack_from("<HHI", body, 8) == (0x68, 0, len(quota.encode()))
    got = QueryInfoRequest.decode(frame(req))
    assert got == req
    assert QueryQuotaInfo.decode(got.input) == quota


def test_query_info_response_no_copy() -> None:
    payload = bytes(range(24))
    msg = frame(QueryInfoResponse(payload))
    rsp = QueryInfoResponse.decode(msg)
    assert isinstance(rsp.output, memoryview) and rsp.output.obj is msg.obj
    assert rsp.output == payload
    assert struct.unpack_from("<HHI", msg, SMB2_HEADER_SIZE) == (9, OUTPUT_BUFFER_OFFSET, 24)
    empty = QueryInfoResponse.decode(frame(QueryInfoResponse()))
    assert len(empty.output) == 0


def test_query_info_response_hostile() -> None:
    msg = bytearray(frame(QueryInfoResponse(b"abcd")))
    struct.pack_into("<I", msg, SMB2_HEADER_SIZE + 4, 0xFFFFFFFF)
    with pytest.raises(DecodeError):
        QueryInfoResponse.decode(memoryview(msg))
    struct.pack_into("<HI", msg, SMB2_HEADER_SIZE + 2, 0xFFFF, 4)
    with pytest.raises(DecodeError):
        QueryInfoResponse.decode(memoryview(msg))
    struct.pack_into("<HI", msg, SMB2_HEADER_SIZE + 2, 8, 4)  # into the header
    with pytest.raises(DecodeError):
        QueryInfoResponse.decode(memoryview(msg))


def test_set_info() -> None:
    eof = struct.pack("<Q", 12345)
    req = SetInfoRequest(InfoType.SMB2_0_INFO_FILE, FileEndOfFileInformation, FileId(7, 8),
                         eof)
    parts = req.encode_parts()
    assert parts[1] is eof
    assert struct.unpack_from("<HBBIHHI", parts[0]) == (33, 1, 20, 8, 0x60, 0, 0)
    assert SetInfoRequest.decode(frame(req)) == req
    assert SetInfoResponse().encode() == b"\x02\x00"
    assert SetInfoResponse.decode(frame(SetInfoResponse())) == SetInfoResponse()


def test_quota_info_exclusive() -> None:
    with pytest.raises(ValueError):
        QueryQuotaInfo(sid_list=b"a", start_sid=b"b").encode()


@given(it=u8, ic=u8, fid=file_ids, out=u32, add=u32, flags=u32, inp=st.binary(max_size=64))
def test_query_info_roundtrip(it: int, ic: int, fid: FileId, out: int, add: int, flags: int,
                              inp: bytes) -> None:
    m = QueryInfoRequest(it, ic, fid, out, add, flags, inp)
    assert QueryInfoRequest.decode(frame(m)) == m


@given(out=st.binary(max_size=200))
def test_query_info_response_roundtrip(out: bytes) -> None:
    assert QueryInfoResponse.decode(frame(QueryInfoResponse(out))) == QueryInfoResponse(out)


@given(it=u8, ic=u8, fid=file_ids, buf=st.binary(max_size=64), add=u32)
def test_set_info_roundtrip(it: int, ic: int, fid: FileId, buf: bytes, add: int) -> None:
    m = SetInfoRequest(it, ic, fid, buf, add)
    assert SetInfoRequest.decode(frame(m)) == m


@given(single=st.booleans(), restart=st.booleans(), which=st.booleans(),
       sids=st.binary(max_size=40))
def test_quota_info_roundtrip(single: bool, restart: bool, which: bool, sids: bytes) -> None:
    q = QueryQuotaInfo(single, restart, sids if which else b"", b"" if which else sids)
    assert QueryQuotaInfo.decode(q.encode()) == q
