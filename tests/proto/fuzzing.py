"""Fuzzing helpers shared by the tests/proto modules.

The property every decoder must keep ([MS-SMB2] gives no other error path to
a client): whatever the bytes, decoding either succeeds or raises
DecodeError, never anything else, and never allocates by a length the input
claims.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from smbfs.proto import DecodeError
from smbfs.proto.codec import SMB2_HEADER_SIZE

# An all-zero SMB2 header: message decoders read offsets from the header
# start but never the header itself.
HDR = bytes(SMB2_HEADER_SIZE)
# Fuzzing budget per property test; a loaded 2-core box may take a while
# for one example, hence the generous deadline.
FUZZ = settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow]
)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)


def only_decode_error(decode: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Call ``decode``; a DecodeError is accepted, any other exception fails the test."""
    try:
        decode(*args, **kwargs)
    except DecodeError:
        pass


def try_decode(decode: Callable[..., object], data: bytes) -> None:
    """:func:`only_decode_error` on a memoryview, as the engine hands its
    receive buffer to the message decoders."""
    only_decode_error(decode, memoryview(data))


@st.composite
def mutated(draw: st.DrawFn, valid: bytes, start: int = SMB2_HEADER_SIZE) -> bytes:
    """``valid`` with up to six bytes at or after ``start`` overwritten (the
    SMB2 header by default is left alone: message decoders never read it),
    then maybe truncated."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(start, max(start, len(data) - 1)))
        if i < len(data):
            data[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def cut_and_overwritten(data: st.DataObject, valid: bytes, max_writes: int) -> tuple[bytes, bytes]:
    """A random prefix of ``valid``, and ``valid`` with 1 to ``max_writes``
    random bytes overwritten (unchanged when empty)."""
    raw = bytearray(valid)
    cut = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    if raw:
        for _ in range(data.draw(st.integers(1, max_writes))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    return cut, bytes(raw)


def truncations(sample: bytes) -> Iterator[bytes]:
    """Every proper prefix of ``sample``, the empty one included."""
    for n in range(len(sample)):
        yield sample[:n]


def byte_flips(sample: bytes, start: int = SMB2_HEADER_SIZE) -> Iterator[bytes]:
    """``sample`` with one byte at or after ``start`` set to 0x00, to 0xFF,
    or with its top bit flipped: hits every length, offset and count once."""
    for i in range(start, len(sample)):
        for v in (0x00, 0xFF, sample[i] ^ 0x80):
            yield sample[:i] + bytes([v]) + sample[i + 1 :]


@contextmanager
def peak_allocation_below(limit: int = 1 << 20) -> Iterator[None]:
    """Fail unless the block's peak traced allocation stays under ``limit``:
    a decoder must check a claimed length before allocating by it."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit
