"""fsx: a seeded random-operation file checker, in the spirit of the classic
fsx tool (written from scratch).

It works on one file (or a few) in a directory, keeps an in-memory model of
what every file must contain, and runs a seeded random mix of operations on
them: writes (lseek+write, pwrite, O_APPEND, mmap+msync, past EOF to leave
holes), reads (read, pread, mmap) compared with the model, truncate up and
down (by path and by fd), fsync, close and reopen (sometimes with O_TRUNC),
stat, dropping the file's cached pages, and optionally renaming the file
away and back. Every read and size is checked at once: a network
filesystem that loses or reorders data is caught at the first operation
that can see it, not only at the end.

Why the pieces are as they are:

* Everything random comes from ``random.Random(seed)`` and the model, never
  from time or the filesystem, so ``--seed S --ops N`` replays the exact
  sequence of operations up to op N (a fault hook changes timing only).
* Written bytes are never zero and depend on the op number, the file and the
  offset: a hole, stale data and another op's data all look different from
  the expected bytes, and the report can name the ops that wrote there.
* A failure raises :class:`FsxError` with the op number, the seed, the file,
  the first wrong offset and the last operations (a log ring), plus the
  command line that replays it.
* ``between_ops(i)`` is called after op ``i``: the hook a test uses to
  inject faults (cut a proxy every k ops, corrupt the file behind the
  checker's back...). Faults on a timer can equally come from another thread.
* Mappings are touched in a helper process: a page the kernel cannot fill
  (the filesystem's read failed) is a SIGBUS, which would kill the test
  process; in the helper it is reported as that op's failure.

As a script: ``python tests/fsx.py DIR --ops 20000 --seed 1`` (``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import mmap
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger("fsx")

PAGE = mmap.ALLOCATIONGRANULARITY

# Relative weights of the operations; 0 disables one. Reads and writes
# dominate, as in real use; the structural ops (reopen, truncate to 0 via
# O_TRUNC) are rarer so the file gets big enough to be interesting.
DEFAULT_WEIGHTS: dict[str, float] = {
    "read": 10,        # lseek + read, compared
    "pread": 6,        # pread, compared
    "mapread": 4,      # mmap (read-only mapping), compared
    "write": 10,       # lseek + write, anywhere up to max_size (holes past EOF)
    "pwrite": 6,
    "append": 3,       # write through a second fd opened with O_APPEND
    "mapwrite": 4,     # ftruncate up if needed, mmap shared, write, msync
    "truncate": 3,     # truncate(path) to a random size (up or down)
    "ftruncate": 3,    # ftruncate(fd) to a random size
    "fsync": 2,
    "stat": 3,         # fstat and stat(path) sizes against the model
    "reopen": 2,       # close and open again
    "reopen_trunc": 0.5,  # close and open with O_TRUNC
    "dropcache": 1,    # fdatasync + posix_fadvise(DONTNEED), then read it all
    "rename": 0,       # rename to another name (and back the next time)
}
MAP_OPS = ("mapread", "mapwrite")
OPS = tuple(DEFAULT_WEIGHTS)

# Pattern bytes 1..251: never zero (holes are zero), period 251 (prime, so it
# does not line up with page or block sizes).
_PERIOD = 251


class FsxError(AssertionError):
    """What went wrong, where, and how to replay it.

    ``kind`` is ``"mismatch"`` (wrong bytes), ``"size"`` (wrong size),
    ``"error"`` (an operation raised: ``errno`` is set when it was an
    OSError) or ``"signal"`` (a mapping access was killed, SIGBUS: the
    kernel could not fill a page). ``offset`` is the
    file offset of the first wrong byte (for a size error, the smaller of
    the two sizes). ``log`` holds the last operations, the failing one last.
    """

    def __init__(self, *, kind: str, op: int, seed: int, path: str, detail: str,
                 log: list[str], replay: str, offset: int | None = None,
                 errno: int | None = None) -> None:
        self.kind = kind
        self.op = op
        self.seed = seed
        self.path = path
        self.offset = offset
        self.errno = errno
        self.detail = detail
        self.log = log
        self.replay = replay
        where = "" if offset is None else f" at offset {offset} (0x{offset:x})"
        lines = [
            f"fsx: op {op} (seed {seed}): {kind}{where} in {path}",
            detail,
            f"replay: {replay}",
            f"last {len(log)} ops:",
            *(f"  {line}" for line in log),
        ]
        super().__init__("\n".join(lines))


@dataclass
class FsxConfig:
    """The options of a run. ``weights`` overrides :data:`DEFAULT_WEIGHTS`
    per op; ``mmap=False`` and ``rename`` are shortcuts for the map ops' and
    the rename op's weights. ``drop_caches`` also drops the file's pages
    before the final check, so a server-side error is not hidden by the
    kernel's page cache."""

    seed: int = 1
    ops: int = 10_000
    max_size: int = 256 * 1024
    max_io: int = 64 * 1024
    files: int = 1
    weights: dict[str, float] = field(default_factory=dict)
    mmap: bool = True
    rename: bool = False
    drop_caches: bool = True
    log_size: int = 40
    verify_every: int = 0  # also compare whole files every N ops (0: never)
    mmap_in_child: bool = True  # touch mappings in a helper process (SIGBUS is reported)
    op_timeout: float = 120.0  # bound of a mapping access in the helper
    prefix: str = "fsx"
    trace: bool = False  # log every op at INFO (slow; for replaying a failure)

    def effective_weights(self) -> dict[str, float]:
        w = dict(DEFAULT_WEIGHTS)
        if self.rename:
            w["rename"] = 1
        if not self.mmap:
            for name in MAP_OPS:
                w[name] = 0
        for name, value in self.weights.items():
            if name not in w:
                raise ValueError(f"unknown fsx op {name!r} (known: {', '.join(OPS)})")
            w[name] = value
        if not any(v > 0 for v in w.values()):
            raise ValueError("fsx: every op is disabled")
        return w

    def cli_args(self) -> list[str]:
        """The script's arguments for this configuration (to replay a run)."""
        args = ["--seed", str(self.seed), "--ops", str(self.ops)]
        base = FsxConfig()
        if self.max_size != base.max_size:
            args += ["--max-size", str(self.max_size)]
        if self.max_io != base.max_io:
            args += ["--max-io", str(self.max_io)]
        if self.files != base.files:
            args += ["--files", str(self.files)]
        if not self.mmap:
            args.append("--no-mmap")
        if self.rename:
            args.append("--rename")
        if not self.drop_caches:
            args.append("--no-drop-caches")
        if self.verify_every:
            args += ["--verify-every", str(self.verify_every)]
        if self.log_size != base.log_size:
            args += ["--log-size", str(self.log_size)]
        if self.prefix != base.prefix:
            args += ["--prefix", self.prefix]
        if self.weights:
            args += ["--weights", ",".join(f"{k}={v:g}" for k, v in self.weights.items())]
        return args


