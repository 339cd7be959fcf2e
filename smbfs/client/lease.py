"""The lease table: lease keys per file, and the acknowledgment of lease and
oplock breaks ([MS-SMB2] 3.2.5.19).

Why a separate background task: break notifications arrive on the
connection's receiver task, which must never block (every response on the
connection waits behind it). The receiver calls :meth:`LeaseTable.on_break`,
which only decodes and queues; the acknowledger task then tells subscribers
(the FUSE cache, later: flush dirty data, purge pages) and sends the
acknowledgment. A server that granted a write or handle lease holds the other
client's CREATE until it gets that acknowledgment (or its ~35 s timeout), so
acknowledging promptly is what keeps other clients from hanging.

Lease keys are stable per (tree, path) for the life of the table, as
3.2.4.3 asks (File.LeaseKey in the GlobalFileTable): every open of the same
path by this session shares one lease, so our own opens never break each
other's caching.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from smbfs.client.connection import BreakHandler, Connection
from smbfs.client.errors import ConnectionLostError, SMBError
from smbfs.proto.codec import DecodeError
from smbfs.proto.create_contexts import LeaseFlags
from smbfs.proto.fileid import FileId
from smbfs.proto.header import Smb2Header
from smbfs.proto.message import Message
from smbfs.proto.oplock_break import (
    LeaseBreakAcknowledgment,
    LeaseBreakNotification,
    LeaseState,
    OplockBreakAcknowledgment,
    OplockBreakNotification,
    OplockLevel,
    decode_break,
)

log = logging.getLogger(__name__)

LEASE_RWH = (
    LeaseState.SMB2_LEASE_READ_CACHING
    | LeaseState.SMB2_LEASE_WRITE_CACHING
    | LeaseState.SMB2_LEASE_HANDLE_CACHING
)


@dataclass(slots=True)
class BreakEvent:
    """What subscribers are told about one break, before it is acknowledged.

    ``old_state``/``new_state`` are lease states (for an oplock break they
    are mapped: batch/exclusive -> RWH, level II -> R, none -> 0) so a cache
    only has to understand one vocabulary. ``path`` is the share-relative
    path of the file whose caching is being reduced, when known.
    """

    lease_key: bytes | None
    file_id: FileId | None
    path: str | None
    old_state: int
    new_state: int
    ack_required: bool


BreakSubscriber = Callable[[BreakEvent], Awaitable[None] | None]


# The table sits below the session, tree and open modules in the import
# graph (the session creates it; opens register with it), so it names what
# it needs of them structurally instead of importing them back.


class AckPipe(Protocol):
    """Where an acknowledgment is sent: the tree the lease was granted on
    (its TreeId and sealing)."""

    async def request(self, message: Message) -> object: ...


class LeaseHolder(Protocol):
    """An open as the table sees it (:class:`smbfs.client.open.Open`)."""

    oplock_level: int

    @property
    def file_id(self) -> FileId: ...

    @property
    def path(self) -> str: ...

    @property
    def lease(self) -> Lease | None: ...

    @property
    def tree(self) -> AckPipe: ...


class LeaseHost(Protocol):
    """The session owning the table (:class:`smbfs.client.session.Session`)."""

    @property
    def connection(self) -> Connection: ...

    def register_break_handler(self, fn: BreakHandler) -> None: ...

    def spawn(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...


@dataclass(eq=False, slots=True)
class Lease:
    """One File entry of the GlobalFileTable: a lease key and what it covers."""

    key: bytes
    path: str
    tree: AckPipe  # the acknowledgment goes through it (TreeId, sealing)
    version: int = 0  # 0 until granted; then 1 (SMB 2.1) or 2 (SMB 3.x)
    state: int = 0
    epoch: int = 0
    opens: set[LeaseHolder] = field(default_factory=set)
    # Creates sent with this key whose responses are not processed yet: a break
    # can overtake the task that registers the new open ([MS-SMB2] 3.2.5.19.2).
    pending: int = 0
    settled: trio.Event = field(default_factory=trio.Event)
    breaks_seen: int = 0
    acks_sent: int = 0


def _oplock_as_lease(level: int) -> int:
    if level in (OplockLevel.SMB2_OPLOCK_LEVEL_BATCH, OplockLevel.SMB2_OPLOCK_LEVEL_EXCLUSIVE):
        return int(LEASE_RWH)
    if level == OplockLevel.SMB2_OPLOCK_LEVEL_II:
        return int(LeaseState.SMB2_LEASE_READ_CACHING)
    return 0


# Breaks queued beyond twice the leases and oplocks held before the flood
# guard in on_break drops the connection.
_BACKLOG_SLACK = 256


class LeaseTable:
    """Leases and oplocks held by one session, and their break acknowledger.

    Each session has one (``session.leases``). It registers itself as the
    session's break handler and starts its task in the session's nursery
    only when the first lease or oplock is asked for (:meth:`activate`): a
    session that never asks runs no acknowledger.
    """

    def __init__(self, session: LeaseHost) -> None:
        self._session = session
        self._active = False
        self._leases: dict[bytes, Lease] = {}
        # (share, lower-cased path) -> lease key. Keyed by share name, not
        # TreeId, so the key survives a tree reconnect (3.2.4.3 keys the
        # GlobalFileTable by server\\share\\path).
        self._keys: dict[tuple[str, str], bytes] = {}
        self._oplock_opens: dict[FileId, LeaseHolder] = {}
        self._subscribers: list[BreakSubscriber] = []
        self._queues: dict[bytes | FileId, deque[OplockBreakNotification
                                                 | LeaseBreakNotification]] = {}
        send, recv = trio.open_memory_channel[tuple[Smb2Header, bytes]](math.inf)
        self._send = send
        self._recv = recv
        self.breaks_received = 0
        self.acks_sent = 0
        self.ack_errors = 0
        # Set each time a break has been fully processed; tests wait on it.
        self._processed = trio.Event()

    def activate(self) -> None:
        """Take the session's breaks from now on; call before sending a
        CREATE that asks for a lease or oplock (a break may follow its
        response at once). Idempotent."""
        if self._active:
            return
        self._active = True
        self._session.register_break_handler(self.on_break)
        self._session.spawn(self._run)

    # ---------------------------------------------------------------- lookups

    def lease_key_for(self, share: str, path: str) -> bytes:
        """The stable lease key of ``path`` on a share (3.2.4.3 File.LeaseKey)."""
        k = (share.lower(), path.lower())
        key = self._keys.get(k)
        if key is None:
            key = os.urandom(16)
            self._keys[k] = key
        return key

    def bind_key(self, share: str, path: str, key: bytes) -> None:
        """``path`` is known by the caller's own key from now on (the FUSE
        layer keeps one per file): compound operations on it carry that key."""
        self._keys[(share.lower(), path.lower())] = key

    def unbind(self, share: str, path: str) -> None:
        """``path`` is no longer the name of the file its key belongs to
        (someone else renamed it away): forget the name, keep the lease."""
        self._keys.pop((share.lower(), path.lower()), None)

    def renamed(self, share: str, old: str, new: str) -> None:
        """Our rename of ``old`` (and of everything below it) to ``new``:
        each file keeps its key under its new name."""
        s, old_l, new_l = share.lower(), old.lower(), new.lower()
        moved = {}
        for (sh, p), key in list(self._keys.items()):
            if sh != s:
                continue
            if p == old_l:
                moved[(sh, new_l)] = key
            elif p.startswith(old_l + "\\"):
                moved[(sh, new_l + p[len(old_l):])] = key
            else:
                continue
            del self._keys[(sh, p)]
        self._keys.update(moved)
        for lease in self._leases.values():
            if lease.path.lower() == old_l:
                lease.path = new
            elif lease.path.lower().startswith(old_l + "\\"):
                lease.path = new + lease.path[len(old):]

    def lease(self, key: bytes) -> Lease | None:
        return self._leases.get(key)

    def lease_for_path(self, share: str, path: str) -> Lease | None:
        key = self._keys.get((share.lower(), path.lower()))
        return None if key is None else self._leases.get(key)

    def parent_key_for(self, share: str, path: str) -> bytes | None:
        """The lease key of ``path``'s directory when we hold a v2 lease on
        it (an open directory with read caching), else None.

        A v2 lease request carries it as ParentLeaseKey ([MS-SMB2]
        2.2.13.2.10, SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET): a server that
        honours it does not break our own directory lease for a name change
        we make through that open (Samba 4.22 compares it with the key of
        each directory lease it would break: create, delete on close,
        rename, set-info, close after a write)."""
        if not path:
            return None
        parent = path.rsplit("\\", 1)[0] if "\\" in path else ""
        lease = self.lease_for_path(share, parent)
        if lease is None or lease.version != 2 or not lease.opens \
                or not lease.state & LeaseState.SMB2_LEASE_READ_CACHING:
            return None
        return lease.key

    def parent_lease_fields(self, share: str, path: str) -> tuple[int, bytes]:
        """(Flags, ParentLeaseKey) for a v2 lease request on ``path``."""
        key = self.parent_key_for(share, path)
        if key is None:
            return 0, bytes(16)
        return int(LeaseFlags.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET), key

    def subscribe(self, fn: BreakSubscriber) -> Callable[[], None]:
        """Call ``fn`` for every break before it is acknowledged (the FUSE cache
        flushes and invalidates there). Returns a function that unsubscribes."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    async def wait_processed(self) -> None:
        """Wait until the next break has been dispatched and acknowledged."""
        await self._processed.wait()

    # ------------------------------------------------------ open bookkeeping

    def begin_create(self, tree: AckPipe, path: str, key: bytes) -> Lease:
        lease = self._leases.get(key)
        if lease is None:
            lease = Lease(key=key, path=path, tree=tree)
            self._leases[key] = lease
        else:
            lease.tree = tree
        lease.pending += 1
        if lease.settled.is_set():
            lease.settled = trio.Event()
        return lease

    def end_create(self, lease: Lease, opened: LeaseHolder | None, granted_state: int | None,
                   epoch: int, version: int) -> None:
        """Record the server's answer to a create that asked for ``lease``."""
        lease.pending -= 1
        if opened is not None and granted_state is not None:
            lease.opens.add(opened)
            lease.state = granted_state
            lease.version = version
            if version == 2:
                lease.epoch = epoch
        if lease.pending == 0:
            lease.settled.set()
            if not lease.opens:
                self._leases.pop(lease.key, None)

    def register_oplock(self, opened: LeaseHolder) -> None:
        self._oplock_opens[opened.file_id] = opened

    def forget_open(self, opened: LeaseHolder) -> None:
        """Called when an open is closed (or lost)."""
        self._oplock_opens.pop(opened.file_id, None)
        lease = opened.lease
        if lease is not None:
            lease.opens.discard(opened)
            if not lease.opens and lease.pending == 0:
                self._leases.pop(lease.key, None)
                lease.state = 0

    # ------------------------------------------------------------- breaking

    def on_break(self, header: Smb2Header, msg: memoryview) -> None:
        """The session's break handler: runs on the receiver, never blocks.

        The message is copied (it is small) because the receive buffer's
        lifetime belongs to the connection.
        """
        self.breaks_received += 1
        # A server sends at most one break at a time per lease or oplock we
        # hold (it waits for the acknowledgment); a backlog far beyond that
        # is a flood, and the queue must not grow without bound.
        backlog = self._send.statistics().current_buffer_used
        if backlog >= _BACKLOG_SLACK + 2 * (len(self._leases) + len(self._oplock_opens)):
            self._session.connection.handle_protocol_error(
                f"{backlog} oplock/lease break notifications not yet processed")
            return
        try:
            self._send.send_nowait((header, bytes(msg)))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            log.debug("break after the lease table closed: dropped")

    async def _run(self) -> None:
        """One worker per lease key (or FileId) drains that key's breaks in
        arrival order: a subscriber slow to flush one file does not hold up
        the acknowledgment of another, and two breaks of one lease stay in
        order."""
        async with self._recv, trio.open_nursery() as nursery:
            async for _header, raw in self._recv:
                try:
                    brk = decode_break(memoryview(raw))
                except DecodeError as e:
                    # Like any malformed message: the server is not to be
                    # trusted any more, the connection goes ([MS-SMB2] 3.2.5.1.7).
                    self._session.connection.handle_protocol_error(
                        f"malformed OPLOCK_BREAK notification: {e}")
                    self._signal_processed()
                    continue
                key: bytes | FileId = (brk.lease_key if isinstance(brk, LeaseBreakNotification)
                                       else brk.file_id)
                queue = self._queues.get(key)
                if queue is None:
                    self._queues[key] = deque([brk])
                    nursery.start_soon(self._worker, key)
                else:
                    queue.append(brk)

    def _signal_processed(self) -> None:
        ev, self._processed = self._processed, trio.Event()
        ev.set()

    async def _worker(self, key: bytes | FileId) -> None:
        queue = self._queues[key]
        try:
            while queue:
                brk = queue[0]
                try:
                    if isinstance(brk, LeaseBreakNotification):
                        await self._lease_break(brk)
                    else:
                        await self._oplock_break(brk)
                except (ConnectionLostError, trio.ClosedResourceError):
                    log.debug("connection lost while acknowledging a break")
                except Exception:  # a bad break must not kill the acknowledger
                    log.exception("failed to process an oplock/lease break")
                finally:
                    queue.popleft()
                    self._signal_processed()
        finally:
            del self._queues[key]

    async def _notify(self, event: BreakEvent) -> None:
        for fn in list(self._subscribers):
            try:
                res = fn(event)
                if res is not None:
                    await res
            except Exception:
                log.exception("lease break subscriber failed")

    async def _lease_break(self, brk: LeaseBreakNotification) -> None:
        lease = self._leases.get(brk.lease_key)
        if lease is not None and not lease.opens and lease.pending:
            # Our CREATE that got this lease is answered but its task has not
            # registered the open yet: give it a moment rather than guess.
            with trio.move_on_after(5):
                await lease.settled.wait()
        log.debug("lease break %s: %s -> %s (ack %s)", brk.lease_key.hex(),
                  brk.current_lease_state, brk.new_lease_state, brk.ack_required)
        old = lease.state if lease is not None else brk.current_lease_state
        if lease is not None:
            lease.breaks_seen += 1
            # 3.2.5.19.2: on 3.x the epoch orders state changes; on 2.1 just copy.
            if lease.version == 2:
                if brk.new_epoch > lease.epoch or brk.new_epoch == 0:
                    lease.state = brk.new_lease_state
                    lease.epoch = max(lease.epoch, brk.new_epoch)
            else:
                lease.state = brk.new_lease_state
        await self._notify(BreakEvent(
            lease_key=brk.lease_key, file_id=None,
            path=lease.path if lease is not None else None,
            old_state=old, new_state=brk.new_lease_state, ack_required=brk.ack_required,
        ))
        if not brk.ack_required or lease is None:
            return
        # 3.2.5.19.2: once every handle is closed the close is the implicit
        # acknowledgment (the lease record is gone then: nothing is sent). A
        # record without opens only exists while a create is settling; an
        # ack then costs at most an error status, a missing one would stall
        # the other client for the server's break timeout.
        ack = LeaseBreakAcknowledgment(lease_key=brk.lease_key, lease_state=brk.new_lease_state)
        await self._ack(ack, lease.tree, lease)

    async def _oplock_break(self, brk: OplockBreakNotification) -> None:
        opened = self._oplock_opens.get(brk.file_id)
        if opened is None:
            log.debug("oplock break for unknown FileId %s: discarded", brk.file_id)
            return
        old = opened.oplock_level
        await self._notify(BreakEvent(
            lease_key=None, file_id=brk.file_id, path=opened.path,
            old_state=_oplock_as_lease(old), new_state=_oplock_as_lease(brk.oplock_level),
            ack_required=True,
        ))
        if old in (OplockLevel.SMB2_OPLOCK_LEVEL_NONE, OplockLevel.SMB2_OPLOCK_LEVEL_II):
            # 3.2.5.19.1: a level II break to none needs no acknowledgment.
            opened.oplock_level = OplockLevel.SMB2_OPLOCK_LEVEL_NONE
            return
        opened.oplock_level = brk.oplock_level
        ack = OplockBreakAcknowledgment(oplock_level=brk.oplock_level, file_id=brk.file_id)
        try:
            await self._ack(ack, opened.tree, None)
        except SMBError:
            opened.oplock_level = OplockLevel.SMB2_OPLOCK_LEVEL_NONE

    async def _ack(self, ack: LeaseBreakAcknowledgment | OplockBreakAcknowledgment,
                   tree: AckPipe, lease: Lease | None) -> None:
        try:
            await tree.request(ack)
        except SMBError as e:
            # E.g. STATUS_UNSUCCESSFUL when the lease went away with a close
            # that crossed the break: nothing left to acknowledge.
            self.ack_errors += 1
            log.debug("break acknowledgment failed: %s", e)
            if isinstance(ack, OplockBreakAcknowledgment):
                raise
            return
        self.acks_sent += 1
        if lease is not None:
            lease.acks_sent += 1
