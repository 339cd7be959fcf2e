"""``mount.smbfs SOURCE DIR [-sfnv] [-N NS] [-o OPTIONS] [--foreground]``.

The same command serves people and mount(8): mount calls
``/sbin/mount.smbfs spec dir [-sfnv] [-N namespace] [-o options]``
(mount(8), EXTERNAL HELPERS), where ``-f`` means *fake* (do everything but
mount). People expect ``-f`` to mean *foreground*, as in sshfs and every
FUSE program. So ``-f`` means fake when our parent process is mount(8),
foreground otherwise; ``--foreground`` and ``--fake`` are unambiguous.
"""

from __future__ import annotations

import ctypes
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from smbfs import __version__
from smbfs.cli.daemon import (
    EXIT_FAIL,
    EXIT_SYSERR,
    EXIT_USAGE,
    READY_TIMEOUT,
    quiet_secrets,
    run_background,
    run_foreground,
)
from smbfs.cli.options import MountRequest, UsageError, needs_password, parse_mount, split_options
from smbfs.cli.secret import (
    Secrets,
    read_env_password,
    reexec_without,
    strip_options,
    take_passed_secrets,
)

log = logging.getLogger("smbfs.cli")

USAGE = """\
usage: mount.smbfs //server[:port]/share[/subdir] MOUNTPOINT [-o OPTIONS] [-f|--foreground] [-v]
       [-s] [-n] [-N NAMESPACE] [--fake]

Mount an SMB2/SMB3 share through FUSE. OPTIONS is a comma-separated list named
as for mount.cifs (username=, password=, credentials=, domain=, vers=, sec=,
uid=, gid=, file_mode=, dir_mode=, ro, cache=, ...): see docs/mount-options.md.
  -f, --foreground  stay in the foreground, log to stderr (under mount(8): fake)
  -v                verbose (debug) logging; -vv also FUSE's own debug output
  -s                sloppy: warn about unknown options instead of failing
  -n                accepted (no mtab to write)
  -N NAMESPACE      mount in that mount namespace (a path or a PID)
  --fake            do everything except the mount
Unmount with `umount MOUNTPOINT` or `fusermount3 -u MOUNTPOINT`.
"""


@dataclass(slots=True)
class Invocation:
    positional: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    foreground: bool = False
    fake: bool = False
    sloppy: bool = False
    nomtab: bool = False
    verbose: int = 0
    namespace: str | None = None
    fstype: str | None = None
    help: bool = False
    version: bool = False
    short_f: bool = False

    def to_argv(self) -> list[str]:
        """A canonical command line with the same meaning (for the re-exec)."""
        argv = list(self.positional)
        if self.foreground:
            argv.append("--foreground")
        if self.fake:
            argv.append("--fake")
        if self.short_f:
            argv.append("-f")
        argv += ["-s"] * self.sloppy + ["-n"] * self.nomtab + ["-v"] * self.verbose
        if self.namespace is not None:
            argv += ["-N", self.namespace]
        if self.fstype is not None:
            argv += ["-t", self.fstype]
        if self.options:
            argv += ["-o", ",".join(self.options)]
        return argv


def parse_argv(argv: Sequence[str]) -> Invocation:
    """getopt-like, but positional arguments may come anywhere (mount(8)
    puts them first) and short flags may be bundled (``-sfnv``)."""
    inv = Invocation()
    args = list(argv)
    i = 0

    def value(rest: str, flag: str) -> str:
        nonlocal i
        if rest:
            return rest
        i += 1
        if i >= len(args):
            raise UsageError(f"option {flag} needs an argument")
        return args[i]

    while i < len(args):
        a = args[i]
        if a == "--":
            inv.positional += args[i + 1:]
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name == "--foreground":
                inv.foreground = True
            elif name == "--fake":
                inv.fake = True
            elif name == "--verbose":
                inv.verbose += 1
            elif name == "--options":
                inv.options += split_options(val if eq else value("", name))
            elif name == "--help":
                inv.help = True
            elif name == "--version":
                inv.version = True
            else:
                raise UsageError(f"unknown argument {name}")
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                c = a[j]
                rest = a[j + 1:]
                if c in "oNt":
                    v = value(rest, "-" + c)
                    if c == "o":
                        inv.options += split_options(v)
                    elif c == "N":
                        inv.namespace = v
                    else:
                        inv.fstype = v
                    break
                if c == "f":
                    inv.short_f = True
                elif c == "s":
                    inv.sloppy = True
                elif c == "n":
                    inv.nomtab = True
                elif c == "v":
                    inv.verbose += 1
                elif c == "h":
                    inv.help = True
                elif c == "V":
                    inv.version = True
                else:
                    raise UsageError(f"unknown flag -{c}")
                j += 1
        else:
            inv.positional.append(a)
        i += 1
    return inv


