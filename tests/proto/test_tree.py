"""TREE_CONNECT / TREE_DISCONNECT: round trips, Samba bytes, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.tree import (
    ShareCapabilities,
    ShareFlags,
    ShareType,
    TreeConnectFlags,
    TreeConnectRequest,
    TreeConnectResponse,
    TreeDisconnectRequest,
    TreeDisconnectResponse,
)

from .fuzzing import FUZZ, HDR, mutated, try_decode, u8, u32

flags = st.integers(0, 0xFFFF).filter(
    lambda f: not f & TreeConnectFlags.SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT
)
requests = st.builds(TreeConnectRequest, st.text(max_size=80), flags)
responses = st.builds(TreeConnectResponse, u8, u32, u32, u32)


@FUZZ
@given(requests)
def test_request_roundtrip(req: TreeConnectRequest) -> None:
    assert TreeConnectRequest.decode(memoryview(HDR + req.encode())) == req


@FUZZ
@given(responses)
def test_response_roundtrip(resp: TreeConnectResponse) -> None:
    assert TreeConnectResponse.decode(HDR + resp.encode()) == resp


def test_request_layout() -> None:
    body = TreeConnectRequest("\\\\srv\\share").encode()
    assert struct.unpack_from("<HHHH", body) == (9, 0, 72, 22)
    assert body[8:] == "\\\\srv\\share".encode("utf-16-le")
    # An empty path still carries the one Buffer byte StructureSize 9 counts.
    assert len(TreeConnectRequest("").encode()) == 9


def test_extension_form_is_refused() -> None:
    ext = TreeConnectFlags.SMB2_TREE_CONNECT_FLAG_EXTENSION_PRESENT
    with pytest.raises(ValueError):
        TreeConnectRequest("\\\\s\\x", ext).encode()
    body = bytearray(TreeConnectRequest("\\\\s\\x").encode())
    struct.pack_into("<H", body, 2, ext)
    with pytest.raises(DecodeError):
        TreeConnectRequest.decode(HDR + bytes(body))


def test_disconnect() -> None:
    for cls in (TreeDisconnectRequest, TreeDisconnectResponse):
        assert cls().encode() == b"\x04\x00\x00\x00"
        assert cls.decode(HDR + cls().encode()) == cls()


# Samba 4.17 reply to TREE_CONNECT \\127.0.0.1\share (header included).
SAMBA_TREE_CONNECT = bytes.fromhex(
    "fe534d42400001000000000003004000010000000000000003000000000000000000"
    "0000027a697bc2509de50000000000000000000000000000000000000000100001000000"
    "000000000000ff011f00"
)


def test_samba_bytes() -> None:
    resp = TreeConnectResponse.decode(SAMBA_TREE_CONNECT)
    assert resp.share_type == ShareType.SMB2_SHARE_TYPE_DISK
    assert resp.share_flags == ShareFlags.SMB2_SHAREFLAG_MANUAL_CACHING
    assert resp.maximal_access == 0x001F01FF
    assert not resp.encrypt_data
    assert SAMBA_TREE_CONNECT[:64] + resp.encode() == SAMBA_TREE_CONNECT


def test_flags_helpers() -> None:
    resp = TreeConnectResponse(
        share_flags=ShareFlags.SMB2_SHAREFLAG_ENCRYPT_DATA | ShareFlags.SMB2_SHAREFLAG_NO_CACHING,
        capabilities=ShareCapabilities.SMB2_SHARE_CAP_CONTINUOUS_AVAILABILITY,
    )
    assert resp.encrypt_data
    assert resp.caching_policy == ShareFlags.SMB2_SHAREFLAG_NO_CACHING


@FUZZ
@given(st.data())
def test_fuzz_mutated(data: st.DataObject) -> None:
    try_decode(TreeConnectRequest.decode, data.draw(mutated(HDR + data.draw(requests).encode())))
    try_decode(TreeConnectResponse.decode, data.draw(mutated(HDR + data.draw(responses).encode())))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random(raw: bytes) -> None:
    for decode in (
        TreeConnectRequest.decode, TreeConnectResponse.decode,
        TreeDisconnectRequest.decode, TreeDisconnectResponse.decode,
    ):
        try_decode(decode, raw)
        try_decode(decode, HDR + raw)


def test_odd_and_out_of_bounds_path() -> None:
    body = bytearray(TreeConnectRequest("\\\\s\\x").encode())
    struct.pack_into("<HH", body, 4, 72, 3)  # odd UTF-16 length
    with pytest.raises(DecodeError):
        TreeConnectRequest.decode(HDR + bytes(body))
    struct.pack_into("<HH", body, 4, 0xFFFE, 2)  # offset past the end
    with pytest.raises(DecodeError):
        TreeConnectRequest.decode(HDR + bytes(body))
