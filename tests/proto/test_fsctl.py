"""FSCTL payload structures: round trips, layouts and hostile inputs."""

from __future__ import annotations

import ipaddress
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fileid import FileId
from smbfs.proto.fsctl import (
    AF_INET6,
    NETWORK_INTERFACE_INFO_SIZE,
    CtlCode,
    DfsReferral,
    DuplicateExtentsData,
    FileAllocatedRangeBuffer,
    FileSetSparseBuffer,
    FileZeroDataInformation,
    InterfaceCapability,
    NetworkInterfaceInfo,
    NetworkResiliencyRequest,
    ReferralEntryFlags,
    ReqGetDfsReferral,
    RespGetDfsReferral,
    SrvCopychunk,
    SrvCopychunkCopy,
    SrvCopychunkResponse,
    SrvRequestResumeKey,
    SrvSnapshotArray,
    ValidateNegotiateInfoRequest,
    ValidateNegotiateInfoResponse,
    decode_allocated_ranges,
    decode_network_interfaces,
    encode_allocated_ranges,
    encode_network_interfaces,
)

from .fuzzing import u16, u32, u64

i64 = st.integers(-(1 << 63), (1 << 63) - 1)
uuids = st.builds(uuid.UUID, bytes=st.binary(min_size=16, max_size=16))
# Strings as UTF-16 carries them, without NUL (the DFS terminator).
texts = st.text(st.characters(codec=None, exclude_categories=(), exclude_characters="\0"),
                max_size=20)


def cfc(n: int, f: int, m: int, a: int) -> int:
    """CTL_CODE as in [MS-FSCC] 2.3."""
    return (n << 16) | (a << 14) | (f << 2) | m


def test_ctl_codes() -> None:
    assert CtlCode.FSCTL_GET_REPARSE_POINT == cfc(9, 42, 0, 0)
    assert CtlCode.FSCTL_SET_REPARSE_POINT == cfc(9, 41, 0, 0)
    assert CtlCode.FSCTL_DELETE_REPARSE_POINT == cfc(9, 43, 0, 0)
    assert CtlCode.FSCTL_SET_SPARSE == cfc(9, 49, 0, 0)
    assert CtlCode.FSCTL_SET_ZERO_DATA == cfc(9, 50, 0, 2)
    assert CtlCode.FSCTL_QUERY_ALLOCATED_RANGES == cfc(9, 51, 3, 1)
    assert CtlCode.FSCTL_DUPLICATE_EXTENTS_TO_FILE == cfc(9, 209, 0, 2)
    assert CtlCode.FSCTL_PIPE_TRANSCEIVE == 0x0011C017
    assert CtlCode.FSCTL_VALIDATE_NEGOTIATE_INFO == 0x00140204


def test_validate_negotiate_info() -> None:
    g = uuid.UUID("12345678-1234-5678-1234-567812345678")
    req = ValidateNegotiateInfoRequest(0x7F, g, 1, [0x202, 0x210, 0x300, 0x302])
    raw = req.encode()
    assert len(raw) == 24 + 8 and raw[4:20] == g.bytes_le
    assert struct.unpack_from("<HH", raw, 20) == (1, 4)
    assert ValidateNegotiateInfoRequest.decode(raw) == req
    with pytest.raises(DecodeError):
        ValidateNegotiateInfoRequest.decode(raw[:-1])
    rsp = ValidateNegotiateInfoResponse(0x2F, g, 3, 0x302)
    assert len(rsp.encode()) == 24
    assert ValidateNegotiateInfoResponse.decode(rsp.encode()) == rsp


def test_network_resiliency() -> None:
    r = NetworkResiliencyRequest(60_000)
    assert r.encode() == struct.pack("<II", 60_000, 0)
    assert NetworkResiliencyRequest.decode(r.encode()) == r
    with pytest.raises(DecodeError):
        NetworkResiliencyRequest.decode(b"\0" * 7)


