"""Extended attributes ([MS-FSCC] 2.4.15 FileFullEaInformation and 2.4.15.1
FILE_GET_EA_INFORMATION): how smbfs stores Linux ``user.*`` xattrs on a
share. SET_INFO / QUERY_INFO with FileFullEaInformation carry the values;
QUERY_INFO's InputBuffer carries a FILE_GET_EA_INFORMATION list to ask for
selected names.

Names are bytes (ASCII on every real server; the wire has no encoding
field), at most 255 bytes because EaNameLength is one byte, and are sent
NUL-terminated; values are at most 65535 bytes (EaValueLength is 16 bits).
Entries are 4-byte aligned.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final, Self

from smbfs.proto.codec import Buffer, DecodeError, need, unpack
from smbfs.proto.fscc._util import chain, next_offset
from smbfs.proto.fscc.attributes import FileInformationClass as FIC

__all__ = [
    "FILE_NEED_EA",
    "FileFullEaEntry",
    "FileFullEaInformation",
    "FileGetEaInformation",
]

# [MS-FSCC] 2.4.15 Flags: the file cannot be understood without this EA.
FILE_NEED_EA: Final = 0x00000080

_FULL: Final = struct.Struct("<IBBH")
_GET: Final = struct.Struct("<IB")
_NAME_MAX: Final = 255
_VALUE_MAX: Final = 0xFFFF


def _check_name(name: bytes) -> None:
    if not 0 < len(name) <= _NAME_MAX:
        raise ValueError(f"EA name must be 1..{_NAME_MAX} bytes, got {len(name)}")
    if b"\x00" in name:
        raise ValueError("EA name must not contain NUL")


def _nul_name(buf: Buffer, start: int, n: int, what: str) -> bytes:
    """The EaName bytes, checking the NUL terminator the spec requires after
    them (it is what tells a mis-parsed entry from a real one)."""
    need(buf, start, n + 1, what)
    if buf[start + n] != 0:
        raise DecodeError(f"{what}: EaName not NUL-terminated")
    return bytes(buf[start : start + n])


@dataclass(slots=True)
class FileFullEaEntry:
    """One FILE_FULL_EA_INFORMATION entry. An empty value in SET_INFO deletes
    the EA."""

    name: bytes
    value: bytes = b""
    flags: int = 0

    def _encode_one(self) -> bytes:
        _check_name(self.name)
        if len(self.value) > _VALUE_MAX:
            raise ValueError(f"EA value longer than {_VALUE_MAX} bytes")
        return (
            _FULL.pack(0, self.flags, len(self.name), len(self.value))
            + self.name + b"\x00" + bytes(self.value)
        )


@dataclass(slots=True)
class FileFullEaInformation:
    """[MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION list."""

    INFO_CLASS: ClassVar[int] = FIC.FileFullEaInformation

    entries: list[FileFullEaEntry] = field(default_factory=list)

    def encode(self) -> bytes:
        return chain([e._encode_one() for e in self.entries], 4)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileFullEaInformation"
        entries: list[FileFullEaEntry] = []
        n_buf = len(buf)
        if offset == n_buf:
            return cls(entries)
        pos = offset
        while pos >= 0:
            nxt, flags, nlen, vlen = unpack(_FULL, buf, pos, what)
            name = _nul_name(buf, pos + _FULL.size, nlen, what)
            vstart = pos + _FULL.size + nlen + 1
            need(buf, vstart, vlen, what)
            entries.append(FileFullEaEntry(name, bytes(buf[vstart : vstart + vlen]), flags))
            pos = next_offset(pos, nxt, _FULL.size + nlen + 1 + vlen, n_buf, what)
        return cls(entries)

    def as_dict(self) -> dict[bytes, bytes]:
        return {e.name: e.value for e in self.entries}


@dataclass(slots=True)
class FileGetEaInformation:
    """[MS-FSCC] 2.4.15.1 FILE_GET_EA_INFORMATION list: the EA names a
    QUERY_INFO (FileFullEaInformation) asks for."""

    names: list[bytes] = field(default_factory=list)

    def encode(self) -> bytes:
        parts: list[bytes] = []
        for n in self.names:
            _check_name(n)
            parts.append(_GET.pack(0, len(n)) + n + b"\x00")
        return chain(parts, 4)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "FileGetEaInformation"
        names: list[bytes] = []
        n_buf = len(buf)
        if offset == n_buf:
            return cls(names)
        pos = offset
        while pos >= 0:
            nxt, nlen = unpack(_GET, buf, pos, what)
            names.append(_nul_name(buf, pos + _GET.size, nlen, what))
            pos = next_offset(pos, nxt, _GET.size + nlen + 1, n_buf, what)
        return cls(names)
