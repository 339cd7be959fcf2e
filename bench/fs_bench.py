"""smbfs mounted through FUSE against its peers, on one private Samba over
loopback: a benchmark, not a test (asserts nothing, not collected by pytest).

    .venv/bin/python bench/fs_bench.py                    # full sizes (1 GiB, 2,000 files...)
    .venv/bin/python bench/fs_bench.py --quick            # small sizes, under 2 minutes
    .venv/bin/python bench/fs_bench.py --json out.json    # also write the results as JSON
    .venv/bin/python bench/fs_bench.py --peers smbfs,local --workloads seq_write,seq_read_cold

Peers: ``smbfs`` (mount.smbfs), ``local`` (a directory on the server's own
disk: the limit), ``smbclient`` (bulk transfers only), and when installed
``rclone`` (``rclone mount`` with its smb backend, ``--vfs-cache-mode writes``)
and ``smbnetfs`` (FUSE over libsmbclient). All mount the same share.

Rules that keep the comparison honest (see bench/README.md):

* data counts once it is on the server: writes end with fsync, and after
  every writing workload the benchmark polls the share's directory on the
  server's disk until the server's copy is complete; that wait is added to
  the workload's time and shown separately ("lag");
* a cold read starts after a remount (a fresh FUSE connection and client
  cache) and ``echo 3 > /proc/sys/vm/drop_caches``;
* every workload runs in a child process with a time limit: on expiry the
  FUSE connection is aborted, the peer's daemon killed, its mount detached,
  and the peer's remaining workloads are reported as skipped.

Needs root (private smbd, drop_caches, mounts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIB = 1024 * 1024
CHUNK = MIB
TREE_CACHE = Path("/var/tmp/smbfs-bench")
MOUNT_TIMEOUT = 60.0

WORKLOADS = (
    "seq_write", "seq_read_cold", "seq_read_warm", "rand_read_4k",
    "create_small", "stat_small", "list_dir", "extract_tree", "grep_tree",
)
BULK = ("seq_write", "seq_read_cold", "seq_read_warm")
DESCRIPTION = {
    "seq_write": "sequential write + fsync",
    "seq_read_cold": "sequential read, cold",
    "seq_read_warm": "sequential re-read, warm",
    "rand_read_4k": "4 KiB random reads, cold",
    "create_small": "create small files (4 KiB)",
    "stat_small": "stat those files, cold",
    "list_dir": "list a big directory (ls -l)",
    "extract_tree": "tar -x a source tree",
    "grep_tree": "grep -r the tree, cold",
}


@dataclass(frozen=True)
class Sizes:
    big_file: int
    small_files: int
    dir_entries: int
    rand_reads: int
    tree: str  # "full" or "quick"
    step_timeout: float


FULL = Sizes(1024 * MIB, 2000, 10000, 4000, "full", 600.0)
QUICK = Sizes(128 * MIB, 300, 2000, 1000, "quick", 30.0)


# -- the workloads: run in a child process (``--worker``), timed there ---------------------


def w_seq_write(path: str, size: int) -> dict[str, Any]:
    block = os.urandom(CHUNK)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        done = 0
        while done < size:
            done += os.write(fd, block[: min(CHUNK, size - done)])
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"seconds": time.perf_counter() - t0, "bytes": size}


def w_seq_read(path: str) -> dict[str, Any]:
    buf = bytearray(CHUNK)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return {"seconds": time.perf_counter() - t0, "bytes": total}


def w_rand_read(path: str, count: int) -> dict[str, Any]:
    size = os.path.getsize(path)
    rng = random.Random(1234)
    offsets = [rng.randrange(0, size // 4096) * 4096 for _ in range(count)]
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offsets:
            os.pread(fd, 4096, off)
    finally:
        os.close(fd)
    return {"seconds": time.perf_counter() - t0, "ops": count, "bytes": 4096 * count}


def w_create(directory: str, count: int) -> dict[str, Any]:
    data = os.urandom(4096)
    t0 = time.perf_counter()
    os.mkdir(directory)
    for i in range(count):
        fd = os.open(f"{directory}/f{i:05d}.dat", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    return {"seconds": time.perf_counter() - t0, "ops": count, "bytes": 4096 * count}


def w_stat(directory: str, count: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    for i in range(count):
        os.stat(f"{directory}/f{i:05d}.dat")
    return {"seconds": time.perf_counter() - t0, "ops": count}


def w_list(directory: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    n = 0
    with os.scandir(directory) as it:
        for entry in it:
            entry.stat(follow_symlinks=False)
            n += 1
    return {"seconds": time.perf_counter() - t0, "ops": n}


def w_extract(tarball: str, directory: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    os.mkdir(directory)
    subprocess.run(["tar", "-xf", tarball, "-C", directory], check=True,
                   stdin=subprocess.DEVNULL)
    return {"seconds": time.perf_counter() - t0}


def w_grep(directory: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    # A pattern found in few files: grep reads every byte of every file.
    r = subprocess.run(["grep", "-r", "-l", "--", "zq9x_no_such_word", directory],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"grep exited {r.returncode}")
    return {"seconds": time.perf_counter() - t0}


WORKERS = {
    "seq_write": w_seq_write, "seq_read": w_seq_read, "rand_read": w_rand_read,
    "create": w_create, "stat": w_stat, "list": w_list, "extract": w_extract, "grep": w_grep,
}


def worker_main(spec: str) -> int:
    req = json.loads(spec)
    result = WORKERS[req["op"]](*req["args"])
    print(json.dumps(result))
    return 0


# -- helpers ------------------------------------------------------------------------------


class StepTimeout(Exception):
    pass


class StepFailed(Exception):
    pass


def run_worker(op: str, *args: Any, timeout: float) -> dict[str, Any]:
    """One workload in a child process, bounded: a hung mount stalls the
    child (in the kernel), never this process."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps({"op": op,
                            "args": list(args)})], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise StepTimeout(f"{op}: no result within {timeout:.0f}s") from None
    if proc.returncode != 0:
        raise StepFailed(f"{op}: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def drop_caches() -> None:
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def mount_entry(path: Path) -> tuple[str, str] | None:
    """(major:minor, fstype) of the mount on ``path``, from mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == str(path):
                return fields[2], fields[sep + 1]
    return None


def abort_fuse(path: Path) -> None:
    """Abort a (possibly hung) FUSE connection, then detach the mount."""
    entry = mount_entry(path)
    if entry is not None and entry[1].startswith("fuse"):
        minor = entry[0].split(":")[1]
        with contextlib.suppress(OSError):
            Path(f"/sys/fs/fuse/connections/{minor}/abort").write_text("1")
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def wait_until(pred: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def tree_size(path: Path) -> tuple[int, int]:
    """(regular files, bytes) below ``path``."""
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, n))
                files += 1
                nbytes += st.st_size
    return files, nbytes


def make_tree_tarball(kind: str) -> tuple[Path, int, int]:
    """A real source tree as a tarball, built once and cached: the Python
    sources of this venv's site-packages (full) or a few stdlib packages
    (quick). Returns (tarball, files, bytes)."""
    TREE_CACHE.mkdir(parents=True, exist_ok=True)
    tarball = TREE_CACHE / f"tree-{kind}.tar"
    if kind == "full":
        import site
        sources = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()][:1]
    else:
        stdlib = Path(os.__file__).parent
        sources = [stdlib / d for d in ("email", "json", "asyncio", "http", "xml", "urllib")]
    files = nbytes = 0
    if not tarball.exists():
        tmp = tarball.with_suffix(".tmp")

        def keep(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
            name = os.path.basename(ti.name)
            if name == "__pycache__" or name.endswith((".so", ".pyc")):
                return None
            if ti.issym() or ti.islnk():
                return None
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            return ti

        with tarfile.open(tmp, "w") as tar:
            for src in sources:
                tar.add(str(src), arcname=src.name, filter=keep)
        tmp.rename(tarball)
    with tarfile.open(tarball) as tar:
        for ti in tar:
            if ti.isfile():
                files += 1
                nbytes += ti.size
    return tarball, files, nbytes


# -- peers ---------------------------------------------------------------------------------


@dataclass
class Peer:
    """One way to reach the share. ``workdir`` is where the workloads run;
    ``server_dir`` is the same directory on the server's disk (None: local)."""

    name: str
    base: Path
    server_dir: Path | None
    workloads: tuple[str, ...] = WORKLOADS
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    note: str = ""
    dead: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        return self.base

    def mount(self) -> None:
        pass

    def unmount(self) -> None:
        pass

    def remount(self) -> None:
        self.unmount()
        drop_caches()
        self.mount()

    def abort(self) -> None:
        pass

    def log_tail(self) -> str:
        if self.log is None:
            return ""
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
        return ""


class LocalPeer(Peer):
    def remount(self) -> None:
        drop_caches()


class FusePeer(Peer):
    """A FUSE peer run as our child (foreground), mounted on ``mountpoint``."""

    mountpoint: Path
    subpath: str = ""

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def workdir(self) -> Path:
        return self.mountpoint / self.subpath / self.base.name

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        assert self.log is not None
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, env=self.env(),
                                         start_new_session=True)
        target = self.mountpoint / self.subpath

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise StepFailed(f"{self.name} exited {self.proc.returncode}: {self.log_tail()}")
            if mount_entry(self.mountpoint) is None:
                return False
            return run_probe(target)

        if not wait_until(ready, MOUNT_TIMEOUT, 0.1):
            self.abort()
            raise StepTimeout(f"{self.name}: not mounted within {MOUNT_TIMEOUT:.0f}s")

    def unmount(self) -> None:
        if self.proc is None:
            return
        if mount_entry(self.mountpoint) is not None:
            subprocess.run(["umount", str(self.mountpoint)], capture_output=True, timeout=60)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.abort()
        self.proc = None
        if mount_entry(self.mountpoint) is not None:
            abort_fuse(self.mountpoint)

    def abort(self) -> None:
        abort_fuse(self.mountpoint)
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None


