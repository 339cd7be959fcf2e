"""SMB 3.x key derivation ([MS-SMB2] 3.1.4.2, 3.2.5.3.1, 3.2.5.3.3).

Every SMB 3.x key is ``KDF(Ki, Label, Context, L)``: NIST SP800-108 in
counter mode with HMAC-SHA256 as the PRF and a 32-bit counter (r = 32).
Label and context strings below include their terminating NUL, exactly as
the spec counts their sizes (e.g. ``"SMB2AESCMAC"`` is 12 bytes); SP800-108
then adds its own 0x00 separator between them.

The derivation is split so the engine can compute, separately:

* the per-session keys at the end of an initial SESSION_SETUP
  (:func:`derive_session_keys`), and
* the per-channel signing key when a new connection is bound to an existing
  session (multichannel, [MS-SMB2] 3.2.5.3.3): only the signing key is
  derived again, from that channel's own session key and, in 3.1.1, from the
  preauth hash of *that channel's* binding exchange
  (:func:`derive_signing_key`). Encryption keys are shared by all channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac

from smbfs.proto.codec import Buffer
from smbfs.proto.constants import Cipher, Dialect

# SMB 3.0 / 3.0.2 labels and contexts ([MS-SMB2] 3.2.5.3.1).
LABEL_SMB2AESCMAC: Final = b"SMB2AESCMAC\x00"
CONTEXT_SMBSIGN: Final = b"SmbSign\x00"
LABEL_SMB2APP: Final = b"SMB2APP\x00"
CONTEXT_SMBRPC: Final = b"SmbRpc\x00"
LABEL_SMB2AESCCM: Final = b"SMB2AESCCM\x00"
CONTEXT_SERVERIN: Final = b"ServerIn \x00"  # the blank before the NUL is part of it
CONTEXT_SERVEROUT: Final = b"ServerOut\x00"

# SMB 3.1.1 labels; the context is Session.PreauthIntegrityHashValue.
LABEL_SMBSIGNINGKEY: Final = b"SMBSigningKey\x00"
LABEL_SMBAPPKEY: Final = b"SMBAppKey\x00"
LABEL_SMBC2SCIPHERKEY: Final = b"SMBC2SCipherKey\x00"
LABEL_SMBS2CCIPHERKEY: Final = b"SMBS2CCipherKey\x00"

PREAUTH_HASH_SIZE: Final = 64  # SHA-512
_SIGNING_KEY_BITS: Final = 128


def kdf_counter_hmac_sha256(ki: Buffer, fixed_input: Buffer, length_bits: int) -> bytes:
    """KDF in counter mode ([SP800-108] 5.1), PRF = HMAC-SHA256, r = 32,
    counter before the (opaque) fixed input: the leftmost ``length_bits`` of
    PRF(Ki, [1]_32 || fixed) || PRF(Ki, [2]_32 || fixed) || ...
    """
    if length_bits <= 0 or length_bits % 8:
        raise ValueError(f"KDF output length must be a positive multiple of 8, got {length_bits}")
    key = bytes(ki)
    out: list[bytes] = []
    for i in range(1, -(-length_bits // 256) + 1):
        prf = hmac.HMAC(key, hashes.SHA256())
        prf.update(i.to_bytes(4, "big"))
        prf.update(bytes(fixed_input))
        out.append(prf.finalize())
    return b"".join(out)[: length_bits // 8]


def sp800_108_hmac_sha256(ki: Buffer, label: bytes, context: Buffer, length_bits: int) -> bytes:
    """The SMB3KDF of [MS-SMB2] 3.1.4.2: the fixed input is
    Label || 0x00 || Context || [L]_32 ([SP800-108] 5.1)."""
    fixed = b"".join((label, b"\x00", bytes(context), length_bits.to_bytes(4, "big")))
    return kdf_counter_hmac_sha256(ki, fixed, length_bits)


def session_key_from_gss(cryptographic_key: Buffer) -> bytes:
    """Session.SessionKey: the first 16 bytes of the GSS key, right-padded
    with zeros when shorter ([MS-SMB2] 3.2.1.3)."""
    return bytes(cryptographic_key[:16]).ljust(16, b"\x00")


@dataclass(frozen=True, slots=True)
class SessionKeys:
    """The keys of one authenticated session, from the client's point of view.

    ``encryption_key`` protects client-to-server messages (ServerIn /
    C2S), ``decryption_key`` server-to-client ones (ServerOut / S2C). Both
    are None for 2.x dialects. ``repr`` never shows key bytes.
    """

    signing_key: bytes
    encryption_key: bytes | None = None
    decryption_key: bytes | None = None
    application_key: bytes | None = None

    def __repr__(self) -> str:
        return "SessionKeys(<redacted>)"


def _check_preauth(dialect: Dialect, preauth_hash: Buffer | None) -> bytes:
    if dialect != Dialect.SMB3_1_1:
        return b""
    if preauth_hash is None or len(preauth_hash) != PREAUTH_HASH_SIZE:
        raise ValueError("SMB 3.1.1 key derivation needs the 64-byte preauth integrity hash")
    return bytes(preauth_hash)


def _cipher_bits(cipher: Cipher | None) -> int:
    return 256 if cipher in (Cipher.AES_256_CCM, Cipher.AES_256_GCM) else 128


def derive_signing_key(
    dialect: Dialect,
    cryptographic_key: Buffer,
    preauth_hash: Buffer | None = None,
) -> bytes:
    """Session.SigningKey, or Channel.SigningKey of a bound channel.

    For 2.0.2 / 2.1 there is no derivation: the session key itself signs.
    The signing key is always derived from the 16-byte Session.SessionKey
    with L = 128 whatever the cipher, since AES-CMAC and AES-GMAC take
    128-bit keys. This is Samba's reading; the Linux client instead feeds
    L = 256 into every derivation once an AES-256 cipher is negotiated
    (3.1.4.2 words L per Connection.CipherId). No published vector settles
    it; against Samba 4.17 with AES-256-CCM and AES-256-GCM negotiated, the
    signed final SESSION_SETUP response and signed I/O verify with L = 128.
    """
    session_key = session_key_from_gss(cryptographic_key)
    if not dialect.is_smb3:
        return session_key
    if dialect == Dialect.SMB3_1_1:
        context = _check_preauth(dialect, preauth_hash)
        return sp800_108_hmac_sha256(session_key, LABEL_SMBSIGNINGKEY, context, _SIGNING_KEY_BITS)
    return sp800_108_hmac_sha256(session_key, LABEL_SMB2AESCMAC, CONTEXT_SMBSIGN, _SIGNING_KEY_BITS)


def derive_session_keys(
    dialect: Dialect,
    cryptographic_key: Buffer,
    preauth_hash: Buffer | None = None,
    cipher: Cipher | None = None,
) -> SessionKeys:
    """All keys of a newly authenticated session ([MS-SMB2] 3.2.5.3.1).

    ``cryptographic_key`` is the full key from the GSS context (16 bytes for
    NTLM, up to 32 for Kerberos AES-256). ``cipher`` is Connection.CipherId
    (None before 3.1.1 means AES-128-CCM). For AES-256-CCM/GCM in 3.1.1 the
    cipher keys use L = 256 and Session.FullSessionKey (the untruncated GSS
    key) as Ki; every other key uses the 16-byte Session.SessionKey.
    """
    session_key = session_key_from_gss(cryptographic_key)
    signing_key = derive_signing_key(dialect, cryptographic_key, preauth_hash)
    if not dialect.is_smb3:
        return SessionKeys(signing_key=signing_key)
    if dialect == Dialect.SMB3_1_1:
        context = _check_preauth(dialect, preauth_hash)
        bits = _cipher_bits(cipher)
        cipher_ki = bytes(cryptographic_key) if bits == 256 else session_key
        return SessionKeys(
            signing_key=signing_key,
            encryption_key=sp800_108_hmac_sha256(cipher_ki, LABEL_SMBC2SCIPHERKEY, context, bits),
            decryption_key=sp800_108_hmac_sha256(cipher_ki, LABEL_SMBS2CCIPHERKEY, context, bits),
            application_key=sp800_108_hmac_sha256(session_key, LABEL_SMBAPPKEY, context, 128),
        )
    return SessionKeys(
        signing_key=signing_key,
        encryption_key=sp800_108_hmac_sha256(session_key, LABEL_SMB2AESCCM, CONTEXT_SERVERIN, 128),
        decryption_key=sp800_108_hmac_sha256(session_key, LABEL_SMB2AESCCM, CONTEXT_SERVEROUT, 128),
        application_key=sp800_108_hmac_sha256(session_key, LABEL_SMB2APP, CONTEXT_SMBRPC, 128),
    )
