"""Engine throughput against smbclient on the same private Samba: a benchmark,
not a test (asserts nothing, not collected by pytest).

    .venv/bin/python bench/engine_bench.py            # 1 GiB each way
    .venv/bin/python bench/engine_bench.py --quick    # 256 MiB
    .venv/bin/python bench/engine_bench.py --size 512M --share encrypted

Sequential write then read of one file through smbfs.client (engine only,
no FUSE: data from and to memory), then ``smbclient put`` / ``get`` of a
file of the same size (from a local tmpfs file, to /dev/null). Prints MB/s
(10^6 bytes/s) of each, and the ratio smbfs/smbclient. smbclient's numbers
include its process start and session setup, so they are also given as
smbclient itself reports them (its "average" kb/s) for a fairer ratio.

Needs root (the private server is started here by smbfs.devserver).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from smbfs.client import ClientConfig, open_session, paths
from smbfs.client.open import Open
from smbfs.client.tree import Tree
from smbfs.devserver import PrivateSamba, SambaConfig
from smbfs.proto.constants import Dialect
from smbfs.proto.create import CreateDisposition

MIB = 1024 * 1024


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}")
    mult = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB}[m.group(2).upper()]
    return int(m.group(1)) * mult


def make_data(size: int) -> bytearray:
    """Incompressible bytes, quickly: a 16 MiB random block repeated."""
    block = os.urandom(min(size, 16 * MIB))
    out = bytearray(size)
    for pos in range(0, size, len(block)):
        n = min(len(block), size - pos)
        out[pos:pos + n] = block[:n]
    return out


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


async def engine_run(server: PrivateSamba, args: argparse.Namespace,
                     data: bytearray) -> dict[str, Any]:
    cfg = ClientConfig(
        host=server.host, port=server.port, username=server.user.name,
        password=server.user.password, max_in_flight=args.max_in_flight,
        max_dialect=args.dialect, request_timeout=120,
    )
    size = len(data)
    name = "engine-bench.bin"
    async with open_session(cfg) as session:
        tree = await Tree.connect(session, args.share)
        neg = session.connection.negotiated
        assert neg is not None
        f: Open = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF)
        if args.chunk:
            f.max_read = min(args.chunk, neg.max_read_size)
            f.max_write = min(args.chunk, neg.max_write_size)
        t0 = time.perf_counter()
        await f.write(0, memoryview(data))
        await f.close(post_query=False)
        t_write = time.perf_counter() - t0
        peak_w = f.peak_in_flight

        back = bytearray(size)
        f = await tree.create(name, lease=args.lease)
        if args.chunk:
            f.max_read = min(args.chunk, neg.max_read_size)
        t0 = time.perf_counter()
        got = await f.readinto(0, back)
        await f.close(post_query=False)
        t_read = time.perf_counter() - t0
        peak_r = f.peak_in_flight
        ok = got == size and (not args.verify or hashlib.sha256(back).digest()
                              == hashlib.sha256(data).digest())
        await paths.unlink(tree, name)
        await tree.disconnect()
        return dict(
            write=mbps(size, t_write), read=mbps(size, t_read), ok=ok,
            peak_w=peak_w, peak_r=peak_r, dialect=neg.dialect.name,
            chunk_w=f.max_write, chunk_r=f.max_read,
            sealed=bool(tree.encrypt_data or session.config.require_encryption),
        )


_RATE = re.compile(r"average ([\d.]+) kb/s")


def smbclient_run(server: PrivateSamba, args: argparse.Namespace,
                  local: Path, size: int) -> dict[str, float]:
    name = "smbclient-bench.bin"
    extra = ["-m", {Dialect.SMB2_0_2: "SMB2_02", Dialect.SMB2_1: "SMB2_10",
                    Dialect.SMB3_0: "SMB3_00", Dialect.SMB3_0_2: "SMB3_02",
                    Dialect.SMB3_1_1: "SMB3_11"}[args.dialect]]
    out: dict[str, float] = {}
    for what, cmd in (("write", f"put {local} {name}"), ("read", f"get {name} /dev/null")):
        t0 = time.perf_counter()
        r = server.smbclient(args.share, cmd, extra_args=extra, timeout=600)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"smbclient {cmd!r} failed: {r.stdout}{r.stderr}")
        out[what] = mbps(size, wall)
        m = _RATE.search(r.stdout + r.stderr)
        # smbclient's kb/s are KiB/s.
        out[what + "_own"] = float(m.group(1)) * 1024 / 1e6 if m else out[what]
    server.smbclient(args.share, f"del {name}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=1024 * MIB, help="default 1G")
    p.add_argument("--quick", action="store_true", help="256 MiB")
    p.add_argument("--share", default="share", help="share (e.g. 'encrypted' for sealed)")
    p.add_argument("--max-in-flight", type=int, default=32)
    p.add_argument("--chunk", type=parse_size, default=0,
                   help="bytes per READ/WRITE (default: min(1 MiB, negotiated))")
    p.add_argument("--dialect", type=lambda s: Dialect[s], default=Dialect.SMB3_1_1,
                   help="max dialect, e.g. SMB3_0_2")
    p.add_argument("--no-lease", dest="lease", action="store_false")
    p.add_argument("--verify", action="store_true", help="hash-compare the read-back")
    p.add_argument("--rounds", type=int, default=1, help="best of N rounds")
    args = p.parse_args()
    size = 256 * MIB if args.quick else args.size

    data = make_data(size)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        local = Path(tmp) / "src.bin"
        local.write_bytes(data)
        server = PrivateSamba(SambaConfig()).start()
        try:
            eng: dict[str, Any] = {}
            cli: dict[str, float] = {}
            for _ in range(args.rounds):
                e = trio.run(engine_run, server, args, data)
                c = smbclient_run(server, args, local, size)
                for k, v in e.items():
                    eng[k] = max(eng.get(k, v), v) if isinstance(v, float) else v
                for k, v in c.items():
                    cli[k] = max(cli.get(k, v), v)
        finally:
            server.stop()
    print(f"{size / MIB:.0f} MiB, share {args.share!r}, {eng['dialect']}"
          f"{' sealed' if eng['sealed'] else ''}, max_in_flight {args.max_in_flight}, "
          f"chunk {eng['chunk_w'] // 1024} KiB write / {eng['chunk_r'] // 1024} KiB read, "
          f"peak in flight {eng['peak_w']} write / {eng['peak_r']} read"
          f"{'' if eng['ok'] else '  READ-BACK MISMATCH'}")
    print(f"{'':8} {'smbfs':>9} {'smbclient':>10} {'(own)':>9} {'ratio':>7} {'(own)':>7}")
    for what in ("write", "read"):
        print(f"{what:8} {eng[what]:9.0f} {cli[what]:10.0f} {cli[what + '_own']:9.0f} "
              f"{eng[what] / cli[what]:6.2f}x {eng[what] / cli[what + '_own']:6.2f}x")
    print("MB/s = 10^6 bytes/s; (own) = smbclient's self-reported rate, without its "
          "process start and session setup")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
