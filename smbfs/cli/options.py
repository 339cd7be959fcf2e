"""Parsing of ``mount.smbfs`` arguments: the ``//server[:port]/share[/subdir]``
source and the ``-o`` option list, named as mount.cifs names them.

Pure functions over strings (plus the credentials file and the environment,
passed in explicitly) so that every rule is unit-testable without a mount.
docs/mount-options.md is the user-facing list; keep the two in step.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from smbfs.client.config import AuthMethod, ClientConfig
from smbfs.fs.options import CacheMode, FsOptions
from smbfs.proto.constants import Dialect

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad command line or option: mount(8) helpers exit 1 for these."""


@dataclass(slots=True)
class Source:
    """``//server[:port]/share[/subdir]``."""

    host: str
    share: str
    subdir: str = ""
    port: int | None = None

    @property
    def unc(self) -> str:
        return f"//{self.host}/{self.share}"


def parse_source(spec: str) -> Source:
    """Accept ``//host/share``, ``\\\\host\\share`` (as mount.cifs does), an
    optional ``:port`` and ``[v6addr]`` host, and a subdirectory."""
    s = spec.replace("\\", "/")
    if not s.startswith("//"):
        raise UsageError(f"source {spec!r} must look like //server/share")
    rest = s[2:]
    hostpart, _, path = rest.partition("/")
    port: int | None = None
    if hostpart.startswith("["):
        end = hostpart.find("]")
        if end < 0:
            raise UsageError(f"source {spec!r}: unterminated [ in the server address")
        host = hostpart[1:end]
        tail = hostpart[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise UsageError(f"source {spec!r}: junk after the server address")
            port = _port(tail[1:], "source")
    elif hostpart.count(":") == 1:
        host, p = hostpart.split(":")
        port = _port(p, "source")
    else:
        host = hostpart
    parts = [p for p in path.split("/") if p]
    if not host or not parts:
        raise UsageError(f"source {spec!r} must look like //server/share")
    return Source(host=host, share=parts[0], subdir="/".join(parts[1:]), port=port)


def _port(value: str, what: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise UsageError(f"{what}: port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise UsageError(f"{what}: port {port} out of range")
    return port


# vers= as cifs.ko reads it (fs/smb/client/fs_context.c, documented in
# mount.cifs(8)): "3" is any SMB3 dialect, "default" is 2.1 or later.
VERSIONS: dict[str, tuple[Dialect, Dialect]] = {
    "2.0": (Dialect.SMB2_0_2, Dialect.SMB2_0_2),
    "2.1": (Dialect.SMB2_1, Dialect.SMB2_1),
    "3": (Dialect.SMB3_0, Dialect.SMB3_1_1),
    "3.0": (Dialect.SMB3_0, Dialect.SMB3_0),
    "3.02": (Dialect.SMB3_0_2, Dialect.SMB3_0_2),
    "3.0.2": (Dialect.SMB3_0_2, Dialect.SMB3_0_2),
    "3.1.1": (Dialect.SMB3_1_1, Dialect.SMB3_1_1),
    "3.11": (Dialect.SMB3_1_1, Dialect.SMB3_1_1),
    "default": (Dialect.SMB2_1, Dialect.SMB3_1_1),
}

# sec= flavours: (auth, signing required). NTLMv2 is what NTLMSSP carries;
# plain "ntlm" means NTLMv1 to cifs, which smbfs does not speak.
SECURITY: dict[str, tuple[AuthMethod, bool]] = {
    "ntlmssp": ("ntlm", False),
    "ntlmsspi": ("ntlm", True),
    "ntlmv2": ("ntlm", False),
    "ntlmv2i": ("ntlm", True),
    "krb5": ("kerberos", False),
    "krb5i": ("kerberos", True),
    "none": ("anonymous", False),
}

# Options mount(8)/fstab hand to every helper, meaningless to a FUSE
# mount of ours or already implied by it (libfuse mounts nosuid,nodev).
GENERIC_FLAGS = frozenset({
    "defaults", "_netdev", "auto", "noauto", "user", "nouser", "users", "owner", "group",
    "nofail", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
    "relatime", "norelatime", "strictatime", "nostrictatime", "diratime", "nodiratime",
    "lazytime", "nolazytime", "sync", "async", "dirsync", "iversion", "noiversion",
    "mand", "nomand", "loud", "silent",
})
GENERIC_PREFIXES = ("x-", "comment=")
# cifs options smbfs accepts because what they ask for is what it always does.
IGNORED_CIFS_FLAGS = frozenset({"nounix", "noposix"})

CACHE_MODES: tuple[CacheMode, ...] = ("strict", "loose", "none")


@dataclass(slots=True)
class MountRequest:
    """Everything parsed from one ``mount.smbfs`` invocation."""

    source: Source
    mountpoint: str
    client: ClientConfig
    fs: FsOptions
    log_file: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Raw:
    """Option values before defaults and the environment are applied."""

    username: str | None = None
    password: str | None = None
    domain: str | None = None
    credentials: str | None = None
    port: int | None = None
    versions: tuple[Dialect, Dialect] | None = None
    auth: AuthMethod | None = None
    guest: bool = False
    sign: bool = False
    seal: bool = False
    echo_interval: float | None = None
    hard: bool = False
    log_file: str | None = None
    fs: dict[str, object] = field(default_factory=dict)


def split_options(text: str) -> list[str]:
    """mount(8) joins options with commas; empty items (",,") are harmless."""
    return [item for item in text.split(",") if item]


def _octal(name: str, value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise UsageError(f"{name}={value}: not an octal mode") from None
    if not 0 <= mode <= 0o7777:
        raise UsageError(f"{name}={value}: mode out of range")
    return mode


def _positive_int(name: str, value: str) -> int:
    try:
        n = int(value, 0)
    except ValueError:
        raise UsageError(f"{name}={value}: not a number") from None
    if n <= 0:
        raise UsageError(f"{name}={value}: must be positive")
    return n


def _seconds(name: str, value: str, minimum: float = 0.0) -> float:
    try:
        n = float(value)
    except ValueError:
        raise UsageError(f"{name}={value}: not a number of seconds") from None
    if not n >= minimum or n != n or n == float("inf"):
        raise UsageError(f"{name}={value}: out of range")
    return n


def _uid(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise UsageError(f"uid={value}: no such user") from None


def _gid(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise UsageError(f"gid={value}: no such group") from None


def _need(name: str, value: str | None) -> str:
    if value is None:
        raise UsageError(f"option {name} needs a value ({name}=...)")
    return value


def _flag(name: str, value: str | None) -> None:
    if value is not None:
        raise UsageError(f"option {name} takes no value")


def _apply(raw: _Raw, item: str) -> bool:
    """Apply one option; False when it is unknown."""
    name, eq, val = item.partition("=")
    value: str | None = val if eq else None
    key = name.lower()
    if key in ("username", "user") and value is not None:
        raw.username = value
    elif key in ("password", "pass"):
        raw.password = value or ""
    elif key in ("domain", "dom", "workgroup"):
        raw.domain = _need(key, value)
    elif key in ("credentials", "cred"):
        raw.credentials = _need(key, value)
    elif key == "port":
        raw.port = _port(_need(key, value), "port")
    elif key == "vers":
        v = _need(key, value)
        if v not in VERSIONS:
            raise UsageError(f"vers={v}: unknown version (use one of {', '.join(VERSIONS)})")
        raw.versions = VERSIONS[v]
    elif key == "sec":
        v = _need(key, value).lower()
        if v not in SECURITY:
            raise UsageError(f"sec={v}: unsupported (use ntlmssp, krb5 or none)")
        raw.auth, signing = SECURITY[v]
        raw.sign = raw.sign or signing
    elif key == "guest":
        _flag(key, value)
        raw.guest = True
    elif key == "sign":
        _flag(key, value)
        raw.sign = True
    elif key == "seal":
        _flag(key, value)
        raw.seal = True
    elif key in ("uid", "gid"):
        raw.fs[key] = (_uid if key == "uid" else _gid)(_need(key, value))
    elif key in ("forceuid", "forcegid", "noforceuid", "noforcegid"):
        _flag(key, value)
        raw.fs[key.removeprefix("no")] = not key.startswith("no")
    elif key in ("file_mode", "dir_mode"):
        raw.fs[key] = _octal(key, _need(key, value))
    elif key in ("ro", "rw"):
        _flag(key, value)
        raw.fs["read_only"] = key == "ro"
    elif key == "cache":
        v = _need(key, value)
        if v not in CACHE_MODES:
            raise UsageError(f"cache={v}: use strict, loose or none")
        raw.fs["cache"] = v
    elif key == "actimeo":
        raw.fs["actimeo"] = _seconds(key, _need(key, value))
    elif key == "closetimeo":
        raw.fs["closetimeo"] = _seconds(key, _need(key, value))
    elif key in ("rsize", "wsize"):
        raw.fs[key] = _positive_int(key, _need(key, value))
    elif key in ("noserverino", "serverino"):
        _flag(key, value)
        raw.fs["noserverino"] = key == "noserverino"
    elif key in ("dircache", "nodircache"):
        # smbfs's own: directories covered by a lease or CHANGE_NOTIFY.
        _flag(key, value)
        raw.fs["dircache"] = key == "dircache"
    elif key == "echo_interval":
        # cifs.ko accepts 1..600 seconds.
        raw.echo_interval = _seconds(key, _need(key, value), 1.0)
        if raw.echo_interval > 600:
            raise UsageError(f"echo_interval={value}: at most 600 seconds")
    elif key in ("hard", "nosoft", "soft", "nohard"):
        # cifs.ko's fs_context.c: hard/soft and their no- forms; the last
        # one given wins. What they mean for smbfs: docs/mount-options.md.
        _flag(key, value)
        raw.hard = key in ("hard", "nosoft")
    elif key == "allow_other":
        _flag(key, value)
        raw.fs["allow_other"] = True
    elif key == "iocharset":
        if (value or "").lower() not in ("utf8", "utf-8"):
            raise UsageError(f"iocharset={value}: smbfs names are always UTF-8")
    elif key == "log":
        raw.log_file = _need(key, value)
    elif (key in GENERIC_FLAGS and value is None) or key in IGNORED_CIFS_FLAGS:
        pass
    elif item.startswith(GENERIC_PREFIXES):
        pass
    else:
        return False
    return True


@dataclass(slots=True)
class Credentials:
    username: str | None = None
    password: str | None = None
    domain: str | None = None


def read_credentials(path: str, warn: Callable[[str], None]) -> Credentials:
    """Read a mount.cifs credentials file (``username=``, ``password=``,
    ``domain=`` lines; ``user``/``pass``/``dom`` also accepted as cifs-utils
    does). A file others may read gets a warning, not a refusal, because
    mount.cifs mounts with it too."""
    try:
        with open(path, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            text = f.read()
    except OSError as e:
        raise UsageError(f"credentials file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"credentials file {path}: not UTF-8 text") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"warning: credentials file {path} is accessible to group/others "
             f"(mode {stat.S_IMODE(st.st_mode):04o}); chmod 600 it")
    creds = Credentials()
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        key = name.strip().lower()
        if not eq:
            raise UsageError(f"credentials file {path}:{lineno}: expected name=value")
        if key in ("username", "user"):
            creds.username = value.strip()
        elif key in ("password", "pass"):
            # A password may legitimately begin or end with spaces: only the
            # line break is removed (cifs-utils keeps the rest as is).
            creds.password = value
        elif key in ("domain", "dom", "workgroup"):
            creds.domain = value.strip()
        else:
            raise UsageError(f"credentials file {path}:{lineno}: unknown key {name.strip()!r}")
    return creds


def split_username(name: str) -> tuple[str, str | None, str | None]:
    """mount.cifs accepts ``DOMAIN/user``, ``DOMAIN\\user`` and ``user%password``."""
    password: str | None = None
    if "%" in name:
        name, password = name.split("%", 1)
    domain: str | None = None
    for sep in ("/", "\\"):
        if sep in name:
            domain, name = name.split(sep, 1)
            break
    return name, domain, password


def parse_mount(
    source: str,
    mountpoint: str,
    options: list[str],
    *,
    env: Mapping[str, str],
    password: str | None = None,
    sloppy: bool = False,
    verbose: int = 0,
    warn: Callable[[str], None] = lambda msg: None,
) -> MountRequest:
    """Turn ``mount.smbfs SOURCE MOUNTPOINT -o OPTIONS`` into engine and FUSE
    settings.

    ``password`` is the ``password=`` option stripped off the command line
    by the re-exec (see :mod:`smbfs.cli.secret`); it ranks as that option.
    Precedence, as in mount.cifs: ``password=``/``user%pass`` options, then
    the credentials file, then ``PASSWD`` (``PASSWD_FD``/``PASSWD_FILE`` are
    read by the caller into ``env["PASSWD"]``); the username falls back to
    ``USER``. ``sloppy`` (mount -s) turns unknown options into warnings.
    """
    src = parse_source(source)
    raw = _Raw()
    for item in options:
        if not _apply(raw, item):
            name = item.partition("=")[0]
            if sloppy:
                warn(f"warning: ignoring unknown option {name}")
            else:
                raise UsageError(f"unknown mount option {name!r}")
    if password is not None:
        raw.password = password
    username = raw.username
    domain = raw.domain
    pw = raw.password
    if username is not None:
        username, dom2, pw2 = split_username(username)
        domain = domain if domain is not None else dom2
        pw = pw if pw is not None else pw2
    if raw.credentials is not None:
        creds = read_credentials(raw.credentials, warn)
        username = username if username is not None else creds.username
        pw = pw if pw is not None else creds.password
        domain = domain if domain is not None else creds.domain
    if pw is None:
        pw = env.get("PASSWD")
    auth: AuthMethod = raw.auth or "ntlm"
    if raw.guest:
        if raw.auth is not None and raw.auth != "ntlm":
            raise UsageError("guest cannot be combined with sec=" + auth)
        auth = "guest"
    if auth == "ntlm" and username is None:
        username = env.get("USER") or env.get("LOGNAME") or ""
    if auth in ("guest", "anonymous") and (raw.sign or raw.seal):
        raise UsageError("sign/seal need an authenticated user (not guest or sec=none)")
    port = raw.port or src.port or 445
    min_d, max_d = raw.versions or VERSIONS["default"]
    if raw.seal and max_d < Dialect.SMB3_0:
        raise UsageError("seal needs SMB3 (vers=3.0 or later)")
    client = ClientConfig(
        host=src.host,
        port=port,
        username=username or "",
        password=pw or "",
        domain=domain or "",
        auth=auth,
        min_dialect=min_d,
        max_dialect=max_d,
        require_signing=raw.sign,
        require_encryption=raw.seal,
        server_name=src.host,
        # A mount outlives connections: a lost one is re-established and
        # the open files taken back (the engine's default is off so that
        # its own callers see a cut as an error).
        reconnect=True,
        hard=raw.hard,
    )
    if raw.echo_interval is not None:
        client.echo_interval = raw.echo_interval
    fs = FsOptions(fsname=f"//{src.host}/{src.share}" + (f"/{src.subdir}" if src.subdir else ""),
                   debug=verbose >= 2)
    for key, value in raw.fs.items():
        setattr(fs, key, value)
    return MountRequest(source=src, mountpoint=mountpoint, client=client, fs=fs,
                        log_file=raw.log_file)


def needs_password(req: MountRequest) -> bool:
    return req.client.auth == "ntlm" and not req.client.password