def run_probe(path: Path) -> bool:
    """Does ``path`` answer within 5 s? In a child: a hung mount must not hang us."""
    try:
        r = subprocess.run(["stat", "-c", "%F", str(path)], capture_output=True, timeout=5,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


class SmbfsPeer(FusePeer):
    def command(self) -> list[str]:
        s = self.extra
        helper = s.get("helper") or str(Path(sys.executable).with_name("mount.smbfs"))
        return [helper, f"//{s['host']}:{s['port']}/{s['share']}", str(self.mountpoint),
                "--foreground", "-o", f"credentials={s['cred']},uid=0,gid=0"]


class RclonePeer(FusePeer):
    def command(self) -> list[str]:
        s = self.extra
        return ["rclone", "mount", f":smb:{s['share']}", str(self.mountpoint),
                "--smb-host", s["host"], "--smb-port", str(s["port"]), "--smb-user", s["user"],
                "--smb-pass", s["obscured"], "--vfs-cache-mode", "writes",
                "--cache-dir", str(s["cache_dir"]), "--config", "/dev/null", "--log-level",
                "NOTICE"]

    def mount(self) -> None:
        # A fresh VFS cache per mount: a cold read must come from the server.
        shutil.rmtree(self.extra["cache_dir"], ignore_errors=True)
        super().mount()


class SmbnetfsPeer(FusePeer):
    def command(self) -> list[str]:
        return ["smbnetfs", str(self.mountpoint), "-f", "-o",
                f"config={self.extra['home']}/.smb/smbnetfs.conf"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.extra["home"])}