def test_network_interfaces() -> None:
    nics = [
        NetworkInterfaceInfo.for_address(1, InterfaceCapability.RSS_CAPABLE, 10_000_000_000,
                                         ipaddress.ip_address("192.168.1.5")),
        NetworkInterfaceInfo.for_address(2, 0, 1_000_000_000, ipaddress.ip_address("fe80::1")),
        NetworkInterfaceInfo(3, 2, 5, None, family=0x1234),
    ]
    raw = encode_network_interfaces(nics)
    assert len(raw) == 3 * NETWORK_INTERFACE_INFO_SIZE == 3 * 152
    # IPv4 in SOCKADDR_IN: family LE, then port, then the address in network order.
    assert raw[24:26] == b"\x02\x00" and raw[28:32] == bytes([192, 168, 1, 5])
    assert struct.unpack_from("<H", raw, 152 + 24)[0] == AF_INET6
    got = decode_network_interfaces(raw)
    assert got == nics and got[0].rss_capable and not got[0].rdma_capable
    assert decode_network_interfaces(b"") == []
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 0, 8)  # Next inside the entry
    with pytest.raises(DecodeError):
        decode_network_interfaces(bad)
    struct.pack_into("<I", bad, 0, 152 * 3)  # Next past the end
    with pytest.raises(DecodeError):
        decode_network_interfaces(bad)


def test_copychunk() -> None:
    key = bytes(range(24))
    rk = SrvRequestResumeKey(key)
    assert len(rk.encode()) == 28
    assert SrvRequestResumeKey.decode(rk.encode() + bytes(4)) == rk  # Windows pads
    assert SrvRequestResumeKey.decode(key + struct.pack("<I", 99)).context == b""
    copy = SrvCopychunkCopy(key, [SrvCopychunk(0, 4096, 1 << 20), SrvCopychunk(1, 2, 3)])
    raw = copy.encode()
    assert len(raw) == 32 + 2 * 24 and struct.unpack_from("<II", raw, 24) == (2, 0)
    assert SrvCopychunkCopy.decode(raw) == copy
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 24, 0xFFFFFFFF)  # 4 G chunks claimed
    with pytest.raises(DecodeError):
        SrvCopychunkCopy.decode(bad)
    r = SrvCopychunkResponse(256, 1 << 20, 16 << 20)
    assert SrvCopychunkResponse.decode(r.encode()) == r
    with pytest.raises(ValueError):
        SrvRequestResumeKey(b"short").encode()


def test_sparse_zero_ranges_dup() -> None:
    assert FileSetSparseBuffer().encode() == b"\x01"
    assert FileSetSparseBuffer.decode(b"") == FileSetSparseBuffer(True)
    assert FileSetSparseBuffer.decode(b"\x00") == FileSetSparseBuffer(False)
    z = FileZeroDataInformation(4096, 8192)
    assert z.encode() == struct.pack("<qq", 4096, 8192)
    assert FileZeroDataInformation.decode(z.encode()) == z
    ranges = [FileAllocatedRangeBuffer(0, 4096), FileAllocatedRangeBuffer(1 << 20, 65536)]
    raw = encode_allocated_ranges(ranges)
    assert decode_allocated_ranges(raw) == ranges and decode_allocated_ranges(b"") == []
    with pytest.raises(DecodeError):
        decode_allocated_ranges(raw[:-1])
    d = DuplicateExtentsData(FileId(1, 2), 0, 65536, 1 << 20)
    assert len(d.encode()) == 40 and DuplicateExtentsData.decode(d.encode()) == d


