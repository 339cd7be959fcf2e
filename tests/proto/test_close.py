"""CLOSE request/response: round trips, Samba bytes, fuzzing."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.close import CloseFlags, CloseRequest, CloseResponse
from smbfs.proto.fileid import FileId

from .fuzzing import FUZZ, HDR, try_decode, u16, u32, u64

requests = st.builds(CloseRequest, st.builds(FileId, u64, u64), u16)
responses = st.builds(CloseResponse, u16, u64, u64, u64, u64, u64, u64, u32)


@FUZZ
@given(requests)
def test_request_roundtrip(req: CloseRequest) -> None:
    body = req.encode()
    assert len(body) == 24
    assert CloseRequest.decode(memoryview(HDR + body)) == req


@FUZZ
@given(responses)
def test_response_roundtrip(resp: CloseResponse) -> None:
    body = resp.encode()
    assert len(body) == 60
    assert CloseResponse.decode(HDR + body) == resp


def test_request_layout() -> None:
    req = CloseRequest(FileId(0x1122, 0x3344), CloseFlags.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB)
    assert req.encode() == struct.pack("<HHIQQ", 24, 1, 0, 0x1122, 0x3344)


# Samba 4.17 reply to a CLOSE with POSTQUERY_ATTRIB (header included).
SAMBA_CLOSE = bytes.fromhex(
    "fe534d42400001000000000006004000010000000000000006000000000000000000"
    "0000027a697bc2509de500000000000000000000000000000000000000003c000100"
    "00000000e2bee4c6ee79dd01e2bee4c6ee79dd01e2bee4c6ee79dd01e2bee4c6ee79"
    "dd010000000000000000000000000000000020000000"
)


def test_samba_bytes() -> None:
    resp = CloseResponse.decode(SAMBA_CLOSE)
    assert resp.has_attributes
    assert resp.creation_time == resp.last_write_time == 0x01DD79EEC6E4BEE2
    assert resp.end_of_file == 0
    assert resp.file_attributes == 0x20  # FILE_ATTRIBUTE_ARCHIVE
    assert SAMBA_CLOSE[:64] + resp.encode() == SAMBA_CLOSE


@FUZZ
@given(st.binary(max_size=160))
def test_fuzz_random(raw: bytes) -> None:
    for decode in (CloseRequest.decode, CloseResponse.decode):
        try_decode(decode, raw)
        try_decode(decode, HDR + raw)


def test_truncate_every_length() -> None:
    for n in range(len(SAMBA_CLOSE)):
        try:
            CloseResponse.decode(SAMBA_CLOSE[:n])
        except DecodeError:
            continue
        raise AssertionError(f"decoded a CLOSE response cut at {n}")
