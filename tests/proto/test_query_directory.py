"""QUERY_DIRECTORY request/response."""

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
from smbfs.proto.query_directory import (
    QueryDirectoryFlags,
    QueryDirectoryRequest,
    QueryDirectoryResponse,
)

from .fuzzing import u8, u32, u64

file_ids = st.builds(FileId, u64, u64)
# Any text, including lone surrogates (Windows names may hold them).
names = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)

FileIdBothDirectoryInformation = 0x25


def frame(m: Message) -> memoryview:
    return memoryview(bytearray(Smb2Header(m.COMMAND).encode() + m.encode()))


def test_layout() -> None:
    req = QueryDirectoryRequest(FileIdBothDirectoryInformation, FileId(1, 2), "*.txt",
                                flags=QueryDirectoryFlags.SMB2_RESTART_SCANS)
    body = req.encode()
    assert struct.unpack_from("<HBBI", body) == (33, 0x25, 1, 0)
    assert struct.unpack_from("<HHI", body, 24) == (0x60, 10, 65536)
    assert body[32:] == "*.txt".encode("utf-16-le")
    assert QueryDirectoryRequest.decode(frame(req)) == req


def test_empty_pattern_pads() -> None:
    req = QueryDirectoryRequest(1, FileId(1, 2), "")
    body = req.encode()
    assert len(body) == 33 and struct.unpack_from("<HH", body, 24) == (0, 0)
    assert QueryDirectoryRequest.decode(frame(req)) == req


def test_odd_name_length_rejected() -> None:
    msg = bytearray(frame(QueryDirectoryRequest(1, FileId(1, 2), "ab")))
    struct.pack_into("<H", msg, SMB2_HEADER_SIZE + 26, 3)
    with pytest.raises(DecodeError):
        QueryDirectoryRequest.decode(memoryview(msg))


def test_response_view() -> None:
    msg = frame(QueryDirectoryResponse(b"entries!"))
    rsp = QueryDirectoryResponse.decode(msg)
    assert rsp.output == b"entries!" and isinstance(rsp.output, memoryview)
    assert rsp.output.obj is msg.obj


@given(ic=u8, fid=file_ids, pattern=names, flags=u8, index=u32, out=u32)
def test_request_roundtrip(ic: int, fid: FileId, pattern: str, flags: int, index: int,
                           out: int) -> None:
    m = QueryDirectoryRequest(ic, fid, pattern, flags, index, out)
    assert QueryDirectoryRequest.decode(frame(m)) == m


@given(out=st.binary(max_size=200))
def test_response_roundtrip(out: bytes) -> None:
    assert QueryDirectoryResponse.decode(frame(QueryDirectoryResponse(out))).output == out
