"""Helpers shared by the FSCC modules: chained-list walking and fast names.

Many FSCC buffers are lists chained by a NextEntryOffset relative to the
current entry. The server controls every offset, so the walk is where loops
and out-of-bounds reads would come from: :func:`next_offset` is the single
place that rule lives. :func:`chain` is its encoding counterpart.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from smbfs.proto.codec import Buffer, DecodeError, align

_NEXT_ENTRY_OFFSET: Final = struct.Struct("<I")


def name16(buf: Buffer, start: int, length: int, what: str) -> str:
    """UTF-16LE name at ``buf[start:start+length]`` decoded straight from the
    buffer (no intermediate bytes copy: this runs once per directory entry)."""
    if length & 1:
        raise DecodeError(f"{what}: odd-length UTF-16 name ({length} bytes)")
    end = start + length
    if start < 0 or end > len(buf):
        raise DecodeError(f"{what}: name of {length} bytes at {start} overruns buffer of {len(buf)}")
    return str(memoryview(buf)[start:end], "utf-16-le", "surrogatepass")


def next_offset(entry_start: int, next_entry: int, consumed: int, buf_len: int, what: str) -> int:
    """Absolute offset of the next chained entry, or -1 at the end of the list.

    ``consumed`` is how many bytes the current entry's own fields and name
    need: a NextEntryOffset smaller than that would overlap (or, if 0-ish,
    loop back onto) the current entry, so it is rejected. Strictly increasing
    offsets make every walk terminate in at most ``buf_len`` steps.
    """
    if next_entry == 0:
        return -1
    if next_entry < consumed:
        raise DecodeError(
            f"{what}: NextEntryOffset {next_entry} does not clear the entry ({consumed} bytes)"
        )
    nxt = entry_start + next_entry
    if nxt >= buf_len:
        raise DecodeError(f"{what}: NextEntryOffset {next_entry} points outside the buffer")
    return nxt


def chain(entries: Sequence[bytes], alignment: int) -> bytes:
    """Chain encoded entries whose first 4 bytes are a NextEntryOffset (its
    value in ``entries`` is ignored): every entry but the last is padded to
    ``alignment`` and points at the next; the last keeps 0."""
    parts: list[bytes] = []
    last = len(entries) - 1
    for i, e in enumerate(entries):
        if i == last:
            parts.append(e)
        else:
            step = align(len(e), alignment)
            parts += (_NEXT_ENTRY_OFFSET.pack(step), e[4:], bytes(step - len(e)))
    return b"".join(parts)
