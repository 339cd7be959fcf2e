"""A tiny stand-in for ``mount.smbfs`` used by the fs tests: runs
:func:`smbfs.fs.mount.serve` in this process and writes ``ready`` to the
file descriptor given on the command line once the mount answers.

Usage: runner.py JSON READY_FD   (JSON: host, port, username, password,
share, subdir, mountpoint, options: FsOptions fields). SIGTERM/SIGINT
cancel serve(), which unmounts and logs off.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

import trio

from smbfs.client import ClientConfig
from smbfs.client.errors import single_error
from smbfs.fs.mount import serve
from smbfs.fs.options import FsOptions


def main() -> int:
    spec = json.loads(sys.argv[1])
    ready_fd = int(sys.argv[2])
    logging.basicConfig(level=os.environ.get("SMBFS_TEST_LOG", "WARNING"),
                        format="%(levelname)s %(name)s: %(message)s")
    for name in filter(None, os.environ.get("SMBFS_TEST_DEBUG_LOGGERS", "").split(",")):
        logging.getLogger(name).setLevel(logging.DEBUG)
    # Reconnect on, as mount.smbfs sets it for every mount.
    cfg = ClientConfig(host=spec["host"], port=spec["port"], username=spec["username"],
                       password=spec["password"], reconnect=True)
    opts = FsOptions(**spec.get("options", {}))

    def ready() -> None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def watch() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(watch)
                await serve(cfg, spec["share"], spec.get("subdir", ""), spec["mountpoint"],
                            opts, on_ready=ready)
                nursery.cancel_scope.cancel()

    try:
        trio.run(run)
    except Exception as e:
        e = single_error(e)
        print(f"runner: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