def test_snapshots() -> None:
    names = ["@GMT-2024.01.02-03.04.05", "@GMT-2025.12.31-23.59.59"]
    snap = SrvSnapshotArray.build(names)
    raw = snap.encode()
    assert struct.unpack_from("<III", raw) == (2, 2, 2 * 50 + 2)
    assert SrvSnapshotArray.decode(raw) == snap
    # Output buffer too small: counts and the needed size, no names.
    small = SrvSnapshotArray(5, [], 252)
    got = SrvSnapshotArray.decode(small.encode())
    assert got.snapshots == [] and got.required_output_size == 264
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 8, 0xFFFFFFFF)
    with pytest.raises(DecodeError):
        SrvSnapshotArray.decode(bad)
    struct.pack_into("<II", bad, 4, 3, 102)  # says 3 names, holds 2
    with pytest.raises(DecodeError):
        SrvSnapshotArray.decode(bad)


def test_dfs_request() -> None:
    req = ReqGetDfsReferral("\\server\\dfsroot\\link", 4)
    raw = req.encode()
    assert raw[:2] == b"\x04\x00" and raw.endswith(b"\0\0")
    assert ReqGetDfsReferral.decode(raw) == req
    with pytest.raises(DecodeError):
        ReqGetDfsReferral.decode(raw[:-2])  # no terminator


def test_dfs_response_v3_layout() -> None:
    refs = [
        DfsReferral(3, 1, 0, 600, "\\dom\\root", "\\dom\\root", "\\srv1\\root"),
        DfsReferral(3, 1, 0, 600, "\\dom\\root", "\\dom\\root", "\\srv2\\root"),
    ]
    rsp = RespGetDfsReferral(20, refs, 3)
    raw = rsp.encode()
    assert struct.unpack_from("<HHI", raw) == (20, 2, 3)
    assert struct.unpack_from("<HHHHI", raw, 8) == (3, 34, 1, 0, 600)
    # Offsets are relative to each entry: the first string follows both entries.
    p_off = struct.unpack_from("<H", raw, 8 + 12)[0]
    assert 8 + p_off == 8 + 2 * 34
    assert RespGetDfsReferral.decode(raw) == rsp


def test_dfs_response_other_versions() -> None:
    for ref in (
        DfsReferral(1, 0, 0, network_address="\\srv\\share"),
        DfsReferral(2, 1, 0, 300, "\\a", "\\b", "\\c"),
        DfsReferral(4, 0, ReferralEntryFlags.TargetSetBoundary, 60, "\\a", "\\a", "\\t"),
        DfsReferral(3, 0, ReferralEntryFlags.NameListReferral, 60, special_name="DOM",
                    expanded_names=["dc1.dom", "dc2.dom"]),
    ):
        rsp = RespGetDfsReferral(0, [ref, ref])
        assert RespGetDfsReferral.decode(rsp.encode()) == rsp


def test_dfs_response_hostile() -> None:
    raw = bytearray(RespGetDfsReferral(0, [DfsReferral(3, 0, 0, 1, "\\a", "\\b", "\\c")])
                    .encode())
    for off, fmt, value in (
        (2, "<H", 2),  # two referrals, one present
        (10, "<H", 10),  # Size smaller than a V3 entry
        (10, "<H", 0xFFFF),  # Size past the end
        (8, "<H", 9),  # unknown version
        (20, "<H", 0xFFFF),  # DFSPathOffset past the end
    ):
        bad = bytearray(raw)
        struct.pack_into(fmt, bad, off, value)
        with pytest.raises(DecodeError):
            RespGetDfsReferral.decode(bad)
    # Strip the final terminator: the last string never ends.
    with pytest.raises(DecodeError):
        RespGetDfsReferral.decode(raw[:-2])


def test_dfs_overlapping_strings_bounded() -> None:
    """Thousands of entries pointing into one long string stay cheap."""
    count = 1500
    entries = bytearray()
    string_area = 8 + count * 34
    long_name = "x" * 20000
    for i in range(count):
        pos = 8 + i * 34
        # Each entry points at a different place inside the long string.
        off = string_area + 2 * (i % 10000) - pos
        entries += struct.pack("<HHHHIHHH16s", 3, 34, 0, 0, 0, off, off, off, bytes(16))
    raw = struct.pack("<HHI", 0, count, 0) + bytes(entries) + (long_name + "\0").encode(
        "utf-16-le")
    with pytest.raises(DecodeError):
        RespGetDfsReferral.decode(raw)


