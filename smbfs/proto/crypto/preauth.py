"""SMB 3.1.1 preauthentication integrity ([MS-SMB2] 3.2.5.2, 3.2.5.3.1).

The client keeps a running SHA-512 hash H(i) = SHA-512(H(i-1) || message),
starting from 64 zero bytes, over the exact bytes of every NEGOTIATE
request/response (Connection.PreauthIntegrityHashValue) and then, per
session, over every SESSION_SETUP request and every SESSION_SETUP response
except the final STATUS_SUCCESS one (Session.PreauthIntegrityHashValue).
The session hash starts as a copy of the connection hash: :meth:`copy`.
The final value is the context of the 3.1.1 key derivation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cryptography.hazmat.primitives import hashes

from smbfs.proto.codec import Buffer

SMB2_PREAUTH_INTEGRITY_SHA512: Final = 0x0001  # [MS-SMB2] 2.2.3.1.1 HashAlgorithms
PREAUTH_HASH_SIZE: Final = 64


class PreauthHash:
    """A running preauth integrity hash value."""

    __slots__ = ("_value",)

    def __init__(self, value: Buffer | None = None) -> None:
        if value is None:
            self._value = bytes(PREAUTH_HASH_SIZE)
        elif len(value) != PREAUTH_HASH_SIZE:
            raise ValueError(f"preauth hash must be {PREAUTH_HASH_SIZE} bytes, got {len(value)}")
        else:
            self._value = bytes(value)

    def update(self, message: Buffer | Iterable[Buffer]) -> None:
        """Fold in one whole SMB2 message (header included), given as one
        buffer or as the parts it is sent in, without joining them."""
        h = hashes.Hash(hashes.SHA512())
        h.update(self._value)
        if isinstance(message, bytes | bytearray | memoryview):
            h.update(message)
        else:
            for part in message:
                h.update(part)
        self._value = h.finalize()

    @property
    def value(self) -> bytes:
        return self._value

    def copy(self) -> PreauthHash:
        """A fork: the session hash branches off the connection hash."""
        return PreauthHash(self._value)

    def __repr__(self) -> str:
        return f"PreauthHash({self._value[:8].hex()}...)"
