"""Message-id allocation and the SMB2 credit window ([MS-SMB2] 3.2.4.1.5, 3.2.5.1.4).

Each request consumes ``CreditCharge`` credits and the same number of
consecutive MessageIds; each response (interim or final) grants
``CreditResponse`` new ones. MessageIds are never reused, even when a request
is cancelled or fails. The bookkeeping is plain logic (unit-testable without
a server); :meth:`CreditWindow.acquire` adds the trio wait when the window
is empty.
"""

from __future__ import annotations

import collections
import logging
from typing import Final

import trio

from smbfs.client.errors import ConnectionLostError

log = logging.getLogger(__name__)

CREDIT_UNIT: Final = 65536
# How many credits the client tries to hold: enough for dozens of 1 MiB
# READ/WRITEs (16 credits each) in flight. The server caps what it grants.
TARGET_CREDITS: Final = 1024
MAX_MESSAGE_ID: Final = 0xFFFFFFFFFFFFFFFE  # 2**64-1 is reserved for oplock breaks


def credit_charge(payload_size: int, multi_credit: bool = True) -> int:
    """Credits a request carrying ``payload_size`` bytes costs (3.1.5.2).

    Without SMB2_GLOBAL_CAP_LARGE_MTU (and always in 2.0.2) every request
    costs one credit, and payloads are limited to 64 KiB by the negotiated
    maxima anyway.
    """
    if not multi_credit or payload_size <= CREDIT_UNIT:
        return 1
    return (payload_size + CREDIT_UNIT - 1) // CREDIT_UNIT


class CreditWindow:
    """The client's sequence window: a next MessageId and a credit balance.

    Waiters are served first-come first-served, so a 128-credit request is
    not starved by a stream of 1-credit ones.
    """

    def __init__(self, initial: int = 1, target: int = TARGET_CREDITS) -> None:
        self.next_message_id = 0
        self.available = initial
        self.target = target
        self.granted_total = initial
        self.waits = 0  # instrumentation: acquisitions that had to wait
        # Waiters given their MessageIds by _wake whose task has not resumed
        # yet: credits already spent on a request not yet registered.
        self._handed = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._closed: BaseException | None = None

    # -- plain logic ---------------------------------------------------------

    def try_acquire(self, charge: int) -> int | None:
        """Take ``charge`` credits and MessageIds now, or return None."""
        if self._closed is not None:
            raise ConnectionLostError("connection closed") from self._closed
        if charge < 1:
            raise ValueError("a request costs at least one credit")
        if self._waiters or self.available < charge:
            return None
        return self._take(charge)

    def _take(self, charge: int) -> int:
        mid = self.next_message_id
        if mid + charge - 1 > MAX_MESSAGE_ID:
            raise ConnectionLostError("MessageId space exhausted")
        self.next_message_id = mid + charge
        self.available -= charge
        return mid

    def grant(self, credits: int) -> None:
        """Add the CreditResponse of a response to the window."""
        if credits <= 0:
            return
        self.available += credits
        self.granted_total += credits
        self._wake()

    def request_for(self, charge: int) -> int:
        """CreditRequest for a request of ``charge``: replace what it uses and
        grow the balance towards ``target`` (the server grants what it can)."""
        want = charge + max(0, self.target - self.available)
        return min(max(want, charge), 0xFFFF)

    def _wake(self) -> None:
        # Reserve for each waiter as it is woken, in arrival order.
        while self._waiters and self._waiters[0].charge <= self.available:
            waiter = self._waiters.popleft()
            waiter.message_id = self._take(waiter.charge)
            self._handed += 1
            waiter.event.set()

    # -- trio ----------------------------------------------------------------

    async def acquire(self, charge: int) -> int:
        """Wait until ``charge`` credits are available; return the first
        MessageId. The caller bounds the wait (request timeout/cancel) and
        must send a message with the ids it got, whatever happens next."""
        mid = self.try_acquire(charge)
        if mid is not None:
            return mid
        waiter = _Waiter(charge)
        self._waiters.append(waiter)
        self.waits += 1
        try:
            await waiter.event.wait()
        except trio.Cancelled:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                self._wake()  # a smaller waiter behind it may fit now
                raise
            if waiter.message_id is None:
                raise
            self._handed -= 1
            # Woken and cancelled at once: the MessageIds are ours now and
            # must be used -- a server tracks the lowest unused id, and a
            # hole would eventually push later ids out of its window. Trio
            # cancellation is level-triggered, so the caller is cancelled
            # again at its next checkpoint, after sending (shielded).
            return waiter.message_id
        if waiter.message_id is None:
            raise ConnectionLostError("connection closed") from self._closed
        self._handed -= 1
        return waiter.message_id

    @property
    def starved(self) -> bool:
        """No credit left and none on its way to a request about to be sent:
        unless a response is still due, nothing will ever grant more."""
        return self.available <= 0 and self._handed == 0

    def close(self, exc: BaseException) -> None:
        """Fail every waiter: the connection is gone."""
        self._closed = exc
        while self._waiters:
            self._waiters.popleft().event.set()


class _Waiter:
    __slots__ = ("charge", "event", "message_id")

    def __init__(self, charge: int) -> None:
        self.charge = charge
        self.event = trio.Event()
        self.message_id: int | None = None