def called_by_mount(ppid: int | None = None) -> bool:
    """mount(8) execs helpers directly, so our parent is the ``mount`` process."""
    try:
        with open(f"/proc/{ppid or os.getppid()}/comm") as f:
            return f.read().strip() == "mount"
    except OSError:
        return False


def enter_namespace(ns: str) -> None:
    """mount(8) -N: a namespace file or the PID whose mount namespace to use."""
    path = f"/proc/{ns}/ns/mnt" if ns.isdigit() else ns
    clone_newns = 0x00020000
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, clone_newns) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def _log_level(verbose: int) -> int:
    return logging.DEBUG if verbose else logging.INFO


def mount_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mount.smbfs``: returns the exit status. With ``argv``
    None (the real command line) a password in it makes this re-exec."""
    from_cmdline = argv is None
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        inv = parse_argv(args)
    except UsageError as e:
        print(f"mount.smbfs: {e}", file=sys.stderr)
        return EXIT_USAGE
    if inv.help:
        print(USAGE, end="")
        return 0
    if inv.version:
        print(f"mount.smbfs (smbfs) {__version__}")
        return 0
    if len(inv.positional) != 2:
        print(f"mount.smbfs: expected SOURCE and MOUNTPOINT, got {len(inv.positional)} "
              "arguments (see --help)", file=sys.stderr)
        return EXIT_USAGE

    passed = take_passed_secrets()
    if passed is None:
        stripped, option_pw = strip_options(inv.options)
        try:
            env_pw = read_env_password(os.environ)
        except OSError as e:
            print(f"mount.smbfs: {e}", file=sys.stderr)
            return EXIT_USAGE
        passed = Secrets(option=option_pw, env=env_pw)
        if from_cmdline and (option_pw is not None or "PASSWD" in os.environ):
            inv.options = stripped
            reexec_without(inv.to_argv(), passed)  # does not return
    else:
        inv.options, _ = strip_options(inv.options)

    if inv.short_f:
        if called_by_mount():
            inv.fake = True
        else:
            inv.foreground = True

    env = {k: v for k, v in os.environ.items() if k != "PASSWD"}
    if passed.env is not None:
        env["PASSWD"] = passed.env
    try:
        req = parse_mount(
            inv.positional[0], inv.positional[1], inv.options, env=env,
            password=passed.option, sloppy=inv.sloppy, verbose=inv.verbose,
            warn=lambda msg: print(f"mount.smbfs: {msg}", file=sys.stderr),
        )
    except UsageError as e:
        print(f"mount.smbfs: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:  # ClientConfig's own checks
        print(f"mount.smbfs: {e}", file=sys.stderr)
        return EXIT_USAGE
    if req.log_file is None:
        req.log_file = os.environ.get("SMBFS_LOG") or None
    if req.log_file is not None:
        req.log_file = os.path.abspath(req.log_file)
    if needs_password(req) and sys.stdin.isatty() and not inv.fake:
        try:
            req.client.password = getpass.getpass(
                f"Password for {req.client.username}@{req.source.unc}: ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return EXIT_USAGE

    if inv.namespace is not None:
        try:
            enter_namespace(inv.namespace)
        except OSError as e:
            print(f"mount.smbfs: cannot enter namespace {inv.namespace}: {e}", file=sys.stderr)
            return EXIT_SYSERR
    mp = req.mountpoint
    if not os.path.isdir(mp):
        why = "does not exist" if not os.path.exists(mp) else "is not a directory"
        print(f"mount.smbfs: mount point {mp} {why}", file=sys.stderr)
        return EXIT_FAIL
    req.mountpoint = os.path.abspath(mp)
    if inv.fake:
        if inv.verbose:
            _describe(req)
        return 0
    if inv.foreground:
        logging.basicConfig(
            level=logging.DEBUG if inv.verbose else logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if req.log_file is not None:
            handler = logging.FileHandler(req.log_file)
            handler.setFormatter(logging.Formatter(
                "%(asctime)s mount.smbfs[%(process)d] %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
        quiet_secrets()
        return run_foreground(req)
    if inv.verbose:
        _describe(req)
    try:
        timeout = float(os.environ.get("SMBFS_MOUNT_TIMEOUT") or READY_TIMEOUT)
    except ValueError:
        timeout = READY_TIMEOUT
    return run_background(req, _log_level(inv.verbose), timeout)


def _describe(req: MountRequest) -> None:
    c = req.client
    print(f"mount.smbfs: {req.source.unc} (subdir {req.source.subdir or '/'}) on "
          f"{req.mountpoint}: host {c.host} port {c.port} user {c.username!r} "
          f"domain {c.domain!r} auth {c.auth} dialects {c.min_dialect.name}.."
          f"{c.max_dialect.name} sign={c.require_signing} seal={c.require_encryption}",
          file=sys.stderr)


if __name__ == "__main__":
    sys.exit(mount_main())
