"""Where does a mounted smbfs spend its time? Samples the mount.smbfs process
with py-spy while one fs_bench workload runs on it, and prints the
functions with the most samples (self and inclusive). A tool, not a test.

    .venv/bin/python bench/fs_profile.py create_small [--count 1000]
    .venv/bin/python bench/fs_profile.py seq_read --size 512
    .venv/bin/python bench/fs_profile.py stat_small --top 40 --raw /tmp/stacks.txt

Workloads: seq_write, seq_read (after a remount), create_small, stat_small
(after a remount), list_dir, extract_tree. py-spy must be installed (it is
in the dev venv here: ``pip install py-spy``); needs root.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fs_bench  # bench/ is not a package: found through sys.path


def summarize(raw: Path, top: int) -> str:
    """py-spy's raw format: one "frame;frame;...;leaf count" line per stack."""
    self_count: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [f.split(" (", 1)[0] + " " + f.rsplit("/", 1)[-1].rstrip(")")
                  if "(" in f else f for f in stack.split(";")]
        total += count
        self_count[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
    out = [f"{total} samples"]
    out.append("self:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_count.most_common(top)]
    out.append("inclusive:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512, help="MiB for seq_*")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=int, default=250, help="samples per second")
    ap.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(pyspy):
        print("fs_profile: py-spy not found (pip install py-spy)", file=sys.stderr)
        return 2

    from smbfs.devserver import PrivateSamba, SambaConfig, Share

    work = Path(tempfile.mkdtemp(prefix="smbfs-prof-"))
    server = PrivateSamba(SambaConfig(shares=(Share("bench", {"read only": "no"}),))).start()
    peer: fs_bench.SmbfsPeer | None = None
    try:
        import pwd
        pw = pwd.getpwnam(server.user.name)
        cred = work / "cred"
        cred.write_text(f"username={server.user.name}\npassword={server.user.password}\n")
        cred.chmod(0o600)
        base = server.share_path("bench") / "bench-smbfs"
        base.mkdir()
        os.chown(base, pw.pw_uid, pw.pw_gid)
        peer = fs_bench.SmbfsPeer(
            "smbfs", base, base, log=work / "smbfs.log",
            extra={"host": server.host, "port": server.port, "share": "bench",
                   "cred": str(cred)})
        peer.mountpoint = work / "mnt"
        peer.mount()
        wd = peer.workdir
        size = args.size * fs_bench.MIB
        tarball, _, _ = fs_bench.make_tree_tarball("full")
        # Set-up that is not profiled.
        if args.workload in ("seq_read",):
            fs_bench.run_worker("seq_write", str(wd / "big.dat"), size, timeout=600)
            peer.remount()
        if args.workload == "stat_small":
            fs_bench.run_worker("create", str(wd / "small"), args.count, timeout=600)
            peer.remount()
        if args.workload == "list_dir":
            d = base / "listing"
            d.mkdir()
            for i in range(args.count):
                (d / f"entry-{i:06d}.txt").touch()
            peer.remount()
        jobs = {
            "seq_write": ("seq_write", str(wd / "big.dat"), size),
            "seq_read": ("seq_read", str(wd / "big.dat")),
            "create_small": ("create", str(wd / "small"), args.count),
            "stat_small": ("stat", str(wd / "small"), args.count),
            "list_dir": ("list", str(wd / "listing")),
            "extract_tree": ("extract", str(tarball), str(wd / "tree")),
        }
        if args.workload not in jobs:
            ap.error(f"workload must be one of {', '.join(jobs)}")
        assert peer.proc is not None
        raw = args.raw or work / "stacks.txt"
        spy = subprocess.Popen([pyspy, "record", "-p", str(peer.proc.pid), "-r", str(args.rate),
                                "--format", "raw", "-o", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches
        op, *rest = jobs[args.workload]
        res = fs_bench.run_worker(op, *rest, timeout=600)
        spy.send_signal(2)
        spy.wait(timeout=60)
        print(f"{args.workload}: {res}")
        print(summarize(raw, args.top))
    finally:
        if peer is not None:
            peer.unmount()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
