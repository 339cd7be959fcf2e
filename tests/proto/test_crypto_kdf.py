"""SP800-108 KDF and SMB 3.x key derivation against published vectors.

Sources (hex transcribed from the Microsoft Open Specifications blog):

* [ENC30] "Encryption in SMB 3.0: A protocol perspective" (2012), test vector
  keys (dialect 3.0).
* [ANATOMY] "SMB 2 and SMB 3 security in Windows 10: the anatomy of signing
  and cryptographic keys" (2017), Appendix "Key derivation example for SMB
  3.0 multichannel" and "... for SMB 3.1.1 multichannel" (master session and
  bound channel).
* [ENC311] "SMB 3.1.1 Encryption in Windows 10" (2015), Appendix A.1 (GCM)
  and A.2 (CCM) key derivation.

The KDF primitive itself: NIST CAVP "KDF in Counter Mode" (KDFCTR, CAVS
14.4), section [PRF=HMAC_SHA256] [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS],
COUNT=0.

No published vector exists for AES-256 key derivation (L = 256 with
Session.FullSessionKey): it is checked against an independent, literal
re-implementation of SP800-108 with the standard library's hmac.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from smbfs.proto.constants import Dialect
from smbfs.proto.crypto import (
    Cipher,
    derive_session_keys,
    derive_signing_key,
    kdf_counter_hmac_sha256,
    sp800_108_hmac_sha256,
)


def h(*lines: str) -> bytes:
    return bytes.fromhex("".join(lines))


def test_enc30_keys() -> None:
    """[ENC30]: SessionKey -> Signing/Encryption/Decryption/Application keys."""
    keys = derive_session_keys(Dialect.SMB3_0, h("B4546771B515F766A86735532DD6C4F0"))
    assert keys.signing_key == h("F773CD23C18FD1E08EE510CADA7CF852")
    assert keys.encryption_key == h("261B72350558F2E9DCF613070383EDBF")
    assert keys.decryption_key == h("8FE2B57EC34D2DB5B1A9727F526BBDB5")
    assert keys.application_key == h("77432F808CE99156B5BC6A3676D730D1")


@pytest.mark.parametrize("dialect", [Dialect.SMB3_0, Dialect.SMB3_0_2])
def test_anatomy_30_multichannel(dialect: Dialect) -> None:
    """[ANATOMY] SMB 3.0 multichannel: the master session's keys, then the
    second channel derives only its own signing key from its session key."""
    keys = derive_session_keys(dialect, h("7CD451825D0450D235424E44BA6E78CC"))
    assert keys.signing_key == h("0B7E9C5CAC36C0F6EA9AB275298CEDCE")
    assert keys.encryption_key == h("FAD27796665B313EBB578F388632B4F7")
    assert keys.decryption_key == h("B0F0427F7CEB416D1D9DCC0CD4F99447")
    assert keys.application_key == h("BB23A4575AA26C721AF525AF15A87B4F")
    channel = derive_signing_key(dialect, h("4E01A2B313BCF660CC250BEF021AEDE6"))
    assert channel == h("BA1A17DBBFEC349BCA105563D598952F")


ANATOMY_311_MASTER_PREAUTH = h(
    "0DD13628CC3ED218EF9DF9772D436D0887AB9814BFAE63A80AA845F36909DB7928622DDDAD522D97",
    "51640A459762C5A9D6BB084CBB3CE6BDADEF5D5BCE3C6C01",
)
ANATOMY_311_CHANNEL_PREAUTH = h(
    "EA3BF912B11CBFEC5B1889E8209614218687F82FA5294521AD3063425E49E88A10BD022124CE2512",
    "3BC9111F52D9566BA88BF46344E6063DC5E3FF0389026F6C",
)


def test_anatomy_311_multichannel() -> None:
    """[ANATOMY] SMB 3.1.1 multichannel, CipherId 2: master session keys from
    its preauth hash; the bound channel's signing key from the channel's own
    session key and binding preauth hash."""
    keys = derive_session_keys(
        Dialect.SMB3_1_1, h("270E1BA896585EEB7AF3472D3B4C75A7"),
        ANATOMY_311_MASTER_PREAUTH, Cipher.AES_128_GCM,
    )
    assert keys.signing_key == h("73FE7A9A77BEF0BDE49C650D8CCB5F76")
    assert keys.encryption_key == h("629BCBC54422A0F572B97F45989B6073")
    assert keys.decryption_key == h("E2AF0DCEFAC68DA71A0DFBD0D1350D74")
    assert keys.application_key == h("6D7AD7954E9EC61E907B4D473DC178FF")
    channel = derive_signing_key(
        Dialect.SMB3_1_1, h("84B9DBB730116A8FA6E9889555C265F9"), ANATOMY_311_CHANNEL_PREAUTH
    )
    assert channel == h("C962BCA1A9DD1697B030644199705431")


@pytest.mark.parametrize(
    ("cipher", "session_key", "preauth", "signing", "enc", "dec", "app"),
    [
        pytest.param(
            Cipher.AES_128_GCM, "419FDDF34C1E001909D362AE7FB6AF79",
            "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9"
            "77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770",
            "8765949DFEAEE105CE9118B45BE988F0", "A2F5E80E5D59103034F32E52F698E5EC",
            "748C50868C90F302962A5C35F5F9A8BF", "099D610789FBE82055B313601C3E8CC4",
            id="ENC311-A1-gcm",
        ),
        pytest.param(
            Cipher.AES_128_CCM, "07B7F69C1E2581662DF6987E88F9E891",
            "DECF98A420718718F22090D3580FCC5E484BD310FA1268210C6E86335A8891E767F5BCD99FA5A785"
            "9D665AD07A73EA94E1BCDB7CFA69A6962A28A244138340B1",
            "3DCC82C5795AE27F383242761078C59B", "DFAAA31AAE40A2485D47AC4DF09FDA1D",
            "95C544AEF6072680DA1CE49A68A97FA6", "7A2F0F73EC2D530879B2913BBFCE242F",
            id="ENC311-A2-ccm",
        ),
    ],
)
def test_enc311_keys(
    cipher: Cipher, session_key: str, preauth: str, signing: str, enc: str, dec: str, app: str
) -> None:
    keys = derive_session_keys(Dialect.SMB3_1_1, h(session_key), h(preauth), cipher)
    assert keys.signing_key == h(signing)
    assert keys.encryption_key == h(enc)
    assert keys.decryption_key == h(dec)
    assert keys.application_key == h(app)


def reference_kdf(ki: bytes, label: bytes, context: bytes, bits: int) -> bytes:
    """SP800-108 section 5.1 written out independently (stdlib hmac)."""
    out = b""
    i = 1
    while len(out) * 8 < bits:
        data = i.to_bytes(4, "big") + label + b"\x00" + context + bits.to_bytes(4, "big")
        out += hmac.new(ki, data, hashlib.sha256).digest()
        i += 1
    return out[: bits // 8]


@pytest.mark.parametrize("bits", [8, 128, 256, 264, 512])
def test_kdf_matches_reference(bits: int) -> None:
    ki = bytes(range(32))
    assert sp800_108_hmac_sha256(ki, b"Label\x00", b"ctx", bits) == reference_kdf(
        ki, b"Label\x00", b"ctx", bits
    )


@pytest.mark.parametrize("cipher", [Cipher.AES_256_CCM, Cipher.AES_256_GCM])
def test_aes256_keys_use_full_session_key_and_l256(cipher: Cipher) -> None:
    """No published vector: 3.1.1 with AES-256 derives 32-byte cipher keys
    with L = 256 from Session.FullSessionKey (the whole 32-byte Kerberos
    key), while signing and application keys stay 16 bytes from the first 16
    bytes of it ([MS-SMB2] 3.1.4.2, 3.2.5.3.1)."""
    full = bytes(range(100, 132))
    preauth = bytes(range(64))
    keys = derive_session_keys(Dialect.SMB3_1_1, full, preauth, cipher)
    assert keys.encryption_key == reference_kdf(full, b"SMBC2SCipherKey\x00", preauth, 256)
    assert keys.decryption_key == reference_kdf(full, b"SMBS2CCipherKey\x00", preauth, 256)
    assert keys.signing_key == reference_kdf(full[:16], b"SMBSigningKey\x00", preauth, 128)
    assert keys.application_key == reference_kdf(full[:16], b"SMBAppKey\x00", preauth, 128)
    assert len(keys.encryption_key) == len(keys.decryption_key) == 32


def test_short_gss_key_is_zero_padded_and_2x_signs_with_session_key() -> None:
    assert derive_signing_key(Dialect.SMB2_1, b"\x01\x02") == b"\x01\x02" + bytes(14)
    keys = derive_session_keys(Dialect.SMB2_0_2, bytes(range(32)))
    assert keys.signing_key == bytes(range(16))
    assert keys.encryption_key is None and keys.decryption_key is None


def test_311_needs_preauth_hash_and_keys_are_not_shown() -> None:
    with pytest.raises(ValueError):
        derive_session_keys(Dialect.SMB3_1_1, bytes(16))
    with pytest.raises(ValueError):
        derive_signing_key(Dialect.SMB3_1_1, bytes(16), bytes(32))
    keys = derive_session_keys(Dialect.SMB3_0, bytes(16))
    assert keys.signing_key.hex() not in repr(keys)


def test_nist_cavp_kdfctr_hmac_sha256_count0() -> None:
    """NIST CAVP KDFCTR [PRF=HMAC_SHA256][CTRLOCATION=BEFORE_FIXED]
    [RLEN=32_BITS] COUNT=0, L=128."""
    ko = kdf_counter_hmac_sha256(
        h("dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0"),
        h("01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b8",
          "64a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac"),
        128,
    )
    assert ko == h("10621342bfb0fd40046c0e29f2cfdbf0")
