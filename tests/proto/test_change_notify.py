"""CHANGE_NOTIFY request/response and FILE_NOTIFY_INFORMATION chains."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.change_notify import (
    ChangeNotifyFlags,
    ChangeNotifyRequest,
    ChangeNotifyResponse,
    CompletionFilter,
    FileAction,
    FileNotifyInformation,
    decode_notify_information,
    encode_notify_information,
)
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.message import Message

from .fuzzing import u16, u32, u64

file_ids = st.builds(FileId, u64, u64)
names = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
entries = st.builds(FileNotifyInformation, u32, names)


def frame(m: Message) -> memoryview:
    return memoryview(bytearray(Smb2Header(m.COMMAND).encode() + m.encode()))


def test_request_layout() -> None:
    req = ChangeNotifyRequest(
        FileId(1, 2),
        CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME | CompletionFilter.FILE_NOTIFY_CHANGE_SIZE,
        flags=ChangeNotifyFlags.SMB2_WATCH_TREE, output_buffer_length=4096)
    body = req.encode()
    assert len(body) == 32
    assert struct.unpack_from("<HHI", body) == (32, 1, 4096)
    assert struct.unpack_from("<II", body, 24) == (9, 0)
    assert ChangeNotifyRequest.decode(frame(req)) == req


def test_chain_layout() -> None:
    ents = [FileNotifyInformation(FileAction.FILE_ACTION_RENAMED_OLD_NAME, "a"),
            FileNotifyInformation(FileAction.FILE_ACTION_RENAMED_NEW_NAME, "bcd")]
    raw = encode_notify_information(ents)
    # First entry: 12 + 2 bytes, padded to 16.
    assert struct.unpack_from("<III", raw) == (16, 4, 2)
    assert struct.unpack_from("<III", raw, 16) == (0, 5, 6)
    assert len(raw) == 16 + 12 + 6
    assert decode_notify_information(raw) == ents
    rsp = ChangeNotifyResponse.from_entries(ents)
    got = ChangeNotifyResponse.decode(frame(rsp))
    assert got.entries == ents


def test_empty_response_means_overflow() -> None:
    assert ChangeNotifyResponse.decode(frame(ChangeNotifyResponse())).entries == []


def test_hostile_chains() -> None:
    one = struct.pack("<III", 0, 1, 2) + b"a\0"
    assert decode_notify_information(one) == [FileNotifyInformation(1, "a")]
    loop = struct.pack("<III", 0, 1, 0)  # fine: single entry, empty name
    assert len(decode_notify_information(loop)) == 1
    bad = [
        struct.pack("<III", 4, 1, 0) + bytes(12),  # NextEntryOffset inside this entry
        struct.pack("<III", 14, 1, 0) + bytes(12),  # not a multiple of 4
        struct.pack("<III", 16, 1, 0) + bytes(4),  # points at the end
        struct.pack("<III", 0, 1, 0xFFFFFFFF),  # 4 GiB name
        struct.pack("<III", 0, 1, 3) + b"abc",  # odd UTF-16 length
        struct.pack("<III", 12, 1, 4) + bytes(20),  # name overlaps the next entry
        b"\x00" * 11,
    ]
    for raw in bad:
        with pytest.raises(DecodeError):
            decode_notify_information(raw)
    with pytest.raises(DecodeError):
        ChangeNotifyResponse.decode(frame(ChangeNotifyResponse(bad[0])))


@given(fid=file_ids, cf=u32, flags=u16, out=u32)
def test_request_roundtrip(fid: FileId, cf: int, flags: int, out: int) -> None:
    m = ChangeNotifyRequest(fid, cf, flags, out)
    assert ChangeNotifyRequest.decode(frame(m)) == m


@given(ents=st.lists(entries, min_size=1, max_size=6))
def test_chain_roundtrip(ents: list[FileNotifyInformation]) -> None:
    assert decode_notify_information(encode_notify_information(ents)) == ents
    rsp = ChangeNotifyResponse.from_entries(ents)
    assert ChangeNotifyResponse.decode(frame(rsp)).entries == ents
