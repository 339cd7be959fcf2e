"""SMB 3.x encryption against published vectors, plus round trips and tampering.

Sources (hex transcribed from the Microsoft Open Specifications blog):

* [ENC30] "Encryption in SMB 3.0: A protocol perspective" (E. Olougouna,
  2012-10-05), section "Test vector": AES-128-CCM, dialect 3.0.
* [ENC311] "SMB 3.1.1 Encryption in Windows 10" (E. Olougouna, 2015-09-09),
  Appendix A.1 (AES-128-GCM) and A.2 (AES-128-CCM).

No published vector exists for AES-256-CCM / AES-256-GCM (cipher IDs 3 and
4): those are checked against an independent computation with the bare
``cryptography`` AEAD and by round trip.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from smbfs.proto import DecodeError
from smbfs.proto.crypto import (
    Cipher,
    Encryptor,
    IntegrityError,
    NonceGenerator,
    decrypt,
    encrypt,
    parse_transform_header,
)


def h(*lines: str) -> bytes:
    return bytes.fromhex("".join(lines))


# ----------------------------------------------------------------- [ENC30]

ENC30_SESSION_ID = 0x8E40014000011
ENC30_ENC_KEY = h("261B72350558F2E9DCF613070383EDBF")
ENC30_DEC_KEY = h("8FE2B57EC34D2DB5B1A9727F526BBDB5")

ENC30_WRITE_REQ = h(
    "FE534D4240000100000000000900400008000000000000000400000000000000",
    "FFFE0000010000001100001400E4080000000000000000000000000000000000",
    "3100700017000000000000000000000015010000390000020100000039020000",
    "00000000000000007000000000000000536D623320656E6372797074696F6E20",
    "74657374696E67",
)
ENC30_WRITE_REQ_NONCE = h("66E69A111892584FB5ED524A744DA3EE")
ENC30_WRITE_REQ_TRANSFORMED = h(
    "FD534D4281A286535415445DAE393921E44FA42E66E69A111892584FB5ED524A",
    "744DA3EE87000000000001001100001400E4080025C8FEE16605A437832D1CD5",
    "2DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A4",
    "4C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5",
    "AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6",
    "C627297075D84B7803912D0A9639634453595EF3E33FFE4E7AC2AB",
)
ENC30_WRITE_RSP_TRANSFORMED = h(
    "FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014",
    "00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079",
    "E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787",
    "1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1",
    "77309E5B",
)
ENC30_WRITE_RSP = h(
    "FE534D4240000100000000000900210009000000000000000400000000000000",
    "FFFE0000010000001100001400E4080000000000000000000000000000000000",
    "11000000170000000000000000000000",
)
ENC30_READ_REQ = h(
    "FE534D4240000100000000000800400008000000000000000500000000000000",
    "FFFE0000010000001100001400E4080000000000000000000000000000000000",
    "3100000017000000000000000000000015010000390000020100000039020000",
    "0000000000000000000000000000000000",
)
ENC30_READ_REQ_NONCE = h("A5123A25F983E245983F413B8B429AF2")
ENC30_READ_REQ_TRANSFORMED = h(
    "FD534D42E93601498B76D6F7A72D5EF9B6C79FAFA5123A25F983E245983F413B",
    "8B429AF271000000000001001100001400E408009A464F709AA663F8C2FC3907",
    "D63CBF6F98B1E3DD649ED366009FD0B40A365224718E5440E053F6E01AE462FD",
    "B721BF91C3A6E52E14F9EFF005F445761289FF1272908B52754C8FCB949F228A",
    "C104A66204289A205BCBC47509D04AF9A907002B96863358B3B7CBA5E3779300",
    "74FCDF3550",
)
ENC30_READ_RSP_TRANSFORMED = h(
    "FD534D42ABD518B68C2F04D7879F482B689EB83F870000000000000011000014",
    "00E4080067000000000001001100001400E40800493D6FE2BDBEB435CF5F5469",
    "70C7BB57BF20E713C75A3D045507E0D68E5C0346659D6FFB8AC1504A786CA2BB",
    "89C9E7FE4F313E910A04180D2D0EA7DF636329E5A3285984500EF86FE9D55DA4",
    "FAB9531CFDD4C551D47F3C73124BB4590A45052B694048B991CCF5",
)
ENC30_READ_RSP = h(
    "FE534D4240000100000000000800210009000000000000000500000000000000",
    "FFFE0000010000001100001400E4080000000000000000000000000000000000",
    "11005000170000000000000000000000536D623320656E6372797074696F6E20",
    "74657374696E67",
)

# ------------------------------------------------------- [ENC311] A.1 GCM

GCM_SESSION_ID = 0x100000000025
GCM_ENC_KEY = h("A2F5E80E5D59103034F32E52F698E5EC")
GCM_DEC_KEY = h("748C50868C90F302962A5C35F5F9A8BF")
GCM_WRITE_REQ = h(
    "FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000",
    "25000000001000000000000000000000000000000000000031007000170000000000000000000000",
    "0600000004000000010000000400000000000000000000007000000000000000536D623320656E63",
    "72797074696F6E2074657374696E67",
)
GCM_WRITE_REQ_NONCE = h("C7D6822D269CAF48904C664C")
GCM_WRITE_REQ_TRANSFORMED = h(
    "FD534D42BD73D97D2BC9001BCAFAC0FDFF5FEEBCC7D6822D269CAF48904C664C0000000087000000",
    "0000010025000000001000006ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02",
    "D14EF247F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A4A394BB4",
    "4576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299F48E29E53D6B61D1C13A19E9",
    "1AF013F00D17E3ABC2FC3D36C8C1B6B93973253852DBD442E46EE8",
)
GCM_WRITE_RSP_TRANSFORMED = h(
    "FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000",
    "00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8",
    "F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B",
    "82E03C9E18A050FF0EA1C967",
)
GCM_WRITE_RSP = h(
    "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000",
    "25000000001000000000000000000000000000000000000011000000170000000000000000000000",
)
GCM_READ_REQ = h(
    "FE534D4240000100000000000800010008000000000000000600000000000000FFFE000001000000",
    "25000000001000000000000000000000000000000000000031000000170000000000000000000000",
    "060000000400000001000000040000000000000000000000000000000000000000",
)
GCM_READ_REQ_NONCE = h("D7AA8C6D36859243B715E0A6")
GCM_READ_REQ_TRANSFORMED = h(
    "FD534D426DAC0B6FD85A3ED42BB917DA38FE0386D7AA8C6D36859243B715E0A60000000071000000",
    "00000100250000000010000088A47BF09CA3C3141CDD7306BE9D9475AB24FCCB833D77461C041F8F",
    "B983D0C188F0729272B31D9D3D0DC6B687C069EEE0CC8EACA2C536D019ACC9E185D1EB630E0FCB79",
    "3EEECEB06D82A1D77706E700DBEBFB4FEB54D7AD2D97E7288804F90757FE4D08D6A84A3FF433E745",
    "1E768E4699",
)
GCM_READ_RSP_TRANSFORMED = h(
    "FD534D427F714B3B9D8FA1198584E71C2BAA1CB6E16831DD2E8EB7B4000000000000000067000000",
    "000001002500000000100000FECEDF4D03BB11A6CC5D8A53BE33D6D8701986342B4197D306E16F9C",
    "BB218E92F7F8281F51CE68BB85A20D87DE90EBBF80538066D1C37513C0A58D70936D537B624F5500",
    "202A612B6CD30D448A82791A0B2E049ED512AFAEFB06E98AB3D6F931D7D50DB2DBD36A",
)
GCM_READ_RSP = h(
    "FE534D4240000100000000000800010001000000000000000600000000000000FFFE000001000000",
    "25000000001000000000000000000000000000000000000011005000170000000000000000000000",
    "536D623320656E6372797074696F6E2074657374696E67",
)

# ------------------------------------------------------- [ENC311] A.2 CCM

CCM_SESSION_ID = 0x100000000021
CCM_ENC_KEY = h("DFAAA31AAE40A2485D47AC4DF09FDA1D")
CCM_DEC_KEY = h("95C544AEF6072680DA1CE49A68A97FA6")
CCM_WRITE_REQ = h(
    "FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000",
    "21000000001000000000000000000000000000000000000031007000170000000000000000000000",
    "0500000004000000010000000400000000000000000000007000000000000000536D623320656E63",
    "72797074696F6E2074657374696E67",
)
CCM_WRITE_REQ_NONCE = h("9F6F1EAAD7E9F24AACD38F")
CCM_WRITE_REQ_TRANSFORMED = h(
    "FD534D42E89551D666DAB8993488F5A97103116C9F6F1EAAD7E9F24AACD38F000000000087000000",
    "00000100210000000010000056A74778199A9D2B6E9C3A376FD88D27680694FED253A313BEB07381",
    "AE8689F973ACDB8D716E4477803BCE53A92E1B81FA3E965AD9AF2C89C08CE66A344664453B8FC881",
    "18EDC9814CF58E92AA465E6EFB09958A9FDAD96FBD55B36A710C30D5E7C64AD7B9449F9F17EDD024",
    "FE8BA79154F340A82740D1D5180C69B0A2DE6A4BA893BD55D3210E",
)
CCM_WRITE_RSP_TRANSFORMED = h(
    "FD534D42DD33EC41A927DD51476FE887C2D3C136D96831DD2E8EB7B4000000000000000050000000",
    "000001002100000000100000F783157E0F6F1C055D746753CA16D20C21088E2A67564E056C2F68A7",
    "F14F226C3BD809B7A2D52E5FE4ECF49821BC6001733430CF174E2764B3CCB213AAD8BB9FBAF6C15E",
    "13D9120965390E004A96A3F7",
)
CCM_WRITE_RSP = h(
    "FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000",
    "21000000001000000000000000000000000000000000000011000000170000000000000000000000",
)
CCM_READ_REQ = h(
    "FE534D4240000100000000000800010008000000000000000600000000000000FFFE000001000000",
    "21000000001000000000000000000000000000000000000031000000170000000000000000000000",
    "050000000400000001000000040000000000000000000000000000000000000000",
)
CCM_READ_REQ_NONCE = h("A0F92E964EDC3049B86E19")
CCM_READ_REQ_TRANSFORMED = h(
    "FD534D4235BF9600C841F0CDA9BD1BC3727B7E36A0F92E964EDC3049B86E19000000000071000000",
    "000001002100000000100000C4CCD3EB483A0638E69C99E391E7F64BCC10D6BEE46FEEA258C4BCAF",
    "792CB5A6E69283924081806DAB64827E9D14A5345D5221AB6DAFCB0E89FC2606B63D92163F4F6C93",
    "D1213D86ABF123B93EAD3AEF9A3471EFD68A423A00A6E0064D9AE3C842EFFFAD236A3BF25D37F4CD",
    "054C97DE18",
)
CCM_READ_RSP_TRANSFORMED = h(
    "FD534D42E241A13C7E1EE42ECF1FD69F3B8668C6DA6831DD2E8EB7B4000000000000000067000000",
    "00000100210000000010000015D67234FC8358D7BA1BF037ABC8EFD41A0A8F9BB04B16DEB1E85606",
    "BD8C2770823FE6239A286CB3E3D5762ABBD53FD8DE11ED491FE905E146A8FFCE09414AB741103D63",
    "7E28B19C6BA759B399DCC21FAE24CF2A455A13B215FC2857ABB513927F9F271D1C208B",
)
CCM_READ_RSP = h(
    "FE534D4240000100000000000800010001000000000000000600000000000000FFFE000001000000",
    "21000000001000000000000000000000000000000000000011005000170000000000000000000000",
    "536D623320656E6372797074696F6E2074657374696E67",
)

ENCRYPT_VECTORS = [
    pytest.param(Cipher.AES_128_CCM, ENC30_ENC_KEY, ENC30_SESSION_ID, ENC30_WRITE_REQ,
                 ENC30_WRITE_REQ_NONCE, ENC30_WRITE_REQ_TRANSFORMED, id="ENC30-write"),
    pytest.param(Cipher.AES_128_CCM, ENC30_ENC_KEY, ENC30_SESSION_ID, ENC30_READ_REQ,
                 ENC30_READ_REQ_NONCE, ENC30_READ_REQ_TRANSFORMED, id="ENC30-read"),
    pytest.param(Cipher.AES_128_GCM, GCM_ENC_KEY, GCM_SESSION_ID, GCM_WRITE_REQ,
                 GCM_WRITE_REQ_NONCE, GCM_WRITE_REQ_TRANSFORMED, id="ENC311-A1-gcm-write"),
    pytest.param(Cipher.AES_128_GCM, GCM_ENC_KEY, GCM_SESSION_ID, GCM_READ_REQ,
                 GCM_READ_REQ_NONCE, GCM_READ_REQ_TRANSFORMED, id="ENC311-A1-gcm-read"),
    pytest.param(Cipher.AES_128_CCM, CCM_ENC_KEY, CCM_SESSION_ID, CCM_WRITE_REQ,
                 CCM_WRITE_REQ_NONCE, CCM_WRITE_REQ_TRANSFORMED, id="ENC311-A2-ccm-write"),
    pytest.param(Cipher.AES_128_CCM, CCM_ENC_KEY, CCM_SESSION_ID, CCM_READ_REQ,
                 CCM_READ_REQ_NONCE, CCM_READ_REQ_TRANSFORMED, id="ENC311-A2-ccm-read"),
]

DECRYPT_VECTORS = [
    pytest.param(Cipher.AES_128_CCM, ENC30_DEC_KEY, ENC30_WRITE_RSP_TRANSFORMED, ENC30_WRITE_RSP,
                 id="ENC30-write-rsp"),
    pytest.param(Cipher.AES_128_CCM, ENC30_DEC_KEY, ENC30_READ_RSP_TRANSFORMED, ENC30_READ_RSP,
                 id="ENC30-read-rsp"),
    pytest.param(Cipher.AES_128_GCM, GCM_DEC_KEY, GCM_WRITE_RSP_TRANSFORMED, GCM_WRITE_RSP,
                 id="ENC311-A1-gcm-write-rsp"),
    pytest.param(Cipher.AES_128_GCM, GCM_DEC_KEY, GCM_READ_RSP_TRANSFORMED, GCM_READ_RSP,
                 id="ENC311-A1-gcm-read-rsp"),
    pytest.param(Cipher.AES_128_CCM, CCM_DEC_KEY, CCM_WRITE_RSP_TRANSFORMED, CCM_WRITE_RSP,
                 id="ENC311-A2-ccm-write-rsp"),
    pytest.param(Cipher.AES_128_CCM, CCM_DEC_KEY, CCM_READ_RSP_TRANSFORMED, CCM_READ_RSP,
                 id="ENC311-A2-ccm-read-rsp"),
]


@pytest.mark.parametrize(("cipher", "key", "session_id", "plain", "nonce", "expected"),
                         ENCRYPT_VECTORS)
def test_encrypt_published_vector(
    cipher: Cipher, key: bytes, session_id: int, plain: bytes, nonce: bytes, expected: bytes
) -> None:
    parts = encrypt(plain, session_id, key, cipher, nonce)
    assert len(parts) == 2 and len(parts[0]) == 52
    assert b"".join(parts) == expected
    # The same message given as several buffers encrypts identically.
    split: list[bytes | memoryview] = [plain[:64], memoryview(plain)[64:100], plain[100:]]
    assert bytes(Encryptor(cipher, key).encrypt_message(split, session_id, nonce)) == expected


@pytest.mark.parametrize(("cipher", "key", "transformed", "expected"), DECRYPT_VECTORS)
def test_decrypt_published_vector(
    cipher: Cipher, key: bytes, transformed: bytes, expected: bytes
) -> None:
    assert decrypt(transformed, key, cipher) == expected
    assert decrypt(memoryview(bytearray(transformed)), key, cipher) == expected


@pytest.mark.parametrize(("cipher", "key", "session_id", "plain", "nonce", "expected"),
                         ENCRYPT_VECTORS)
def test_client_request_vector_decrypts_with_same_key(
    cipher: Cipher, key: bytes, session_id: int, plain: bytes, nonce: bytes, expected: bytes
) -> None:
    """What the server does with our request: decrypt with our EncryptionKey."""
    assert decrypt(expected, key, cipher) == plain
    assert parse_transform_header(expected).session_id == session_id


ALL_CIPHERS = list(Cipher)


@pytest.mark.parametrize("cipher", ALL_CIPHERS, ids=lambda c: c.name)
def test_round_trip_all_ciphers(cipher: Cipher) -> None:
    key = os.urandom(cipher.key_size)
    nonces = NonceGenerator(cipher)
    enc = Encryptor(cipher, key)
    for size in (64, 65, 1000, 1 << 20):
        message = os.urandom(size)
        wire = enc.encrypt_message([message[:64], message[64:]], 0x1122334455667788, nonces())
        assert len(wire) == 52 + size
        assert enc.decrypt(wire) == message


@pytest.mark.parametrize("cipher", ALL_CIPHERS, ids=lambda c: c.name)
def test_independent_aead_computation(cipher: Cipher) -> None:
    """AES-256 has no published SMB vector: check the transform against the
    bare AEAD fed by hand (nonce prefix, AAD = header bytes 20..52, tag in
    the Signature field)."""
    key = os.urandom(cipher.key_size)
    nonce = os.urandom(cipher.nonce_size)
    message = os.urandom(333)
    wire = bytes(Encryptor(cipher, key).encrypt_message(message, 0x100000000025, nonce))
    aead = AESGCM(key) if cipher.is_gcm else AESCCM(key)
    aad = (
        nonce.ljust(16, b"\0") + len(message).to_bytes(4, "little") + b"\0\0"
        + (1).to_bytes(2, "little") + (0x100000000025).to_bytes(8, "little")
    )
    ct_tag = aead.encrypt(nonce, message, aad)
    assert wire == b"\xfdSMB" + ct_tag[-16:] + aad + ct_tag[:-16]


@pytest.mark.parametrize("cipher", ALL_CIPHERS, ids=lambda c: c.name)
@pytest.mark.parametrize("where", [5, 20, 35, 40, 44, 51, 52, 52 + 100, -1])
def test_tampering_raises_integrity_error(cipher: Cipher, where: int) -> None:
    """One flipped bit in the Signature (5), the Nonce (20, 35), Reserved
    (40), SessionId (44, 51) or the ciphertext fails authentication.
    ProtocolId, OriginalMessageSize and Flags are checked structurally
    first (test_malformed_transform_headers)."""
    key = os.urandom(cipher.key_size)
    wire = bytearray(encrypt_message_once(cipher, key))
    wire[where] ^= 0x01
    with pytest.raises(IntegrityError):
        decrypt(wire, key, cipher)


def encrypt_message_once(cipher: Cipher, key: bytes) -> bytes:
    return bytes(Encryptor(cipher, key).encrypt_message(os.urandom(200), 7, NonceGenerator(cipher)()))


@pytest.mark.parametrize("cipher", ALL_CIPHERS, ids=lambda c: c.name)
def test_wrong_key_raises_integrity_error(cipher: Cipher) -> None:
    wire = encrypt_message_once(cipher, os.urandom(cipher.key_size))
    with pytest.raises(IntegrityError):
        decrypt(wire, os.urandom(cipher.key_size), cipher)
    assert issubclass(IntegrityError, DecodeError)


def test_malformed_transform_headers() -> None:
    key = os.urandom(16)
    wire = bytearray(encrypt_message_once(Cipher.AES_128_GCM, key))
    with pytest.raises(DecodeError):
        decrypt(wire[:52], key, Cipher.AES_128_GCM)  # nothing follows the header
    with pytest.raises(DecodeError):
        decrypt(wire[:-1], key, Cipher.AES_128_GCM)  # OriginalMessageSize mismatch
    bad = bytearray(wire)
    bad[0] = 0xFE
    with pytest.raises(DecodeError):
        decrypt(bad, key, Cipher.AES_128_GCM)
    bad = bytearray(wire)
    bad[42] = 2  # Flags / EncryptionAlgorithm
    with pytest.raises(DecodeError):
        decrypt(bad, key, Cipher.AES_128_GCM)


def test_nonce_generator_never_repeats_and_has_cipher_size() -> None:
    for cipher in ALL_CIPHERS:
        gen = NonceGenerator(cipher)
        seen = {gen() for _ in range(1000)}
        assert len(seen) == 1000
        assert {len(n) for n in seen} == {cipher.nonce_size}


def test_key_and_nonce_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        Encryptor(Cipher.AES_256_GCM, bytes(16))
    with pytest.raises(ValueError):
        Encryptor(Cipher.AES_128_CCM, bytes(16)).encrypt_message(bytes(64), 1, bytes(12))


@pytest.mark.parametrize("cipher", [Cipher.AES_128_GCM, Cipher.AES_256_CCM], ids=lambda c: c.name)
def test_scratch_buffers_survive_size_changes_and_decrypt_into(cipher: Cipher) -> None:
    """The reused gather buffer never leaks bytes of a previous, larger
    message into a smaller one; decrypt_into fills a caller's buffer."""
    key = os.urandom(cipher.key_size)
    enc = Encryptor(cipher, key)
    nonces = NonceGenerator(cipher)
    for size in (1 << 20, 100, 70000, 64, 1 << 20):
        message = os.urandom(size)
        wire = bytes(enc.encrypt_message([message[:64], message[64:]], 9, nonces()))
        assert enc.decrypt(wire) == message
        out = bytearray(size + 10)
        assert enc.decrypt_into(wire, out) == size
        assert out[:size] == message
    with pytest.raises(ValueError):
        enc.decrypt_into(wire, bytearray(10))
    bad = bytearray(wire)
    bad[-1] ^= 1
    with pytest.raises(IntegrityError):
        enc.decrypt_into(bad, bytearray(len(wire)))


def test_decrypting_in_threads_is_safe() -> None:
    import threading

    cipher = Cipher.AES_128_GCM
    key = os.urandom(16)
    enc = Encryptor(cipher, key)
    messages = [os.urandom(50000 + i * 1000) for i in range(8)]
    wires = [bytes(enc.encrypt_message(m, 1, bytes([i]) * 12)) for i, m in enumerate(messages)]
    failures: list[int] = []

    def work(i: int) -> None:
        for _ in range(20):
            if enc.decrypt(wires[i]) != messages[i]:
                failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not failures