class SmbclientPeer(Peer):
    """Bulk transfers with ``smbclient put``/``get``: the same Samba's own client."""

    def smbclient(self, command: str, timeout: float) -> float:
        s = self.extra
        args = [*s["args"], "-D", self.base.name, "-c", command]
        t0 = time.perf_counter()
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise StepTimeout(f"smbclient {command}: no result within {timeout:.0f}s") from None
        if r.returncode != 0 or "NT_STATUS" in r.stdout + r.stderr:
            raise StepFailed(f"smbclient {command}: {(r.stdout + r.stderr).strip()[-200:]}")
        return time.perf_counter() - t0


# -- the run -------------------------------------------------------------------------------


@dataclass
class Result:
    value: float | None = None
    unit: str = ""
    seconds: float | None = None
    lag: float | None = None
    error: str = ""


def rate(res: dict[str, Any], unit: str, amount: float) -> Result:
    seconds = res["seconds"] + res.get("lag", 0.0)
    return Result(value=amount / seconds if seconds > 0 else None, unit=unit,
                  seconds=round(seconds, 3), lag=res.get("lag"))


def server_has(server_dir: Path, files: int, nbytes: int, timeout: float) -> float:
    """Seconds until the server's directory holds ``files`` files of
    ``nbytes`` in all (peers that upload after close)."""
    if tree_size(server_dir) >= (files, nbytes):
        return 0.0  # complete at close: no wait (the walk itself is not a lag)
    t0 = time.perf_counter()
    if not wait_until(lambda: tree_size(server_dir) >= (files, nbytes), timeout, 0.1):
        raise StepTimeout(f"server copy incomplete after {timeout:.0f}s: "
                          f"{tree_size(server_dir)} of {(files, nbytes)}")
    return time.perf_counter() - t0


