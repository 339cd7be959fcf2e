"""CREATE request/response: round trips, a real exchange with Samba, limits
and fuzzing."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.create import (
    GENERIC_READ,
    GENERIC_WRITE,
    MAXIMUM_ALLOWED,
    AccessMask,
    CreateAction,
    CreateDisposition,
    CreateOptions,
    CreateRequest,
    CreateResponse,
    FileId,
    ImpersonationLevel,
    OplockLevel,
    ShareAccess,
)
from smbfs.proto.create_contexts import (
    CreateAllocationSize,
    CreateDurableHandleRequestV2,
    CreateDurableHandleResponseV2,
    CreateQueryMaximalAccessRequest,
    CreateQueryMaximalAccessResponse,
    CreateQueryOnDiskIdRequest,
    CreateQueryOnDiskIdResponse,
    CreateRequestLeaseV2,
    LeaseState,
    RawCreateContext,
)

from .fuzzing import (
    FUZZ,
    HDR,
    byte_flips,
    mutated,
    peak_allocation_below,
    truncations,
    try_decode,
    u8,
    u32,
    u64,
)

key16 = st.binary(min_size=16, max_size=16)
guids = st.builds(lambda b: uuid.UUID(bytes=b), key16)

request_ctx = st.one_of(
    st.builds(CreateQueryMaximalAccessRequest, st.none() | u64),
    st.just(CreateQueryOnDiskIdRequest()),
    st.builds(CreateRequestLeaseV2, key16, u32, u32, u64, key16, st.integers(0, 0xFFFF)),
    st.builds(CreateDurableHandleRequestV2, u32, u32, guids),
    st.builds(CreateAllocationSize, u64),
    st.builds(RawCreateContext, st.just(b"ZZZZ"), st.binary(max_size=30)),
)
response_ctx = st.one_of(
    st.builds(CreateQueryMaximalAccessResponse, u32, u32),
    st.builds(CreateQueryOnDiskIdResponse, u64, u64),
    st.builds(CreateRequestLeaseV2, key16, u32, u32, u64, key16, st.integers(0, 0xFFFF)),
    st.builds(CreateDurableHandleResponseV2, u32, u32),
    st.builds(RawCreateContext, st.just(b"ExtA"), st.binary(max_size=30)),
)
requests = st.builds(
    CreateRequest,
    name=st.text(max_size=60),
    desired_access=u32, file_attributes=u32, share_access=u32,
    create_disposition=u32, create_options=u32, requested_oplock_level=u8,
    impersonation_level=u32, create_contexts=st.lists(request_ctx, max_size=5),
    security_flags=u8, smb_create_flags=u64,
)
responses = st.builds(
    CreateResponse,
    file_id=st.builds(FileId, u64, u64), oplock_level=u8, flags=u8,
    create_action=u32, creation_time=u64, last_access_time=u64, last_write_time=u64,
    change_time=u64, allocation_size=u64, end_of_file=u64, file_attributes=u32,
    create_contexts=st.lists(response_ctx, max_size=5),
)


@FUZZ
@given(requests)
def test_request_roundtrip(req: CreateRequest) -> None:
    body = req.encode()
    assert len(body) >= 57
    assert CreateRequest.decode(memoryview(HDR + body)) == req
    if req.create_contexts:
        (ctx_offset,) = struct.unpack_from("<I", body, 48)
        assert ctx_offset % 8 == 0


@FUZZ
@given(responses)
def test_response_roundtrip(resp: CreateResponse) -> None:
    assert CreateResponse.decode(HDR + resp.encode()) == resp


def test_request_layout() -> None:
    req = CreateRequest(
        "a\\b", desired_access=GENERIC_READ, share_access=ShareAccess.FILE_SHARE_READ,
        create_disposition=CreateDisposition.FILE_OPEN,
        create_options=CreateOptions.FILE_NON_DIRECTORY_FILE,
        create_contexts=[CreateQueryOnDiskIdRequest()],
    )
    body = req.encode()
    assert struct.unpack_from("<HBBIQQIIIIIHHII", body) == (
        57, 0, 0, ImpersonationLevel.Impersonation, 0, 0, 0x80000000, 0, 1, 1, 0x40,
        120, 6, 128, 20,
    )
    assert body[56:62] == "a\\b".encode("utf-16-le") and body[62:64] == b"\0\0"
    # The root: empty name, one Buffer byte.
    assert len(CreateRequest("").encode()) == 57


def test_access_mask_values() -> None:
    assert AccessMask.FILE_LIST_DIRECTORY == AccessMask.FILE_READ_DATA == 1
    assert MAXIMUM_ALLOWED == 0x02000000 and GENERIC_WRITE == 0x40000000
    assert AccessMask.GENERIC_ALL == 0x10000000
    assert OplockLevel.SMB2_OPLOCK_LEVEL_LEASE == 0xFF
    assert hash(FileId(1, 2)) == hash(FileId(1, 2))


SAMBA_CREATE_REQUEST = bytes.fromhex(
    "fe534d4240000100000000000500400000000000000000000500000000000000"
    "00000000027a697bc2509de50000000000000000000000000000000000000000"
    "390000ff0200000000000000000000000000000000000000000000c000000000"
    "07000000030000000000000078000a0088000000d800000078002e0074007800"
    "7400000000000000180000001000040000000000000000004d78416300000000"
    "1800000010000400000000000000000051466964000000005000000010000400"
    "000018003400000052714c730000000031903fbbfb7a6aafcbeb127768e24519"
    "0700000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000380000001000040000001800200000004448325100000000"
    "000000000000000000000000000000002c4e4fc0282c1b46a1768c8491b68ba8"
    "00000000100004000000180008000000416c5369000000000010000000000000"
)
SAMBA_CREATE_RESPONSE = bytes.fromhex(
    "fe534d4240000100000000000500400001000000000000000500000000000000"
    "00000000027a697bc2509de50000000000000000000000000000000000000000"
    "5900ff0001000000e2bee4c6ee79dd01e2bee4c6ee79dd01e2bee4c6ee79dd01"
    "e2bee4c6ee79dd01000000000000000000000000000000002000000000000000"
    "b39359720000000048e86e130000000098000000c40000002000000010000400"
    "00001800080000004d7841630000000000000000ff011f002000000010000400"
    "0000180008000000444832510000000060ea0000000000003800000010000400"
    "0000180020000000514669640000000092c420000000000000fe000000000000"
    "0000000000000000000000000000000000000000100004000000180034000000"
    "52714c730000000031903fbbfb7a6aafcbeb127768e245190700000000000000"
    "00000000000000000000000000000000000000000000000001000000"
)
SAMBA_CREATE_DIR_RESPONSE = bytes.fromhex(
    "fe534d4240000100000000000500400001000000000000000700000000000000"
    "00000000027a697bc2509de50000000000000000000000000000000000000000"
    "5900000001000000e2bee4c6ee79dd012ed1e4c6ee79dd01e2bee4c6ee79dd01"
    "e2bee4c6ee79dd01000000000000000000000000000000001000000000000000"
    "ed8b97ad000000009b70aa56000000000000000000000000"
)
SAMBA_CREATE_ROOT_REQUEST = bytes.fromhex(
    "fe534d4240000100000000000500400000000000000000000700000000000000"
    "00000000027a697bc2509de50000000000000000000000000000000000000000"
    "3900000002000000000000000000000000000000000000000000000000000000"
    "00000000010000000000000078000000000000000000000000"
)


def test_samba_exchange() -> None:
    """A CREATE with MxAc, QFid, RqLs v2, DH2Q and AlSi sent by this
    package to Samba 4.17 (SMB 3.0.2), and Samba's reply (headers included)."""
    req = CreateRequest.decode(SAMBA_CREATE_REQUEST)
    assert req.name == "x.txt"
    assert req.requested_oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_LEASE
    assert req.create_disposition == CreateDisposition.FILE_OPEN_IF
    assert [type(c) for c in req.create_contexts] == [
        CreateQueryMaximalAccessRequest, CreateQueryOnDiskIdRequest,
        CreateRequestLeaseV2, CreateDurableHandleRequestV2, CreateAllocationSize,
    ]
    assert SAMBA_CREATE_REQUEST[:64] + req.encode() == SAMBA_CREATE_REQUEST

    resp = CreateResponse.decode(SAMBA_CREATE_RESPONSE)
    assert resp.create_action == CreateAction.FILE_OPENED  # x.txt existed
    assert resp.oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_LEASE
    assert resp.file_attributes == 0x20 and resp.end_of_file == 0
    assert resp.file_id == FileId(0x725993B3, 0x136EE848)
    mxac = resp.context(CreateQueryMaximalAccessResponse)
    assert mxac == CreateQueryMaximalAccessResponse(0, 0x001F01FF)
    assert resp.context(CreateDurableHandleResponseV2) == CreateDurableHandleResponseV2(
        60000, 0
    )
    qfid = resp.context(CreateQueryOnDiskIdResponse)
    assert qfid is not None and qfid.disk_file_id != 0
    lease = resp.context(CreateRequestLeaseV2)
    assert lease is not None and lease.epoch == 1
    assert lease.lease_state == LeaseState.SMB2_LEASE_READ_CACHING | (
        LeaseState.SMB2_LEASE_HANDLE_CACHING | LeaseState.SMB2_LEASE_WRITE_CACHING
    )
    assert isinstance(req.create_contexts[2], CreateRequestLeaseV2)
    assert lease.lease_key == req.create_contexts[2].lease_key

    root = CreateRequest.decode(SAMBA_CREATE_ROOT_REQUEST)
    assert root.name == "" and root.create_contexts == []
    d = CreateResponse.decode(SAMBA_CREATE_DIR_RESPONSE)
    assert d.create_action == CreateAction.FILE_OPENED and d.file_attributes == 0x10
    assert d.create_contexts == []


