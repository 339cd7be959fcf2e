"""SMB2/3 message signing and verification ([MS-SMB2] 3.1.4.1, 3.1.5.1).

The signature is a MAC over the whole message (header included, any
compound padding included) computed with the 16-byte Signature field of the
header taken as zeros:

* HMAC-SHA256, first 16 bytes of the digest: dialects 2.0.2 and 2.1.
* AES-128-CMAC ([RFC4493]): 3.0, 3.0.2, and 3.1.1 without a negotiated
  signing algorithm.
* AES-128-GMAC ([RFC4543]): 3.1.1 when SMB2_SIGNING_CAPABILITIES selected
  it. That is AES-GCM with an empty plaintext and the message as AAD, the
  tag being the signature; the 12-byte nonce is MessageId (8 bytes LE)
  followed by a 32-bit LE word whose bit 0 says the sender is the server and
  bit 1 that the message is a CANCEL request (3.1.4.1).

Cost: HMAC and CMAC take the message as a stream, so a message given as
several buffers (header, body, 1 MiB payload) is fed part by part and never
joined. GMAC needs its AAD as one contiguous buffer: a single *writable*
buffer is signed/verified in place (the Signature field is zeroed, the tag
computed, then the field is written or restored); anything else is
gathered once into a reused per-thread scratch buffer. The engine should
therefore sign the one buffer it is about to send.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from hmac import compare_digest
from typing import Final, cast

from cryptography.hazmat.primitives import cmac, hashes, hmac
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from smbfs.proto.codec import SMB2_HEADER_SIZE, Buffer, DecodeError
from smbfs.proto.constants import Command, Dialect, HeaderFlags, SigningAlgorithm
from smbfs.proto.header import SIGNATURE_OFFSET, ZERO_SIGNATURE

SIGNATURE_SIZE: Final = 16
_SIG_END: Final = SIGNATURE_OFFSET + SIGNATURE_SIZE
# Command (offset 12), Flags (16), MessageId (24) of the SMB2 header.
_CMD_FLAGS: Final = struct.Struct("<H2xI")
_MESSAGE_ID: Final = struct.Struct("<Q")
_GMAC_NONCE: Final = struct.Struct("<QI")
_GMAC_ROLE_SERVER: Final = 0x1
_GMAC_CANCEL: Final = 0x2
_SERVER_TO_REDIR: Final = int(HeaderFlags.SMB2_FLAGS_SERVER_TO_REDIR)
_CANCEL: Final = int(Command.SMB2_CANCEL)


def signing_algorithm_for(
    dialect: Dialect, negotiated: SigningAlgorithm | None = None
) -> SigningAlgorithm:
    """Connection.SigningAlgorithmId as 3.1.4.1 resolves it."""
    if not dialect.is_smb3:
        return SigningAlgorithm.HMAC_SHA256
    if dialect == Dialect.SMB3_1_1 and negotiated is not None:
        return negotiated
    return SigningAlgorithm.AES_CMAC


def gmac_nonce(header: Buffer) -> bytes:
    """The AES-GMAC nonce of the message whose SMB2 header is ``header``."""
    command, flags = _CMD_FLAGS.unpack_from(header, 12)
    (message_id,) = _MESSAGE_ID.unpack_from(header, 24)
    word = 0
    if flags & _SERVER_TO_REDIR:
        word |= _GMAC_ROLE_SERVER
    elif command == _CANCEL:
        word |= _GMAC_CANCEL
    return _GMAC_NONCE.pack(message_id, word)


def _as_parts(message: Buffer | Sequence[Buffer]) -> list[memoryview]:
    """The message as memoryviews whose first one holds the whole header."""
    if isinstance(message, bytes | bytearray | memoryview):
        parts = [memoryview(message)]
    else:
        parts = [memoryview(p) for p in message]
    if not parts or len(parts[0]) < SMB2_HEADER_SIZE:
        joined = memoryview(b"".join(parts))
        if len(joined) < SMB2_HEADER_SIZE:
            raise DecodeError("signing: message shorter than an SMB2 header")
        parts = [joined]
    return parts


class Signer:
    """Signs and verifies messages with one algorithm and one key.

    One Signer per (session or channel) signing key: the MAC state keyed
    once is cloned per message. Keys never appear in ``repr`` or logs.
    """

    __slots__ = ("_aesgcm", "_algorithm", "_cmac", "_hmac", "_local")

    def __init__(self, algorithm: SigningAlgorithm, key: Buffer) -> None:
        key = bytes(key)
        self._algorithm = SigningAlgorithm(algorithm)
        self._hmac: hmac.HMAC | None = None
        self._cmac: cmac.CMAC | None = None
        self._aesgcm: AESGCM | None = None
        if self._algorithm == SigningAlgorithm.HMAC_SHA256:
            self._hmac = hmac.HMAC(key, hashes.SHA256())
        elif len(key) != 16:
            raise ValueError(f"{self._algorithm.name} needs a 16-byte key, got {len(key)}")
        elif self._algorithm == SigningAlgorithm.AES_CMAC:
            self._cmac = cmac.CMAC(algorithms.AES(key))
        else:
            self._aesgcm = AESGCM(key)
        # Per-thread scratch for the GMAC join (see _gmac_joined).
        self._local = threading.local()

    @property
    def algorithm(self) -> SigningAlgorithm:
        return self._algorithm

    def __repr__(self) -> str:
        return f"Signer({self._algorithm.name})"

    def _stream_mac(self, parts: list[memoryview]) -> bytes:
        # cryptography's CMAC.update is typed ``bytes`` but takes any buffer;
        # the cast keeps the zero-copy memoryviews.
        mac = cast(
            "hmac.HMAC", self._hmac.copy() if self._hmac is not None else self._cmac.copy()  # type: ignore[union-attr]
        )
        first = parts[0]
        mac.update(first[:SIGNATURE_OFFSET])
        mac.update(ZERO_SIGNATURE)
        mac.update(first[_SIG_END:])
        for part in parts[1:]:
            mac.update(part)
        return mac.finalize()[:SIGNATURE_SIZE]

    def _gmac_joined(self, parts: list[memoryview]) -> bytes:
        """GMAC over parts: gathered into a scratch buffer reused from one
        message to the next, since a fresh 1 MiB temporary per message costs
        malloc an mmap and page faults (measured: as much as the GMAC)."""
        assert self._aesgcm is not None
        size = sum(len(p) for p in parts)
        buf: bytearray | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            buf = bytearray(max(size, 2 * len(buf) if buf else size))
            self._local.buf = buf
        aad = memoryview(buf)[:size]
        pos = 0
        for part in parts:
            aad[pos : pos + len(part)] = part
            pos += len(part)
        aad[SIGNATURE_OFFSET:_SIG_END] = ZERO_SIGNATURE
        return self._aesgcm.encrypt(gmac_nonce(aad), b"", aad)

    def compute(self, message: Buffer | Sequence[Buffer]) -> bytes:
        """The signature of ``message`` (its Signature field taken as zero);
        ``message`` is not modified."""
        parts = _as_parts(message)
        if self._aesgcm is None:
            return self._stream_mac(parts)
        if len(parts) == 1 and not parts[0].readonly:
            mv = parts[0]
            saved = bytes(mv[SIGNATURE_OFFSET:_SIG_END])
            mv[SIGNATURE_OFFSET:_SIG_END] = ZERO_SIGNATURE
            try:
                return self._aesgcm.encrypt(gmac_nonce(mv), b"", mv)
            finally:
                mv[SIGNATURE_OFFSET:_SIG_END] = saved
        return self._gmac_joined(parts)

    def sign(self, message: bytearray | memoryview | Sequence[bytearray | memoryview | bytes]) -> bytes:
        """Compute the signature and write it into the header's Signature
        field, in place. The caller has already set SMB2_FLAGS_SIGNED (the
        flag is itself covered by the signature). The buffer holding the
        header must be writable and hold all 64 header bytes."""
        parts = _as_parts(message)
        header = parts[0]
        if header.readonly:
            raise TypeError("sign: the header must be in a writable buffer")
        if self._aesgcm is not None and len(parts) == 1:
            header[SIGNATURE_OFFSET:_SIG_END] = ZERO_SIGNATURE
            sig = self._aesgcm.encrypt(gmac_nonce(header), b"", header)
        else:
            sig = self.compute(parts)
        header[SIGNATURE_OFFSET:_SIG_END] = sig
        return sig

    def verify(self, message: Buffer | Sequence[Buffer]) -> bool:
        """True when the Signature field of ``message`` is the right one
        (constant-time comparison). Never raises on a well-formed header."""
        parts = _as_parts(message)
        received = bytes(parts[0][SIGNATURE_OFFSET:_SIG_END])
        return compare_digest(self.compute(parts), received)
