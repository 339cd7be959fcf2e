"""Entry point of the FUSE layer: :func:`serve` mounts one share and serves
it until unmounted or cancelled. The CLI (``mount.smbfs``) calls it."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pyfuse3
import trio

from smbfs.client import paths
from smbfs.client.client import open_session
from smbfs.client.config import ClientConfig
from smbfs.client.errors import SMBError, SMBTimeoutError, single_error
from smbfs.client.session import Session
from smbfs.client.tree import Tree
from smbfs.fs.errors import MountError, NoAnswerError
from smbfs.fs.operations import SmbOperations
from smbfs.fs.options import FsOptions

# API vocabulary of the engine: SMBError.status is an NTSTATUS code, and the
# one NTSTATUS -> errno table is kept with the codes it maps (sans-IO data).
from smbfs.proto.ntstatus import errno_for_status

log = logging.getLogger(__name__)

__all__ = ["MountError", "NoAnswerError", "serve"]

# At 4 MiB (cifs.ko's default rasize) the kernel sends 1 MiB reads instead of
# 128 KiB ones (design notes: FUSE request sizes); 16 MiB keeps more of them
# in flight: cold sequential reads 565-748 MB/s against 458-610 at 4 MiB
# here (docs/benchmarks.md). Random reads do not trigger readahead.
READ_AHEAD_KB = 16384
# Bound on the clean-up after unmount (close handles, disconnect, logoff)
# when the server no longer answers.
CLEANUP_TIMEOUT = 10.0


def _check_mountpoint(mountpoint: str) -> str:
    path = os.path.abspath(mountpoint)
    if not os.path.exists(path):
        raise MountError(f"mount point {mountpoint} does not exist")
    if not os.path.isdir(path):
        raise MountError(f"mount point {mountpoint} is not a directory")
    return path


def _subdir_path(subdir: str) -> str:
    parts = [p for p in subdir.replace("\\", "/").split("/") if p and p != "."]
    if ".." in parts:
        raise MountError(f"subdirectory {subdir!r} may not contain '..'")
    return "\\".join(parts)


async def _check_subdir(tree: Tree, root: str, subdir: str, share: str) -> None:
    if not root:
        return
    try:
        info = await paths.stat(tree, root)
    except SMBError as e:
        if errno_for_status(e.status) in (errno.ENOENT, errno.ENOTDIR):
            raise MountError(f"{subdir}: no such directory on {share}") from None
        raise
    if not info.is_directory:
        raise MountError(f"{subdir}: not a directory on {share}")


def fuse_options(options: FsOptions) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    fsname = options.fsname.replace(",", "_")  # a comma would split the option
    opts.add(f"fsname={fsname}")
    opts.add("subtype=smbfs")
    if options.allow_other:
        opts.add("allow_other")
    if options.read_only:
        opts.add("ro")
    if options.debug:
        opts.add("debug")
    return opts


def raise_readahead(mountpoint: str) -> None:
    """Let the kernel send 1 MiB reads (needs root; ignored otherwise)."""
    try:
        dev = os.stat(mountpoint).st_dev
        path = f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb"
        with open(path, "w") as f:
            f.write(str(READ_AHEAD_KB))
        log.debug("read_ahead_kb=%d on %s", READ_AHEAD_KB, path)
    except OSError as e:
        log.debug("cannot raise readahead of %s: %s", mountpoint, e)


@asynccontextmanager
async def _session(config: ClientConfig) -> AsyncIterator[Session]:
    """open_session, with its first-contact timeout told apart: the engine
    bounds connect + NEGOTIATE + SESSION_SETUP by
    ``config.first_contact_timeout`` and raises SMBTimeoutError, which
    later on (a request timeout) means something else."""
    entered = False
    try:
        async with open_session(config) as session:
            entered = True
            yield session
    except SMBTimeoutError as e:
        if entered:
            raise
        raise NoAnswerError(config.host, config.port, config.first_contact_timeout) from e


async def serve(client_config: ClientConfig, share: str, subdir: str, mountpoint: str,
                options: FsOptions, *, on_ready: Callable[[], None] | None = None,
                on_session: Callable[[Session], None] | None = None) -> None:
    """Connect, mount ``share`` (rooted at ``subdir``) on ``mountpoint``, call
    ``on_ready()`` once the mount answers, serve until unmounted or
    cancelled, then close every handle, disconnect and log off.
    ``on_session(session)`` is called once the session is set up, before
    the tree connect: where the CLI follows the session's state
    (``Session.on_state_change``) for the mount's status line.

    Before ``on_ready`` failures raise the engine's exceptions
    (AuthenticationError, SMBError, ConnectionLostError, OSError),
    :class:`MountError`, or :class:`NoAnswerError` (the server took the
    connection and stayed silent for ``first_contact_timeout``).

    A mount should run with ``client_config.reconnect`` on (mount.smbfs
    sets it): without it the first lost connection ends the mount's use.

    Cancellation (the CLI's SIGTERM) must not reach the engine's own tasks
    before the clean-up has talked to the server, so the work runs shielded
    and a watcher turns the caller's cancellation into a graceful stop; the
    caller's Cancelled is delivered once the clean-up is done.
    """
    mp = _check_mountpoint(mountpoint)
    root = _subdir_path(subdir)
    stop = trio.Event()

    async def set_on_cancel() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stop.set()

    try:
        async with trio.open_nursery() as guard:
            guard.start_soon(set_on_cancel)
            try:
                with trio.CancelScope(shield=True):
                    await _serve(client_config, share, root, subdir, mp, options,
                                 on_ready, on_session, stop)
            finally:
                guard.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Callers (the CLI) expect the failure itself, not a group.
        raise single_error(group)  # noqa: B904 - the group is its __cause__


async def _serve(client_config: ClientConfig, share: str, root: str, subdir: str, mp: str,
                 options: FsOptions, on_ready: Callable[[], None] | None,
                 on_session: Callable[[Session], None] | None, stop: trio.Event) -> None:
    body = trio.CancelScope()
    fuse = trio.CancelScope()
    serving = False

    async def stopper() -> None:
        await stop.wait()
        # While serving, end FUSE only: the clean-up still needs the engine.
        # Before (connecting, authenticating), give up at once.
        (fuse if serving else body).cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stopper)
        with body:
            async with _session(client_config) as session:
                if on_session is not None:
                    on_session(session)
                tree = await Tree.connect(session, share)
                ops: SmbOperations | None = None
                try:
                    await _check_subdir(tree, root, subdir, share)
                    ops = SmbOperations(tree, root, options)
                    await ops.start()
                    serving = True
                    with fuse:
                        await _run_fuse(ops, mp, options, on_ready)
                    serving = False
                finally:
                    if session.state != "connected":
                        # Nobody to say goodbye to: waiting for a reconnect here
                        # would hold the unmount for the whole bound. The
                        # server drops our handles at its durable timeout.
                        log.info("unmounting while %s: handles left to the server",
                                 session.state)
                    else:
                        with trio.move_on_after(CLEANUP_TIMEOUT) as scope:
                            scope.shield = True
                            if ops is not None:
                                await ops.close_all()
                            try:
                                await tree.disconnect()
                            except Exception as e:
                                log.debug("tree disconnect: %s", e)
        nursery.cancel_scope.cancel()


async def _run_fuse(ops: SmbOperations, mp: str, options: FsOptions,
                    on_ready: Callable[[], None] | None) -> None:
    try:
        pyfuse3.init(ops, mp, fuse_options(options))
    except RuntimeError as e:
        raise MountError(f"cannot mount on {mp}: {e}") from None
    try:
        async with trio.open_nursery() as nursery:

            async def ready() -> None:
                # The stat goes through our own filesystem, so it must run
                # while main() serves, in a thread; its success is the proof
                # that the mount works.
                await trio.to_thread.run_sync(raise_readahead, mp)
                log.info("mounted %s on %s", options.fsname, mp)
                if on_ready is not None:
                    on_ready()

            nursery.start_soon(ready)
            ops.kernel.live = True
            nursery.start_soon(ops.kernel.run)
            nursery.start_soon(ops.dircache.run)
            try:
                await pyfuse3.main()
            finally:
                ops.kernel.close()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise single_error(group)  # noqa: B904 - the group is its __cause__
    finally:
        pyfuse3.close(unmount=True)
        log.info("unmounted %s", mp)
