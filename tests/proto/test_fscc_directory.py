"""QUERY_DIRECTORY output buffers ([MS-FSCC] directory information classes)."""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc.attributes import FileInformationClass as FIC
from smbfs.proto.fscc.directory import (
    FileBothDirectoryInformation,
    FileDirectoryInformation,
    FileFullDirectoryInformation,
    FileIdBothDirectoryInformation,
    FileIdFullDirectoryInformation,
    FileNamesInformation,
    decode_directory_buffer,
)

from .fuzzing import only_decode_error, u32, u64

i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
short = st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12)
common = (names, u32, i64, i64, i64, i64, i64, i64, u32)

ENTRY: dict[type, Any] = {
    FileDirectoryInformation: st.builds(FileDirectoryInformation, *common),
    FileFullDirectoryInformation: st.builds(FileFullDirectoryInformation, *common, u32),
    FileIdFullDirectoryInformation: st.builds(FileIdFullDirectoryInformation, *common, u32, u64),
    FileBothDirectoryInformation: st.builds(FileBothDirectoryInformation, *common, u32, short),
    FileIdBothDirectoryInformation: st.builds(FileIdBothDirectoryInformation, *common, u32, short, u64),
    FileNamesInformation: st.builds(FileNamesInformation, names, u32),
}
FIXED = {
    FileDirectoryInformation: 64,
    FileFullDirectoryInformation: 68,
    FileIdFullDirectoryInformation: 80,
    FileBothDirectoryInformation: 94,
    FileIdBothDirectoryInformation: 104,
    FileNamesInformation: 12,
}
CLASSES = list(ENTRY)
ids = [c.__name__ for c in CLASSES]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
def test_fixed_sizes(cls: Any) -> None:
    assert cls._ST.size == FIXED[cls]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@settings(max_examples=100)
@given(data=st.data())
def test_list_round_trip(cls: Any, data: st.DataObject) -> None:
    entries = data.draw(st.lists(ENTRY[cls], max_size=8))
    raw = cls.encode_list(entries)
    assert cls.decode_list(raw) == entries
    assert decode_directory_buffer(cls.INFO_CLASS, raw) == entries
    # Each entry but the last starts on an 8-byte boundary.
    pos = 0
    for e in entries:
        assert pos % 8 == 0
        assert cls.decode(raw, pos) == e
        pos += struct.unpack_from("<I", raw, pos)[0]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@settings(max_examples=300)
@given(blob=st.binary(max_size=400))
def test_fuzz_random(cls: Any, blob: bytes) -> None:
    only_decode_error(cls.decode_list, blob)
    only_decode_error(cls.decode, blob)


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@settings(max_examples=150)
@given(data=st.data())
def test_fuzz_mutated(cls: Any, data: st.DataObject) -> None:
    raw = bytearray(cls.encode_list(data.draw(st.lists(ENTRY[cls], min_size=1, max_size=4))))
    only_decode_error(cls.decode_list, bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    start = time.monotonic()
    try:
        out = cls.decode_list(bytes(raw))
        # Strictly increasing offsets: never more entries than bytes.
        assert len(out) <= len(raw) // FIXED[cls]
    except DecodeError:
        pass
    assert time.monotonic() - start < 1.0


def _entry(name: str, next_off: int) -> bytes:
    e = FileIdBothDirectoryInformation(name).encode()
    return struct.pack("<I", next_off) + e[4:]


def test_next_entry_offset_loops_rejected() -> None:
    one = _entry("a", 0)
    # Self-loop: NextEntryOffset smaller than the entry (here 8) is rejected.
    with pytest.raises(DecodeError, match="NextEntryOffset"):
        FileIdBothDirectoryInformation.decode_list(_entry("a", 8) + bytes(200))
    # Points past the end.
    with pytest.raises(DecodeError, match="outside"):
        FileIdBothDirectoryInformation.decode_list(_entry("a", 112))
    with pytest.raises(DecodeError, match="outside"):
        FileIdBothDirectoryInformation.decode_list(_entry("a", 0xFFFFFFFF) + one)
    # A valid two-entry chain.
    two = _entry("a", 112) + bytes(6) + one
    assert [e.file_name for e in FileIdBothDirectoryInformation.decode_list(two)] == ["a", "a"]


def test_hostile_lengths() -> None:
    e = bytearray(_entry("ab", 0))
    struct.pack_into("<I", e, 60, 0xFFFFFFFE)  # FileNameLength
    with pytest.raises(DecodeError):
        FileIdBothDirectoryInformation.decode_list(bytes(e))
    e = bytearray(_entry("ab", 0))
    struct.pack_into("<I", e, 60, 3)
    with pytest.raises(DecodeError, match="odd"):
        FileIdBothDirectoryInformation.decode_list(bytes(e))
    e = bytearray(_entry("ab", 0))
    e[68] = 26  # ShortNameLength beyond the 24-byte field
    with pytest.raises(DecodeError, match="ShortNameLength"):
        FileIdBothDirectoryInformation.decode_list(bytes(e))


def test_empty_buffer_and_unknown_class() -> None:
    assert FileIdBothDirectoryInformation.decode_list(b"") == []
    with pytest.raises(DecodeError):
        decode_directory_buffer(FIC.FileBasicInformation, b"")


def test_id_both_layout() -> None:
    e = FileIdBothDirectoryInformation(
        "x.txt", file_index=0, end_of_file=5, allocation_size=8, file_attributes=0x20,
        ea_size=0, short_name="X~1.TXT", file_id=0xABCDEF,
    )
    raw = e.encode()
    assert struct.unpack_from("<I", raw, 60)[0] == 10  # FileNameLength
    assert raw[68] == 14  # ShortNameLength
    assert raw[70:84] == "X~1.TXT".encode("utf-16-le")
    assert struct.unpack_from("<Q", raw, 96)[0] == 0xABCDEF
    assert raw[104:] == "x.txt".encode("utf-16-le")


def test_ten_thousand_entries_fast() -> None:
    entries = [
        FileIdBothDirectoryInformation(f"file{i:05d}.dat", end_of_file=i, file_id=i)
        for i in range(10_000)
    ]
    raw = FileIdBothDirectoryInformation.encode_list(entries)
    start = time.perf_counter()
    out = FileIdBothDirectoryInformation.decode_list(raw)
    elapsed = time.perf_counter() - start
    assert out == entries
    assert elapsed < 1.0  # ~20 ms here; generous for a loaded CI box


def test_reparse_tag_from_ea_size() -> None:
    link = FileIdBothDirectoryInformation("l", file_attributes=0x400, ea_size=0xA000000C)
    plain = FileIdBothDirectoryInformation("f", file_attributes=0x20, ea_size=12)
    assert link.reparse_tag == 0xA000000C
    assert plain.reparse_tag == 0
    assert FileNamesInformation("n").reparse_tag == 0
    assert FileDirectoryInformation("d", file_attributes=0x400).reparse_tag == 0
