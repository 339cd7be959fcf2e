"""SMB2 IOCTL request/response envelope."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.fileid import RELATED, FileId
from smbfs.proto.fsctl import CtlCode
from smbfs.proto.header import Smb2Header
from smbfs.proto.ioctl import (
    IOCTL_REQUEST_BUFFER_OFFSET,
    IOCTL_RESPONSE_BUFFER_OFFSET,
    SMB2_0_IOCTL_IS_FSCTL,
    IoctlRequest,
    IoctlResponse,
)
from smbfs.proto.message import Message

from .fuzzing import u32, u64

file_ids = st.builds(FileId, u64, u64)


def frame(m: Message) -> memoryview:
    return memoryview(bytearray(Smb2Header(m.COMMAND).encode() + m.encode()))


def test_request_layout() -> None:
    payload = memoryview(b"\x01\x02\x03\x04")
    req = IoctlRequest(CtlCode.FSCTL_VALIDATE_NEGOTIATE_INFO, input=payload,
                       max_output_response=24)
    parts = req.encode_parts()
    assert parts[1] is payload  # the caller's buffer, not a copy
    body = req.encode()
    assert len(parts[0]) == 56 and IOCTL_REQUEST_BUFFER_OFFSET == 0x78
    (size, _r, code) = struct.unpack_from("<HHI", body)
    assert (size, code) == (57, 0x00140204)
    assert body[8:24] == b"\xff" * 16
    assert struct.unpack_from("<IIIIIIII", body, 24) == (0x78, 4, 0, 0, 0, 24, 1, 0)
    assert IoctlRequest.decode(frame(req)) == req


def test_request_without_input() -> None:
    req = IoctlRequest(CtlCode.FSCTL_QUERY_NETWORK_INTERFACE_INFO)
    body = req.encode()
    assert len(body) == 57
    assert struct.unpack_from("<II", body, 24) == (0, 0)
    assert IoctlRequest.decode(frame(req)) == req


def test_response_offsets() -> None:
    rsp = IoctlResponse(CtlCode.FSCTL_SRV_REQUEST_RESUME_KEY, FileId(1, 2), output=b"K" * 28,
                        input=b"abc")
    msg = frame(rsp)
    _s, _r, _c, _f, in_off, in_n, out_off, out_n = struct.unpack_from(
        "<HHI16sIIII", msg, SMB2_HEADER_SIZE)
    assert (in_off, in_n) == (IOCTL_RESPONSE_BUFFER_OFFSET, 3)
    assert out_off == 0x78 and out_n == 28  # input end rounded up to 8
    got = IoctlResponse.decode(msg)
    assert got == rsp
    assert isinstance(got.output, memoryview) and got.output.obj is msg.obj


def test_response_hostile() -> None:
    good = bytearray(frame(IoctlResponse(1, output=b"12345678")))
    for field_off, value in ((36, 0xFFFFFFFF), (32, 0xFFFFFF00), (32, 8), (28, 0xFFFFFFFF)):
        bad = bytearray(good)
        struct.pack_into("<I", bad, SMB2_HEADER_SIZE + field_off, value)
        with pytest.raises(DecodeError):
            IoctlResponse.decode(memoryview(bad))


@given(code=u32, fid=file_ids, inp=st.binary(max_size=100), mi=u32, mo=u32,
       flags=st.sampled_from([0, SMB2_0_IOCTL_IS_FSCTL]))
def test_request_roundtrip(code: int, fid: FileId, inp: bytes, mi: int, mo: int,
                           flags: int) -> None:
    m = IoctlRequest(code, fid, inp, mi, mo, flags)
    assert IoctlRequest.decode(frame(m)) == m


@given(code=u32, fid=file_ids, out=st.binary(max_size=100), inp=st.binary(max_size=20),
       flags=u32)
def test_response_roundtrip(code: int, fid: FileId, out: bytes, inp: bytes,
                            flags: int) -> None:
    m = IoctlResponse(code, fid, out, inp, flags)
    assert IoctlResponse.decode(frame(m)) == m


def test_related_default() -> None:
    assert IoctlRequest(1).file_id == RELATED
