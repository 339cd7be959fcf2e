"""File system information classes ([MS-FSCC] 2.5), queried with SMB2
QUERY_INFO InfoType SMB2_0_INFO_FILESYSTEM: ``statfs`` and the share's
capabilities (case sensitivity, reparse points, EAs, sparse files)."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from smbfs.proto.codec import Buffer, unpack, utf16
from smbfs.proto.fscc._util import name16
from smbfs.proto.fscc.attributes import FsInformationClass as FSC

__all__ = [
    "DeviceCharacteristics",
    "DeviceType",
    "FileFsAttributeInformation",
    "FileFsDeviceInformation",
    "FileFsFullSizeInformation",
    "FileFsSectorSizeInformation",
    "FileFsSizeInformation",
    "FileFsVolumeInformation",
    "FileSystemAttributes",
    "SectorSizeFlags",
]


class FileSystemAttributes(enum.IntFlag):
    """[MS-FSCC] 2.5.1 FileFsAttributeInformation FileSystemAttributes."""

    FILE_CASE_SENSITIVE_SEARCH = 0x00000001
    FILE_CASE_PRESERVED_NAMES = 0x00000002
    FILE_UNICODE_ON_DISK = 0x00000004
    FILE_PERSISTENT_ACLS = 0x00000008
    FILE_FILE_COMPRESSION = 0x00000010
    FILE_VOLUME_QUOTAS = 0x00000020
    FILE_SUPPORTS_SPARSE_FILES = 0x00000040
    FILE_SUPPORTS_REPARSE_POINTS = 0x00000080
    FILE_SUPPORTS_REMOTE_STORAGE = 0x00000100
    FILE_RETURNS_CLEANUP_RESULT_INFO = 0x00000200
    FILE_SUPPORTS_POSIX_UNLINK_RENAME = 0x00000400
    FILE_VOLUME_IS_COMPRESSED = 0x00008000
    FILE_SUPPORTS_OBJECT_IDS = 0x00010000
    FILE_SUPPORTS_ENCRYPTION = 0x00020000
    FILE_NAMED_STREAMS = 0x00040000
    FILE_READ_ONLY_VOLUME = 0x00080000
    FILE_SEQUENTIAL_WRITE_ONCE = 0x00100000
    FILE_SUPPORTS_TRANSACTIONS = 0x00200000
    FILE_SUPPORTS_HARD_LINKS = 0x00400000
    FILE_SUPPORTS_EXTENDED_ATTRIBUTES = 0x00800000
    FILE_SUPPORTS_OPEN_BY_FILE_ID = 0x01000000
    FILE_SUPPORTS_USN_JOURNAL = 0x02000000
    FILE_SUPPORTS_INTEGRITY_STREAMS = 0x04000000
    FILE_SUPPORTS_BLOCK_REFCOUNTING = 0x08000000
    FILE_SUPPORTS_SPARSE_VDL = 0x10000000
    FILE_DAX_VOLUME = 0x20000000
    FILE_SUPPORTS_GHOSTING = 0x40000000


class DeviceType(enum.IntEnum):
    """[MS-FSCC] 2.5.10 FileFsDeviceInformation DeviceType (common values)."""

    FILE_DEVICE_CD_ROM = 0x00000002
    FILE_DEVICE_DISK = 0x00000007


class DeviceCharacteristics(enum.IntFlag):
    """[MS-FSCC] 2.5.10 FileFsDeviceInformation Characteristics."""

    FILE_REMOVABLE_MEDIA = 0x00000001
    FILE_READ_ONLY_DEVICE = 0x00000002
    FILE_FLOPPY_DISKETTE = 0x00000004
    FILE_WRITE_ONCE_MEDIA = 0x00000008
    FILE_REMOTE_DEVICE = 0x00000010
    FILE_DEVICE_IS_MOUNTED = 0x00000020
    FILE_VIRTUAL_VOLUME = 0x00000040
    FILE_DEVICE_SECURE_OPEN = 0x00000100
    FILE_CHARACTERISTIC_TS_DEVICE = 0x00001000
    FILE_CHARACTERISTIC_WEBDAV_DEVICE = 0x00002000
    FILE_DEVICE_ALLOW_APPCONTAINER_TRAVERSAL = 0x00020000
    FILE_PORTABLE_DEVICE = 0x00040000


class SectorSizeFlags(enum.IntFlag):
    """[MS-FSCC] 2.5.7 FileFsSectorSizeInformation Flags."""

    SSINFO_FLAGS_ALIGNED_DEVICE = 0x00000001
    SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE = 0x00000002
    SSINFO_FLAGS_NO_SEEK_PENALTY = 0x00000004
    SSINFO_FLAGS_TRIM_ENABLED = 0x00000008


_VOLUME: Final = struct.Struct("<qIIBx")


@dataclass(slots=True)
class FileFsVolumeInformation:
    """[MS-FSCC] 2.5.9 FILE_FS_VOLUME_INFORMATION: creation time, serial
    number (a stable fsid candidate) and label."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsVolumeInformation

    volume_creation_time: int = 0
    volume_serial_number: int = 0
    supports_objects: bool = False
    volume_label: str = ""

    def encode(self) -> bytes:
        label = utf16(self.volume_label)
        return _VOLUME.pack(
            self.volume_creation_time, self.volume_serial_number, len(label),
            int(self.supports_objects),
        ) + label

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileFsVolumeInformation"
        t, serial, n, objs = unpack(_VOLUME, buf, offset, what)
        return cls(t, serial, objs != 0, name16(buf, offset + _VOLUME.size, n, what))


