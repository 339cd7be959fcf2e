"""A loopback TCP proxy that injects network faults between a client and smbd.

The proxy runs in its own thread (plain non-blocking sockets and ``poll``), so
it serves trio tests, threaded tests and tests that drive subprocesses alike.
A test can, at any moment:

* ``cut_all()``: close every current connection (both sides; new ones are
  still accepted, which is what a reconnect needs);
* ``stall(seconds)``: forward nothing either way for a while, then continue;
* ``cut_after(nbytes)``: let exactly ``nbytes`` more bytes through (both
  directions together), then cut every connection;
* ``set_frame_hook(fn)``: see, change or drop each SMB frame.

Frames are the Direct TCP transport's (MS-SMB2 2.1): a 4-byte big-endian
length whose top byte is zero, then the SMB2 message. The hook is called as
``fn(direction, message)`` with ``direction`` ``"c2s"`` or ``"s2c"`` and
``message`` the frame *without* its 4-byte length prefix (so SMB2 header
offsets apply directly: the signature is ``message[48:64]``). It returns the
message to send (the proxy writes the new length prefix) or None to drop the
frame. The hook runs in the proxy thread; an exception in it is recorded in
``hook_errors`` and cuts that connection.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Self

log = logging.getLogger(__name__)

FrameHook = Callable[[str, bytes], bytes | None]

_RECV_SIZE = 256 * 1024
# Stop reading from a side while the other side has this much unsent: TCP
# back-pressure then reaches the sender instead of the proxy buffering a GiB.
_HIGH_WATER = 4 * 1024 * 1024
_MAX_FRAME = 0xFFFFFF


class _Framer:
    """Tracks Direct TCP frame boundaries in one direction of one connection.

    Without a hook, bytes pass straight through and only the boundary is
    tracked, so a hook installed later starts exactly at the next frame.
    """

    def __init__(self, direction: str, proxy: FaultProxy) -> None:
        self.direction = direction
        self.proxy = proxy
        self.hdr = bytearray()
        self.remaining = 0
        self.body: bytearray | None = None
        self.hook: FrameHook | None = None
        self.raw = False  # not SMB Direct TCP framing: pass everything through

    def feed(self, data: memoryview, sink: bytearray) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self.raw:
                sink += data[pos:]
                return
            if self.remaining:
                take = min(self.remaining, n - pos)
                if self.body is None:
                    sink += data[pos : pos + take]
                else:
                    self.body += data[pos : pos + take]
                pos += take
                self.remaining -= take
                if self.remaining == 0 and self.body is not None:
                    self._finish(sink)
                continue
            if not self.hdr:
                # The hook (or its absence) is decided once per frame, at its first byte.
                self.hook = self.proxy._hook
            take = min(4 - len(self.hdr), n - pos)
            self.hdr += data[pos : pos + take]
            if self.hook is None:
                # Pass header bytes on at once: a non-SMB peer may send fewer than 4.
                sink += data[pos : pos + take]
            pos += take
            if len(self.hdr) < 4:
                return
            if self.hdr[0] != 0:
                if self.hook is not None:
                    sink += self.hdr
                self.hdr.clear()
                self.hook = None
                self.raw = True
                continue
            self.remaining = int.from_bytes(self.hdr[1:4], "big")
            self.hdr.clear()
            if self.hook is not None:
                self.body = bytearray()
                if self.remaining == 0:
                    self._finish(sink)

    def _finish(self, sink: bytearray) -> None:
        assert self.body is not None and self.hook is not None
        frame = bytes(self.body)
        self.body = None
        hook, self.hook = self.hook, None
        result = hook(self.direction, frame)
        if result is None:
            return
        if len(result) > _MAX_FRAME:
            raise ValueError(f"frame hook returned {len(result)} bytes, more than a frame holds")
        sink += struct.pack(">I", len(result))
        sink += result


class _Side:
    __slots__ = ("out", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = bytearray()  # bytes waiting to be written to this socket


class _Conn:
    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.client = _Side(client)
        self.server = _Side(server)
        self.c2s = _Framer("c2s", proxy)
        self.s2c = _Framer("s2c", proxy)
        self.closed = False

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for side in (self.client, self.server):
            with contextlib.suppress(OSError):
                if reset:
                    # SO_LINGER 0: close() sends RST, the peer sees ECONNRESET.
                    side.sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                else:
                    side.sock.shutdown(socket.SHUT_RDWR)
            side.sock.close()


class FaultProxy:
    """``client -> 127.0.0.1:proxy.port -> target_host:target_port``, with faults on demand."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = listen_host
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, listen_port))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._conns: list[_Conn] = []
        self._hook: FrameHook | None = None
        self._stall_until = 0.0
        self._cut_budget: int | None = None
        self._cut_requests: list[tuple[bool, threading.Event]] = []
        self._refuse = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.connections_accepted = 0
        self.bytes_c2s = 0
        self.bytes_s2c = 0
        self.cuts = 0
        self.hook_errors: list[BaseException] = []

    # -- control (any thread) -------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._run, name=f"faultproxy:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close everything and join the thread (bounded)."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("fault proxy thread on port %d did not stop in %ss", self.port, timeout)
        for s in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def cut_all(self, reset: bool = False, timeout: float = 5.0) -> None:
        """Close every current connection now; returns once they are closed.

        ``reset`` closes with RST (peer sees ECONNRESET) instead of FIN (EOF).
        """
        done = threading.Event()
        with self._lock:
            self._cut_requests.append((reset, done))
        self._wake()
        if threading.current_thread() is not self._thread:
            if not done.wait(timeout):
                raise TimeoutError("fault proxy did not perform the cut")

    def stall(self, seconds: float) -> None:
        """Hold all data, both ways and on every connection, for ``seconds``."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds
        self._wake()

    def resume(self) -> None:
        """End a stall early."""
        with self._lock:
            self._stall_until = 0.0
        self._wake()

    def cut_after(self, nbytes: int) -> None:
        """Forward exactly ``nbytes`` more bytes (both directions together), then cut all."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        with self._lock:
            self._cut_budget = nbytes
        self._wake()

    def set_frame_hook(self, fn: FrameHook | None) -> None:
        """Install (or with None remove) the per-frame hook; applies from the next frame."""
        with self._lock:
            self._hook = fn
        self._wake()

    def refuse_connections(self, refuse: bool = True) -> None:
        """While set, new connections are accepted and closed at once (server unreachable)."""
        with self._lock:
            self._refuse = refuse
        self._wake()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if not c.closed)

    def wait_for_connections(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``connections_accepted >= n``; TimeoutError after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.connections_accepted >= n, timeout):
                raise TimeoutError(
                    f"proxy saw {self.connections_accepted} connections, expected {n}"
                )

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the proxy thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("fault proxy on port %d crashed", self.port)
        finally:
            with self._lock:
                conns, self._conns = self._conns, []
                requests, self._cut_requests = self._cut_requests, []
            for c in conns:
                c.close()
            for _, done in requests:
                done.set()
            with contextlib.suppress(OSError):
                self._listener.close()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                requests, self._cut_requests = self._cut_requests, []
                stall_left = self._stall_until - time.monotonic()
            for reset, done in requests:
                self._cut(reset)
                done.set()
            with self._lock:
                self._conns = [c for c in self._conns if not c.closed]
            stalled = stall_left > 0
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            poller.register(self._listener, select.POLLIN)
            where: dict[int, tuple[_Conn, _Side, _Side]] = {}
            if not stalled:
                for c in self._conns:
                    for side, other in ((c.client, c.server), (c.server, c.client)):
                        ev = 0
                        if len(other.out) < _HIGH_WATER:
                            ev |= select.POLLIN
                        if side.out:
                            ev |= select.POLLOUT
                        poller.register(side.sock, ev)
                        where[side.sock.fileno()] = (c, side, other)
            timeout_ms = int(stall_left * 1000) + 1 if stalled else None
            events = poller.poll(timeout_ms)
            with self._lock:
                # A stall requested while we were in poll() holds this round's data too.
                if self._stall_until > time.monotonic():
                    where.clear()
            for fd, ev in events:
                if fd == self._wake_r.fileno():
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif fd == self._listener.fileno():
                    self._accept()
                elif fd in where:
                    c, side, other = where[fd]
                    if not c.closed:
                        self._service(c, side, other, ev)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    log.warning("fault proxy: %s", e)
                    return
                raise
            with self._changed:
                self.connections_accepted += 1
                refuse = self._refuse
                self._changed.notify_all()
            if refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5.0)
            except OSError as e:
                log.info("fault proxy: cannot reach %s:%d: %s", *self.target, e)
                client.close()
                continue
            for s in (client, server):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.append(_Conn(self, client, server))

    def _service(self, c: _Conn, side: _Side, other: _Side, ev: int) -> None:
        if ev & select.POLLOUT and side.out:
            self._send(c, side)
            if c.closed:
                return
        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = side.sock.recv(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                # One side is gone: flush what we can to the other, then close both.
                if other.out:
                    with contextlib.suppress(OSError):
                        other.sock.send(other.out)
                c.close()
                return
            framer = c.c2s if side is c.client else c.s2c
            try:
                framer.feed(memoryview(data), other.out)
            except Exception as e:
                log.warning("fault proxy: frame hook failed, cutting the connection: %r", e)
                self.hook_errors.append(e)
                c.close()
                return
            if other.out:
                self._send(c, other)

    def _send(self, c: _Conn, side: _Side) -> None:
        with self._lock:
            budget = self._cut_budget
        limit = len(side.out) if budget is None else min(len(side.out), budget)
        sent = 0
        if limit:
            try:
                sent = side.sock.send(memoryview(side.out)[:limit])
            except BlockingIOError:
                sent = 0
            except OSError:
                c.close()
                return
            del side.out[:sent]
            if side is c.server:
                self.bytes_c2s += sent
            else:
                self.bytes_s2c += sent
        if budget is not None:
            with self._lock:
                self._cut_budget = budget - sent
                fire = self._cut_budget <= 0
                if fire:
                    self._cut_budget = None
            if fire:
                self._cut(reset=False)

    def _cut(self, reset: bool) -> None:
        with self._lock:
            conns = list(self._conns)
            self.cuts += 1
        for c in conns:
            c.close(reset)
        log.info("fault proxy on port %d cut %d connection(s)", self.port, len(conns))
