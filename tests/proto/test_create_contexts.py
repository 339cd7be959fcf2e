"""Create-context chains and every typed context: round trips in both
directions, layout rules, and fuzzing of the chain decoder."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.create_contexts import (
    SMB2_CREATE_APP_INSTANCE_ID,
    AnyCreateContext,
    CreateAllocationSize,
    CreateAppInstanceId,
    CreateAppInstanceVersion,
    CreateDurableHandleReconnect,
    CreateDurableHandleReconnectV2,
    CreateDurableHandleRequest,
    CreateDurableHandleRequestV2,
    CreateDurableHandleResponse,
    CreateDurableHandleResponseV2,
    CreateEaBuffer,
    CreateQueryMaximalAccessRequest,
    CreateQueryMaximalAccessResponse,
    CreateQueryOnDiskIdRequest,
    CreateQueryOnDiskIdResponse,
    CreateRequestLease,
    CreateRequestLeaseV2,
    CreateSdBuffer,
    CreateTimewarpToken,
    DurableHandleFlags,
    LeaseFlags,
    LeaseState,
    RawCreateContext,
    decode_create_contexts,
    encode_create_contexts,
    find_create_context,
)
from smbfs.proto.fileid import FileId

from .fuzzing import FUZZ, byte_flips, mutated, only_decode_error, truncations, u16, u32, u64

key16 = st.binary(min_size=16, max_size=16)
guids = st.builds(lambda b: uuid.UUID(bytes=b), key16)
file_ids = st.builds(FileId, u64, u64)

REQUEST_NAMES = {
    b"ExtA", b"SecD", b"DHnQ", b"DHnC", b"AlSi", b"MxAc", b"TWrp", b"QFid", b"RqLs",
    b"DH2Q", b"DH2C", SMB2_CREATE_APP_INSTANCE_ID,
    bytes.fromhex("B982D0B73B56074FA07B524A8116A010"),
}
RESPONSE_NAMES = {b"DHnQ", b"MxAc", b"QFid", b"RqLs", b"DH2Q"}

leases = st.one_of(
    st.builds(CreateRequestLease, key16, u32, u32, u64),
    st.builds(CreateRequestLeaseV2, key16, u32, u32, u64, key16, u16),
)
raw_names = st.binary(min_size=0, max_size=20)
request_contexts = st.one_of(
    st.builds(CreateEaBuffer, st.binary(max_size=60)),
    st.builds(CreateSdBuffer, st.binary(max_size=60)),
    st.just(CreateDurableHandleRequest()),
    st.builds(CreateDurableHandleReconnect, file_ids),
    st.builds(CreateAllocationSize, u64),
    st.builds(CreateQueryMaximalAccessRequest, st.none() | u64),
    st.builds(CreateTimewarpToken, u64),
    st.just(CreateQueryOnDiskIdRequest()),
    leases,
    st.builds(CreateDurableHandleRequestV2, u32, u32, guids),
    st.builds(CreateDurableHandleReconnectV2, file_ids, guids, u32),
    st.builds(CreateAppInstanceId, guids),
    st.builds(CreateAppInstanceVersion, u64, u64),
    st.builds(
        RawCreateContext, raw_names.filter(lambda n: n not in REQUEST_NAMES),
        st.binary(max_size=40),
    ),
)
response_contexts = st.one_of(
    st.just(CreateDurableHandleResponse()),
    st.builds(CreateQueryMaximalAccessResponse, u32, u32),
    st.builds(CreateQueryOnDiskIdResponse, u64, u64),
    leases,
    st.builds(CreateDurableHandleResponseV2, u32, u32),
    st.builds(
        RawCreateContext, raw_names.filter(lambda n: n not in RESPONSE_NAMES),
        st.binary(max_size=40),
    ),
)


@FUZZ
@given(st.lists(request_contexts, min_size=1, max_size=8))
def test_request_chain_roundtrip(ctxs: list[AnyCreateContext]) -> None:
    raw = encode_create_contexts(ctxs)
    assert decode_create_contexts(memoryview(raw), response=False) == ctxs
    _check_layout(raw, len(ctxs))


@FUZZ
@given(st.lists(response_contexts, min_size=1, max_size=8))
def test_response_chain_roundtrip(ctxs: list[AnyCreateContext]) -> None:
    raw = encode_create_contexts(ctxs)
    assert decode_create_contexts(raw, response=True) == ctxs
    _check_layout(raw, len(ctxs))


def _check_layout(raw: bytes, count: int) -> None:
    """[MS-SMB2] 2.2.13.2: each context, name and data 8-byte aligned; the
    last context's Next is 0."""
    pos = 0
    for i in range(count):
        nxt, name_off, _nl, _r, data_off, data_len = struct.unpack_from("<IHHHHI", raw, pos)
        assert (pos + name_off) % 8 == 0
        assert data_len == 0 or (pos + data_off) % 8 == 0
        if i == count - 1:
            assert nxt == 0
        else:
            assert nxt % 8 == 0 and nxt >= 16
            pos += nxt