@given(caps=u32, g=uuids, mode=u16, dialects=st.lists(u16, max_size=8))
def test_vni_roundtrip(caps: int, g: uuid.UUID, mode: int, dialects: list[int]) -> None:
    req = ValidateNegotiateInfoRequest(caps, g, mode, dialects)
    assert ValidateNegotiateInfoRequest.decode(req.encode()) == req
    rsp = ValidateNegotiateInfoResponse(caps, g, mode, dialects[0] if dialects else 0)
    assert ValidateNegotiateInfoResponse.decode(rsp.encode()) == rsp


nics = st.one_of(
    st.builds(NetworkInterfaceInfo.for_address, u32, u32, u64,
              st.builds(ipaddress.IPv4Address, u32)),
    st.builds(NetworkInterfaceInfo.for_address, u32, u32, u64,
              st.builds(ipaddress.IPv6Address, st.integers(0, (1 << 128) - 1))),
)


@given(lst=st.lists(nics, max_size=5))
def test_nic_roundtrip(lst: list[NetworkInterfaceInfo]) -> None:
    assert decode_network_interfaces(encode_network_interfaces(lst)) == lst


@given(key=st.binary(min_size=24, max_size=24),
       chunks=st.lists(st.builds(SrvCopychunk, u64, u64, u32), max_size=6),
       a=u32, b=u32, c=u32)
def test_copychunk_roundtrip(key: bytes, chunks: list[SrvCopychunk], a: int, b: int,
                             c: int) -> None:
    m = SrvCopychunkCopy(key, chunks)
    assert SrvCopychunkCopy.decode(m.encode()) == m
    assert SrvCopychunkResponse.decode(SrvCopychunkResponse(a, b, c).encode()) == \
        SrvCopychunkResponse(a, b, c)


@given(ranges=st.lists(st.builds(FileAllocatedRangeBuffer, i64, i64), max_size=8),
       a=i64, b=i64)
def test_ranges_roundtrip(ranges: list[FileAllocatedRangeBuffer], a: int, b: int) -> None:
    assert decode_allocated_ranges(encode_allocated_ranges(ranges)) == ranges
    z = FileZeroDataInformation(a, b)
    assert FileZeroDataInformation.decode(z.encode()) == z


names_nonempty = st.text(st.characters(codec=None, exclude_categories=(),
                                       exclude_characters="\0"), min_size=1, max_size=30)


@given(names=st.lists(names_nonempty, max_size=5))
def test_snapshot_roundtrip(names: list[str]) -> None:
    s = SrvSnapshotArray.build(names)
    assert SrvSnapshotArray.decode(s.encode()) == s


referrals = st.one_of(
    st.builds(DfsReferral, st.just(1), u16, st.just(0), network_address=texts),
    st.builds(DfsReferral, st.just(2), u16, u16, u32, texts, texts, texts),
    st.builds(DfsReferral, st.sampled_from([3, 4]), u16, st.just(0), u32, texts, texts, texts),
    st.builds(DfsReferral, st.sampled_from([3, 4]), u16, st.just(2), u32,
              special_name=texts, expanded_names=st.lists(texts, max_size=3)),
)


@given(consumed=u16, flags=u32, refs=st.lists(referrals, max_size=4), level=u16,
       name=texts)
def test_dfs_roundtrip(consumed: int, flags: int, refs: list[DfsReferral], level: int,
                       name: str) -> None:
    rsp = RespGetDfsReferral(consumed, refs, flags)
    assert RespGetDfsReferral.decode(rsp.encode()) == rsp
    assert ReqGetDfsReferral.decode(ReqGetDfsReferral(name, level).encode()) == \
        ReqGetDfsReferral(name, level)
