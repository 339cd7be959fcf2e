"""The mount's status line (smbfs.cli.status): its wording, and that the
engine's state callback never blocks while the lines reach sd_notify in
order, coalesced when they pile up. The line as systemd gets it from a real
mount: tests/systemd/test_service.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import trio

from smbfs.cli.status import (
    MountStatus,
    connected_line,
    dialect_name,
    failed_line,
    reconnecting_line,
)
from smbfs.proto.constants import Dialect


def test_wording() -> None:
    assert [dialect_name(d) for d in (Dialect.SMB2_0_2, Dialect.SMB2_1, Dialect.SMB3_0,
                                      Dialect.SMB3_0_2, Dialect.SMB3_1_1)] == [
        "2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]
    assert connected_line("//srv/share", Dialect.SMB3_1_1) == \
        "Connected to //srv/share (SMB 3.1.1)"
    assert connected_line("//srv/share", Dialect.SMB3_0_2, 1, 0) == \
        "Connected to //srv/share (SMB 3.0.2; reconnected 1 time, 0 handles lost)"
    assert connected_line("//srv/share", Dialect.SMB2_1, 3, 1) == \
        "Connected to //srv/share (SMB 2.1; reconnected 3 times, 1 handle lost)"
    assert reconnecting_line("//srv/share", "14:02:17", "connection reset") == \
        "Reconnecting to //srv/share since 14:02:17 (connection reset)"
    assert failed_line("//srv/share", "14:02:17", "logged off") == \
        "Disconnected from //srv/share since 14:02:17 (logged off)"


@dataclass
class _Stats:
    reconnects: int = 0
    handles_lost: int = 0


@dataclass
class _Session:
    """The three things MountStatus reads of the engine's Session."""

    dialect: Dialect = Dialect.SMB3_1_1
    stats: _Stats = field(default_factory=_Stats)
    callbacks: list = field(default_factory=list)  # type: ignore[type-arg]

    def on_state_change(self, fn) -> None:  # type: ignore[no-untyped-def]
        self.callbacks.append(fn)


async def test_changes_reach_sd_notify_without_blocking_the_engine() -> None:
    sent: list[str] = []
    release = threading.Event()
    got_one = threading.Event()

    def slow_send(state: str) -> None:
        # A supervisor that reads slowly: sd_notify would block here.
        sent.append(state)
        got_one.set()
        release.wait(10)

    status = MountStatus("//srv/share", send=slow_send)
    session = _Session()
    status.attach(session)  # type: ignore[arg-type]
    assert status.line == "Connected to //srv/share (SMB 3.1.1)"
    [changed] = session.callbacks
    async with trio.open_nursery() as nursery:
        nursery.start_soon(status.run)
        changed("reconnecting", "connection\nreset")
        assert status.line.startswith("Reconnecting to //srv/share since ")
        assert status.line.endswith(" (connection reset)")  # one line, always
        with trio.fail_after(10):
            await trio.to_thread.run_sync(got_one.wait)
        # The sender is stuck in the first send; the engine's calls return
        # at once and only the newest line is kept for the next send.
        session.stats.reconnects = 1
        changed("connected", "reconnected after 0.2s")
        changed("reconnecting", "cut again")
        session.stats.reconnects = 2
        changed("connected", "reconnected after 0.1s")
        release.set()
        with trio.fail_after(10):
            while len(sent) < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert sent[0].startswith("STATUS=Reconnecting to //srv/share since ")
    assert sent[1:] == [
        "STATUS=Connected to //srv/share (SMB 3.1.1; reconnected 2 times, 0 handles lost)"]