@dataclass
class FsxStats:
    ops: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    bytes_read: int = 0
    elapsed: float = 0.0

    def summary(self) -> str:
        total = sum(self.ops.values())
        rate = total / self.elapsed if self.elapsed > 0 else 0.0
        kinds = "  ".join(f"{k}={v}" for k, v in sorted(self.ops.items()))
        return (f"fsx: {total} ops in {self.elapsed:.2f}s ({rate:.0f} ops/s), "
                f"{self.bytes_written} bytes written, {self.bytes_read} bytes read\n"
                f"  {kinds}")


@dataclass
class _File:
    index: int
    names: tuple[str, str]  # its own name and the one rename alternates with
    model: bytearray = field(default_factory=bytearray)
    fd: int = -1
    renamed: bool = False

    @property
    def name(self) -> str:
        return self.names[self.renamed]


@dataclass
class LogEntry:
    """One op in the log ring. ``start``/``end`` is the byte range it wrote,
    or truncated away/added (to name the ops that touched a wrong byte);
    ``checked`` the range whose contents it compared with the model."""

    op: int
    kind: str
    file: int
    text: str
    start: int = -1
    end: int = -1
    checked: tuple[int, int] | None = None

    def __str__(self) -> str:
        return f"#{self.op:<6d} f{self.file} {self.kind:<12s} {self.text}"


