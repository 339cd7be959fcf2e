"""Direct TCP transport for SMB2 ([MS-SMB2] 2.1): each message travels in a
frame prefixed by 4 bytes, a zero byte then a 24-bit big-endian length.

Frames are received into one preallocated buffer per frame with
``recv_into`` (a 1 MiB READ response is written by the kernel straight into
the buffer the decoder then slices) and sent as a list of buffers with
``sendmsg`` (a WRITE payload is never joined with its header here).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Final, Protocol

import trio

from smbfs.client.errors import ConnectionLostError
from smbfs.proto.codec import Buffer

log = logging.getLogger(__name__)

MAX_DIRECT_TCP_LENGTH: Final = 0xFFFFFF
_SCRATCH: Final = 64 * 1024
_IOV_MAX: Final = 512


class FramingError(ConnectionLostError):
    """The byte stream does not hold valid Direct TCP frames."""


def frame_header(length: int) -> bytes:
    if not 0 <= length <= MAX_DIRECT_TCP_LENGTH:
        raise ValueError(f"frame of {length} bytes does not fit Direct TCP")
    return length.to_bytes(4, "big")


def parse_frame_header(hdr: Buffer, max_frame: int) -> int:
    """Length of the frame announced by a 4-byte header, checked."""
    if hdr[0] != 0:
        raise FramingError(f"bad Direct TCP header byte {hdr[0]:#x}")
    length = int.from_bytes(hdr[1:4], "big")
    if length > max_frame:
        raise FramingError(f"frame of {length} bytes exceeds the {max_frame} limit")
    if length == 0:
        raise FramingError("empty frame")
    return length


class FrameTransport(Protocol):
    """What a :class:`~smbfs.client.connection.Connection` needs from the
    bytes below it: whole frames out and in, and a synchronous close.

    A protocol rather than the TCP class itself so that the engine can run
    over something other than a socket: :mod:`smbfs.testing` gives it an
    in-memory pipe to a scripted server. Both failure modes are
    :class:`ConnectionLostError`: a send on a closed transport, and a
    receive after the peer went away.
    """

    closed: bool

    async def send_frame(self, parts: Sequence[Buffer]) -> None: ...

    async def receive_frame(self) -> memoryview: ...

    def close(self) -> None: ...


class Transport:
    """One TCP connection carrying Direct TCP frames.

    ``send_frame`` is serialised by a lock so concurrent senders never
    interleave bytes; it is not cancellation-safe by itself (a frame cut in
    the middle corrupts the stream), so the connection shields it.
    """

    def __init__(self, sock: trio.socket.SocketType, max_frame: int) -> None:
        self._sock = sock
        self._max_frame = max_frame
        self._send_lock = trio.Lock()
        # Bytes received beyond the current frame (small frames arrive in
        # batches; keeping them avoids one recv per frame).
        self._scratch = bytearray(_SCRATCH)
        self._start = 0
        self._end = 0
        self.closed = False
        self.bytes_sent = 0
        self.bytes_received = 0

    @classmethod
    async def connect(cls, host: str, port: int, *, max_frame: int, timeout: float) -> Transport:
        with trio.move_on_after(timeout) as scope:
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError as e:
                raise ConnectionLostError(f"cannot connect to {host}:{port}: {e}") from e
        if scope.cancelled_caught:
            raise ConnectionLostError(f"connect to {host}:{port} timed out after {timeout}s")
        sock = stream.socket
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Large buffers: a pipelined 1 MiB READ stream otherwise stalls on
        # the default window.
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
            except OSError:  # pragma: no cover - capped by the kernel, harmless
                pass
        return cls(sock, max_frame)

    async def send_frame(self, parts: Sequence[Buffer]) -> None:
        """Send one frame made of ``parts`` back to back."""
        total = sum(len(p) for p in parts)
        bufs: list[Buffer] = [frame_header(total), *parts]
        async with self._send_lock:
            if self.closed:
                raise ConnectionLostError("transport closed")
            try:
                if total <= _SCRATCH:
                    await self._send_all(memoryview(b"".join(bufs)))
                else:
                    await self._send_vectored([memoryview(b).cast("B") for b in bufs if len(b)])
            except (OSError, trio.ClosedResourceError) as e:
                self.closed = True
                raise ConnectionLostError(f"send failed: {e}") from e
            self.bytes_sent += total + 4

    async def _send_all(self, data: memoryview) -> None:
        while data:
            n = await self._sock.send(data)
            data = data[n:]

    async def _send_vectored(self, views: list[memoryview]) -> None:
        i = 0
        while i < len(views):
            n = await self._sock.sendmsg(views[i : i + _IOV_MAX])
            while n and i < len(views):
                if n >= len(views[i]):
                    n -= len(views[i])
                    i += 1
                else:
                    views[i] = views[i][n:]
                    n = 0

    async def _fill(self, into: memoryview) -> int:
        try:
            n = await self._sock.recv_into(into)
        except (OSError, trio.ClosedResourceError) as e:
            raise ConnectionLostError(f"receive failed: {e}") from e
        if n == 0:
            raise ConnectionLostError("connection closed by the server")
        self.bytes_received += n
        return n

    async def receive_frame(self) -> memoryview:
        """The next frame's payload (the SMB2 message or transform)."""
        while self._end - self._start < 4:
            self._compact()
            self._end += await self._fill(memoryview(self._scratch)[self._end :])
        length = parse_frame_header(memoryview(self._scratch)[self._start : self._start + 4],
                                    self._max_frame)
        self._start += 4
        buffered = self._end - self._start
        if buffered >= length:
            frame = bytes(self._scratch[self._start : self._start + length])
            self._start += length
            return memoryview(frame)
        out = bytearray(length)
        out[:buffered] = self._scratch[self._start : self._end]
        self._start = self._end = 0
        mv = memoryview(out)
        got = buffered
        while got < length:
            got += await self._fill(mv[got:])
        return mv

    def _compact(self) -> None:
        if self._start == self._end:
            self._start = self._end = 0
        elif self._start:
            rest = self._end - self._start
            self._scratch[:rest] = self._scratch[self._start : self._end]
            self._start, self._end = 0, rest

    @property
    def local_address(self) -> tuple[str, int]:
        """(address, port) of our end of the TCP connection: what the server
        sees as the client (its logs and smbstatus name us by it)."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Close now (synchronous: also used from error paths)."""
        if not self.closed:
            self.closed = True
        self._sock.close()