def server_file_has(path: Path, nbytes: int, timeout: float) -> float:
    t0 = time.perf_counter()

    def complete() -> bool:
        try:
            return path.stat().st_size >= nbytes
        except OSError:
            return False

    if not wait_until(complete, timeout, 0.05):
        raise StepTimeout(f"server copy of {path.name} incomplete after {timeout:.0f}s")
    return time.perf_counter() - t0


def run_peer(peer: Peer, sizes: Sizes, workloads: tuple[str, ...], tarball: Path,
             tree_files: int, tree_bytes: int, smb_owner: tuple[int, int],
             log: Any) -> dict[str, Result]:
    results: dict[str, Result] = {}
    T = sizes.step_timeout
    big = "big.dat"
    small = "small"
    listing = "listing"
    tree = "tree"

    def lag_for_file(name: str, nbytes: int) -> float:
        if peer.server_dir is None:
            return 0.0
        return server_file_has(peer.server_dir / name, nbytes, T)

    def lag_for_tree(name: str, files: int, nbytes: int) -> float:
        if peer.server_dir is None:
            return 0.0
        return server_has(peer.server_dir / name, files, nbytes, T)

    def step(name: str) -> dict[str, Any] | None:
        if name not in workloads or name not in peer.workloads:
            return None
        if peer.dead:
            results[name] = Result(error=f"skipped ({peer.dead})")
            return None
        return {}

    try:
        peer.mount()
    except (StepTimeout, StepFailed) as e:
        peer.dead = f"mount failed: {e}"
        for name in workloads:
            if name in peer.workloads:
                results[name] = Result(error=peer.dead)
        return results

    def guarded(name: str, fn: Any) -> None:
        if step(name) is None:
            return
        log(f"  {peer.name}: {name} ...")
        try:
            results[name] = fn()
            r = results[name]
            lag = f" (+{r.lag:.2f}s until on server)" if r.lag and r.lag > 0.05 else ""
            log(f"  {peer.name}: {name}: {r.value:,.1f} {r.unit}{lag}")
        except StepTimeout as e:
            peer.dead = f"timeout in {name}"
            results[name] = Result(error=f"timeout: {e}")
            log(f"  {peer.name}: {name}: TIMEOUT: {e}; tearing the mount down")
            peer.abort()
        except (StepFailed, OSError, subprocess.SubprocessError) as e:
            results[name] = Result(error=f"failed: {e}")
            log(f"  {peer.name}: {name}: FAILED: {e}")

    wd = peer.workdir
    if isinstance(peer, SmbclientPeer):
        local_src = Path(peer.extra["local_src"])

        def sc_write() -> Result:
            secs = peer.smbclient(f"put {local_src} {big}", T)
            assert peer.server_dir is not None
            t0 = time.perf_counter()
            # smbclient has no flush: do on the server's disk what FLUSH does.
            fd = os.open(peer.server_dir / big, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return rate({"seconds": secs, "lag": time.perf_counter() - t0}, "MB/s",
                        sizes.big_file / 1e6)

        def sc_read_cold() -> Result:
            drop_caches()
            return rate({"seconds": peer.smbclient(f"get {big} /dev/null", T)}, "MB/s",
                        sizes.big_file / 1e6)

        def sc_read_warm() -> Result:
            return rate({"seconds": peer.smbclient(f"get {big} /dev/null", T)}, "MB/s",
                        sizes.big_file / 1e6)

        guarded("seq_write", sc_write)
        guarded("seq_read_cold", sc_read_cold)
        guarded("seq_read_warm", sc_read_warm)
        return results

    def seq_write() -> Result:
        res = run_worker("seq_write", str(wd / big), sizes.big_file, timeout=T)
        res["lag"] = lag_for_file(big, sizes.big_file)
        return rate(res, "MB/s", sizes.big_file / 1e6)

    def seq_read_cold() -> Result:
        peer.remount()
        res = run_worker("seq_read", str(wd / big), timeout=T)
        return rate(res, "MB/s", res["bytes"] / 1e6)

    def seq_read_warm() -> Result:
        res = run_worker("seq_read", str(wd / big), timeout=T)
        return rate(res, "MB/s", res["bytes"] / 1e6)

    def rand_read() -> Result:
        peer.remount()
        res = run_worker("rand_read", str(wd / big), sizes.rand_reads, timeout=T)
        return rate(res, "ops/s", res["ops"])

    def create_small() -> Result:
        res = run_worker("create", str(wd / small), sizes.small_files, timeout=T)
        res["lag"] = lag_for_tree(small, sizes.small_files, 4096 * sizes.small_files)
        return rate(res, "files/s", sizes.small_files)

    def stat_small() -> Result:
        peer.remount()
        res = run_worker("stat", str(wd / small), sizes.small_files, timeout=T)
        return rate(res, "ops/s", res["ops"])

    def list_dir() -> Result:
        # The entries are made on the server's disk (not timed), as the share's user.
        target = (peer.server_dir or wd) / listing
        target.mkdir()
        for i in range(sizes.dir_entries):
            p = target / f"entry-{i:06d}.txt"
            p.touch()
            if peer.server_dir is not None:
                os.chown(p, *smb_owner)
        if peer.server_dir is not None:
            os.chown(target, *smb_owner)
        peer.remount()
        res = run_worker("list", str(wd / listing), timeout=T)
        if res["ops"] != sizes.dir_entries:
            raise StepFailed(f"listed {res['ops']} of {sizes.dir_entries} entries")
        return rate(res, "entries/s", res["ops"])

    def extract_tree() -> Result:
        res = run_worker("extract", str(tarball), str(wd / tree), timeout=T)
        res["lag"] = lag_for_tree(tree, tree_files, tree_bytes)
        r = rate(res, "files/s", tree_files)
        return r

    def grep_tree() -> Result:
        peer.remount()
        res = run_worker("grep", str(wd / tree), timeout=T)
        return rate(res, "MB/s", tree_bytes / 1e6)

    try:
        if not run_probe(wd):
            peer.dead = f"{wd} does not answer: {peer.log_tail()}"
            log(f"  {peer.name}: {peer.dead}")
        guarded("seq_write", seq_write)
        guarded("seq_read_cold", seq_read_cold)
        guarded("seq_read_warm", seq_read_warm)
        guarded("rand_read_4k", rand_read)
        guarded("create_small", create_small)
        guarded("stat_small", stat_small)
        guarded("list_dir", list_dir)
        guarded("extract_tree", extract_tree)
        guarded("grep_tree", grep_tree)
    finally:
        if peer.dead:
            peer.abort()
        else:
            peer.unmount()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    ap.add_argument("--json", type=Path, help="write the results to this file")
    ap.add_argument("--peers", default="smbfs,smbclient,local,rclone,smbnetfs",
                    help="comma-separated subset of smbfs,baseline,smbclient,local,rclone,"
                         "smbnetfs")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--size", type=int, help="big file size in MiB (overrides the preset)")
    ap.add_argument("--step-timeout", type=float, help="seconds per workload step")
    ap.add_argument("--baseline", type=Path,
                    help="the mount.smbfs of another smbfs (e.g. a venv of the previous "
                         "commit): peer 'baseline' in --peers, before/after in one run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker)
    if os.geteuid() != 0:
        print("fs_bench: needs root (a private smbd, drop_caches, mounts)", file=sys.stderr)
        return 2

    sizes = QUICK if args.quick else FULL
    if args.size or args.step_timeout:
        sizes = Sizes(args.size * MIB if args.size else sizes.big_file, sizes.small_files,
                      sizes.dir_entries, sizes.rand_reads, sizes.tree,
                      args.step_timeout or sizes.step_timeout)
    workloads = tuple(w for w in args.workloads.split(",") if w)
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
    wanted = [p for p in args.peers.split(",") if p]
    started = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    from smbfs.devserver import PrivateSamba, SambaConfig, Share

    tarball, tree_files, tree_bytes = make_tree_tarball(sizes.tree)
    log(f"tree: {tarball} ({tree_files} files, {tree_bytes / 1e6:.1f} MB)")
    work = Path(tempfile.mkdtemp(prefix="smbfs-bench-"))
    server = PrivateSamba(SambaConfig(shares=(Share("bench", {"read only": "no"}),)))
    server.start()
    peers: list[Peer] = []
    skipped: dict[str, str] = {}
    all_results: dict[str, dict[str, Result]] = {}
    try:
        share_dir = server.share_path("bench")
        owner_st = os.stat(share_dir)
        import pwd
        pw = pwd.getpwnam(server.user.name)
        smb_owner = (pw.pw_uid, pw.pw_gid)
        del owner_st
        cred = work / "cred"
        cred.write_text(f"username={server.user.name}\npassword={server.user.password}\n")
        cred.chmod(0o600)
        common = {"host": server.host, "port": server.port, "share": "bench",
                  "user": server.user.name, "cred": str(cred)}

        def server_subdir(name: str) -> Path:
            d = share_dir / f"bench-{name}"
            d.mkdir()
            os.chown(d, *smb_owner)
            return d

        for name in wanted:
            if name == "local":
                base = work / "local"
                base.mkdir()
                peers.append(LocalPeer("local", base, None, note="a directory on the same disk"))
            elif name == "smbfs":
                p = SmbfsPeer("smbfs", server_subdir("smbfs"), None, extra=dict(common),
                              log=work / "smbfs.log")
                p.server_dir = p.base
                p.mountpoint = work / "mnt-smbfs"
                peers.append(p)
            elif name == "baseline":
                if args.baseline is None:
                    skipped[name] = "no --baseline given"
                    continue
                p = SmbfsPeer("baseline", server_subdir("baseline"), None,
                              extra={**common, "helper": str(args.baseline)},
                              log=work / "baseline.log", note=f"smbfs: {args.baseline}")
                p.server_dir = p.base
                p.mountpoint = work / "mnt-baseline"
                peers.append(p)
            elif name == "smbclient":
                if shutil.which("smbclient") is None:
                    skipped[name] = "not installed"
                    continue
                src = Path("/dev/shm") / f"smbfs-bench-{os.getpid()}.dat"
                block = os.urandom(16 * MIB)
                with open(src, "wb") as f:
                    for pos in range(0, sizes.big_file, len(block)):
                        f.write(block[: min(len(block), sizes.big_file - pos)])
                d = server_subdir("smbclient")
                p = SmbclientPeer("smbclient", d, d, workloads=BULK, note="put from tmpfs, get to /dev/null",
                                  extra={"args": server.smbclient_args("bench"), "local_src": str(src)})
                peers.append(p)
            elif name == "rclone":
                if shutil.which("rclone") is None:
                    skipped[name] = "not installed (apt-get install rclone)"
                    continue
                obscured = subprocess.run(["rclone", "obscure", "-"], input=server.user.password,
                                          capture_output=True, text=True, timeout=30).stdout.strip()
                ver = subprocess.run(["rclone", "version"], capture_output=True, text=True,
                                     timeout=30).stdout.split("\n")[0]
                p = RclonePeer("rclone", server_subdir("rclone"), None,
                               extra={**common, "obscured": obscured,
                                      "cache_dir": str(work / "rclone-cache")},
                               log=work / "rclone.log", note=f"{ver}, --vfs-cache-mode writes")
                p.server_dir = p.base
                p.mountpoint = work / "mnt-rclone"
                peers.append(p)
            elif name == "smbnetfs":
                if shutil.which("smbnetfs") is None:
                    skipped[name] = "not installed (apt-get install smbnetfs)"
                    continue
                home = work / "smbnetfs-home"
                (home / ".smb").mkdir(parents=True)
                (home / ".smb" / "smb.conf").write_text(
                    "[global]\n  client min protocol = SMB2\n  client max protocol = SMB3\n")
                conf = home / ".smb" / "smbnetfs.conf"
                conf.touch(mode=0o600)  # smbnetfs ignores auth lines in a readable file
                conf.write_text(f'auth "{server.user.name}" "{server.user.password}"\n'
                                'smb_query_browsers "false"\n')
                p = SmbnetfsPeer("smbnetfs", server_subdir("smbnetfs"), None,
                                 extra={"home": str(home)}, log=work / "smbnetfs.log",
                                 note="libsmbclient")
                p.server_dir = p.base
                p.mountpoint = work / "mnt-smbnetfs"
                # libsmbclient takes the port from the host name (smb://host:port/).
                p.subpath = f"{server.host}:{server.port}/bench"
                peers.append(p)
            else:
                ap.error(f"unknown peer {name}")

        for peer in peers:
            log(f"{peer.name}: start")
            all_results[peer.name] = run_peer(peer, sizes, workloads, tarball, tree_files,
                                              tree_bytes, smb_owner, log)
            if peer.server_dir is not None:
                shutil.rmtree(peer.server_dir, ignore_errors=True)
            elif isinstance(peer, LocalPeer):
                shutil.rmtree(peer.base, ignore_errors=True)
    finally:
        for peer in peers:
            if isinstance(peer, FusePeer) and (peer.proc is not None
                                               or mount_entry(peer.mountpoint)):
                peer.abort()
        server.stop()
        for f in Path("/dev/shm").glob(f"smbfs-bench-{os.getpid()}.dat"):
            f.unlink()
        shutil.rmtree(work, ignore_errors=True)

    report = build_report(sizes, workloads, peers, all_results, skipped, tree_files, tree_bytes,
                          time.time() - started)
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


def build_report(sizes: Sizes, workloads: tuple[str, ...], peers: list[Peer],
                 results: dict[str, dict[str, Result]], skipped: dict[str, str],
                 tree_files: int, tree_bytes: int, elapsed: float) -> dict[str, Any]:
    names = [p.name for p in peers]
    rows = []
    for w in workloads:
        row: dict[str, Any] = {"workload": w, "description": DESCRIPTION[w], "peers": {}}
        for n in names:
            r = results.get(n, {}).get(w)
            if r is None:
                continue
            row["peers"][n] = {"value": r.value, "unit": r.unit, "seconds": r.seconds,
                               "server_lag": r.lag, "error": r.error or None}
        ours = row["peers"].get("smbfs", {}).get("value")
        row["smbfs_ratio"] = {
            n: round(ours / v["value"], 3)
            for n, v in row["peers"].items()
            if n != "smbfs" and ours and v.get("value")
        }
        rows.append(row)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                    "cpu": _cpu_model(), "python": platform.python_version()},
        "preset": sizes.tree,
        "sizes": {"big_file_mib": sizes.big_file // MIB, "small_files": sizes.small_files,
                  "dir_entries": sizes.dir_entries, "rand_reads": sizes.rand_reads,
                  "tree_files": tree_files, "tree_mb": round(tree_bytes / 1e6, 1)},
        "peers": {p.name: p.note for p in peers},
        "skipped_peers": skipped,
        "elapsed_seconds": round(elapsed, 1),
        "rows": rows,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def _fmt(v: dict[str, Any] | None) -> str:
    if v is None:
        return "-"
    if v.get("error"):
        return "timeout" if v["error"].startswith("timeout") else (
            "skipped" if v["error"].startswith("skipped") else "FAILED")
    val = v["value"]
    s = f"{val:,.0f}" if val >= 100 else f"{val:,.1f}"
    lag = v.get("server_lag")
    return s + ("*" if lag and lag > 0.05 else "")


def format_table(report: dict[str, Any]) -> str:
    names = list(report["peers"])
    others = [n for n in names if n != "smbfs"]
    head = ["workload", "unit", *names, *[f"smbfs/{n}" for n in others]]
    lines = [head]
    for row in report["rows"]:
        unit = next((v["unit"] for v in row["peers"].values() if v.get("unit")), "")
        cells = [row["workload"], unit]
        cells += [_fmt(row["peers"].get(n)) for n in names]
        cells += [f"{row['smbfs_ratio'][n]:.2f}" if n in row["smbfs_ratio"] else "-"
                  for n in others]
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    out = [f"fs_bench {report['date']}  ({report['preset']} preset; "
           f"{report['machine']['cpus']} CPUs {report['machine']['cpu']}; "
           f"kernel {report['machine']['kernel']})"]
    s = report["sizes"]
    out.append(f"big file {s['big_file_mib']} MiB, {s['small_files']} small files, "
               f"{s['dir_entries']} dir entries, {s['rand_reads']} random reads, tree "
               f"{s['tree_files']} files / {s['tree_mb']} MB; higher is better")
    for i, r in enumerate(lines):
        out.append("  ".join(c.ljust(widths[j]) if j < 2 else c.rjust(widths[j])
                             for j, c in enumerate(r)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    out.append("* includes waiting for the server's copy to complete after close (see JSON "
               "server_lag)")
    for n, note in report["peers"].items():
        if note:
            out.append(f"  {n}: {note}")
    for n, why in report["skipped_peers"].items():
        out.append(f"  {n}: not run: {why}")
    for row in report["rows"]:
        for n, v in row["peers"].items():
            if v.get("error"):
                out.append(f"  {row['workload']} {n}: {v['error']}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
