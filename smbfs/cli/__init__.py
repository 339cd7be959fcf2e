"""Command-line entry points: ``mount.smbfs`` (:func:`mount_main`) and
``smbfs`` (:func:`main`: ``demo``, ``install-helper``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from smbfs import __version__
from smbfs.cli.mount import mount_main

__all__ = ["main", "mount_main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smbfs", description="smbfs: an SMB2/SMB3 client.")
    parser.add_argument("--version", action="version", version=f"smbfs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="start a private Samba with a demo share and mount it with mount.smbfs",
        description="Start a private Samba server on 127.0.0.1 (needs root, Samba and "
        "FUSE), mount its demo share with mount.smbfs, list, read and write it, then "
        "unmount and stop the server.",
    )
    demo.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the mount and the server until Ctrl-C instead of stopping at once",
    )
    inst = sub.add_parser(
        "install-helper",
        help="install /sbin/mount.smbfs so that `mount -t smbfs` and fstab work",
        description="Create the symlink mount(8) looks for (/sbin/mount.<type>) to this "
        "installation's mount.smbfs. Idempotent; needs root.",
    )
    inst.add_argument("--target", default="/sbin/mount.smbfs", help="where (default: %(default)s)")
    inst.add_argument("--force", action="store_true", help="replace another file there")
    inst.add_argument("--remove", action="store_true", help="remove our symlink instead")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        from smbfs.cli.demo import demo_main

        return demo_main(args.port, args.keep)
    if args.command == "install-helper":
        from smbfs.cli.install import install_helper

        return install_helper(args.target, force=args.force, remove=args.remove)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
