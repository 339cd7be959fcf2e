"""[MS-FSCC] file information classes: round trips, hand-made bytes, fuzzing."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc import time as ft
from smbfs.proto.fscc.attributes import FileAttributes, FileInformationClass
from smbfs.proto.fscc.file_info import (
    FILE_DISPOSITION_DELETE,
    FILE_DISPOSITION_POSIX_SEMANTICS,
    FileAccessInformation,
    FileAlignmentInformation,
    FileAllInformation,
    FileAllocationInformation,
    FileAttributeTagInformation,
    FileBasicInformation,
    FileDispositionInformation,
    FileDispositionInformationEx,
    FileEaInformation,
    FileEndOfFileInformation,
    FileInternalInformation,
    FileLinkInformation,
    FileModeInformation,
    FileNameInformation,
    FileNetworkOpenInformation,
    FilePositionInformation,
    FileRenameInformation,
    FileStandardInformation,
    FileStreamEntry,
    FileStreamInformation,
)

from .fuzzing import cut_and_overwritten, only_decode_error, u32, u64

i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)

basic = st.builds(FileBasicInformation, i64, i64, i64, i64, u32)
standard = st.builds(FileStandardInformation, i64, i64, u32, st.booleans(), st.booleans())
STRATEGIES: dict[type, Any] = {
    FileBasicInformation: basic,
    FileStandardInformation: standard,
    FileNetworkOpenInformation: st.builds(FileNetworkOpenInformation, i64, i64, i64, i64, i64, i64, u32),
    FileInternalInformation: st.builds(FileInternalInformation, u64),
    FileEaInformation: st.builds(FileEaInformation, u32),
    FileAccessInformation: st.builds(FileAccessInformation, u32),
    FilePositionInformation: st.builds(FilePositionInformation, i64),
    FileModeInformation: st.builds(FileModeInformation, u32),
    FileAlignmentInformation: st.builds(FileAlignmentInformation, u32),
    FileEndOfFileInformation: st.builds(FileEndOfFileInformation, i64),
    FileAllocationInformation: st.builds(FileAllocationInformation, i64),
    FileDispositionInformation: st.builds(FileDispositionInformation, st.booleans()),
    FileDispositionInformationEx: st.builds(FileDispositionInformationEx, u32),
    FileAttributeTagInformation: st.builds(FileAttributeTagInformation, u32, u32),
    FileNameInformation: st.builds(FileNameInformation, names),
    FileRenameInformation: st.builds(FileRenameInformation, names, st.booleans(), u64),
    FileLinkInformation: st.builds(FileLinkInformation, names, st.booleans(), u64),
    FileAllInformation: st.builds(
        FileAllInformation, basic, standard,
        st.builds(FileInternalInformation, u64), st.builds(FileEaInformation, u32),
        st.builds(FileAccessInformation, u32), st.builds(FilePositionInformation, i64),
        st.builds(FileModeInformation, u32), st.builds(FileAlignmentInformation, u32),
        st.builds(FileNameInformation, names),
    ),
    FileStreamInformation: st.builds(
        FileStreamInformation,
        st.lists(st.builds(FileStreamEntry, names, i64, i64), max_size=6),
    ),
}


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=100)
@given(data=st.data())
def test_round_trip(cls: type, data: st.DataObject) -> None:
    value = data.draw(STRATEGIES[cls])
    raw = value.encode()
    assert cls.decode(raw) == value
    # Decoding at an offset inside a larger buffer gives the same value.
    if raw:
        assert cls.decode(b"\xaa" * 3 + raw + b"\xbb", 3) == value
    if hasattr(cls, "SIZE"):
        assert len(raw) == cls.SIZE


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=300)
@given(blob=st.binary(max_size=300))
def test_fuzz_random(cls: type, blob: bytes) -> None:
    only_decode_error(cls.decode, blob)


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=150)
@given(data=st.data())
def test_fuzz_truncated_and_mutated(cls: type, data: st.DataObject) -> None:
    for bad in cut_and_overwritten(data, data.draw(STRATEGIES[cls]).encode(), 4):
        only_decode_error(cls.decode, bad)


def test_truncated_fixed_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        FileBasicInformation.decode(bytes(39))
    with pytest.raises(DecodeError):
        FileDispositionInformation.decode(b"")
    with pytest.raises(DecodeError):
        FileNetworkOpenInformation.decode(bytes(100), 50)


def test_basic_layout() -> None:
    b = FileBasicInformation(1, 2, 3, 4, FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
    assert b.encode() == struct.pack("<qqqqII", 1, 2, 3, 4, 0x10, 0)
    # SET_INFO's "do not change" / "stop automatic update" values survive.
    b = FileBasicInformation(0, ft.FILETIME_DISABLE_UPDATE, 0, ft.FILETIME_ENABLE_UPDATE, 0)
    assert b.encode()[8:16] == b"\xff" * 8
    assert FileBasicInformation.decode(b.encode()) == b


def test_standard_layout() -> None:
    raw = struct.pack("<qqIBBH", 4096, 10, 1, 0, 1, 0)
    s = FileStandardInformation.decode(raw)
    assert s == FileStandardInformation(4096, 10, 1, False, True)


def test_rename_smb2_form() -> None:
    """FILE_RENAME_INFORMATION_TYPE_2: 1-byte flag, 7 reserved, 8-byte root,
    4-byte length, then the name; padded to at least 24 bytes."""
    r = FileRenameInformation("a", replace_if_exists=True)
    raw = r.encode()
    assert raw[:1] == b"\x01" and raw[1:16] == bytes(15)
    assert raw[16:20] == struct.pack("<I", 2)
    assert raw[20:22] == b"a\x00"
    assert len(raw) == 24
    long = FileRenameInformation("dir\\new name.txt")
    assert len(long.encode()) == 20 + 2 * len("dir\\new name.txt")
    with pytest.raises(DecodeError):
        FileRenameInformation.decode(raw[:16] + b"\xff\xff\xff\x7f" + raw[20:])
    assert FileRenameInformation.INFO_CLASS == FileInformationClass.FileRenameInformation == 10
    assert FileLinkInformation.INFO_CLASS == 11


def test_disposition() -> None:
    assert FileDispositionInformation().encode() == b"\x01"
    assert FileDispositionInformation(False).encode() == b"\x00"
    assert FileDispositionInformation.decode(b"\x02").delete_pending
    ex = FileDispositionInformationEx(FILE_DISPOSITION_DELETE | FILE_DISPOSITION_POSIX_SEMANTICS)
    assert ex.encode() == b"\x03\x00\x00\x00"
    assert FileDispositionInformationEx.INFO_CLASS == 64


def test_all_information_layout() -> None:
    a = FileAllInformation(
        basic=FileBasicInformation(1, 2, 3, 4, 0x20),
        standard=FileStandardInformation(8, 5, 1, False, False),
        internal=FileInternalInformation(0x1122334455667788),
        name=FileNameInformation("\\dir\\f"),
    )
    raw = a.encode()
    assert len(raw) == 100 + 12
    assert raw[64:72] == struct.pack("<Q", 0x1122334455667788)
    assert raw[96:100] == struct.pack("<I", 12)
    # A FileNameLength past the end (as in a truncated BUFFER_OVERFLOW reply).
    with pytest.raises(DecodeError):
        FileAllInformation.decode(raw[:-2])


def test_stream_list() -> None:
    s = FileStreamInformation([FileStreamEntry("::$DATA", 5, 8), FileStreamEntry(":x:$DATA", 0, 0)])
    raw = s.encode()
    first_next = struct.unpack_from("<I", raw)[0]
    assert first_next % 8 == 0 and first_next >= 24 + 14
    assert FileStreamInformation.decode(raw) == s
    assert FileStreamInformation.decode(b"") == FileStreamInformation([])


def test_stream_list_loops_rejected() -> None:
    entry = struct.pack("<IIqq", 0, 2, 0, 0) + b"a\x00"
    # NextEntryOffset pointing back at itself (0 would end; use a too-small step).
    looping = struct.pack("<I", 4) + entry[4:] + bytes(64)
    with pytest.raises(DecodeError):
        FileStreamInformation.decode(looping)
    outside = struct.pack("<I", 32) + entry[4:] + bytes(4)
    with pytest.raises(DecodeError):
        FileStreamInformation.decode(outside)


# --- FILETIME -------------------------------------------------------------


def test_filetime_epoch() -> None:
    assert ft.filetime_to_ns(116444736000000000) == 0
    assert ft.ns_to_filetime(0) == 116444736000000000
    assert ft.filetime_to_ns(0) is None
    assert ft.ns_to_filetime(None) == 0
    # 2000-01-01T00:00:00Z is 946684800 s after the Unix epoch.
    assert ft.filetime_to_ns(125911584000000000) == 946684800 * 10**9


def test_filetime_datetime() -> None:
    import datetime as dt

    d = dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=dt.UTC)
    f = ft.datetime_to_filetime(d)
    assert ft.filetime_to_datetime(f) == d
    assert ft.filetime_to_datetime(0) is None
    assert ft.datetime_to_filetime(None) == 0
    assert ft.datetime_to_filetime(d.replace(tzinfo=None)) == f


@settings(max_examples=300)
@given(st.integers(-(2**62), 2**62))
def test_filetime_ns_exact(ticks: int) -> None:
    """Whole-100 ns values round-trip exactly; others truncate toward the past."""
    ns = ticks * 100
    f = ft.ns_to_filetime(ns)
    if f != 0:
        assert ft.filetime_to_ns(f) == ns
    assert ft.ns_to_filetime(ns + 99) == f
