"""A minimal Windows security descriptor ([MS-DTYP] 2.4.6 SECURITY_DESCRIPTOR,
self-relative form; 2.4.2 SID; 2.4.5 ACL; 2.4.4 ACE), as returned by SMB2
QUERY_INFO with InfoType SMB2_0_INFO_SECURITY and accepted by SET_INFO.

Enough to read the owner and group SIDs and the DACL's allow/deny entries
(for uid/gid/mode mapping) and to build a simple descriptor. ACE types other
than ACCESS_ALLOWED / ACCESS_DENIED / SYSTEM_AUDIT / SYSTEM_MANDATORY_LABEL
(which share the Mask+Sid body) are kept as raw bytes so a read-modify-write
of the DACL does not lose them.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field
from typing import Final, Self, cast

from smbfs.proto.codec import Buffer, DecodeError, need, unpack

__all__ = [
    "ACCESS_ALLOWED_ACE_TYPE",
    "ACCESS_DENIED_ACE_TYPE",
    "ACL",
    "SID",
    "Ace",
    "AceFlags",
    "SecurityDescriptor",
    "SecurityDescriptorControl",
    "SecurityInformation",
]

ACCESS_ALLOWED_ACE_TYPE: Final = 0x00
ACCESS_DENIED_ACE_TYPE: Final = 0x01
SYSTEM_AUDIT_ACE_TYPE: Final = 0x02
SYSTEM_MANDATORY_LABEL_ACE_TYPE: Final = 0x11
# ACE types whose body is exactly Mask (4 bytes) + Sid ([MS-DTYP] 2.4.4.2-.4, 2.4.4.13).
_MASK_SID_TYPES: Final = frozenset(
    {ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE, SYSTEM_AUDIT_ACE_TYPE,
     SYSTEM_MANDATORY_LABEL_ACE_TYPE}
)

ACL_REVISION: Final = 2
ACL_REVISION_DS: Final = 4
SID_MAX_SUB_AUTHORITIES: Final = 15


class AceFlags(enum.IntFlag):
    """[MS-DTYP] 2.4.4.1 ACE_HEADER AceFlags."""

    OBJECT_INHERIT_ACE = 0x01
    CONTAINER_INHERIT_ACE = 0x02
    NO_PROPAGATE_INHERIT_ACE = 0x04
    INHERIT_ONLY_ACE = 0x08
    INHERITED_ACE = 0x10
    SUCCESSFUL_ACCESS_ACE_FLAG = 0x40
    FAILED_ACCESS_ACE_FLAG = 0x80


class SecurityDescriptorControl(enum.IntFlag):
    """[MS-DTYP] 2.4.6 SECURITY_DESCRIPTOR Control."""

    SE_OWNER_DEFAULTED = 0x0001
    SE_GROUP_DEFAULTED = 0x0002
    SE_DACL_PRESENT = 0x0004
    SE_DACL_DEFAULTED = 0x0008
    SE_SACL_PRESENT = 0x0010
    SE_SACL_DEFAULTED = 0x0020
    SE_DACL_TRUSTED = 0x0040
    SE_SERVER_SECURITY = 0x0080
    SE_DACL_COMPUTED_INHERITANCE_REQUIRED = 0x0100
    SE_SACL_COMPUTED_INHERITANCE_REQUIRED = 0x0200
    SE_DACL_AUTO_INHERITED = 0x0400
    SE_SACL_AUTO_INHERITED = 0x0800
    SE_DACL_PROTECTED = 0x1000
    SE_SACL_PROTECTED = 0x2000
    SE_RM_CONTROL_VALID = 0x4000
    SE_SELF_RELATIVE = 0x8000


class SecurityInformation(enum.IntFlag):
    """[MS-DTYP] 2.4.7 SECURITY_INFORMATION: which parts QUERY_INFO/SET_INFO
    (AdditionalInformation) reads or writes."""

    OWNER_SECURITY_INFORMATION = 0x00000001
    GROUP_SECURITY_INFORMATION = 0x00000002
    DACL_SECURITY_INFORMATION = 0x00000004
    SACL_SECURITY_INFORMATION = 0x00000008
    LABEL_SECURITY_INFORMATION = 0x00000010


_SID_HEAD: Final = struct.Struct("<BB6s")
_SUB_AUTHORITIES: Final = [struct.Struct(f"<{n}I") for n in range(SID_MAX_SUB_AUTHORITIES + 1)]
_SID_RE: Final = re.compile(r"S-(\d+)-(0[xX][0-9A-Fa-f]{1,12}|\d+)((?:-\d+)*)\Z")


@dataclass(frozen=True, slots=True)
class SID:
    """[MS-DTYP] 2.4.2.2 SID. IdentifierAuthority is a 48-bit big-endian
    number; SubAuthority values are little-endian 32-bit."""

    identifier_authority: int
    sub_authorities: tuple[int, ...] = ()
    revision: int = 1

    def __str__(self) -> str:
        # [MS-DTYP] 2.4.2.1: authorities of 2**32 and above are written in hex.
        auth = (
            str(self.identifier_authority)
            if self.identifier_authority < 2**32
            else f"0x{self.identifier_authority:012X}"
        )
        return "S-" + "-".join([str(self.revision), auth, *map(str, self.sub_authorities)])

    @classmethod
    def from_string(cls, text: str) -> Self:
        m = _SID_RE.match(text.strip())
        if m is None:
            raise ValueError(f"not a SID string: {text!r}")
        rev = int(m.group(1))
        auth = int(m.group(2), 0)
        subs = tuple(int(x) for x in m.group(3).split("-")[1:])
        if rev > 0xFF or auth >= 2**48 or len(subs) > SID_MAX_SUB_AUTHORITIES or any(
            s >= 2**32 for s in subs
        ):
            raise ValueError(f"SID out of range: {text!r}")
        return cls(auth, subs, rev)

    @property
    def size(self) -> int:
        return 8 + 4 * len(self.sub_authorities)

    def encode(self) -> bytes:
        if len(self.sub_authorities) > SID_MAX_SUB_AUTHORITIES:
            raise ValueError("too many SubAuthority values")
        return _SID_HEAD.pack(
            self.revision, len(self.sub_authorities), self.identifier_authority.to_bytes(6, "big")
        ) + _SUB_AUTHORITIES[len(self.sub_authorities)].pack(*self.sub_authorities)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        rev, count, auth = unpack(_SID_HEAD, buf, offset, "SID")
        if count > SID_MAX_SUB_AUTHORITIES:
            raise DecodeError(f"SID: SubAuthorityCount {count} > {SID_MAX_SUB_AUTHORITIES}")
        subs = unpack(_SUB_AUTHORITIES[count], buf, offset + 8, "SID")
        return cls(int.from_bytes(cast(bytes, auth), "big"), tuple(subs), rev)


_ACE_HEAD: Final = struct.Struct("<BBH")
_U32: Final = struct.Struct("<I")


@dataclass(slots=True)
class Ace:
    """[MS-DTYP] 2.4.4 ACE. For Mask+Sid types ``access_mask`` and ``sid``
    are set and ``data`` is empty; for any other type ``data`` is the raw body
    after the 4-byte header."""

    ace_type: int
    ace_flags: int = 0
    access_mask: int = 0
    sid: SID | None = None
    data: bytes = b""

    def encode(self) -> bytes:
        if self.ace_type in _MASK_SID_TYPES:
            if self.sid is None:
                raise ValueError("this ACE type needs a SID")
            body = _U32.pack(self.access_mask) + self.sid.encode()
        else:
            body = self.data
        size = _ACE_HEAD.size + len(body)
        if size > 0xFFFF:
            raise ValueError("ACE too large")
        return _ACE_HEAD.pack(self.ace_type, self.ace_flags, size) + body

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        t, flags, size = unpack(_ACE_HEAD, buf, offset, "ACE")
        if size < _ACE_HEAD.size:
            raise DecodeError(f"ACE: AceSize {size} smaller than its header")
        need(buf, offset, size, "ACE")
        body = memoryview(buf)[offset + _ACE_HEAD.size : offset + size]
        if t in _MASK_SID_TYPES:
            (mask,) = unpack(_U32, body, 0, "ACE")
            return cls(t, flags, mask, SID.decode(body, 4))
        return cls(t, flags, data=bytes(body))


_ACL_HEAD: Final = struct.Struct("<BxHHxx")


@dataclass(slots=True)
class ACL:
    """[MS-DTYP] 2.4.5 ACL: header then AceCount ACEs within AclSize bytes."""

    aces: list[Ace] = field(default_factory=list)
    revision: int = ACL_REVISION

    def encode(self) -> bytes:
        body = b"".join(a.encode() for a in self.aces)
        size = _ACL_HEAD.size + len(body)
        if size > 0xFFFF or len(self.aces) > 0xFFFF:
            raise ValueError("ACL too large")
        return _ACL_HEAD.pack(self.revision, size, len(self.aces)) + body

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        rev, size, count = unpack(_ACL_HEAD, buf, offset, "ACL")
        if size < _ACL_HEAD.size:
            raise DecodeError(f"ACL: AclSize {size} smaller than its header")
        need(buf, offset, size, "ACL")
        acl = memoryview(buf)[offset : offset + size]
        aces: list[Ace] = []
        pos = _ACL_HEAD.size
        # Each ACE is at least 4 bytes and must fit in AclSize, so a hostile
        # AceCount cannot make this loop run past size/4 iterations.
        for _ in range(count):
            ace = Ace.decode(acl, pos)
            aces.append(ace)
            pos += _ACE_HEAD.unpack_from(acl, pos)[2]
        return cls(aces, rev)


_SD_HEAD: Final = struct.Struct("<BBHIIII")
_C = SecurityDescriptorControl


@dataclass(slots=True)
class SecurityDescriptor:
    """[MS-DTYP] 2.4.6 SECURITY_DESCRIPTOR in self-relative form.

    ``dacl`` None with SE_DACL_PRESENT in ``control`` is a NULL DACL
    (everyone has full access); None without it means "not returned".
    Encoding always sets SE_SELF_RELATIVE and the *_PRESENT bits of the ACLs
    that are given, and lays parts out as owner, group, SACL, DACL.
    """

    owner: SID | None = None
    group: SID | None = None
    dacl: ACL | None = None
    sacl: ACL | None = None
    control: int = _C.SE_SELF_RELATIVE
    revision: int = 1

    def encode(self) -> bytes:
        control = self.control | _C.SE_SELF_RELATIVE
        if self.dacl is not None:
            control |= _C.SE_DACL_PRESENT
        if self.sacl is not None:
            control |= _C.SE_SACL_PRESENT
        parts: list[bytes] = []
        pos = _SD_HEAD.size
        offsets = []
        for part in (self.owner, self.group, self.sacl, self.dacl):
            if part is None:
                offsets.append(0)
                continue
            raw = part.encode()
            offsets.append(pos)
            parts.append(raw)
            pos += len(raw)
        o_owner, o_group, o_sacl, o_dacl = offsets
        return _SD_HEAD.pack(
            self.revision, 0, control, o_owner, o_group, o_sacl, o_dacl
        ) + b"".join(parts)

    @classmethod
    def decode(cls, buf: Buffer, offset: int = 0) -> Self:
        what = "SECURITY_DESCRIPTOR"
        rev, _sbz1, control, o_owner, o_group, o_sacl, o_dacl = unpack(_SD_HEAD, buf, offset, what)
        if not control & _C.SE_SELF_RELATIVE:
            raise DecodeError(f"{what}: not self-relative (control 0x{control:04X})")
        sd = memoryview(buf)[offset:]
        owner = SID.decode(sd, o_owner) if o_owner else None
        group = SID.decode(sd, o_group) if o_group else None
        sacl = ACL.decode(sd, o_sacl) if o_sacl and control & _C.SE_SACL_PRESENT else None
        dacl = ACL.decode(sd, o_dacl) if o_dacl and control & _C.SE_DACL_PRESENT else None
        return cls(owner, group, dacl, sacl, control, rev)
