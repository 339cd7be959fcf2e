"""ERROR response, 3.1.1 error contexts and the symbolic link error data:
round trips, Samba bytes, hostile lengths and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.error import (
    SYMLINK_FLAG_RELATIVE,
    ErrorContext,
    ErrorId,
    ErrorResponse,
    SymlinkErrorResponse,
)

from .fuzzing import (
    FUZZ,
    HDR,
    byte_flips,
    mutated,
    only_decode_error,
    peak_allocation_below,
    truncations,
    try_decode,
    u16,
    u32,
)

symlinks = st.builds(
    SymlinkErrorResponse, st.text(max_size=40), st.text(max_size=40), u16, u32
)
contexts = st.builds(
    ErrorContext,
    st.sampled_from([ErrorId.SMB2_ERROR_ID_DEFAULT, ErrorId.SMB2_ERROR_ID_SHARE_REDIRECT])
    | u32,
    st.binary(max_size=60),
)
responses = st.one_of(
    st.builds(ErrorResponse, st.binary(max_size=100)),
    st.builds(ErrorResponse, st.just(b""), st.lists(contexts, min_size=1, max_size=5)),
)


@FUZZ
@given(responses)
def test_roundtrip(resp: ErrorResponse) -> None:
    body = resp.encode()
    assert len(body) >= 9
    assert ErrorResponse.decode(memoryview(HDR + body)) == resp


@FUZZ
@given(symlinks)
def test_symlink_roundtrip(link: SymlinkErrorResponse) -> None:
    raw = link.encode()
    assert SymlinkErrorResponse.decode(raw) == link
    assert ErrorResponse(raw).symlink() == link
    wrapped = ErrorResponse(error_contexts=[ErrorContext(0, raw)])
    assert ErrorResponse.decode(HDR + wrapped.encode()).symlink() == link


# Samba 4.17's STATUS_BAD_NETWORK_NAME reply to a TREE_CONNECT: ByteCount 0
# followed by the one padding byte (header included).
SAMBA_ERROR = bytes.fromhex(
    "fe534d4240000100cc0000c00300400001000000000000000400000000000000"
    "00000000027a697bc2509de50000000000000000000000000000000000000000"
    "090000000000000000"
)


def test_samba_bytes() -> None:
    resp = ErrorResponse.decode(SAMBA_ERROR)
    assert resp == ErrorResponse()
    assert SAMBA_ERROR[:64] + resp.encode() == SAMBA_ERROR
    # Accepted without the padding byte too.
    assert ErrorResponse.decode(SAMBA_ERROR[:-1]) == ErrorResponse()


def test_symlink_layout() -> None:
    """Built by hand from the field table of [MS-SMB2] 2.2.2.2.1: an
    absolute target on another server, 10 bytes of path left unparsed."""
    sub = "\\??\\UNC\\srv\\sh\\t".encode("utf-16-le")
    prt = "\\\\srv\\sh\\t".encode("utf-16-le")
    path_buffer = prt + sub  # print name first: offsets need not follow order
    raw = (
        struct.pack(
            "<IIIHHHHHHI", 24 + len(path_buffer), 0x4C4D5953, 0xA000000C,
            12 + len(path_buffer), 10, len(prt), len(sub), 0, len(prt), 0,
        )
        + path_buffer
    )
    link = ErrorResponse.decode(
        HDR + struct.pack("<HBBI", 9, 0, 0, len(raw)) + raw
    ).symlink()
    assert link.substitute_name == "\\??\\UNC\\srv\\sh\\t"
    assert link.print_name == "\\\\srv\\sh\\t"
    assert link.unparsed_path_length == 10 and not link.is_relative
    rel = SymlinkErrorResponse("..\\x", "..\\x", 0, SYMLINK_FLAG_RELATIVE)
    assert rel.encode()[4:8] == b"SYML" and rel.is_relative


def test_context_alignment() -> None:
    resp = ErrorResponse(error_contexts=[ErrorContext(0, b"abc"), ErrorContext(1, b"z")])
    body = resp.encode()
    assert body[:8] == struct.pack("<HBBI", 9, 2, 0, 8 + 3 + 5 + 8 + 1)
    assert body[8:19] == struct.pack("<II", 3, 0) + b"abc"
    assert body[19:24] == bytes(5)
    assert body[24:] == struct.pack("<II", 1, 1) + b"z"


def test_buffer_too_small() -> None:
    assert ErrorResponse(struct.pack("<I", 4096)).required_buffer_length() == 4096
    with pytest.raises(DecodeError):
        ErrorResponse(b"").required_buffer_length()


def test_bad_symlink() -> None:
    good = SymlinkErrorResponse("a", "b").encode()
    bad = bytearray(good)
    bad[4] ^= 1  # SymLinkErrorTag
    with pytest.raises(DecodeError):
        SymlinkErrorResponse.decode(bytes(bad))
    bad = bytearray(good)
    struct.pack_into("<I", bad, 0, 0xFFFFFFFF)  # SymLinkLength
    with pytest.raises(DecodeError):
        SymlinkErrorResponse.decode(bytes(bad))
    bad = bytearray(good)
    struct.pack_into("<HH", bad, 16, 0xFFF0, 2)  # SubstituteName outside PathBuffer
    with pytest.raises(DecodeError):
        SymlinkErrorResponse.decode(bytes(bad))


def test_four_gib_byte_count() -> None:
    with peak_allocation_below():
        for count in (0, 1, 255):
            with pytest.raises(DecodeError):
                ErrorResponse.decode(HDR + struct.pack("<HBBI", 9, count, 0, 0xFFFFFFFF) + b"\0")
        ctx = struct.pack("<II", 0xFFFFFFFF, 0)
        with pytest.raises(DecodeError):
            ErrorResponse.decode(HDR + struct.pack("<HBBI", 9, 1, 0, len(ctx)) + ctx)


def _try_symlink(data: bytes) -> None:
    only_decode_error(lambda: ErrorResponse(data).symlink())
    only_decode_error(lambda: ErrorResponse(data).required_buffer_length())


@FUZZ
@given(st.data())
def test_fuzz_mutated(data: st.DataObject) -> None:
    valid = HDR + data.draw(responses).encode()
    try_decode(ErrorResponse.decode, data.draw(mutated(valid, SMB2_HEADER_SIZE)))
    _try_symlink(data.draw(mutated(data.draw(symlinks).encode(), 0)))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random(raw: bytes) -> None:
    try_decode(ErrorResponse.decode, raw)
    try_decode(ErrorResponse.decode, HDR + raw)
    _try_symlink(raw)


def test_truncate_and_flip_every_byte() -> None:
    link = SymlinkErrorResponse("\\??\\UNC\\s\\x", "\\\\s\\x", 4, 0).encode()
    sample = HDR + ErrorResponse(error_contexts=[ErrorContext(0, link), ErrorContext(7)]).encode()
    for bad in (*truncations(sample), *byte_flips(sample)):
        try_decode(ErrorResponse.decode, bad)
    for bad in (*truncations(link), *byte_flips(link, 0)):
        _try_symlink(bad)
