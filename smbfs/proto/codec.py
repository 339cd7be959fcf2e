"""Bounds-checked primitives every decoder in smbfs.proto is built from.

Nothing the server sends is trusted for sizes or offsets: every decoder reads
through these helpers, so a length field claiming 4 GiB or an offset past the
end of the buffer becomes a :class:`DecodeError` instead of an allocation, an
IndexError or a silently short read.

Conventions shared by every message and structure module:

* A structure is a dataclass with ``encode() -> bytes`` and a classmethod
  ``decode(buf) -> Self`` (or ``decode(buf, offset)`` where it lives inside a
  larger buffer).
* SMB2 message bodies are decoded from the *whole message* (``msg``: a
  memoryview that starts at the SMB2 header), because buffer offsets in
  MS-SMB2 are relative to the start of the header. The body begins at
  ``msg[SMB2_HEADER_SIZE:]``. Encoders likewise compute offsets as
  ``SMB2_HEADER_SIZE + position in body``.
* Bulk payloads (READ data, WRITE data) are carried as memoryviews into the
  received buffer and sent as separate parts, never copied by this layer.
"""

from __future__ import annotations

import struct
from typing import Final

Buffer = bytes | bytearray | memoryview

SMB2_HEADER_SIZE: Final = 64


class DecodeError(ValueError):
    """Raised for any malformed, truncated or hostile input to a decoder."""


def need(buf: Buffer, offset: int, size: int, what: str) -> None:
    """Fail unless ``buf[offset:offset+size]`` lies entirely inside ``buf``."""
    if offset < 0 or size < 0 or offset + size > len(buf):
        raise DecodeError(
            f"{what}: needs {size} bytes at offset {offset}, buffer has {len(buf)}"
        )


def unpack(st: struct.Struct, buf: Buffer, offset: int, what: str) -> tuple[int, ...]:
    """``st.unpack_from`` with a bounds check that names the structure."""
    need(buf, offset, st.size, what)
    return st.unpack_from(buf, offset)


def view(buf: Buffer, offset: int, length: int, what: str) -> memoryview:
    """A zero-copy, bounds-checked window into ``buf``."""
    need(buf, offset, length, what)
    return memoryview(buf)[offset : offset + length]


def checked_structure_size(actual: int, expected: int, what: str) -> None:
    """MS-SMB2 StructureSize fields are fixed per message; a mismatch is malformed."""
    if actual != expected:
        raise DecodeError(f"{what}: StructureSize {actual}, expected {expected}")


def pad_to(n: int, alignment: int = 8) -> int:
    """Bytes needed after ``n`` to reach the next multiple of ``alignment``."""
    return (-n) % alignment


def align(n: int, alignment: int = 8) -> int:
    return n + pad_to(n, alignment)


def utf16(s: str) -> bytes:
    """SMB2 strings are UTF-16LE without a terminator. surrogatepass mirrors
    from_utf16: a name read with an unpaired surrogate can be sent back."""
    return s.encode("utf-16-le", errors="surrogatepass")


def from_utf16(buf: Buffer, what: str) -> str:
    if len(buf) % 2:
        raise DecodeError(f"{what}: odd-length UTF-16 string ({len(buf)} bytes)")
    try:
        # surrogatepass: Windows names may hold unpaired surrogates; keep them
        # round-trippable rather than failing the whole directory listing.
        return bytes(buf).decode("utf-16-le", errors="surrogatepass")
    except UnicodeDecodeError as e:  # pragma: no cover - surrogatepass accepts all pairs
        raise DecodeError(f"{what}: bad UTF-16: {e}") from e


def utf16_at(buf: Buffer, offset: int, length: int, what: str) -> str:
    """Decode a UTF-16LE string from an (offset, length) pair given by the peer."""
    return from_utf16(view(buf, offset, length, what), what)


def optional_buffer(buf: Buffer, offset: int, length: int, what: str) -> memoryview:
    """A buffer described by (offset, length) where length 0 means 'absent'
    and the offset may then be anything (servers send 0 or a stale value)."""
    if length == 0:
        return memoryview(b"")
    return view(buf, offset, length, what)