def _hx(n: int) -> str:
    return f"0x{n:x}"


def first_difference(expected: bytes | bytearray, got: bytes | bytearray) -> int | None:
    """Index of the first byte where they differ (a shorter one differs at
    its end), or None if they are equal."""
    if expected == got:
        return None
    n = min(len(expected), len(got))
    lo = 0
    # Halve the range that holds the difference: cheap even for big buffers.
    hi = n
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if expected[lo:mid] != got[lo:mid]:
            hi = mid
        else:
            lo = mid
    for i in range(lo, hi):
        if expected[i] != got[i]:
            return i
    return n


class Fsx:
    """A run of the checker on ``directory``. ``run()`` creates the files
    (truncated to empty), performs ``config.ops`` ops, verifies every file
    after a close/reopen (and after dropping its cached pages) and returns
    the statistics; it raises :class:`FsxError` at the first discrepancy."""

    def __init__(self, directory: str | os.PathLike[str], config: FsxConfig | None = None,
                 between_ops: Callable[[int], None] | None = None) -> None:
        self.dir = Path(directory)
        self.config = config or FsxConfig()
        self.between_ops = between_ops
        self.stats = FsxStats()
        self.rng = random.Random(self.config.seed)
        self.op = 0
        self.history: deque[LogEntry] = deque(maxlen=max(1, self.config.log_size))
        weights = self.config.effective_weights()
        self._kinds = [k for k, v in weights.items() if v > 0]
        self._weights = [weights[k] for k in self._kinds]
        self.files = [
            _File(i, (f"{self.config.prefix}{i}", f"{self.config.prefix}{i}.renamed"))
            for i in range(self.config.files)
        ]
        self._helper: _MapHelper | None = None
        one = bytes(range(1, _PERIOD + 1))
        self._pattern = one * (2 + self.config.max_size // _PERIOD)

    # -- public helpers -------------------------------------------------

    def path(self, index: int = 0) -> Path:
        """Where file ``index`` is now (its name changes under ``rename``)."""
        return self.dir / self.files[index].name

    def expected(self, index: int = 0) -> bytes:
        """What file ``index`` must contain now, according to the model."""
        return bytes(self.files[index].model)

    def check_all(self) -> None:
        """Compare every file's size and whole contents with the model now,
        through the open fds. For a fault hook: ``between_ops`` may call it
        right after injecting a fault, instead of waiting for a random read
        to look where the damage is."""
        for f in self.files:
            entry = LogEntry(self.op, "check", f.index, f"verify {_hx(len(f.model))} bytes")
            self.history.append(entry)
            try:
                self._check_size(f, os.fstat(f.fd).st_size, "fstat (check_all)")
                data = self._read_at(f.fd, 0, len(f.model) + 1)
            except OSError as e:
                raise self._error(f, "error", f"check_all raised {e!r}", errno=e.errno) from e
            self.stats.bytes_read += len(data)
            self._compare_exact(f, 0, bytes(f.model), data, "check_all")

    def remove(self) -> None:
        for f in self.files:
            self._close(f)
            for name in f.names:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / name).unlink()

    # -- the run --------------------------------------------------------

    def run(self) -> FsxStats:
        start = time.monotonic()
        try:
            for f in self.files:
                for name in f.names:
                    with contextlib.suppress(FileNotFoundError):
                        (self.dir / name).unlink()
                f.fd = os.open(self.dir / f.name, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            for i in range(1, self.config.ops + 1):
                self.op = i
                kind = self.rng.choices(self._kinds, self._weights)[0]
                f = self.files[self.rng.randrange(len(self.files))] if len(self.files) > 1 \
                    else self.files[0]
                self._do(kind, f)
                if self.between_ops is not None:
                    self.between_ops(i)
                if self.config.verify_every and i % self.config.verify_every == 0:
                    self.check_all()
            self.op = self.config.ops + 1
            for f in self.files:
                self._final_check(f)
        finally:
            for f in self.files:
                with contextlib.suppress(OSError):  # never hide the error being raised
                    self._close(f)
            self._stop_helper()
            self.stats.elapsed = time.monotonic() - start
        return self.stats

    def _do(self, kind: str, f: _File) -> None:
        self.stats.ops[kind] += 1
        entry = LogEntry(self.op, kind, f.index, "")
        self.history.append(entry)
        try:
            getattr(self, f"_op_{kind}")(f, entry)
        except FsxError:
            raise
        except OSError as e:
            raise self._error(f, "error", f"{kind} raised {e!r}", errno=e.errno) from e
        if self.config.trace:
            log.info("%s", entry)

    # -- choosing ranges ------------------------------------------------

    def _length(self, limit: int) -> int:
        """A length in [1, limit]: mostly uniform, sometimes page-sized or a
        byte off a page, where caching code has its edge cases."""
        limit = max(1, min(limit, self.config.max_io))
        r = self.rng.random()
        if r < 0.15 and limit >= PAGE:
            n = PAGE * self.rng.randint(1, limit // PAGE) + self.rng.choice((-1, 0, 1))
            return max(1, min(limit, n))
        if r < 0.3:
            return self.rng.randint(1, min(limit, 64))
        return self.rng.randint(1, limit)

    def _offset(self, limit: int) -> int:
        """An offset in [0, limit): sometimes page-aligned or just off it."""
        if limit <= 1:
            return 0
        off = self.rng.randrange(limit)
        if self.rng.random() < 0.2:
            off = off // PAGE * PAGE + self.rng.choice((0, 0, -1, 1))
        return max(0, min(limit - 1, off))

    def _write_range(self) -> tuple[int, int]:
        off = self._offset(self.config.max_size)
        return off, self._length(self.config.max_size - off)

    def _read_range(self, f: _File) -> tuple[int, int]:
        size = len(f.model)
        # Mostly inside the file; sometimes across or beyond EOF.
        off = self._offset(size + 1 if self.rng.random() < 0.9 else size + PAGE)
        return off, self._length(max(1, size - off) if self.rng.random() < 0.9
                                 else self.config.max_io)

    def _data(self, f: _File, off: int, n: int) -> bytes:
        s = (self.op + 37 * f.index + off) % _PERIOD
        return self._pattern[s:s + n]

    # -- model ----------------------------------------------------------

    @staticmethod
    def _model_write(f: _File, off: int, data: bytes) -> None:
        if off > len(f.model):
            f.model.extend(bytes(off - len(f.model)))
        f.model[off:off + len(data)] = data

    @staticmethod
    def _model_truncate(f: _File, size: int) -> None:
        if size < len(f.model):
            del f.model[size:]
        else:
            f.model.extend(bytes(size - len(f.model)))

    # -- checks ---------------------------------------------------------

    def _replay(self) -> str:
        args = replace(self.config, ops=min(self.op, self.config.ops)).cli_args()
        return f"python tests/fsx.py {self.dir} " + " ".join(args)

    def _error(self, f: _File, kind: str, detail: str, offset: int | None = None,
               errno: int | None = None) -> FsxError:
        return FsxError(kind=kind, op=self.op, seed=self.config.seed, path=str(self.dir / f.name),
                        detail=detail, log=[str(e) for e in self.history],
                        replay=self._replay(), offset=offset, errno=errno)

    def _touched(self, f: _File, offset: int) -> str:
        hits = [str(e) for e in self.history
                if e.file == f.index and e.start <= offset < e.end]
        return ("ops in the log that wrote or resized there:\n    " + "\n    ".join(hits)
                if hits else "no op in the log wrote or resized there")

    def _compare_exact(self, f: _File, off: int, expected: bytes, got: bytes, what: str) -> None:
        self.history[-1].checked = (off, off + len(expected))
        i = first_difference(expected, got)
        if i is None:
            return
        bad = off + i
        lo = max(0, i - 8)
        exp_b = expected[i:i + 1].hex() or "EOF"
        got_b = got[i:i + 1].hex() or "EOF"
        detail = (
            f"{what}: first wrong byte at file offset {bad} ({_hx(bad)}): expected {exp_b}, "
            f"got {got_b}; expected {len(expected)} bytes, got {len(got)}; "
            f"model size {len(f.model)} ({_hx(len(f.model))})\n"
            f"  expected[{_hx(off + lo)}:] {expected[lo:lo + 24].hex(' ')}\n"
            f"  got     [{_hx(off + lo)}:] {got[lo:lo + 24].hex(' ')}\n"
            f"  {self._touched(f, bad)}"
        )
        raise self._error(f, "mismatch", detail, offset=bad)

    def _check_size(self, f: _File, got: int, what: str) -> None:
        want = len(f.model)
        if got != want:
            off = min(got, want)
            raise self._error(f, "size", f"{what}: size {got} ({_hx(got)}), expected {want} "
                              f"({_hx(want)})\n  {self._touched(f, off)}", offset=off)

    def _read_expected(self, f: _File, off: int, n: int) -> bytes:
        size = len(f.model)
        return bytes(f.model[off:off + n]) if off < size else b""

    def _read_at(self, fd: int, off: int, n: int) -> bytes:
        """pread until n bytes or EOF: a short read before EOF is not an
        error on its own, but what it returns must still match."""
        chunks: list[bytes] = []
        got = 0
        while got < n:
            b = os.pread(fd, n - got, off + got)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    # -- operations -----------------------------------------------------

    def _op_read(self, f: _File, e: LogEntry) -> None:
        off, n = self._read_range(f)
        e.text = f"{_hx(off)} +{_hx(n)}"
        os.lseek(f.fd, off, os.SEEK_SET)
        chunks: list[bytes] = []
        got = 0
        while got < n:
            b = os.read(f.fd, n - got)
            if not b:
                break
            chunks.append(b)
            got += len(b)
        data = b"".join(chunks)
        self.stats.bytes_read += len(data)
        self._compare_exact(f, off, self._read_expected(f, off, n), data, "read")

    def _op_pread(self, f: _File, e: LogEntry) -> None:
        off, n = self._read_range(f)
        e.text = f"{_hx(off)} +{_hx(n)}"
        data = self._read_at(f.fd, off, n)
        self.stats.bytes_read += len(data)
        self._compare_exact(f, off, self._read_expected(f, off, n), data, "pread")

    def _op_mapread(self, f: _File, e: LogEntry) -> None:
        size = len(f.model)
        if size == 0:
            e.text = "(empty file: nothing to map)"
            return
        off = self._offset(size)
        n = self._length(size - off)
        e.text = f"{_hx(off)} +{_hx(n)}"
        self._check_size(f, os.fstat(f.fd).st_size, "fstat before mmap")
        data = self._map_access(f, "mapread", off, n)
        self.stats.bytes_read += len(data)
        self._compare_exact(f, off, self._read_expected(f, off, n), data, "mapread")

    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _op_write(self, f: _File, e: LogEntry) -> None:
        off, n = self._write_range()
        e.text = f"{_hx(off)} +{_hx(n)} (size {_hx(len(f.model))})"
        e.start, e.end = min(off, len(f.model)), off + n
        data = self._data(f, off, n)
        os.lseek(f.fd, off, os.SEEK_SET)
        self._write_all(f.fd, data)
        self._model_write(f, off, data)
        self.stats.bytes_written += n

    def _op_pwrite(self, f: _File, e: LogEntry) -> None:
        off, n = self._write_range()
        e.text = f"{_hx(off)} +{_hx(n)} (size {_hx(len(f.model))})"
        e.start, e.end = min(off, len(f.model)), off + n
        data = self._data(f, off, n)
        done = 0
        while done < n:
            done += os.pwrite(f.fd, data[done:], off + done)
        self._model_write(f, off, data)
        self.stats.bytes_written += n

    def _op_append(self, f: _File, e: LogEntry) -> None:
        size = len(f.model)
        room = self.config.max_size - size
        if room <= 0:
            e.text = "(file at max size: nothing appended)"
            return
        n = self._length(room)
        e.text = f"+{_hx(n)} at {_hx(size)}"
        e.start, e.end = size, size + n
        data = self._data(f, size, n)
        fd = os.open(self.dir / f.name, os.O_WRONLY | os.O_APPEND)
        try:
            self._write_all(fd, data)
            pos = os.lseek(fd, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
        self._model_write(f, size, data)
        self.stats.bytes_written += n
        if pos != size + n:
            raise self._error(f, "size", f"append: the O_APPEND fd ended at {pos} "
                              f"({_hx(pos)}), expected {size + n} ({_hx(size + n)})",
                              offset=min(pos, size + n))

    def _op_mapwrite(self, f: _File, e: LogEntry) -> None:
        off, n = self._write_range()
        size = len(f.model)
        e.text = f"{_hx(off)} +{_hx(n)} (size {_hx(size)})"
        e.start, e.end = min(off, size), off + n
        if off + n > size:
            # A mapping cannot extend a file: grow it first, as fsx does.
            os.ftruncate(f.fd, off + n)
            self._model_truncate(f, off + n)
        self._check_size(f, os.fstat(f.fd).st_size, "fstat before mmap")
        data = self._data(f, off, n)
        self._map_access(f, "mapwrite", off, n, data)
        self._model_write(f, off, data)
        self.stats.bytes_written += n

    def _new_size(self, f: _File) -> int:
        size = len(f.model)
        r = self.rng.random()
        if r < 0.4 and size > 0:
            return self.rng.randrange(size)  # down
        if r < 0.8:
            return self.rng.randint(size, self.config.max_size)  # up (or same)
        return self._offset(self.config.max_size + 1)

    def _resize_entry(self, f: _File, e: LogEntry, size: int) -> None:
        old = len(f.model)
        e.text = f"{_hx(old)} -> {_hx(size)}"
        e.start, e.end = min(old, size), max(old, size)

    def _op_truncate(self, f: _File, e: LogEntry) -> None:
        size = self._new_size(f)
        self._resize_entry(f, e, size)
        os.truncate(self.dir / f.name, size)
        self._model_truncate(f, size)
        self._check_size(f, os.fstat(f.fd).st_size, "fstat after truncate")

    def _op_ftruncate(self, f: _File, e: LogEntry) -> None:
        size = self._new_size(f)
        self._resize_entry(f, e, size)
        os.ftruncate(f.fd, size)
        self._model_truncate(f, size)

    def _op_fsync(self, f: _File, e: LogEntry) -> None:
        os.fsync(f.fd)

    def _op_stat(self, f: _File, e: LogEntry) -> None:
        e.text = f"expect {_hx(len(f.model))}"
        self._check_size(f, os.fstat(f.fd).st_size, "fstat")
        self._check_size(f, os.stat(self.dir / f.name).st_size, "stat")

    def _op_reopen(self, f: _File, e: LogEntry) -> None:
        self._close(f)
        f.fd = os.open(self.dir / f.name, os.O_RDWR)
        self._check_size(f, os.fstat(f.fd).st_size, "fstat after reopen")

    def _op_reopen_trunc(self, f: _File, e: LogEntry) -> None:
        self._resize_entry(f, e, 0)
        self._close(f)
        f.fd = os.open(self.dir / f.name, os.O_RDWR | os.O_TRUNC)
        self._model_truncate(f, 0)
        self._check_size(f, os.fstat(f.fd).st_size, "fstat after O_TRUNC open")

    def _op_dropcache(self, f: _File, e: LogEntry) -> None:
        e.text = f"then read {_hx(len(f.model))}"
        self._drop_cache(f.fd)
        data = self._read_at(f.fd, 0, len(f.model) + 1)
        self.stats.bytes_read += len(data)
        self._compare_exact(f, 0, bytes(f.model), data, "read after dropping cached pages")

    def _op_rename(self, f: _File, e: LogEntry) -> None:
        old = self.dir / f.name
        f.renamed = not f.renamed
        new = self.dir / f.name
        e.text = f"{old.name} -> {new.name}"
        os.rename(old, new)
        if os.path.lexists(old):
            raise self._error(f, "error", f"rename: {old} still exists after the rename")
        self._check_size(f, os.stat(new).st_size, "stat after rename")

    # -- mappings -------------------------------------------------------

    def _map_access(self, f: _File, what: str, off: int, n: int,
                    data: bytes | None = None) -> bytes:
        """Map [off, off+n) of the file, read it (``data`` None) or write
        ``data`` and msync. In the map helper process unless
        ``config.mmap_in_child`` is off: a page the kernel cannot fill (the
        filesystem answered the read with an error, or the file shrank under
        the mapping) kills with SIGBUS, which Python cannot catch; in the
        helper that is this op's FsxError, not the end of the test run.
        The helper also keeps the GIL out of page faults: a copy into a
        mapping holds it, and a fault proxy thread in this process that
        smbfs's read is waiting for would wait for it (a deadlock that
        smbfs ends after 60 s with "connection lost", then SIGBUS)."""
        if not self.config.mmap_in_child:
            return _map_io(f.fd, off, n, data)
        if self._helper is None:
            self._helper = _MapHelper()
        try:
            return self._helper.call(f.fd, off, n, data, self.config.op_timeout)
        except _HelperDied as e:
            self._helper = None
            raise self._error(f, e.kind, f"{what}: {e}") from None
        except OSError as e:
            raise self._error(f, "error", f"{what} raised {e!r}", errno=e.errno) from e

    def _stop_helper(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.stop()

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _drop_cache(fd: int) -> None:
        """Write back, then drop this file's clean cached pages, so the next
        read comes from the filesystem (for smbfs: from the server)."""
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    @staticmethod
    def _close(f: _File) -> None:
        if f.fd >= 0:
            fd, f.fd = f.fd, -1
            os.close(fd)

    def _final_check(self, f: _File) -> None:
        """The whole file after close/reopen, then again with its cached
        pages dropped."""
        entry = LogEntry(self.op, "final", f.index, f"verify {_hx(len(f.model))} bytes")
        self.history.append(entry)
        try:
            os.fsync(f.fd)
            self._close(f)
            f.fd = os.open(self.dir / f.name, os.O_RDONLY)
            self._check_size(f, os.fstat(f.fd).st_size, "final fstat")
            data = self._read_at(f.fd, 0, len(f.model) + 1)
            self.stats.bytes_read += len(data)
            self._compare_exact(f, 0, bytes(f.model), data, "final read after reopen")
            if self.config.drop_caches:
                self._drop_cache(f.fd)
                data = self._read_at(f.fd, 0, len(f.model) + 1)
                self.stats.bytes_read += len(data)
                self._compare_exact(f, 0, bytes(f.model), data,
                                    "final read after dropping cached pages")
        except OSError as e:
            raise self._error(f, "error", f"final check raised {e!r}", errno=e.errno) from e


def _map_io(fd: int, off: int, n: int, data: bytes | None) -> bytes:
    """The mapping access itself: read n bytes at off, or write ``data``
    there and msync(MS_SYNC)."""
    base = off // PAGE * PAGE
    access = mmap.ACCESS_READ if data is None else mmap.ACCESS_WRITE
    with mmap.mmap(fd, off + n - base, access=access, offset=base) as m:
        if data is None:
            return m[off - base:off - base + n]
        m[off - base:off - base + n] = data
        m.flush()
        return b""


# Map helper protocol, over a Unix stream socket. Request: the fd (as
# SCM_RIGHTS) with a header "<QQB": offset, length, 1 if data follows (then
# the data). Reply: "<BQ" status (0 ok, else the errno or 255) and length,
# then the read bytes or the error's text.
_REQ = struct.Struct("<QQB")
_REP = struct.Struct("<BQ")


class _HelperDied(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        b = sock.recv(min(n, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


class _MapHelper:
    """A child process (this file run with ``--map-helper``, a fresh
    interpreter rather than a fork of a threaded test process) that performs
    the mapping accesses on fds passed to it, which share the checker's open
    files and page cache. Started on first use and again after it died."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = mine
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--map-helper",
                 str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()

    def call(self, fd: int, off: int, n: int, data: bytes | None, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            socket.send_fds(self.sock, [_REQ.pack(off, n, data is not None)], [fd])
            if data is not None:
                self.sock.sendall(data)
            status, length = _REP.unpack(_recv_exact(self.sock, _REP.size))
            payload = _recv_exact(self.sock, length)
        except TimeoutError:
            self.stop(kill=True)
            raise _HelperDied("error", f"the mapping access did not finish within "
                                       f"{timeout:g}s (helper killed)") from None
        except (EOFError, ConnectionError):
            self.stop()
            code = self.proc.returncode
            if code is not None and code < 0:
                raise _HelperDied("signal", f"the mapping access died of "
                                  f"{signal.Signals(-code).name} (SIGBUS: the kernel could not "
                                  f"fill a page: the filesystem's read failed, or the file "
                                  f"was shorter than the mapping)") from None
            raise _HelperDied("error", f"the map helper exited ({code})") from None
        if status:
            text = payload.decode(errors="replace")
            raise OSError(status if status != 255 else 0, text)
        return payload

    def stop(self, kill: bool = False) -> None:
        self.sock.close()
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _map_helper_main(sock_fd: int) -> int:
    sock = socket.socket(fileno=sock_fd)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, _REQ.size, 1)
        except ConnectionError:
            return 0
        if not msg:
            return 0
        try:
            msg += _recv_exact(sock, _REQ.size - len(msg))
            off, n, has_data = _REQ.unpack(msg)
            data = _recv_exact(sock, n) if has_data else None
        except EOFError:
            return 0
        try:
            out = _map_io(fds[0], off, n, data)
            reply = _REP.pack(0, len(out)) + out
        except Exception as e:
            num = e.errno if isinstance(e, OSError) and e.errno and e.errno < 255 else 255
            text = repr(e).encode()
            reply = _REP.pack(num, len(text)) + text
        finally:
            for fd in fds:
                os.close(fd)
        sock.sendall(reply)


def parse_weights(text: str) -> dict[str, float]:
    """``"write=4,mapwrite=0"`` -> ``{"write": 4.0, "mapwrite": 0.0}``."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"weight {item!r} is not NAME=NUMBER")
        out[name.strip()] = float(value)
    return out


def main(argv: Iterable[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="fsx.py", description="Seeded random-operation file checker.",
        epilog=f"ops and default weights: "
               f"{', '.join(f'{k}={v:g}' for k, v in DEFAULT_WEIGHTS.items())}")
    p.add_argument("dir", type=Path, help="directory to work in (files fsx0, fsx1... are made)")
    p.add_argument("--seed", type=int, default=None, help="RNG seed (default: random, printed)")
    p.add_argument("--ops", type=int, default=10_000)
    p.add_argument("--max-size", type=int, default=FsxConfig.max_size)
    p.add_argument("--max-io", type=int, default=FsxConfig.max_io)
    p.add_argument("--files", type=int, default=1)
    p.add_argument("--weights", type=parse_weights, default={},
                   help="NAME=WEIGHT,... (0 disables an op)")
    p.add_argument("--no-mmap", action="store_true", help="disable mapread and mapwrite")
    p.add_argument("--rename", action="store_true", help="enable the rename op")
    p.add_argument("--no-drop-caches", action="store_true",
                   help="skip the final check with the file's cached pages dropped")
    p.add_argument("--verify-every", type=int, default=0,
                   help="also compare whole files every N ops")
    p.add_argument("--log-size", type=int, default=FsxConfig.log_size)
    p.add_argument("--prefix", default=FsxConfig.prefix, help="file name prefix")
    p.add_argument("--keep", action="store_true", help="keep the files after a clean run")
    p.add_argument("-v", "--verbose", action="store_true", help="print every op")
    a = p.parse_args(None if argv is None else list(argv))
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(message)s")
    config = FsxConfig(seed=seed, ops=a.ops, max_size=a.max_size, max_io=a.max_io,
                       files=a.files, weights=a.weights, mmap=not a.no_mmap, rename=a.rename,
                       drop_caches=not a.no_drop_caches, log_size=a.log_size,
                       prefix=a.prefix, trace=a.verbose, verify_every=a.verify_every)
    fsx = Fsx(a.dir, config)
    print(f"fsx: seed {seed}, {a.ops} ops on {a.dir}", flush=True)
    try:
        stats = fsx.run()
    except FsxError as e:
        print(e, file=sys.stderr)
        print(f"files kept in {a.dir}", file=sys.stderr)
        return 1
    print(stats.summary())
    if not a.keep:
        fsx.remove()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--map-helper"]:
        sys.exit(_map_helper_main(int(sys.argv[2])))
    sys.exit(main())
