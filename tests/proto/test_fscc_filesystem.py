"""[MS-FSCC] 2.5 file system information classes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc.attributes import FsInformationClass
from smbfs.proto.fscc.filesystem import (
    FileFsAttributeInformation,
    FileFsDeviceInformation,
    FileFsFullSizeInformation,
    FileFsSectorSizeInformation,
    FileFsSizeInformation,
    FileFsVolumeInformation,
    FileSystemAttributes,
)

from .fuzzing import only_decode_error, u32

i64 = st.integers(-(2**63), 2**63 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
names = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=32)

STRATEGIES: dict[type, Any] = {
    FileFsVolumeInformation: st.builds(FileFsVolumeInformation, i64, u32, st.booleans(), names),
    FileFsSizeInformation: st.builds(FileFsSizeInformation, i64, i64, u32, u32),
    FileFsFullSizeInformation: st.builds(FileFsFullSizeInformation, i64, i64, i64, u32, u32),
    FileFsAttributeInformation: st.builds(FileFsAttributeInformation, u32, i32, names),
    FileFsDeviceInformation: st.builds(FileFsDeviceInformation, u32, u32),
    FileFsSectorSizeInformation: st.builds(
        FileFsSectorSizeInformation, u32, u32, u32, u32, u32, u32, u32
    ),
}
CLASSES = list(STRATEGIES)
ids = [c.__name__ for c in CLASSES]


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@settings(max_examples=100)
@given(data=st.data())
def test_round_trip(cls: Any, data: st.DataObject) -> None:
    v = data.draw(STRATEGIES[cls])
    raw = v.encode()
    assert cls.decode(raw) == v
    assert cls.decode(b"\x00" + raw, 1) == v
    if hasattr(cls, "SIZE"):
        assert len(raw) == cls.SIZE


@pytest.mark.parametrize("cls", CLASSES, ids=ids)
@settings(max_examples=300)
@given(blob=st.binary(max_size=120))
def test_fuzz(cls: Any, blob: bytes) -> None:
    only_decode_error(cls.decode, blob)


def test_info_class_numbers() -> None:
    assert FileFsVolumeInformation.INFO_CLASS == FsInformationClass.FileFsVolumeInformation == 1
    assert FileFsSizeInformation.INFO_CLASS == 3
    assert FileFsDeviceInformation.INFO_CLASS == 4
    assert FileFsAttributeInformation.INFO_CLASS == 5
    assert FileFsFullSizeInformation.INFO_CLASS == 7
    assert FileFsSectorSizeInformation.INFO_CLASS == 11


def test_attribute_information_samba_like() -> None:
    """What a Samba share on ext4 typically answers (hand-built bytes)."""
    flags = (
        FileSystemAttributes.FILE_CASE_SENSITIVE_SEARCH
        | FileSystemAttributes.FILE_CASE_PRESERVED_NAMES
        | FileSystemAttributes.FILE_UNICODE_ON_DISK
        | FileSystemAttributes.FILE_PERSISTENT_ACLS
        | FileSystemAttributes.FILE_SUPPORTS_SPARSE_FILES
        | FileSystemAttributes.FILE_SUPPORTS_REPARSE_POINTS
        | FileSystemAttributes.FILE_SUPPORTS_EXTENDED_ATTRIBUTES
    )
    raw = struct.pack("<IiI", flags, 255, 8) + "NTFS".encode("utf-16-le")
    a = FileFsAttributeInformation.decode(raw)
    assert a.file_system_name == "NTFS"
    assert a.maximum_component_name_length == 255
    assert a.case_sensitive
    assert a.file_system_attributes & FileSystemAttributes.FILE_SUPPORTS_EXTENDED_ATTRIBUTES
    assert flags == 0x008000CF
    with pytest.raises(DecodeError):
        FileFsAttributeInformation.decode(raw[:-1])


def test_volume_layout() -> None:
    v = FileFsVolumeInformation(1, 0xDEADBEEF, False, "share")
    raw = v.encode()
    assert raw[:18] == struct.pack("<qIIBB", 1, 0xDEADBEEF, 10, 0, 0)
    assert raw[18:] == "share".encode("utf-16-le")
