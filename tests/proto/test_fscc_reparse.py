"""[MS-FSCC] 2.1.2 reparse data buffers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc.reparse import (
    SYMLINK_FLAG_RELATIVE,
    MountPointReparseBuffer,
    NfsSpecFileType,
    ReparseDataBuffer,
    ReparseTag,
    SymbolicLinkReparseBuffer,
    decode_reparse,
)

from .fuzzing import cut_and_overwritten, only_decode_error

paths = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
symlinks = st.builds(SymbolicLinkReparseBuffer, paths, paths, st.sampled_from([0, SYMLINK_FLAG_RELATIVE]))
mounts = st.builds(MountPointReparseBuffer, paths, paths)
ms_tags = st.integers(0x80000000, 0xFFFFFFFF).filter(
    lambda t: t not in (ReparseTag.IO_REPARSE_TAG_SYMLINK, ReparseTag.IO_REPARSE_TAG_MOUNT_POINT)
)
generic_ms = st.builds(ReparseDataBuffer, ms_tags, st.binary(max_size=100))
generic_other = st.builds(
    ReparseDataBuffer, st.integers(0, 0x7FFFFFFF), st.binary(max_size=100), st.binary(min_size=16, max_size=16)
)


@settings(max_examples=200)
@given(st.one_of(symlinks, mounts, generic_ms, generic_other))
def test_round_trip(v: object) -> None:
    raw = v.encode()  # type: ignore[attr-defined]
    assert decode_reparse(raw) == v
    assert type(v).decode(raw) == v  # type: ignore[attr-defined]
    assert decode_reparse(b"\x01\x02" + raw, 2) == v


def test_windows_style_symlink() -> None:
    """PrintName first in PathBuffer, as Windows lays it out; offsets decide."""
    prn = "..\\target".encode("utf-16-le")
    sub = "..\\target".encode("utf-16-le")
    body = struct.pack("<HHHHI", len(prn), len(sub), 0, len(prn), SYMLINK_FLAG_RELATIVE) + prn + sub
    raw = struct.pack("<IHH", 0xA000000C, len(body), 0) + body
    v = decode_reparse(raw)
    assert isinstance(v, SymbolicLinkReparseBuffer)
    assert v.substitute_name == "..\\target" and v.print_name == "..\\target"
    assert v.relative
    # An absolute NT path.
    sub = "\\??\\C:\\dir".encode("utf-16-le")
    prn = "C:\\dir".encode("utf-16-le")
    body = struct.pack("<HHHHI", 0, len(sub), len(sub), len(prn), 0) + sub + prn
    v = SymbolicLinkReparseBuffer.decode(struct.pack("<IHH", 0xA000000C, len(body), 0) + body)
    assert v == SymbolicLinkReparseBuffer("\\??\\C:\\dir", "C:\\dir", 0)


def test_mount_point_nul_terminated() -> None:
    raw = MountPointReparseBuffer("\\??\\D:\\x", "D:\\x").encode()
    sub_len = struct.unpack_from("<H", raw, 10)[0]
    assert sub_len == 2 * len("\\??\\D:\\x")
    # Each name is followed by a NUL WCHAR that the lengths do not count.
    assert raw[16 + sub_len : 18 + sub_len] == b"\x00\x00"


def test_nfs_and_lx_tags_kept_raw() -> None:
    data = struct.pack("<Q", NfsSpecFileType.NFS_SPECFILE_LNK) + "dest".encode("utf-16-le")
    raw = struct.pack("<IHH", ReparseTag.IO_REPARSE_TAG_NFS, len(data), 0) + data
    v = decode_reparse(raw)
    assert isinstance(v, ReparseDataBuffer)
    assert v.reparse_tag == 0x80000014 and v.data == data
    assert v.nfs_type == NfsSpecFileType.NFS_SPECFILE_LNK
    assert NfsSpecFileType.NFS_SPECFILE_LNK.to_bytes(8, "little")[:3] == b"LNK"
    lx = decode_reparse(struct.pack("<IHH", 0xA000001D, 4, 0) + b"\x02\x00\x00\x00")
    assert isinstance(lx, ReparseDataBuffer) and lx.nfs_type is None
    assert ReparseTag(0xA000001D) is ReparseTag.IO_REPARSE_TAG_LX_SYMLINK


def test_hostile() -> None:
    with pytest.raises(DecodeError):
        decode_reparse(struct.pack("<IHH", 0xA000000C, 100, 0) + bytes(20))
    # Names pointing outside PathBuffer.
    body = struct.pack("<HHHHI", 0xFFF0, 0x20, 0, 0, 0) + bytes(8)
    with pytest.raises(DecodeError, match="PathBuffer"):
        decode_reparse(struct.pack("<IHH", 0xA000000C, len(body), 0) + body)
    with pytest.raises(DecodeError):
        SymbolicLinkReparseBuffer.decode(MountPointReparseBuffer("a").encode())
    with pytest.raises(DecodeError):
        MountPointReparseBuffer.decode(SymbolicLinkReparseBuffer("a").encode())
    # Non-Microsoft tag without room for its GUID.
    with pytest.raises(DecodeError):
        decode_reparse(struct.pack("<IHH", 0x1234, 0, 0) + bytes(8))


@settings(max_examples=300)
@given(blob=st.binary(max_size=120))
def test_fuzz_random(blob: bytes) -> None:
    for fn in (decode_reparse, SymbolicLinkReparseBuffer.decode, MountPointReparseBuffer.decode):
        only_decode_error(fn, blob)


@settings(max_examples=200)
@given(v=st.one_of(symlinks, mounts), data=st.data())
def test_fuzz_mutated(v: SymbolicLinkReparseBuffer | MountPointReparseBuffer, data: st.DataObject) -> None:
    for bad in cut_and_overwritten(data, v.encode(), 4):
        only_decode_error(decode_reparse, bad)
