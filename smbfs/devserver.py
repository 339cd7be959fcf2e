"""A private Samba ``smbd`` on a loopback port, for the test suite and ``smbfs demo``.

smbfs is only ever tested against a real server. This module starts one that
touches nothing of the machine's own Samba: every directory, the password
database and the logs live under one temporary directory, the server listens on
127.0.0.1/::1 only, on a free port, and it is stopped by its PID (plus any
helper it spawned, found by the unique configuration path on its command line).

Root is required: smbd switches to the connecting user's Unix identity, the
Unix users must exist (``useradd -M``) and the size-limited share is a tmpfs
mounted here.

Two generations of Samba are served the same way: the machine's own (Debian
12's 4.17) and a current one (Debian 13's 4.22: directory leases, the SMB3
POSIX extensions) installed in a minimal Debian root of its own
(:func:`current_samba_root`, built once by ``.ci/debroot``) and run there with
``chroot``. It listens on the host's loopback like the other; its base
directory lies inside the root, so the host sees the shares' files at
``share_path()`` as usual, while smb.conf names the paths as the chrooted
smbd sees them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

log = logging.getLogger(__name__)

INSTALL_HINT = "install Samba with `apt-get install samba smbclient` (or run `sudo bash .ci/setup`)"
REQUIRED_PROGRAMS = ("smbd", "smbclient", "smbstatus", "smbpasswd")

_StatusPredicate = Callable[[dict[str, Any]], bool]


class SambaError(RuntimeError):
    """The private server could not be set up, started, queried or stopped."""


class PortInUseError(SambaError):
    """The requested port belongs to another process."""


@dataclass(frozen=True)
class User:
    name: str
    password: str


@dataclass(frozen=True)
class Share:
    """One ``[section]`` of smb.conf, backed by a directory under the server's base dir.

    ``size_limit`` (bytes) mounts a tmpfs of that size on the directory so that
    writes fail with STATUS_DISK_FULL once it is full. ``files`` are written
    into the share before the server starts (relative path -> content).
    """

    name: str
    options: Mapping[str, str] = field(default_factory=dict)
    size_limit: int | None = None
    files: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ShareNames:
    """The share names every test server offers (the fixture contract)."""

    rw: str = "share"
    ro: str = "readonly"
    encrypted: str = "encrypted"
    small: str = "small"


SHARE_NAMES = ShareNames()
SMALL_SHARE_BYTES = 2 * 1024 * 1024

DEFAULT_USERS = (
    User("smbfsuser", "smbfs-Pass-1"),
    User("smbfsuser2", "smbfs-Pass-2"),
)

# Durable handles need these three: Samba refuses durable opens when the
# kernel can see share modes, oplocks or POSIX locks it cannot restore.
DURABLE_OPTIONS: Mapping[str, str] = {
    "durable handles": "yes",
    "kernel oplocks": "no",
    "kernel share modes": "no",
    "posix locking": "no",
}


# The cached Debian 13 root with Samba 4.22 (see .ci/debroot and .ci/setup).
CURRENT_SAMBA_ROOT_NAME = "samba-trixie"
CURRENT_SAMBA_SUITE = "trixie"
CURRENT_SAMBA_PACKAGES = "samba,smbclient,samba-vfs-modules"
_DEBROOT = Path(__file__).resolve().parent.parent / ".ci" / "debroot"


def root_cache() -> Path:
    return Path(os.environ.get("SMBFS_ROOT_CACHE", "/var/cache/smbfs/roots"))


def current_samba_root(build: bool = True) -> Path:
    """The Debian root holding the current Samba, built on first use.

    ``.ci/setup`` builds it ahead of time; a checkout's ``.ci/debroot`` builds
    it here otherwise (about a minute), so a developer who skipped setup still
    gets the server instead of a skipped test.
    """
    root = root_cache() / CURRENT_SAMBA_ROOT_NAME
    if (root / "usr/sbin/smbd").exists() and (root / ".smbfs-root").exists():
        return root
    if not build or not _DEBROOT.exists():
        raise SambaError(
            f"no current Samba root at {root}: build it with `sudo bash .ci/setup` "
            f"(or `bash .ci/debroot {CURRENT_SAMBA_ROOT_NAME} {CURRENT_SAMBA_SUITE} "
            f"{CURRENT_SAMBA_PACKAGES}`)"
        )
    r = subprocess.run(
        ["bash", str(_DEBROOT), CURRENT_SAMBA_ROOT_NAME, CURRENT_SAMBA_SUITE,
         CURRENT_SAMBA_PACKAGES],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise SambaError(f"building the current Samba root failed: {r.stderr.strip()[-2000:]}")
    return Path(r.stdout.strip().splitlines()[-1])


def ensure_proc(root: Path) -> None:
    """Mount /proc inside ``root`` (once; smbd reads its own /proc entries).

    It stays mounted for other test runs sharing the root; ``.ci/debroot``
    unmounts it before it ever removes a root.
    """
    target = str(root / "proc")
    with open("/proc/mounts") as f:
        if any(line.split()[1] == target for line in f):
            return
    r = subprocess.run(["mount", "-t", "proc", "proc", target], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        with open("/proc/mounts") as f:  # a concurrent run mounted it meanwhile
            if any(line.split()[1] == target for line in f):
                return
        raise SambaError(f"cannot mount proc in {root}: {r.stderr.strip()}")


def command(program: str, root: Path | None = None) -> list[str]:
    """The command line prefix that runs a Samba program, in ``root`` if given."""
    if root is not None:
        return ["chroot", str(root), program]
    path = which_program(program)
    if path is None:
        raise SambaError(f"{program} not found: {INSTALL_HINT}")
    return [path]


@functools.cache
def samba_version(root: Path | None = None) -> tuple[int, int]:
    """(major, minor) of an smbd, from ``smbd -V`` ("Version 4.17.12-Debian")."""
    out = subprocess.run(
        [*command("smbd", root), "-V"], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    ).stdout
    m = re.search(r"Version (\d+)\.(\d+)", out)
    if m is None:
        raise SambaError(f"cannot parse the Samba version from {out!r}")
    return int(m.group(1)), int(m.group(2))


def encrypt_option() -> str:
    """The per-share encryption parameter's name for the installed Samba.

    Samba 4.14 renamed "smb encrypt" to "server smb encrypt" (the old name stays
    an alias, but older servers know only the old one).
    """
    try:
        new = samba_version() >= (4, 14)
    except SambaError:
        new = True
    return "server smb encrypt" if new else "smb encrypt"


def default_shares() -> tuple[Share, ...]:
    """The shares of the test servers: read-write, read-only, encrypted, small."""
    n = SHARE_NAMES
    return (
        Share(n.rw, {"read only": "no"}),
        Share(n.ro, {"read only": "yes"}),
        Share(n.encrypted, {"read only": "no", encrypt_option(): "required"}),
        Share(n.small, {"read only": "no"}, size_limit=SMALL_SHARE_BYTES),
    )


@dataclass
class SambaConfig:
    """Everything that makes one private server.

    ``root`` runs the Samba installed in that directory tree (chroot) instead
    of the machine's own. ``base_dir`` None means a fresh temporary directory
    (inside ``root`` when given; removed at stop);
    ``port`` 0 means a free port chosen at start. ``global_options`` and
    per-share ``share_options`` override the generated smb.conf lines.
    """

    base_dir: Path | None = None
    root: Path | None = None  # a Debian root with its own Samba, run with chroot
    port: int = 0
    host: str = "127.0.0.1"
    users: Sequence[User] = DEFAULT_USERS
    shares: Sequence[Share] = field(default_factory=default_shares)
    global_options: Mapping[str, str] = field(default_factory=dict)
    share_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    start_timeout: float = 20.0
    stop_timeout: float = 10.0
    log_level: int = 1


def check_environment(root: Path | None = None) -> None:
    """Raise :class:`SambaError` with a how-to-fix message if smbd cannot run here."""
    if root is not None:
        missing = [p for p in REQUIRED_PROGRAMS
                   if not any((root / d / p).exists() for d in ("usr/sbin", "usr/bin"))]
    else:
        missing = [p for p in REQUIRED_PROGRAMS if which_program(p) is None]
    if missing:
        raise SambaError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise SambaError(
            "the private Samba server needs root (smbd changes to the users' identities, "
            "Unix users are created with useradd and the small share is a tmpfs mount): "
            "run as root, e.g. `sudo bash .ci/test`"
        )


def which_program(program: str) -> str | None:
    # smbd lives in /usr/sbin: PATH must have it (root's and sudo's PATH do).
    return shutil.which(program)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (start() detects losing the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _user_exists(name: str, root: Path | None) -> bool:
    if root is None:
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False
    try:
        with open(root / "etc/passwd") as f:
            return any(line.split(":", 1)[0] == name for line in f)
    except OSError:
        return False


def ensure_unix_user(name: str, timeout: float = 20.0, root: Path | None = None) -> None:
    """Create a login-less Unix user (in ``root``) unless it exists; tolerate
    concurrent creators."""
    deadline = time.monotonic() + timeout
    while True:
        if _user_exists(name, root):
            return
        useradd = (["chroot", str(root), "useradd"] if root is not None
                   else [which_program("useradd") or "useradd"])
        r = subprocess.run(
            [*useradd, "-M", "-s", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        # 0: created; 9: someone else created it meanwhile; 10: /etc/passwd locked.
        if r.returncode in (0, 9):
            return
        if r.returncode != 10 or time.monotonic() > deadline:
            raise SambaError(f"useradd {name} failed ({r.returncode}): {r.stderr.strip()}")
        time.sleep(0.2)


class _Stoppable(Protocol):
    def stop(self) -> None: ...


# Every running private server (PrivateSamba here, PrivateAdDc in
# smbfs.devserver_ad), stopped at exit if the test run did not stop it.
_running: weakref.WeakSet[_Stoppable] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    # A crashed test run must not leave server processes, tmpfs mounts or
    # an AD DC's mount namespace behind.
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.stop()


class PrivateSamba:
    """One private smbd: ``start()`` it, point a client at ``host:port``, ``stop()`` it.

    Usable as a context manager. After a failure, set ``keep = True`` (the test
    bed does) so ``stop()`` leaves the directory with config and logs in place.
    """

    def __init__(self, config: SambaConfig | None = None) -> None:
        self.config = config if config is not None else SambaConfig()
        self.host = self.config.host
        self.port = self.config.port
        self.users: tuple[User, ...] = tuple(self.config.users)
        self.shares = SHARE_NAMES
        self.keep = False
        self.root = self.config.root
        self._own_base = self.config.base_dir is None
        self.base_dir = Path(self.config.base_dir or "/nonexistent")
        self._proc: subprocess.Popen[bytes] | None = None
        self._mounts: list[Path] = []
        self._share_dirs: dict[str, Path] = {}

    # -- identity -------------------------------------------------------------

    @property
    def user(self) -> User:
        """The user of ordinary tests."""
        return self.users[0]

    @property
    def user2(self) -> User:
        """A second user, for permission and multi-user tests."""
        return self.users[1]

    @property
    def conf_path(self) -> Path:
        return self.base_dir / "smb.conf"

    @property
    def client_conf_path(self) -> Path:
        return self.base_dir / "client.conf"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "smbd.log"

    def inner(self, path: Path) -> Path:
        """``path`` as the server sees it (inside its root, if it has one)."""
        if self.root is None:
            return path
        return Path("/") / path.relative_to(self.root)

    @property
    def version(self) -> tuple[int, int]:
        """(major, minor) of this server's Samba."""
        return samba_version(self.root)

    @property
    def smbd_pid(self) -> int:
        if self._proc is None:
            raise SambaError("smbd is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def share_path(self, name: str) -> Path:
        """The directory on disk behind share ``name``."""
        try:
            return self._share_dirs[name]
        except KeyError:
            raise KeyError(f"no share {name!r}; shares: {sorted(self._share_dirs)}") from None

    def url(self, share: str, user: User | str | None = None) -> str:
        """An ``smb://user@host:port/share`` URL for messages and clients that take one."""
        u = self._user(user)
        return f"smb://{u.name}@{self.host}:{self.port}/{share}"

    def unc(self, share: str) -> str:
        return f"//{self.host}/{share}"

    def __repr__(self) -> str:
        where = f" root={self.root}" if self.root is not None else ""
        return f"<PrivateSamba{where} {self.host}:{self.port} pid={self._proc.pid if self._proc else None} dir={self.base_dir}>"

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        check_environment(self.root)
        if self.root is not None:
            ensure_proc(self.root)
            (self.root / "tmp").mkdir(exist_ok=True)
        if self._own_base:
            tmp = None if self.root is None else str(self.root / "tmp")
            self.base_dir = Path(tempfile.mkdtemp(prefix="smbfs-samba-", dir=tmp))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # smbd reaches share directories as the connected user: the path must be traversable.
        self.base_dir.chmod(0o755)
        _running.add(self)
        try:
            for share in self.config.shares:
                self._make_share_dir(share)
            auto_port = self.config.port == 0
            for attempt in range(5):
                if auto_port:
                    self.port = free_port(self.host)
                self._write_config()
                if attempt == 0:
                    for user in self.users:
                        self.add_user(user)
                try:
                    self._launch()
                    break
                except _PortTaken:
                    if not auto_port or attempt == 4:
                        raise PortInUseError(
                            f"port {self.port} is taken by another process"
                        ) from None
                    log.info("port %d was taken, retrying with another", self.port)
        except BaseException as e:
            # Keep config and log of a server that failed to start, for the post-mortem.
            self.stop(keep_dir=isinstance(e, SambaError) and not isinstance(e, PortInUseError))
            raise
        log.info(
            "private smbd pid %d on %s:%d, dir %s",
            self.smbd_pid,
            self.host,
            self.port,
            self.base_dir,
        )
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, keep_dir: bool | None = None) -> None:
        """Stop smbd and everything it spawned, unmount tmpfs, remove the directory.

        The directory stays when ``keep_dir`` (default: ``self.keep``) is true.
        Safe to call more than once.
        """
        keep = self.keep if keep_dir is None else keep_dir
        if self._proc is not None:
            _terminate(self._proc.pid, self.config.stop_timeout, self._proc)
            self._proc = None
        if self.base_dir.exists():
            # Forked children and samba-dcerpcd helpers outlive the parent: they all
            # carry our unique conf path on their command line.
            for pid in _pids_with_arg(str(self.inner(self.conf_path))):
                _terminate(pid, self.config.stop_timeout)
        for mnt in reversed(self._mounts):
            _umount(mnt)
        self._mounts.clear()
        _running.discard(self)
        if self._own_base and self.base_dir.exists():
            if keep:
                log.warning(
                    "keeping private Samba directory %s (log: %s)", self.base_dir, self.log_path
                )
            else:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start smbd again on the same port, with the same shares and passdb."""
        self.stop_smbd()
        self.start_smbd()

    def stop_smbd(self) -> None:
        """Stop smbd (and every child) but keep everything else: the server
        is down, its files and configuration stay. :meth:`start_smbd` brings
        it back on the same port (its durable-handle state is gone)."""
        if self._proc is not None:
            _terminate(self._proc.pid, self.config.stop_timeout, self._proc)
            self._proc = None
        for pid in _pids_with_arg(str(self.inner(self.conf_path))):
            _terminate(pid, self.config.stop_timeout)

    def start_smbd(self) -> None:
        """Start a stopped smbd again (see :meth:`stop_smbd`)."""
        self._launch()

    # -- setup ----------------------------------------------------------------

    def _make_share_dir(self, share: Share) -> None:
        path = self.base_dir / "shares" / share.name
        path.mkdir(parents=True, exist_ok=True)
        if share.size_limit is not None:
            r = subprocess.run(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={share.size_limit},mode=0777",
                    "tmpfs",
                    str(path),
                ],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if r.returncode != 0:
                raise SambaError(f"cannot mount a tmpfs for share {share.name}: {r.stderr.strip()}")
            self._mounts.append(path)
        path.chmod(0o777)
        for rel, content in share.files.items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        self._share_dirs[share.name] = path

    def _write_config(self) -> None:
        d = self.inner(self.base_dir)
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "logs", "client"):
            (self.base_dir / sub).mkdir(exist_ok=True)
        glob: dict[str, str] = {
            "netbios name": "SMBFSTEST",
            "workgroup": "SMBFS",
            "server role": "standalone server",
            "smb ports": str(self.port),
            "interfaces": "lo",
            "bind interfaces only": "yes",
            "disable netbios": "yes",
            "private dir": str(d / "private"),
            "lock directory": str(d / "lock"),
            "state directory": str(d / "state"),
            "cache directory": str(d / "cache"),
            "pid directory": str(d / "pid"),
            "ncalrpc dir": str(d / "ncalrpc"),
            "log file": str(d / "logs" / "log.%m"),
            "log level": str(self.config.log_level),
            "passdb backend": f"tdbsam:{d / 'private' / 'passdb.tdb'}",
            "server min protocol": "SMB2_02",
            "server max protocol": "SMB3_11",
            "server signing": "auto",
            "smb2 leases": "yes",
            "server multi channel support": "yes",
            "disable spoolss": "yes",
            "load printers": "no",
            "printcap name": "/dev/null",
            "map to guest": "never",
        }
        glob.update(self.config.global_options)
        lines = ["# generated by smbfs.devserver; private test server", "[global]"]
        lines += [f"  {k} = {v}" for k, v in glob.items()]
        for share in self.config.shares:
            opts: dict[str, str] = {"path": str(self.inner(self._share_dirs[share.name]))}
            opts.update(DURABLE_OPTIONS)
            opts.update(share.options)
            opts.update(self.config.share_options.get(share.name, {}))
            lines.append(f"[{share.name}]")
            lines += [f"  {k} = {v}" for k, v in opts.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")
        # smbclient gets its own config so the machine's /etc/samba/smb.conf cannot
        # change what the tests see, and its caches stay in our directory. It is
        # the machine's smbclient (paths as the host sees them), whichever smbd.
        c = self.base_dir / "client"
        client = [
            "[global]",
            "  client min protocol = SMB2_02",
            "  client max protocol = SMB3_11",
            f"  lock directory = {c}",
            f"  state directory = {c}",
            f"  cache directory = {c}",
            f"  private dir = {c}",
            f"  ncalrpc dir = {c}",
        ]
        self.client_conf_path.write_text("\n".join(client) + "\n")

    def add_user(self, user: User) -> None:
        """Create the Unix user if needed and add it to this server's password database."""
        ensure_unix_user(user.name, root=self.root)
        r = subprocess.run(
            [*self._cmd("smbpasswd"), "-c", str(self.inner(self.conf_path)), "-s", "-a",
             user.name],
            input=f"{user.password}\n{user.password}\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        if r.returncode != 0:
            raise SambaError(
                f"smbpasswd -a {user.name} failed: {r.stdout.strip()} {r.stderr.strip()}"
            )
        if user not in self.users:
            self.users = (*self.users, user)

    def _launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log_path, "ab")
        log_start = logf.tell()  # the log is appended to across restarts
        try:
            self._proc = subprocess.Popen(
                [
                    *self._cmd("smbd"),
                    "-s",
                    str(self.inner(self.conf_path)),
                    "--foreground",
                    "--no-process-group",
                    "--debug-stdout",
                ],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal must not hit smbd first
            )
        finally:
            logf.close()
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                tail = self.log_tail()
                if "Address already in use" in self.log_tail(since=log_start):
                    raise _PortTaken
                raise SambaError(
                    f"smbd exited with status {rc} during start; log {self.log_path}:\n{tail}"
                )
            if self._listening() and _can_connect(self.host, self.port):
                return
            if "Address already in use" in self.log_tail(20, since=log_start):
                # smbd keeps running on whichever address it could bind (say ::1):
                # not usable, and another process owns our port on the other one.
                _terminate(self._proc.pid, self.config.stop_timeout, self._proc)
                self._proc = None
                raise _PortTaken
            if time.monotonic() > deadline:
                tail = self.log_tail()
                _terminate(self._proc.pid, self.config.stop_timeout, self._proc)
                self._proc = None
                raise SambaError(
                    f"smbd did not listen on {self.host}:{self.port} within "
                    f"{self.config.start_timeout:.0f}s; log {self.log_path}:\n{tail}"
                )
            time.sleep(0.05)

    def _listening(self) -> bool:
        """True once *our* smbd owns the listening socket clients use (not a racing server)."""
        assert self._proc is not None
        ipv6 = ":" in self.host
        return bool(_listening_inodes(self.port, ipv6) & _socket_inodes(self._proc.pid))

    def _cmd(self, name: str) -> list[str]:
        """A Samba server program (smbd, smbpasswd, smbstatus) of this server's Samba."""
        return command(name, self.root)

    def _prog(self, name: str) -> str:
        """A client program of the machine's own Samba (smbclient)."""
        path = which_program(name)
        if path is None:
            raise SambaError(f"{name} not found: {INSTALL_HINT}")
        return path

    def _user(self, user: User | str | None) -> User:
        if user is None:
            return self.user
        if isinstance(user, User):
            return user
        for u in self.users:
            if u.name == user:
                return u
        raise KeyError(f"unknown user {user!r}")

    # -- inspection -------------------------------------------------------------

    def log_tail(self, lines: int = 40, since: int = 0) -> str:
        """The last ``lines`` lines of smbd's log (written after byte ``since``)."""
        return tail_log(self.log_path, lines, since, 64 * 1024)

    def smbstatus(self, *extra_args: str, timeout: float = 30) -> dict[str, Any]:
        """What the server sees now (``smbstatus --json``): sessions, tcons, open files, leases."""
        r = subprocess.run(
            [*self._cmd("smbstatus"), "-s", str(self.inner(self.conf_path)), "--json",
             *extra_args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if r.returncode != 0:
            raise SambaError(f"smbstatus failed ({r.returncode}): {r.stderr.strip()}")
        try:
            result: dict[str, Any] = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise SambaError(f"smbstatus printed no JSON ({e}): {r.stdout[:500]!r}") from e
        return result

    def sessions(self) -> list[dict[str, Any]]:
        """The ``sessions`` of smbstatus as a list (each has dialect, signing, encryption...)."""
        s = self.smbstatus().get("sessions") or {}
        assert isinstance(s, dict)
        return list(s.values())

    def open_files(self) -> list[dict[str, Any]]:
        """The ``open_files`` of smbstatus: per file its opens, share modes and leases."""
        files = self.smbstatus().get("open_files") or {}
        assert isinstance(files, dict)
        return list(files.values())

    def connection_pids(self) -> list[int]:
        """PIDs of the smbd children serving client connections (kill one = connection loss)."""
        status = self.smbstatus()
        pids: set[int] = set()
        for key in ("sessions", "tcons"):
            entries = status.get(key) or {}
            assert isinstance(entries, dict)
            for entry in entries.values():
                pid = int(entry["server_id"]["pid"])
                if pid != self.smbd_pid:
                    pids.add(pid)
        return sorted(pids)

    def wait_for(
        self,
        predicate: _StatusPredicate,
        timeout: float = 10.0,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll smbstatus until ``predicate(status)`` is true; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.smbstatus()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"smbstatus never showed {what} within {timeout}s: {status}")
            time.sleep(0.1)

    # -- a second real peer: smbclient ---------------------------------------------

    def smbclient_args(
        self,
        share: str,
        user: User | str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> list[str]:
        u = self._user(user)
        return [
            self._prog("smbclient"),
            self.unc(share),
            "-p",
            str(self.port if port is None else port),
            "-s",
            str(self.client_conf_path),
            "-U",
            f"{u.name}%{u.password}",
            *extra_args,
        ]

    def smbclient(
        self,
        share: str,
        commands: str,
        user: User | str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 60,
        port: int | None = None,
        cwd: Path | str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``smbclient //host/share -c commands``; ``port`` overrides (e.g. a proxy's)."""
        return subprocess.run(
            [*self.smbclient_args(share, user, extra_args, port), "-c", commands],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    @contextlib.contextmanager
    def smbclient_session(
        self,
        share: str,
        user: User | str | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        wait: bool = True,
        timeout: float = 20.0,
    ) -> Iterator[subprocess.Popen[str]]:
        """An interactive smbclient kept connected for the ``with`` body.

        Commands go to ``proc.stdin`` (one per line). With ``wait``, entering
        the block waits (bounded) until smbstatus shows a tree connect that
        was not there before, so the session is certainly established.
        """
        before = set(self._tcons()) if wait else set()
        proc = subprocess.Popen(
            self.smbclient_args(share, user, extra_args, port),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        try:
            if wait:
                deadline = time.monotonic() + timeout
                # A new tree connect id, not a count: others may disconnect meanwhile.
                while not set(self._tcons()) - before:
                    if proc.poll() is not None:
                        out = proc.stdout.read() if proc.stdout else ""
                        raise SambaError(f"smbclient exited with {proc.returncode}: {out}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"smbclient did not connect to {share} within {timeout}s"
                        )
                    time.sleep(0.05)
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    assert proc.stdin is not None
                    proc.stdin.close()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def _tcons(self) -> dict[str, Any]:
        t = self.smbstatus().get("tcons") or {}
        assert isinstance(t, dict)
        return t


class _PortTaken(Exception):
    pass


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _listening_inodes(port: int, ipv6: bool = False) -> set[int]:
    inodes: set[int] = set()
    for table in ("/proc/net/tcp6",) if ipv6 else ("/proc/net/tcp",):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(int(inode))
        except OSError:
            continue
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{fd_dir}/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _pids_with_arg(arg: str) -> list[int]:
    """Live processes whose command line contains ``arg`` (our unique conf path)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if arg.encode() in cmdline and process_alive(int(entry)):
            found.append(int(entry))
    return found


def process_alive(pid: int) -> bool:
    """False for gone and zombie processes (a zombie reparented to init is
    dead enough: in a container PID 1 may never reap it). The one copy used
    by the test bed, ``smbfs demo`` and the tests."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def _terminate(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; reap if it is our child."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not process_alive(pid):
                return
            time.sleep(0.02)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def tail_log(path: Path, lines: int, since: int, window: int) -> str:
    """The last ``lines`` lines of a server log written after byte ``since``,
    reading at most its last ``window`` bytes (logs grow large in long runs)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(since, f.tell() - window))
            data = f.read().decode(errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(data.splitlines()[-lines:])


def _umount(path: Path) -> None:
    r = subprocess.run(
        ["umount", str(path)], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if r.returncode != 0:
        # Busy (a straggler still has a file open): detach it lazily rather than leak it.
        r2 = subprocess.run(
            ["umount", "-l", str(path)], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        if r2.returncode != 0:
            log.warning("cannot unmount %s: %s", path, r.stderr.strip() or r2.stderr.strip())
