"""SMB 3.x message encryption ([MS-SMB2] 2.2.41, 3.1.4.3, 3.2.5.1.1).

An encrypted message is an SMB2 TRANSFORM_HEADER followed by the AEAD
ciphertext of the plain SMB2 message (a single message or a whole compound
chain). The AEAD runs with:

* the key: Session.EncryptionKey to send, Session.DecryptionKey to receive;
* the nonce: the first 11 (AES-CCM) or 12 (AES-GCM) bytes of the header's
  16-byte Nonce field, the rest being zero;
* the associated data: the 32 header bytes from Nonce to the end;
* the tag: the header's Signature field.

Copies: a one-shot AEAD wants its input in one buffer. Encryption gathers
plaintext parts (header, body, 1 MiB payload) into a per-thread scratch
buffer that is reused from message to message, and writes header and
ciphertext into one preallocated buffer (``encrypt_into``) sent as is.
Decryption must hand the AEAD ``ciphertext || tag`` contiguously while the
wire carries the tag in front: the ciphertext is gathered into the same kind
of scratch buffer. Reusing it matters more than the copy itself: a fresh
1 MiB temporary per message is mmap'ed and page-faulted by malloc every
time, which measured ~8x slower than the AES-GCM work (bench/proto_bench.py).
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from smbfs.proto.codec import Buffer, DecodeError, need
from smbfs.proto.constants import Cipher
from smbfs.proto.header import (
    SMB2_TRANSFORM_FLAG_ENCRYPTED,
    SMB2_TRANSFORM_HEADER_SIZE,
    SMB2_TRANSFORM_PROTOCOL_ID,
    TRANSFORM_AAD_OFFSET,
    TransformHeader,
)

TAG_SIZE: Final = 16
_NONCE_FIELD_SIZE: Final = 16
_SIGNATURE_SLICE: Final = slice(4, 20)
# ProtocolId, Signature, Nonce, OriginalMessageSize, Reserved, Flags, SessionId.
_TRANSFORM: Final = struct.Struct("<4s16s16sIHHQ")


class IntegrityError(DecodeError):
    """An encrypted message failed authentication (wrong key, tampered
    header, ciphertext or tag). The connection must be dropped."""


class NonceGenerator:
    """Nonces for one encryption key: a random prefix then a 64-bit counter.

    [MS-SMB2] 3.1.4.3 only asks that no nonce repeat under a key; a counter
    guarantees it where random nonces would only make it likely. All
    channels of a session share Session.EncryptionKey, so there is one
    generator per session, not per connection.
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self, cipher: Cipher, prefix: bytes | None = None) -> None:
        prefix_size = cipher.nonce_size - 8
        self._prefix = os.urandom(prefix_size) if prefix is None else bytes(prefix)
        if len(self._prefix) != prefix_size:
            raise ValueError(f"nonce prefix must be {prefix_size} bytes")
        self._counter = 0

    def __call__(self) -> bytes:
        if self._counter >= 1 << 64:
            raise OverflowError("nonce space exhausted: re-establish the session")
        value = self._counter
        self._counter += 1
        return value.to_bytes(8, "little") + self._prefix


