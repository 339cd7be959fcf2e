"""What a lost connection costs: a benchmark, not a test (asserts nothing,
not collected by pytest).

    .venv/bin/python bench/reconnect_bench.py            # 20 cuts, 4 GiB copies, cut every 2 s
    .venv/bin/python bench/reconnect_bench.py --quick    # 10 cuts, 1 GiB, cut every 1 s

Against a private Samba on loopback, through the test bed's fault proxy
(tests/faultproxy.py), with the engine's reconnect on:

* **time to recover**: the connection is cut (RST) while idle, and a stat is
  issued at once; the time from the cut to that stat's completion, over N
  cuts (median, p90, max). It covers noticing the cut, the new TCP
  connection, NEGOTIATE, SESSION_SETUP with PreviousSessionId, the tree
  connect and the durable reclaim of one open handle.
* **copy under cuts**: a sequential write of one file (1 MiB requests,
  pipelined as the FUSE layer's writes are) with no cut, then the same with a
  cut every ``--every`` seconds; the ratio of the two throughputs, and the
  file checked byte for byte on the server.

Targets (issue 10): recovery under 0.5 s on loopback; the copy with a cut
every 2 s at least 0.8x the uncut one. Needs root (it starts smbd).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from faultproxy import FaultProxy

from smbfs.client import ClientConfig, open_session, paths
from smbfs.client.tree import Tree
from smbfs.devserver import PrivateSamba, SambaConfig
from smbfs.proto.create import CreateDisposition

MIB = 1024 * 1024


def config(server: PrivateSamba, port: int) -> ClientConfig:
    return ClientConfig(host=server.host, port=port, username=server.user.name,
                        password=server.user.password, reconnect=True,
                        reconnect_backoff_min=0.01, reconnect_backoff_max=0.5,
                        request_timeout=30, echo_interval=10)


async def recovery_times(server: PrivateSamba, proxy: FaultProxy, cuts: int) -> list[float]:
    out: list[float] = []
    async with open_session(config(server, proxy.port)) as s, \
            await Tree.connect(s, server.shares.rw) as tree:
        f = await tree.create("bench-reconnect.bin", disposition=CreateDisposition.FILE_OVERWRITE_IF)
        for _ in range(cuts):
            await paths.stat(tree, "")
            await trio.sleep(0.05)
            start = time.perf_counter()
            await trio.to_thread.run_sync(lambda: proxy.cut_all(reset=True))
            await paths.stat(tree, "")
            out.append(time.perf_counter() - start)
        assert s.stats.reconnects == cuts, s.stats
        assert s.stats.handles_lost == 0, s.stats
        await f.close()
        await paths.unlink(tree, "bench-reconnect.bin")
    return out


BLOCK = 16 * MIB


async def copy(server: PrivateSamba, proxy: FaultProxy, size: int, every: float | None,
               block: bytes) -> tuple[float, int]:
    name = "bench-copy.bin"
    async with open_session(config(server, proxy.port)) as s, \
            await Tree.connect(s, server.shares.rw) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF)
        chunk = MIB
        done = trio.Event()

        async def cutter() -> None:
            assert every is not None
            while not done.is_set():
                with trio.move_on_after(every):
                    await done.wait()
                if not done.is_set():
                    await trio.to_thread.run_sync(lambda: proxy.cut_all(reset=True))

        start = time.perf_counter()
        async with trio.open_nursery() as n:
            if every:
                n.start_soon(cutter)
            # 16 MiB at a time, each pipelined in 1 MiB requests: what a cp
            # through the FUSE layer looks like to the engine.
            f.max_write = chunk
            for off in range(0, size, BLOCK):
                await f.write(off, block)
            await f.flush()
            done.set()
        took = time.perf_counter() - start
        await f.close()
        reconnects = s.stats.reconnects
    got = (server.share_path(server.shares.rw) / name)
    want = hashlib.sha256(block).digest()
    with open(got, "rb") as fh:
        for off in range(0, size, BLOCK):
            if hashlib.sha256(fh.read(BLOCK)).digest() != want:
                raise SystemExit(f"copy under cuts: the server's copy differs at {off}: "
                                 "a lost or wrong byte")
        if fh.read(1):
            raise SystemExit("copy under cuts: the server's copy is too long")
    got.unlink()
    return size / took / 1e6, reconnects


async def main_async(args: argparse.Namespace) -> None:
    with PrivateSamba(SambaConfig()) as server:
        proxy = FaultProxy(server.host, server.port).start()
        try:
            times = await recovery_times(server, proxy, args.cuts)
            times.sort()
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            print(f"recovery after a cut ({args.cuts} cuts): median "
                  f"{statistics.median(times) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
                  f"max {times[-1] * 1000:.0f} ms (target < 500 ms)")
            size = args.size * MIB // BLOCK * BLOCK
            block = os.urandom(BLOCK)
            base, _ = await copy(server, proxy, size, None, block)
            cut, n = await copy(server, proxy, size, args.every, block)
            print(f"sequential copy of {args.size} MiB: {base:.0f} MB/s uncut, {cut:.0f} MB/s "
                  f"with a cut every {args.every:g} s ({n} cuts): ratio {cut / base:.2f} "
                  f"(target >= 0.8); the server's copy is byte-exact")
        finally:
            proxy.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=int, default=20)
    p.add_argument("--size", type=int, default=4096, help="MiB to copy (a multiple of 16)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between cuts")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.cuts, args.size, args.every = 10, 1024, 1.0
    trio.run(main_async, args)


if __name__ == "__main__":
    main()