def test_known_layouts() -> None:
    """Hand-built per the spec's field tables."""
    key = bytes(range(16))
    parent = bytes(range(16, 32))
    v2 = CreateRequestLeaseV2(
        key, LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_HANDLE_CACHING,
        LeaseFlags.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET, 0, parent, 3,
    )
    data = v2.encode_data()
    assert data == key + struct.pack("<IIQ", 3, 4, 0) + parent + b"\x03\x00\x00\x00"
    raw = encode_create_contexts([v2])
    assert raw[:16] == struct.pack("<IHHHHI", 0, 16, 4, 0, 24, 52)
    assert raw[16:24] == b"RqLs\0\0\0\0" and raw[24:] == data

    guid = uuid.UUID("12345678-9abc-def0-1122-334455667788")
    dh2q = CreateDurableHandleRequestV2(
        0, DurableHandleFlags.SMB2_DHANDLE_FLAG_PERSISTENT, guid
    )
    assert dh2q.encode_data() == struct.pack("<II", 0, 2) + bytes(8) + guid.bytes_le

    dh2c = CreateDurableHandleReconnectV2(FileId(1, 2), guid, 2)
    assert dh2c.encode_data() == struct.pack("<QQ", 1, 2) + guid.bytes_le + b"\x02\0\0\0"

    app = CreateAppInstanceId(guid)
    assert app.encode_data() == b"\x14\x00\x00\x00" + guid.bytes_le
    raw = encode_create_contexts([app])
    assert struct.unpack_from("<IHHHHI", raw) == (0, 16, 16, 0, 32, 20)
    assert raw[16:32] == SMB2_CREATE_APP_INSTANCE_ID

    assert CreateDurableHandleRequest().encode_data() == bytes(16)
    assert CreateDurableHandleResponse().encode_data() == bytes(8)
    assert CreateQueryMaximalAccessRequest().encode_data() == b""
    raw = encode_create_contexts([CreateQueryOnDiskIdRequest()])
    # No data: DataOffset and DataLength 0, the name ends the context.
    assert raw == struct.pack("<IHHHHI", 0, 16, 4, 0, 0, 0) + b"QFid"


def test_lease_version_by_length() -> None:
    v1 = CreateRequestLease(b"k" * 16, 1, 0, 0)
    v2 = CreateRequestLeaseV2(b"k" * 16, 1, 0, 0, b"p" * 16, 9)
    for response in (False, True):
        got = decode_create_contexts(encode_create_contexts([v1, v2]), response=response)
        assert [type(c) for c in got] == [CreateRequestLease, CreateRequestLeaseV2]
    short = RawCreateContext(b"RqLs", bytes(20))
    with pytest.raises(DecodeError):
        decode_create_contexts(encode_create_contexts([short]), response=True)


def test_direction_tables() -> None:
    """DHnQ and DH2Q have different layouts in each direction."""
    raw = encode_create_contexts([CreateDurableHandleResponseV2(60000, 0)])
    assert decode_create_contexts(raw, response=True) == [
        CreateDurableHandleResponseV2(60000, 0)
    ]
    with pytest.raises(DecodeError):  # 8 bytes is too short for a DH2Q request
        decode_create_contexts(raw, response=False)
    raw = encode_create_contexts([CreateEaBuffer(b"x")])
    assert decode_create_contexts(raw, response=True) == [RawCreateContext(b"ExtA", b"x")]


def test_find() -> None:
    ctxs: list[AnyCreateContext] = [
        RawCreateContext(b"ZZZZ"), CreateQueryOnDiskIdResponse(1, 2)
    ]
    assert find_create_context(ctxs, CreateQueryOnDiskIdResponse) == ctxs[1]
    assert find_create_context(ctxs, CreateRequestLeaseV2) is None


def test_bad_next_and_offsets() -> None:
    raw = bytearray(encode_create_contexts([CreateAllocationSize(1), CreateAllocationSize(2)]))
    for nxt in (1, 8, 15, 0xFFFFFFFF, len(raw)):
        bad = bytearray(raw)
        struct.pack_into("<I", bad, 0, nxt)
        with pytest.raises(DecodeError):
            decode_create_contexts(bytes(bad), response=False)
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 12, 0xFFFFFFFF)  # DataLength 4 GiB
    with pytest.raises(DecodeError):
        decode_create_contexts(bytes(bad), response=False)
    bad = bytearray(raw)
    struct.pack_into("<H", bad, 10, 0xFFF8)  # DataOffset far outside
    with pytest.raises(DecodeError):
        decode_create_contexts(bytes(bad), response=False)
    # Data of the first context may not reach into the second one.
    bad = bytearray(raw)
    struct.pack_into("<I", bad, 12, 16)
    with pytest.raises(DecodeError):
        decode_create_contexts(bytes(bad), response=False)


def _try(data: bytes, response: bool) -> None:
    only_decode_error(decode_create_contexts, memoryview(data), response=response)


@FUZZ
@given(st.data())
def test_fuzz_mutated(data: st.DataObject) -> None:
    req = encode_create_contexts(data.draw(st.lists(request_contexts, min_size=1, max_size=5)))
    _try(data.draw(mutated(req, 0)), False)
    _try(data.draw(mutated(req, 0)), True)
    resp = encode_create_contexts(data.draw(st.lists(response_contexts, min_size=1, max_size=5)))
    _try(data.draw(mutated(resp, 0)), True)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random(raw: bytes) -> None:
    _try(raw, False)
    _try(raw, True)


def test_truncate_and_flip_every_byte() -> None:
    sample = encode_create_contexts([
        CreateQueryMaximalAccessRequest(5), CreateRequestLeaseV2(b"k" * 16, 7),
        CreateDurableHandleRequestV2(0, 2, uuid.UUID(int=7)), CreateAppInstanceId(),
    ])
    for cut in truncations(sample):
        _try(cut, False)
    for flipped in byte_flips(sample, 0):
        _try(flipped, False)
        _try(flipped, True)