class Encryptor:
    """AEAD for one key (Session.EncryptionKey or Session.DecryptionKey).

    Keeps the keyed AEAD object so the key schedule is done once per
    session, not once per message.
    """

    __slots__ = ("_aead", "_cipher", "_local")

    def __init__(self, cipher: Cipher, key: Buffer) -> None:
        self._cipher = Cipher(cipher)
        if len(key) != self._cipher.key_size:
            raise ValueError(f"{self._cipher.name} needs a {self._cipher.key_size}-byte key")
        self._aead: AESGCM | AESCCM = (
            AESGCM(bytes(key)) if self._cipher.is_gcm else AESCCM(bytes(key), TAG_SIZE)
        )
        # Per thread, so the engine may run the AEAD in worker threads.
        self._local = threading.local()

    def _scratch(self, size: int) -> memoryview:
        """A reusable buffer of at least ``size`` bytes (see module doc)."""
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = bytearray(max(size, 2 * len(buf) if buf else size))
            self._local.buf = buf
        return memoryview(buf)[:size]

    def _gather(self, parts: Sequence[Buffer], size: int) -> memoryview:
        out = self._scratch(size)
        pos = 0
        for part in parts:
            n = len(part)
            out[pos : pos + n] = part
            pos += n
        return out

    @property
    def cipher(self) -> Cipher:
        return self._cipher

    def __repr__(self) -> str:
        return f"Encryptor({self._cipher.name})"

    def encrypt_message(
        self, message: Buffer | Sequence[Buffer], session_id: int, nonce: bytes
    ) -> memoryview:
        """TRANSFORM_HEADER + ciphertext as one buffer, ready to send.

        ``nonce`` is the cipher's 11 or 12 bytes (from a NonceGenerator), the
        rest of the 16-byte Nonce field then being zero; or all 16 bytes of
        the field (Windows fills it with random bytes), of which the AEAD
        uses the first 11 or 12 and the AAD covers all 16.
        """
        nsize = self._cipher.nonce_size
        if len(nonce) not in (nsize, _NONCE_FIELD_SIZE):
            raise ValueError(f"{self._cipher.name} needs a {nsize}- or 16-byte nonce")
        if isinstance(message, bytes | bytearray | memoryview):
            plain: Buffer = message
        elif len(message) == 1:
            plain = message[0]
        else:
            plain = self._gather(message, sum(len(p) for p in message))
        size = len(plain)
        hdr = SMB2_TRANSFORM_HEADER_SIZE
        out = bytearray(hdr + size + TAG_SIZE)
        mv = memoryview(out)
        _TRANSFORM.pack_into(
            out, 0, SMB2_TRANSFORM_PROTOCOL_ID, bytes(16),
            nonce.ljust(_NONCE_FIELD_SIZE, b"\x00"), size, 0,
            SMB2_TRANSFORM_FLAG_ENCRYPTED, session_id,
        )
        self._aead.encrypt_into(nonce[:nsize], plain, mv[TRANSFORM_AAD_OFFSET:hdr], mv[hdr:])
        mv[_SIGNATURE_SLICE] = mv[hdr + size :]
        return mv[: hdr + size]

    def encrypt(
        self, message: Buffer | Sequence[Buffer], session_id: int, nonce: bytes
    ) -> list[memoryview]:
        """[transform header, ciphertext]: two views into one buffer."""
        mv = self.encrypt_message(message, session_id, nonce)
        return [mv[:SMB2_TRANSFORM_HEADER_SIZE], mv[SMB2_TRANSFORM_HEADER_SIZE:]]

    def decrypt(self, transform_message: Buffer) -> bytes:
        """The plain SMB2 message inside a received encrypted message.

        Raises DecodeError for a malformed transform header and
        IntegrityError when authentication fails. The caller has already
        picked this Encryptor by the header's SessionId
        (:func:`parse_transform_header`).
        """
        mv = memoryview(transform_message)
        nonce, data, aad = self._open(mv)
        try:
            return self._aead.decrypt(nonce, data, aad)
        except InvalidTag:
            raise self._integrity_error() from None

    def decrypt_into(self, transform_message: Buffer, out: bytearray | memoryview) -> int:
        """Like :meth:`decrypt` but writes the plain message into ``out``
        (e.g. a pooled buffer) and returns its length."""
        mv = memoryview(transform_message)
        nonce, data, aad = self._open(mv)
        size = len(data) - TAG_SIZE
        if len(out) < size:
            raise ValueError(f"decrypt_into: output buffer of {len(out)} bytes, need {size}")
        try:
            self._aead.decrypt_into(nonce, data, aad, memoryview(out)[:size])
        except InvalidTag:
            raise self._integrity_error() from None
        return size

    def _open(self, mv: memoryview) -> tuple[bytes, memoryview, memoryview]:
        hdr = SMB2_TRANSFORM_HEADER_SIZE
        th = parse_transform_header(mv)
        size = th.original_message_size
        data = self._gather((mv[hdr:], th.signature), size + TAG_SIZE)
        return th.nonce[: self._cipher.nonce_size], data, mv[TRANSFORM_AAD_OFFSET:hdr]

    def _integrity_error(self) -> IntegrityError:
        return IntegrityError(f"encrypted message failed {self._cipher.name} authentication")


def parse_transform_header(transform_message: Buffer) -> TransformHeader:
    """Decode and sanity-check a TRANSFORM_HEADER before any decryption
    ([MS-SMB2] 3.2.5.1.1): something must follow it, Flags (3.1.1) or
    EncryptionAlgorithm (3.0.x) must be 0x0001, and OriginalMessageSize must
    be exactly what follows (an AEAD's ciphertext is as long as its
    plaintext)."""
    need(transform_message, 0, SMB2_TRANSFORM_HEADER_SIZE + 1, "encrypted message")
    th = TransformHeader.decode(transform_message)
    if th.flags != SMB2_TRANSFORM_FLAG_ENCRYPTED:
        raise DecodeError(f"TRANSFORM_HEADER: Flags/EncryptionAlgorithm {th.flags:#x}")
    body = len(transform_message) - SMB2_TRANSFORM_HEADER_SIZE
    if th.original_message_size != body:
        raise DecodeError(
            f"TRANSFORM_HEADER: OriginalMessageSize {th.original_message_size}, "
            f"{body} bytes follow"
        )
    return th


def encrypt(
    message: Buffer | Sequence[Buffer], session_id: int, key: Buffer, cipher: Cipher, nonce: bytes
) -> list[memoryview]:
    """One-shot :meth:`Encryptor.encrypt` (tests, rare messages)."""
    return Encryptor(cipher, key).encrypt(message, session_id, nonce)


def decrypt(transform_message: Buffer, key: Buffer, cipher: Cipher) -> bytes:
    """One-shot :meth:`Encryptor.decrypt`."""
    return Encryptor(cipher, key).decrypt(transform_message)