@dataclass(slots=True)
class FileFsSizeInformation:
    """[MS-FSCC] 2.5.8 FILE_FS_SIZE_INFORMATION (24 bytes)."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsSizeInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<qqII")
    SIZE: ClassVar[int] = 24

    total_allocation_units: int = 0
    available_allocation_units: int = 0
    sectors_per_allocation_unit: int = 0
    bytes_per_sector: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(
            self.total_allocation_units, self.available_allocation_units,
            self.sectors_per_allocation_unit, self.bytes_per_sector,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        return cls(*unpack(cls._ST, buf, offset, "FileFsSizeInformation"))


@dataclass(slots=True)
class FileFsFullSizeInformation:
    """[MS-FSCC] 2.5.4 FILE_FS_FULL_SIZE_INFORMATION (32 bytes): the caller's
    available units (quota-aware, for f_bavail) and the volume's (f_bfree)."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsFullSizeInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<qqqII")
    SIZE: ClassVar[int] = 32

    total_allocation_units: int = 0
    caller_available_allocation_units: int = 0
    actual_available_allocation_units: int = 0
    sectors_per_allocation_unit: int = 0
    bytes_per_sector: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(
            self.total_allocation_units, self.caller_available_allocation_units,
            self.actual_available_allocation_units, self.sectors_per_allocation_unit,
            self.bytes_per_sector,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        return cls(*unpack(cls._ST, buf, offset, "FileFsFullSizeInformation"))


_ATTRIBUTE: Final = struct.Struct("<IiI")


@dataclass(slots=True)
class FileFsAttributeInformation:
    """[MS-FSCC] 2.5.1 FILE_FS_ATTRIBUTE_INFORMATION: capability flags,
    MaximumComponentNameLength (f_namemax) and the file system name."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsAttributeInformation

    file_system_attributes: int = 0
    maximum_component_name_length: int = 255
    file_system_name: str = ""

    def encode(self) -> bytes:
        name = utf16(self.file_system_name)
        return _ATTRIBUTE.pack(
            self.file_system_attributes, self.maximum_component_name_length, len(name)
        ) + name

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileFsAttributeInformation"
        attrs, maxlen, n = unpack(_ATTRIBUTE, buf, offset, what)
        return cls(attrs, maxlen, name16(buf, offset + _ATTRIBUTE.size, n, what))

    @property
    def case_sensitive(self) -> bool:
        return bool(self.file_system_attributes & FileSystemAttributes.FILE_CASE_SENSITIVE_SEARCH)


@dataclass(slots=True)
class FileFsDeviceInformation:
    """[MS-FSCC] 2.5.10 FILE_FS_DEVICE_INFORMATION (8 bytes)."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsDeviceInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<II")
    SIZE: ClassVar[int] = 8

    device_type: int = DeviceType.FILE_DEVICE_DISK
    characteristics: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(self.device_type, self.characteristics)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        return cls(*unpack(cls._ST, buf, offset, "FileFsDeviceInformation"))


@dataclass(slots=True)
class FileFsSectorSizeInformation:
    """[MS-FSCC] 2.5.7 FILE_FS_SECTOR_SIZE_INFORMATION (28 bytes)."""

    INFO_CLASS: ClassVar[int] = FSC.FileFsSectorSizeInformation
    _ST: ClassVar[struct.Struct] = struct.Struct("<7I")
    SIZE: ClassVar[int] = 28

    logical_bytes_per_sector: int = 0
    physical_bytes_per_sector_for_atomicity: int = 0
    physical_bytes_per_sector_for_performance: int = 0
    file_system_effective_physical_bytes_per_sector_for_atomicity: int = 0
    flags: int = 0
    byte_offset_for_sector_alignment: int = 0
    byte_offset_for_partition_alignment: int = 0

    def encode(self) -> bytes:
        return self._ST.pack(
            self.logical_bytes_per_sector, self.physical_bytes_per_sector_for_atomicity,
            self.physical_bytes_per_sector_for_performance,
            self.file_system_effective_physical_bytes_per_sector_for_atomicity,
            self.flags, self.byte_offset_for_sector_alignment,
            self.byte_offset_for_partition_alignment,
        )

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        return cls(*unpack(cls._ST, buf, offset, "FileFsSectorSizeInformation"))
