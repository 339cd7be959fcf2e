"""SESSION_SETUP request/response: round trips, Samba-captured bytes, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE
from smbfs.proto.session_setup import (
    SessionFlags,
    SessionSetupFlags,
    SessionSetupRequest,
    SessionSetupResponse,
)

from .fuzzing import FUZZ, HDR, mutated, try_decode, u8, u16, u32, u64

tokens = st.binary(max_size=300)

requests = st.builds(SessionSetupRequest, u8, u8, u32, u32, u64, tokens)
responses = st.builds(SessionSetupResponse, u16, tokens)


@FUZZ
@given(requests)
def test_request_roundtrip(req: SessionSetupRequest) -> None:
    body = req.encode()
    assert len(body) >= 25
    assert SessionSetupRequest.decode(memoryview(HDR + body)) == req


@FUZZ
@given(responses)
def test_response_roundtrip(resp: SessionSetupResponse) -> None:
    assert SessionSetupResponse.decode(HDR + resp.encode()) == resp


def test_request_layout() -> None:
    req = SessionSetupRequest(
        flags=SessionSetupFlags.SMB2_SESSION_FLAG_BINDING, security_mode=1,
        capabilities=1, previous_session_id=0x1122, security_buffer=b"tok",
    )
    body = req.encode()
    assert struct.unpack_from("<HBBIIHHQ", body) == (25, 1, 1, 1, 0, 88, 3, 0x1122)
    assert body[24:] == b"tok"


# Samba 4.17's first-leg reply: STATUS_MORE_PROCESSING_REQUIRED with the NTLM
# CHALLENGE (header included; no secret in it).
SAMBA_CHALLENGE = bytes.fromhex(
    "fe534d4240000100160000c00100010001000000000000000100000000000000"
    "000000000000000041997b2d0000000000000000000000000000000000000000"
    "09000000480068004e544c4d5353500002000000040004003800000035828ae2"
    "6d387baee6951d2000000000000000002c002c003c000000060100000000000f"
    "56004d000200040056004d000100040056004d00040000000300040076006d00"
    "07000800b81cefcbee79dd0100000000"
)
# The final leg: SessionFlags 0, empty security buffer.
SAMBA_FINAL = bytes.fromhex(
    "fe534d42400001000000000001004000090000000000000002000000000000000000"
    "000000000000c2509de500000000d23f9ee06f32899ca77c57f03560b2750900000048000000"
)


def test_samba_bytes() -> None:
    resp = SessionSetupResponse.decode(SAMBA_CHALLENGE)
    assert resp.session_flags == 0
    assert resp.security_buffer.startswith(b"NTLMSSP\x00\x02\x00\x00\x00")
    assert len(resp.security_buffer) == 0x68
    assert SAMBA_CHALLENGE[:64] + resp.encode() == SAMBA_CHALLENGE
    final = SessionSetupResponse.decode(SAMBA_FINAL)
    assert final == SessionSetupResponse(0, b"")
    guest = SessionSetupResponse(
        SessionFlags.SMB2_SESSION_FLAG_IS_GUEST | SessionFlags.SMB2_SESSION_FLAG_ENCRYPT_DATA
    )
    assert SessionSetupResponse.decode(HDR + guest.encode()).session_flags == 5


def test_security_buffer_out_of_bounds() -> None:
    body = bytearray(SessionSetupResponse(0, b"abc").encode())
    struct.pack_into("<HH", body, 4, 72, 0xFFFF)
    with pytest.raises(DecodeError):
        SessionSetupResponse.decode(HDR + bytes(body))
    struct.pack_into("<HH", body, 4, 0xFFFF, 1)
    with pytest.raises(DecodeError):
        SessionSetupResponse.decode(HDR + bytes(body))


@FUZZ
@given(st.data())
def test_fuzz_mutated(data: st.DataObject) -> None:
    req = HDR + data.draw(requests).encode()
    try_decode(SessionSetupRequest.decode, data.draw(mutated(req)))
    resp = HDR + data.draw(responses).encode()
    try_decode(SessionSetupResponse.decode, data.draw(mutated(resp)))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random(raw: bytes) -> None:
    for decode in (SessionSetupRequest.decode, SessionSetupResponse.decode):
        try_decode(decode, raw)
        try_decode(decode, HDR + raw)


def test_truncate_and_flip_every_byte() -> None:
    for n in range(len(SAMBA_CHALLENGE)):
        try_decode(SessionSetupResponse.decode, SAMBA_CHALLENGE[:n])
    for i in range(SMB2_HEADER_SIZE, SMB2_HEADER_SIZE + 8):
        for v in (0x00, 0xFF, 0x7F):
            try_decode(SessionSetupResponse.decode, SAMBA_CHALLENGE[:i] + bytes([v]) + SAMBA_CHALLENGE[i + 1 :])


# Published Windows 10 first SESSION_SETUP leg: [MS-SMB2] Open Specifications
# blog, "SMB 2 and SMB 3 security in Windows 10: the anatomy of signing and
# cryptographic keys" (2017), SMB 3.1.1 key derivation appendix.
WIN10_SESSION_SETUP_REQUEST = bytes.fromhex(
    "FE534D4240000100000000000100800000000000000000000200000000000000"
    "FFFE000000000000000000000000000000000000000000000000000000000000"
    "19000001010000000000000058004A000000000000000000604806062B060105"
    "0502A03E303CA00E300C060A2B06010401823702020AA22A04284E544C4D5353"
    "500001000000978208E200000000000000000000000000000000060380250000"
    "000F"
)
WIN10_SESSION_SETUP_RESPONSE = bytes.fromhex(
    "FE534D4240000100160000C00100010001000000000000000200000000000000"
    "FFFE000000000000190000000010000000000000000000000000000000000000"
    "090000004800B300A181B03081ADA0030A0101A10C060A2B0601040182370202"
    "0AA281970481944E544C4D53535000020000000C000C003800000015828AE20D"
    "1D8BA31179D008000000000000000050005000440000000A0092270000000F53"
    "005500540033003100310002000C0053005500540033003100310001000C0053"
    "005500540033003100310004000C0053005500540033003100310003000C0053"
    "005500540033003100310007000800A1A1F5ADCBAED00100000000"
)


def test_published_windows_exchange() -> None:
    req = SessionSetupRequest.decode(WIN10_SESSION_SETUP_REQUEST)
    assert req.flags == 0 and req.security_mode == 1 and req.previous_session_id == 0
    assert len(req.security_buffer) == 0x4A
    assert req.security_buffer[:2] == b"\x60\x48"
    assert WIN10_SESSION_SETUP_REQUEST[:64] + req.encode() == WIN10_SESSION_SETUP_REQUEST
    resp = SessionSetupResponse.decode(WIN10_SESSION_SETUP_RESPONSE)
    assert resp.session_flags == 0 and len(resp.security_buffer) == 0xB3
    assert b"NTLMSSP\x00\x02" in resp.security_buffer
    assert WIN10_SESSION_SETUP_RESPONSE[:64] + resp.encode() == WIN10_SESSION_SETUP_RESPONSE
