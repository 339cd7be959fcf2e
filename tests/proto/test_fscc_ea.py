"""[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION and 2.4.15.1 FILE_GET_EA_INFORMATION."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc.ea import (
    FILE_NEED_EA,
    FileFullEaEntry,
    FileFullEaInformation,
    FileGetEaInformation,
)

from .fuzzing import cut_and_overwritten, only_decode_error

ea_names = st.binary(min_size=1, max_size=255).filter(lambda b: b"\x00" not in b)
entries = st.builds(FileFullEaEntry, ea_names, st.binary(max_size=300), st.sampled_from([0, FILE_NEED_EA]))
full = st.builds(FileFullEaInformation, st.lists(entries, max_size=6))
get = st.builds(FileGetEaInformation, st.lists(ea_names, max_size=6))


@settings(max_examples=200)
@given(full)
def test_full_round_trip(v: FileFullEaInformation) -> None:
    raw = v.encode()
    assert FileFullEaInformation.decode(raw) == v
    # Every entry but the last is 4-byte aligned.
    pos = 0
    for _ in v.entries[:-1]:
        nxt = struct.unpack_from("<I", raw, pos)[0]
        assert nxt % 4 == 0
        pos += nxt


@settings(max_examples=200)
@given(get)
def test_get_round_trip(v: FileGetEaInformation) -> None:
    assert FileGetEaInformation.decode(v.encode()) == v


def test_full_layout() -> None:
    v = FileFullEaInformation([FileFullEaEntry(b"user.a", b"xyz"), FileFullEaEntry(b"B", b"")])
    raw = v.encode()
    # 8-byte header, "user.a\0" (7), "xyz" (3) = 18 -> next at 20.
    assert raw[:8] == struct.pack("<IBBH", 20, 0, 6, 3)
    assert raw[8:18] == b"user.a\x00xyz"
    assert raw[18:20] == b"\x00\x00"
    assert raw[20:] == struct.pack("<IBBH", 0, 0, 1, 0) + b"B\x00"
    assert v.as_dict() == {b"user.a": b"xyz", b"B": b""}


def test_get_layout() -> None:
    raw = FileGetEaInformation([b"abc", b"d"]).encode()
    assert raw == struct.pack("<IB", 12, 3) + b"abc\x00" + bytes(3) + struct.pack("<IB", 0, 1) + b"d\x00"


def test_encode_limits() -> None:
    with pytest.raises(ValueError):
        FileFullEaInformation([FileFullEaEntry(b"x" * 256)]).encode()
    with pytest.raises(ValueError):
        FileFullEaInformation([FileFullEaEntry(b"x", b"v" * 65536)]).encode()
    with pytest.raises(ValueError):
        FileGetEaInformation([b"a\x00b"]).encode()
    with pytest.raises(ValueError):
        FileGetEaInformation([b""]).encode()


def test_hostile() -> None:
    good = FileFullEaInformation([FileFullEaEntry(b"name", b"value")]).encode()
    # Missing NUL terminator after the name.
    bad = bytearray(good)
    bad[8 + 4] = ord("!")
    with pytest.raises(DecodeError, match="NUL"):
        FileFullEaInformation.decode(bytes(bad))
    # EaValueLength past the end.
    bad = bytearray(good)
    struct.pack_into("<H", bad, 6, 0xFFFF)
    with pytest.raises(DecodeError):
        FileFullEaInformation.decode(bytes(bad))
    # NextEntryOffset that would revisit the entry.
    bad = bytearray(good + bytes(64))
    struct.pack_into("<I", bad, 0, 4)
    with pytest.raises(DecodeError, match="NextEntryOffset"):
        FileFullEaInformation.decode(bytes(bad))
    assert FileFullEaInformation.decode(b"") == FileFullEaInformation([])


@pytest.mark.parametrize("cls", [FileFullEaInformation, FileGetEaInformation])
@settings(max_examples=300)
@given(blob=st.binary(max_size=200))
def test_fuzz_random(cls: type, blob: bytes) -> None:
    only_decode_error(cls.decode, blob)  # type: ignore[attr-defined]


@settings(max_examples=200)
@given(v=full.filter(lambda f: bool(f.entries)), data=st.data())
def test_fuzz_mutated(v: FileFullEaInformation, data: st.DataObject) -> None:
    for bad in cut_and_overwritten(data, v.encode(), 4):
        only_decode_error(FileFullEaInformation.decode, bad)
