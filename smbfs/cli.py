"""Command-line entry points: ``smbfs`` (tools, for now only ``demo``) and ``mount.smbfs``.

Deliberately small: the mount helper arrives with the FUSE layer.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from smbfs import __version__

log = logging.getLogger("smbfs")

DEMO_SHARE = "demo"
DEMO_FILES: dict[str, bytes] = {
    "README.txt": b"This share is served by a private Samba started by `smbfs demo`.\n",
    "hello.txt": b"Hello from smbfs!\n",
    "docs/numbers.txt": b"".join(b"%d\n" % i for i in range(1, 101)),
    "docs/empty.txt": b"",
}


def mount_main(argv: Sequence[str] | None = None) -> int:
    print(
        "mount.smbfs: not implemented yet (the FUSE mount comes with a later issue); "
        "try `smbfs demo`",
        file=sys.stderr,
    )
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smbfs", description="smbfs: an SMB2/SMB3 client.")
    parser.add_argument("--version", action="version", version=f"smbfs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="start a private Samba on loopback with a demo share and show it",
        description="Start a private Samba server on 127.0.0.1 (needs root and Samba "
        "installed), list its demo share with smbclient, then stop it.",
    )
    demo.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the server running until Ctrl-C instead of stopping at once",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        return demo_main(args.port, args.keep)
    parser.error(f"unknown command {args.command}")
    return 2


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP (CI, a closed terminal) must run the same clean-up as Ctrl-C;
    # SIGINT too, even when started from a shell that ignores it in background jobs.
    raise KeyboardInterrupt


def demo_main(port: int = 0, keep: bool = False) -> int:
    from smbfs.devserver import PrivateSamba, SambaConfig, SambaError, Share

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    share = Share(DEMO_SHARE, {"read only": "no"}, files=DEMO_FILES)
    server = PrivateSamba(SambaConfig(port=port, shares=(share,)))
    try:
        server.start()
    except SambaError as e:
        print(f"smbfs demo: {e}", file=sys.stderr)
        return 1
    try:
        u = server.user
        print(f"Private Samba running: pid {server.smbd_pid}, {server.host} port {server.port}")
        print(f"  share //{server.host}/{DEMO_SHARE}  user {u.name}  password {u.password}")
        print(f"  files on disk: {server.share_path(DEMO_SHARE)}")
        print()
        cmd = f"smbclient //{server.host}/{DEMO_SHARE} -p {server.port} -U {u.name}%... -c 'recurse; ls'"
        print(f"$ {cmd}")
        r = server.smbclient(DEMO_SHARE, "recurse; ls")
        print(r.stdout.rstrip())
        if r.returncode != 0:
            print(r.stderr.rstrip(), file=sys.stderr)
            return 1
        r = server.smbclient(DEMO_SHARE, "get hello.txt -")
        print("$ smbclient ... -c 'get hello.txt -'")
        print(r.stdout.splitlines()[0] if r.stdout else r.stderr.rstrip())
        print()
        print(
            "mount.smbfs is not implemented yet: mounting the share through FUSE comes "
            "with a later issue. Today smbfs has its protocol layer and engine (in progress)."
        )
        if keep:
            print()
            print("Server kept running; connect with, for example:")
            print(
                f"  smbclient //{server.host}/{DEMO_SHARE} -p {server.port} "
                f"-U {u.name}%{u.password}"
            )
            print("Press Ctrl-C to stop it.")
            while True:
                signal.pause()
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except subprocess.TimeoutExpired as e:
        print(f"smbfs demo: {e}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        print("Private Samba stopped.")


if __name__ == "__main__":
    sys.exit(main())
