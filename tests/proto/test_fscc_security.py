"""[MS-DTYP] SECURITY_DESCRIPTOR / SID / ACL / ACE (self-relative)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.fscc.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    ACL,
    SID,
    Ace,
    AceFlags,
    SecurityDescriptor,
    SecurityDescriptorControl,
)

from .fuzzing import cut_and_overwritten, only_decode_error

sids = st.builds(
    SID,
    st.integers(0, 2**48 - 1),
    st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
    st.integers(0, 255),
)
mask_aces = st.builds(
    Ace, st.sampled_from([0, 1, 2, 0x11]), st.integers(0, 255), st.integers(0, 2**32 - 1), sids
)
raw_aces = st.builds(
    Ace, st.sampled_from([5, 9, 0x0A, 0x12]), st.integers(0, 255),
    data=st.binary(max_size=40),
)
acls = st.builds(ACL, st.lists(st.one_of(mask_aces, raw_aces), max_size=6), st.sampled_from([2, 4]))


@st.composite
def descriptors(draw: st.DrawFn) -> SecurityDescriptor:
    dacl = draw(st.none() | acls)
    sacl = draw(st.none() | acls)
    control = draw(st.integers(0, 0xFFFF)) | SecurityDescriptorControl.SE_SELF_RELATIVE
    control &= ~(SecurityDescriptorControl.SE_DACL_PRESENT | SecurityDescriptorControl.SE_SACL_PRESENT)
    if dacl is not None:
        control |= SecurityDescriptorControl.SE_DACL_PRESENT
    if sacl is not None:
        control |= SecurityDescriptorControl.SE_SACL_PRESENT
    return SecurityDescriptor(draw(st.none() | sids), draw(st.none() | sids), dacl, sacl, control)


@settings(max_examples=200)
@given(descriptors())
def test_descriptor_round_trip(sd: SecurityDescriptor) -> None:
    raw = sd.encode()
    assert SecurityDescriptor.decode(raw) == sd
    assert SecurityDescriptor.decode(b"\x00" * 5 + raw, 5) == sd


@settings(max_examples=200)
@given(sids)
def test_sid_round_trip(sid: SID) -> None:
    assert SID.decode(sid.encode()) == sid
    assert SID.from_string(str(sid)) == sid
    assert sid.size == len(sid.encode())


def test_sid_strings() -> None:
    s = SID.from_string("S-1-5-21-1004336348-1177238915-682003330-512")
    assert s.identifier_authority == 5
    assert s.sub_authorities == (21, 1004336348, 1177238915, 682003330, 512)
    assert s.encode().hex() == "010500000000000515000000dcf4dc3b833d2b46828ba62800020000"
    assert str(SID.from_string("S-1-1-0")) == "S-1-1-0"
    assert str(SID(2**40)) == "S-1-0x010000000000"
    assert SID.from_string("S-1-0x010000000000") == SID(2**40)
    for bad in ("S-1", "X-1-5", "S-1-5-x", "S-1-5-4294967296", "S-256-5", "S-1-" + "-1" * 16):
        with pytest.raises(ValueError):
            SID.from_string(bad)


# Bytes of O:BAG:SYD:P(A;OICI;0x1ff;;;WD)(D;;0x1;;;S-1-5-21-1-2-3-1000), as
# produced by an independent NDR encoder (Samba's), offsets owner, group, DACL.
REFERENCE = bytes.fromhex(
    "010004901400000024000000000000003000000001020000000000052000000020020000"
    "010100000000000512000000040040000200000000031400ff0100000101000000000001"
    "000000000100240001000000010500000000000515000000010000000200000003000000"
    "e8030000"
)


def test_reference_descriptor() -> None:
    sd = SecurityDescriptor.decode(REFERENCE)
    assert str(sd.owner) == "S-1-5-32-544"
    assert str(sd.group) == "S-1-5-18"
    assert sd.sacl is None
    assert sd.control & SecurityDescriptorControl.SE_DACL_PROTECTED
    assert sd.dacl is not None
    a, d = sd.dacl.aces
    assert (a.ace_type, a.ace_flags, a.access_mask, str(a.sid)) == (
        ACCESS_ALLOWED_ACE_TYPE,
        AceFlags.OBJECT_INHERIT_ACE | AceFlags.CONTAINER_INHERIT_ACE,
        0x1FF,
        "S-1-1-0",
    )
    assert (d.ace_type, d.access_mask, str(d.sid)) == (ACCESS_DENIED_ACE_TYPE, 1, "S-1-5-21-1-2-3-1000")
    assert sd.encode() == REFERENCE


def test_null_dacl_and_absent_parts() -> None:
    sd = SecurityDescriptor(control=SecurityDescriptorControl.SE_SELF_RELATIVE | SecurityDescriptorControl.SE_DACL_PRESENT)
    raw = sd.encode()
    assert len(raw) == 20
    back = SecurityDescriptor.decode(raw)
    assert back.dacl is None and back.control & SecurityDescriptorControl.SE_DACL_PRESENT


def test_unknown_ace_kept_raw() -> None:
    acl = ACL([Ace(0x09, 0, data=b"\x01\x02\x03\x04extra")])
    assert ACL.decode(acl.encode()) == acl


def test_hostile() -> None:
    with pytest.raises(DecodeError, match="self-relative"):
        SecurityDescriptor.decode(bytes(20))
    bad = bytearray(REFERENCE)
    bad[0x14 + 1] = 16  # owner SubAuthorityCount > 15
    with pytest.raises(DecodeError):
        SecurityDescriptor.decode(bytes(bad))
    bad = bytearray(REFERENCE)
    bad[0x30 + 2 : 0x30 + 4] = (0xFFFF).to_bytes(2, "little")  # AclSize
    with pytest.raises(DecodeError):
        SecurityDescriptor.decode(bytes(bad))
    bad = bytearray(REFERENCE)
    bad[0x38 + 2 : 0x38 + 4] = (0).to_bytes(2, "little")  # AceSize 0 would not advance
    with pytest.raises(DecodeError, match="AceSize"):
        SecurityDescriptor.decode(bytes(bad))
    bad = bytearray(REFERENCE)
    bad[0x30 + 4 : 0x30 + 6] = (0xFFFF).to_bytes(2, "little")  # AceCount
    with pytest.raises(DecodeError):
        SecurityDescriptor.decode(bytes(bad))


@settings(max_examples=300)
@given(blob=st.binary(max_size=200))
def test_fuzz_random(blob: bytes) -> None:
    for fn in (SecurityDescriptor.decode, ACL.decode, SID.decode, Ace.decode):
        only_decode_error(fn, blob)


@settings(max_examples=200)
@given(sd=descriptors(), data=st.data())
def test_fuzz_mutated(sd: SecurityDescriptor, data: st.DataObject) -> None:
    for bad in cut_and_overwritten(data, sd.encode(), 6):
        only_decode_error(SecurityDescriptor.decode, bad)
