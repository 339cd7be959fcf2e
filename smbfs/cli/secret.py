"""Keep the password out of the daemon's command line and environment.

``/proc/PID/cmdline`` is world-readable; ``/proc/PID/environ`` is readable by
the same user and root. So when a password arrives in ``-o password=...``
(or ``user=name%pass``) or in ``PASSWD``, the very first thing
``mount.smbfs`` does is re-exec itself without it, handing the secret over
through an inherited pipe whose number is in ``_SMBFS_SECRET_FD``: the
long-running daemon never carries it in argv or environ. The window in
which the original command line shows it is the start-up of the first
Python process (a fraction of a second), as with any program taking a
password as an argument; credentials files avoid even that.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

SECRET_FD_ENV = "_SMBFS_SECRET_FD"
_PASSWORD_KEYS = ("password", "pass")
_USER_KEYS = ("username", "user")


@dataclass(slots=True)
class Secrets:
    """``option``: from the command line (ranks as ``password=``);
    ``env``: from ``PASSWD``/``PASSWD_FD``/``PASSWD_FILE`` (ranks below the
    credentials file, as in mount.cifs)."""

    option: str | None = None
    env: str | None = None


def strip_options(options: list[str]) -> tuple[list[str], str | None]:
    """Remove ``password=``/``pass=`` items and the ``%pass`` of
    ``user=name%pass``; return the rest and the (last) password found."""
    kept: list[str] = []
    password: str | None = None
    for item in options:
        name, eq, value = item.partition("=")
        key = name.lower()
        if key in _PASSWORD_KEYS:
            password = value
            continue
        if key in _USER_KEYS and eq and "%" in value:
            user, _, pw = value.partition("%")
            kept.append(f"{name}={user}")
            if password is None:
                password = pw
            continue
        kept.append(item)
    return kept, password


def read_env_password(env: Mapping[str, str]) -> str | None:
    """mount.cifs's ``PASSWD``, ``PASSWD_FD`` (a descriptor to read it from) and
    ``PASSWD_FILE`` (its first line)."""
    if "PASSWD" in env:
        return env["PASSWD"]
    if "PASSWD_FD" in env:
        try:
            fd = int(env["PASSWD_FD"])
            with os.fdopen(fd, "rb", closefd=True) as f:
                data = f.read(4096)
        except (ValueError, OSError) as e:
            raise OSError(f"cannot read the password from PASSWD_FD: {e}") from None
        return data.decode("utf-8", "replace").split("\n", 1)[0]
    if "PASSWD_FILE" in env:
        try:
            with open(env["PASSWD_FILE"], "rb") as f:
                data = f.read(4096)
        except OSError as e:
            raise OSError(f"cannot read PASSWD_FILE: {e.strerror}") from None
        return data.decode("utf-8", "replace").split("\n", 1)[0]
    return None


def reexec_without(argv: list[str], secrets: Secrets) -> None:
    """Exec this program again on ``argv`` (already stripped), passing
    ``secrets`` through a pipe. Does not return."""
    data = json.dumps({"option": secrets.option, "env": secrets.env}).encode()
    r, w = os.pipe()
    # A pipe holds 64 KiB before a write blocks: far more than a password.
    os.write(w, data)
    os.close(w)
    os.set_inheritable(r, True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PASSWD", "PASSWD_FD", "PASSWD_FILE")}
    env[SECRET_FD_ENV] = str(r)
    prog = sys.argv[0]
    if os.path.basename(prog).startswith("mount.smbfs") and os.access(prog, os.X_OK):
        cmd = [prog, *argv]
    else:
        cmd = [sys.executable, "-m", "smbfs.cli.mount", *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, env)


def take_passed_secrets() -> Secrets | None:
    """In the re-exec'd process: read and forget what the first one passed."""
    value = os.environ.pop(SECRET_FD_ENV, None)
    if value is None:
        return None
    try:
        fd = int(value)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        obj = json.loads(b"".join(chunks))
    except (ValueError, OSError):
        return None
    return Secrets(option=obj.get("option"), env=obj.get("env"))
