"""Run one mount: in the foreground, or as a daemon that tells the waiting
parent through a readiness pipe whether the mount works.

The parent of a background mount returns only once the mount answers (as
mount.cifs does: a later ``ls`` must work), so the child reports on a pipe:
``ready``, or ``error <one line>``; EOF without either means it died. The
parent's wait is bounded; on timeout it stops the child (SIGTERM: a clean
give-up) and fails.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable

import trio

from smbfs.cli.options import MountRequest
from smbfs.cli.status import MountStatus
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    EncryptionUnavailableError,
    KerberosUnavailableError,
    LocalError,
    NegotiateError,
    SMBError,
    single_error,
)
from smbfs.fs.errors import MountError, NoAnswerError
from smbfs.sdnotify import notify

log = logging.getLogger("smbfs.cli")

# mount(8)'s helper conventions (and mount.cifs's): 1 usage, 2 system error, 32 mount failure.
EXIT_USAGE = 1
EXIT_SYSERR = 2
EXIT_FAIL = 32

# Connect, negotiate and session setup are bounded together (the engine's
# first_contact_timeout, 30 s), the first FUSE round trip by its own
# requests' bounds; this one only guards against a child that hangs anyway.
READY_TIMEOUT = 90.0

_STATUS_TEXT = {
    "STATUS_BAD_NETWORK_NAME": "no such share on the server",
    "STATUS_ACCESS_DENIED": "access denied",
    "STATUS_LOGON_FAILURE": "login failed (wrong user name or password)",
    "STATUS_ACCOUNT_DISABLED": "account disabled",
    "STATUS_ACCOUNT_LOCKED_OUT": "account locked out",
    "STATUS_PASSWORD_EXPIRED": "password expired",
    "STATUS_NETWORK_ACCESS_DENIED": "access to the share denied",
}


def describe_error(exc: BaseException, req: MountRequest) -> str:
    """One line for stderr: what failed, for whom, and the server's status name."""
    unc = req.source.unc
    if isinstance(exc, KerberosUnavailableError):
        return f"{unc}: Kerberos is not available on this machine: {exc}"
    if isinstance(exc, EncryptionUnavailableError):
        return f"{unc}: encryption is required but not available: {exc}"
    if isinstance(exc, LocalError):
        return f"{unc}: {exc}"
    if isinstance(exc, AuthenticationError) and req.client.auth == "kerberos":
        # Not "wrong password": the engine's message says what Kerberos
        # lacked (no ticket, unknown SPN, KDC unreachable...).
        return f"{unc}: Kerberos login failed: {exc}"
    if isinstance(exc, AuthenticationError):
        who = req.client.username or req.client.auth
        text = _STATUS_TEXT.get(exc.status_name, "authentication failed")
        return f"{unc}: {text} for user {who!r} ({exc.status_name})"
    if isinstance(exc, SMBError):
        if exc.status_name == "STATUS_BAD_NETWORK_NAME":
            return f"{unc}: share {req.source.share!r} not found ({exc.status_name})"
        what = _STATUS_TEXT.get(exc.status_name, "server refused")
        return f"{unc}: {what} ({exc.status_name})"
    if isinstance(exc, NoAnswerError):
        return (f"{_source(req)}: the server accepted the connection but did not answer "
                f"within {exc.timeout:.0f} s")
    if isinstance(exc, NegotiateError):
        return f"{req.client.host}:{req.client.port}: negotiation failed: {exc}"
    if isinstance(exc, ConnectionLostError):
        return str(exc)
    if isinstance(exc, MountError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{req.client.host}:{req.client.port}: {exc.strerror or exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def _source(req: MountRequest) -> str:
    """//server[:port]/share, the port shown when it is not SMB's."""
    host = req.source.host
    host = f"[{host}]" if ":" in host else host
    port = f":{req.client.port}" if req.client.port != 445 else ""
    return f"//{host}{port}/{req.source.share}"


class _Interrupted(Exception):
    """A signal arrived before the mount was ready."""


async def run_mount(req: MountRequest, on_ready: Callable[[str], None],
                    signals: tuple[signal.Signals, ...]) -> None:
    """Serve until unmounted; ``signals`` unmount cleanly (serve() turns the
    cancellation into close-all/logoff). ``on_ready(status)`` gets the
    mount's status line ("Connected to //server/share (SMB 3.1.1)"); later
    changes of the connection's state go to systemd as ``STATUS=`` and to
    the log (:mod:`smbfs.cli.status`)."""
    from smbfs.fs.mount import serve

    ready = False
    status = MountStatus(req.source.unc)

    def _ready() -> None:
        nonlocal ready
        ready = True
        on_ready(status.line)

    interrupted = False
    with trio.open_signal_receiver(*signals) as receiver:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal interrupted
                async for signum in receiver:
                    log.info("%s: unmounting %s", signal.Signals(signum).name, req.mountpoint)
                    notify(f"STOPPING=1\nSTATUS=unmounting {req.mountpoint}")
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            nursery.start_soon(status.run)
            await serve(req.client, req.source.share, req.source.subdir, req.mountpoint,
                        req.fs, on_ready=_ready, on_session=status.attach)
            nursery.cancel_scope.cancel()
    if interrupted and not ready:
        raise _Interrupted


def run_foreground(req: MountRequest) -> int:
    def ready(status: str) -> None:
        log.info("mounted %s on %s", req.source.unc, req.mountpoint)
        # systemd Type=notify (systemd/smbfs@.service): ready once the mount answers.
        notify(f"READY=1\nSTATUS={status}")

    notify(f"STATUS=Connecting to {req.source.unc} ({req.client.host}:{req.client.port})")
    try:
        trio.run(run_mount, req, ready, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    except _Interrupted:
        print("mount.smbfs: interrupted before the mount was ready", file=sys.stderr)
        return EXIT_FAIL
    except Exception as e:
        exc = single_error(e)
        log.debug("mount failed", exc_info=exc)
        print(f"mount.smbfs: {describe_error(exc, req)}", file=sys.stderr)
        return EXIT_FAIL
    log.info("unmounted %s; exiting", req.mountpoint)
    return 0


def setup_daemon_logging(log_file: str | None, level: int) -> None:
    """Background logs go to ``log_file`` when given, else to syslog when
    /dev/log exists (the journal), else nowhere: stderr is /dev/null."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s mount.smbfs[%(process)d] %(levelname)s %(name)s: %(message)s"))
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(
            "/dev/log", facility=logging.handlers.SysLogHandler.LOG_DAEMON)
        handler.setFormatter(logging.Formatter(
            "mount.smbfs[%(process)d]: %(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    root.addHandler(handler)
    root.setLevel(level)
    quiet_secrets()


def quiet_secrets() -> None:
    """pyspnego logs every NTLM token at DEBUG: the AUTHENTICATE message's
    NTLMv2 response is crackable offline, so it never reaches our logs."""
    logging.getLogger("spnego").setLevel(logging.INFO)


def _redirect_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _child(req: MountRequest, w: int, log_level: int) -> int:
    """The daemon: report readiness or the failure on ``w``, then serve."""
    os.setsid()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _redirect_stdio()
    os.chdir("/")
    setup_daemon_logging(req.log_file, log_level)
    reported = False

    def report(line: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            try:
                os.write(w, line.encode("utf-8", "replace") + b"\n")
                os.close(w)
            except OSError:
                pass

    def ready(status: str) -> None:
        log.info("mounted %s on %s (pid %d): %s", req.source.unc, req.mountpoint, os.getpid(),
                 status)
        report("ready")

    try:
        trio.run(run_mount, req, ready, (signal.SIGTERM, signal.SIGINT))
    except _Interrupted:
        report("error interrupted before the mount was ready")
        return EXIT_FAIL
    except BaseException as e:
        exc = single_error(e)
        msg = describe_error(exc, req)
        if reported:
            log.error("mount of %s ended: %s", req.mountpoint, msg)
        else:
            log.error("mount failed: %s", msg)
        if msg.startswith("internal error"):
            log.error("%s", "".join(traceback.format_exception(exc)))
        report("error " + msg.replace("\n", " "))
        return EXIT_FAIL
    if not reported:
        report("error the mount ended before it was ready")
        return EXIT_FAIL
    log.info("unmounted %s; exiting with status 0", req.mountpoint)
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_background(req: MountRequest, log_level: int,
                   timeout: float = READY_TIMEOUT) -> int:
    """Fork the daemon and wait (bounded) until it says the mount works."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    # Ctrl-C or SIGTERM while waiting: stop the half-started daemon too. They
    # are held back across the fork until the handler is in place, so one
    # that arrives right after the fork (the child already visible) cannot
    # kill the parent before it can stop the child.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        os.close(r)
        code = EXIT_SYSERR
        try:
            code = _child(req, w, log_level)
        finally:
            logging.shutdown()
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    data = b""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        # A signal that came meanwhile is delivered here, inside the try.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGTERM)
                print(f"mount.smbfs: {req.source.unc}: no answer within {timeout:.0f}s; gave up",
                      file=sys.stderr)
                return EXIT_FAIL
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
    except KeyboardInterrupt:
        os.kill(pid, signal.SIGTERM)
        print("mount.smbfs: interrupted; the mount was given up", file=sys.stderr)
        return EXIT_FAIL
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(r)
    line = data.decode("utf-8", "replace").strip()
    if line == "ready":
        return 0
    # The child exits right after reporting a failure: reap it (bounded) so
    # that no zombie outlives us where PID 1 does not reap.
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        done, _status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    if line.startswith("error "):
        print(f"mount.smbfs: {line[6:]}", file=sys.stderr)
    else:
        print("mount.smbfs: the mount process died before the mount was ready"
              + (f" (see {req.log_file})" if req.log_file else ""), file=sys.stderr)
    return EXIT_FAIL


def _unescape_mount_field(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t")
            .replace("\\012", "\n").replace("\\134", "\\"))


def is_mounted(mountpoint: str) -> bool:
    path = os.path.abspath(mountpoint)
    try:
        with open("/proc/self/mounts") as f:
            return any(_unescape_mount_field(line.split()[1]) == path
                       for line in f if len(line.split()) > 1)
    except OSError:
        return False


def find_daemons(mountpoint: str) -> list[int]:
    """PIDs of mount.smbfs processes serving ``mountpoint`` (by command line:
    the daemon keeps SOURCE and MOUNTPOINT as its arguments)."""
    path = os.path.abspath(mountpoint)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
        except OSError:
            continue
        if (any("mount.smbfs" in a or a == "smbfs.cli.mount" for a in args[:3])
                and any(os.path.abspath(a) == path for a in args[1:] if a.startswith("/"))):
            pids.append(int(entry))
    return pids
