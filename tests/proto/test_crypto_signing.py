"""SMB2/3 signing against published vectors, independent computations and
tampering.

Published SMB signatures (AES-128-CMAC), transcribed in hex from the
Microsoft Open Specifications blog:

* [ANATOMY] "SMB 2 and SMB 3 security in Windows 10: the anatomy of signing
  and cryptographic keys" (2017), SMB 3.1.1 multichannel appendix: the
  master session's final SESSION_SETUP response, and on the bound channel
  the binding request and interim response (signed with Session.SigningKey)
  and the final response (signed with Channel.SigningKey).
* [ENC311] "SMB 3.1.1 Encryption in Windows 10" (2015), A.1 and A.2: final
  SESSION_SETUP responses.

Primitive sanity vectors: RFC 4493 section 4 example 4 (AES-CMAC), RFC 4231
test case 2 (HMAC-SHA256), McGrew & Viega GCM spec test case 1 (AES-GCM with
empty plaintext and AAD, i.e. GMAC).

No published vector was found for SMB2 HMAC-SHA256 signing nor for SMB
3.1.1 AES-GMAC signing: both are checked against an independent
computation written out here (zeroed Signature field, GMAC nonce built by
hand from [MS-SMB2] 3.1.4.1) and by sign/verify round trips.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smbfs.proto.constants import Command, Dialect, HeaderFlags
from smbfs.proto.crypto import Signer, SigningAlgorithm, signing_algorithm_for
from smbfs.proto.header import Smb2Header


def h(*lines: str) -> bytes:
    return bytes.fromhex("".join(lines))


MASTER_KEY = h("73FE7A9A77BEF0BDE49C650D8CCB5F76")
CHANNEL_KEY = h("C962BCA1A9DD1697B030644199705431")

PUBLISHED = [
    pytest.param(MASTER_KEY, h(
        "FE534D4240000100000000000100800009000000000000000300000000000000FFFE000000000000",
        "1900000000100000EBE146DA120BA25FC3376A49DFE31BC10900000048001D00A11B3019A0030A01",
        "00A3120410010000003B453CDC3524164200000000",
    ), id="ANATOMY-master-final-rsp"),
    pytest.param(MASTER_KEY, h(
        "FE534D4240000100000000000100800008000000000000000200000000000000FFFE000000000000",
        "190000000010000068BD0C58F613CE1334B1EB51C68D39EA19000101010000000000000058004A00",
        "0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A",
        "04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000",
        "000F",
    ), id="ANATOMY-binding-req"),
    pytest.param(MASTER_KEY, h(
        "FE534D4240000100160000C00100010009000000000000000200000000000000FFFE000000000000",
        "1900000000100000014A71CAE724995E612430E2BE87578C090000004800B300A181B03081ADA003",
        "0A0101A10C060A2B06010401823702020AA281970481944E544C4D53535000020000000C000C0038",
        "00000015828AE23823DA68E32D2FE1000000000000000050005000440000000A0092270000000F53",
        "005500540033003100310002000C0053005500540033003100310001000C00530055005400330031",
        "00310004000C0053005500540033003100310003000C005300550054003300310031000700080041",
        "3B42AECBAED00100000000",
    ), id="ANATOMY-binding-interim-rsp"),
    pytest.param(CHANNEL_KEY, h(
        "FE534D4240000100000000000100800009000000000000000300000000000000FFFE000000000000",
        "19000000001000008D604217FFBACF40635BF9D8729921500900000048001D00A11B3019A0030A01",
        "00A312041001000000CFB046FC5D368E2200000000",
    ), id="ANATOMY-binding-final-rsp"),
    pytest.param(h("8765949DFEAEE105CE9118B45BE988F0"), h(
        "FE534D4240000100000000000100800009000000000000000200000000000000FFFE000000000000",
        "25000000001000006B85A4519A0F3EEA35BA946DD3AFE6B80900000048001D00A11B3019A0030A01",
        "00A3120410010000003932A87523AB660100000000",
    ), id="ENC311-A1-final-rsp"),
    pytest.param(h("3DCC82C5795AE27F383242761078C59B"), h(
        "FE534D4240000100000000000100800009000000000000000200000000000000FFFE000000000000",
        "21000000001000003676196AEE8CA17E5D50A53642EF2BE40900000048001D00A11B3019A0030A01",
        "00A3120410010000000F57444342A2717E00000000",
    ), id="ENC311-A2-final-rsp"),
]


@pytest.mark.parametrize(("key", "message"), PUBLISHED)
def test_cmac_published_signatures(key: bytes, message: bytes) -> None:
    signer = Signer(SigningAlgorithm.AES_CMAC, key)
    assert signer.verify(message)
    assert signer.verify([message[:64], message[64:]])
    # Signing the message with a zeroed field writes the published signature.
    buf = bytearray(message)
    buf[48:64] = bytes(16)
    assert signer.sign(buf) == message[48:64]
    assert buf == message
    # The binding messages are signed with one key, never the other.
    other = CHANNEL_KEY if key == MASTER_KEY else MASTER_KEY
    assert not Signer(SigningAlgorithm.AES_CMAC, other).verify(message)


def test_primitive_sanity_vectors() -> None:
    """The backend primitives themselves (RFC 4493 ex. 4, RFC 4231 case 2,
    GCM spec test case 1)."""
    c = cmac.CMAC(algorithms.AES(h("2b7e151628aed2a6abf7158809cf4f3c")))
    c.update(h(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51",
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
    ))
    assert c.finalize() == h("51f0bebf7e3b9d92fc49741779363cfe")
    assert hmac.new(b"Jefe", b"what do ya want for nothing?", hashlib.sha256).digest() == h(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert AESGCM(bytes(16)).encrypt(bytes(12), b"", b"") == h("58e2fccefa7e3061367f1d57a4e7455a")


def make_message(command: Command = Command.SMB2_WRITE, flags: int = 0, payload: int = 1000,
                 message_id: int = 0x0102030405060708) -> bytearray:
    hdr = Smb2Header(command=command, message_id=message_id, session_id=0x100000000025,
                     flags=flags | HeaderFlags.SMB2_FLAGS_SIGNED, tree_id=1)
    return bytearray(hdr.encode() + os.urandom(payload))


def zeroed(message: bytes | bytearray) -> bytes:
    return bytes(message[:48]) + bytes(16) + bytes(message[64:])


def reference_signature(algorithm: SigningAlgorithm, key: bytes, message: bytes | bytearray) -> bytes:
    """The signature computed independently of smbfs.proto.crypto."""
    data = zeroed(message)
    if algorithm == SigningAlgorithm.HMAC_SHA256:
        return hmac.new(key, data, hashlib.sha256).digest()[:16]
    if algorithm == SigningAlgorithm.AES_CMAC:
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        return c.finalize()
    (command,) = struct.unpack_from("<H", data, 12)
    (flags,) = struct.unpack_from("<I", data, 16)
    (message_id,) = struct.unpack_from("<Q", data, 24)
    role = 1 if flags & 1 else 0
    cancel = 2 if command == Command.SMB2_CANCEL and not flags & 1 else 0
    nonce = message_id.to_bytes(8, "little") + (role | cancel).to_bytes(4, "little")
    return AESGCM(key).encrypt(nonce, b"", data)


ALGORITHMS = list(SigningAlgorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize(("command", "flags"), [
    (Command.SMB2_WRITE, 0),
    (Command.SMB2_READ, HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR),
    (Command.SMB2_CANCEL, 0),
    (Command.SMB2_CANCEL, HeaderFlags.SMB2_FLAGS_ASYNC_COMMAND),
])
def test_independent_computation(algorithm: SigningAlgorithm, command: Command, flags: int) -> None:
    key = os.urandom(16)
    message = make_message(command, flags)
    expected = reference_signature(algorithm, key, message)
    signer = Signer(algorithm, key)
    # As one writable buffer, one read-only buffer, and as parts.
    assert signer.compute(message) == expected
    assert signer.compute(bytes(message)) == expected
    assert signer.compute([message[:64], memoryview(message)[64:500], bytes(message[500:])]) == expected
    assert signer.sign(message) == expected
    assert message[48:64] == expected
    assert signer.verify(message) and signer.verify(bytes(message))


def test_gmac_nonce_role_and_cancel_bits_matter() -> None:
    """The same bytes under another role or as CANCEL give another signature,
    so a GMAC nonce never repeats between the two directions."""
    key = os.urandom(16)
    signer = Signer(SigningAlgorithm.AES_GMAC, key)
    req = make_message(Command.SMB2_ECHO)
    rsp = bytearray(req)
    struct.pack_into("<I", rsp, 16, HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR | HeaderFlags.SMB2_FLAGS_SIGNED)
    cancel = bytearray(req)
    struct.pack_into("<H", cancel, 12, Command.SMB2_CANCEL)
    sigs = {signer.compute(m) for m in (req, rsp, cancel)}
    assert len(sigs) == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("where", [0, 16, 24, 47, 48, 63, 64, 700, -1])
def test_tampered_byte_fails_verify(algorithm: SigningAlgorithm, where: int) -> None:
    signer = Signer(algorithm, os.urandom(16))
    message = make_message()
    signer.sign(message)
    assert signer.verify(message)
    message[where] ^= 0x40
    assert not signer.verify(message)
    assert not signer.verify(bytes(message))


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: a.name)
def test_verify_leaves_message_untouched_and_1mib_parts(algorithm: SigningAlgorithm) -> None:
    signer = Signer(algorithm, os.urandom(16))
    header = make_message(payload=0)
    payload = memoryview(os.urandom(1 << 20))
    sig = signer.sign([header, payload])
    assert header[48:64] == sig
    snapshot = bytes(header)
    joined = bytearray(bytes(header) + bytes(payload))
    assert signer.verify(joined)
    assert joined[:64] == snapshot
    assert signer.verify([header, payload])


def test_sign_needs_writable_header_and_full_header() -> None:
    signer = Signer(SigningAlgorithm.AES_CMAC, bytes(16))
    with pytest.raises(TypeError):
        signer.sign(bytes(make_message()))  # type: ignore[arg-type]
    from smbfs.proto import DecodeError

    with pytest.raises(DecodeError):
        signer.verify(bytes(63))
    with pytest.raises(ValueError):
        Signer(SigningAlgorithm.AES_GMAC, bytes(32))


def test_signing_algorithm_for_dialects() -> None:
    assert signing_algorithm_for(Dialect.SMB2_0_2) == SigningAlgorithm.HMAC_SHA256
    assert signing_algorithm_for(Dialect.SMB2_1) == SigningAlgorithm.HMAC_SHA256
    assert signing_algorithm_for(Dialect.SMB3_0) == SigningAlgorithm.AES_CMAC
    assert signing_algorithm_for(Dialect.SMB3_0_2, SigningAlgorithm.AES_GMAC) == SigningAlgorithm.AES_CMAC
    assert signing_algorithm_for(Dialect.SMB3_1_1) == SigningAlgorithm.AES_CMAC
    assert signing_algorithm_for(Dialect.SMB3_1_1, SigningAlgorithm.AES_GMAC) == SigningAlgorithm.AES_GMAC
    assert "key" not in repr(Signer(SigningAlgorithm.AES_CMAC, bytes(16))).lower()