def test_four_gib_lengths_do_not_allocate() -> None:
    """CreateContextsLength / NameLength / DataLength at their maxima fail
    with DecodeError and allocate nothing of that size."""
    body = bytearray(
        CreateResponse(create_contexts=[CreateAllocationSize(1)]).encode()
    )
    cases = []
    bad = bytearray(body)
    struct.pack_into("<I", bad, 84, 0xFFFFFFFF)  # CreateContextsLength
    cases.append(bad)
    bad = bytearray(body)
    struct.pack_into("<I", bad, 80, 0xFFFFFFF0)  # CreateContextsOffset
    cases.append(bad)
    bad = bytearray(body)
    struct.pack_into("<I", bad, 88 + 12, 0xFFFFFFFF)  # context DataLength
    cases.append(bad)
    with peak_allocation_below():
        for case in cases:
            with pytest.raises(DecodeError):
                CreateResponse.decode(HDR + bytes(case))
    req = bytearray(CreateRequest("abc").encode())
    struct.pack_into("<HH", req, 44, 120, 0xFFFF)  # NameLength
    with pytest.raises(DecodeError):
        CreateRequest.decode(HDR + bytes(req))


@FUZZ
@given(st.data())
def test_fuzz_mutated(data: st.DataObject) -> None:
    try_decode(CreateRequest.decode, data.draw(mutated(HDR + data.draw(requests).encode())))
    try_decode(CreateResponse.decode, data.draw(mutated(HDR + data.draw(responses).encode())))


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_random(raw: bytes) -> None:
    for decode in (CreateRequest.decode, CreateResponse.decode):
        try_decode(decode, raw)
        try_decode(decode, HDR + raw)


@pytest.mark.parametrize("which", ["request", "response"])
def test_truncate_and_flip_every_byte(which: str) -> None:
    if which == "request":
        sample, decode = SAMBA_CREATE_REQUEST, CreateRequest.decode
    else:
        sample, decode = SAMBA_CREATE_RESPONSE, CreateResponse.decode
    for bad in (*truncations(sample), *byte_flips(sample)):
        try_decode(decode, bad)


def test_unpaired_surrogate_name_roundtrips() -> None:
    """Windows names may hold unpaired UTF-16 surrogates; one read from the
    server must be usable in a CREATE unchanged."""
    req = CreateRequest("bad\udc80name")
    assert CreateRequest.decode(HDR + req.encode()).name == "bad\udc80name"
