"""ECHO, CANCEL, LOGOFF: the four-byte bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.constants import Command
from smbfs.proto.simple import (
    CancelRequest,
    EchoRequest,
    EchoResponse,
    LogoffRequest,
    LogoffResponse,
    SimpleMessage,
)

from .fuzzing import FUZZ, HDR, try_decode

ALL = [EchoRequest, EchoResponse, CancelRequest, LogoffRequest, LogoffResponse]
# A real Samba ECHO response (header included).
SAMBA_ECHO = bytes.fromhex(
    "fe534d4240000100000000000d0040000100000000000000090000000000000000"
    "000000027a697bc2509de5000000000000000000000000000000000000000004000000"
)


@pytest.mark.parametrize("cls", ALL)
def test_roundtrip(cls: type[SimpleMessage]) -> None:
    msg = cls()
    assert msg.encode() == b"\x04\x00\x00\x00"
    assert msg.encode_parts() == [b"\x04\x00\x00\x00"]
    assert cls.decode(memoryview(HDR + msg.encode())) == msg


def test_commands() -> None:
    assert EchoRequest.COMMAND == EchoResponse.COMMAND == Command.SMB2_ECHO
    assert CancelRequest.COMMAND == Command.SMB2_CANCEL
    assert LogoffRequest.COMMAND == LogoffResponse.COMMAND == Command.SMB2_LOGOFF


def test_samba_echo() -> None:
    assert EchoResponse.decode(SAMBA_ECHO) == EchoResponse()


@pytest.mark.parametrize("cls", ALL)
def test_malformed(cls: type[SimpleMessage]) -> None:
    with pytest.raises(DecodeError):
        cls.decode(HDR + b"\x04\x00\x00")
    with pytest.raises(DecodeError):
        cls.decode(HDR + b"\x05\x00\x00\x00")
    # Reserved is ignored.
    assert cls.decode(HDR + b"\x04\x00\xff\xff") == cls()


@FUZZ
@given(st.binary(max_size=80))
def test_fuzz(raw: bytes) -> None:
    for cls in ALL:
        for data in (raw, HDR + raw):
            try_decode(cls.decode, data)
