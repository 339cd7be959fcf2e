"""Lease and oplock breaks: received, dispatched, acknowledged, nobody hangs.

Samba holds a conflicting client's CREATE until the lease holder
acknowledges the break (or ~35 s pass), so "the second client finished well
within that" plus the acknowledger's counters prove the acknowledgment.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from smb_trees import tree_on, unique

from smbfs.client import paths
from smbfs.client.errors import SMBError
from smbfs.client.lease import BreakEvent
from smbfs.proto.constants import Dialect
from smbfs.proto.create import CreateDisposition, OplockLevel
from smbfs.proto.ntstatus import NTStatus

# Far below Samba's own break timeout (35 s): finishing within it means the
# break was acknowledged, not timed out.
BOUND = 15


def server_lease_state(samba: Any, lease_key: bytes) -> list[str]:
    """The lease state text ("RWH", "RH", "R", "") of every open the server
    holds under ``lease_key``, as smbstatus prints it."""
    key = str(uuid.UUID(bytes_le=lease_key))
    files = samba.smbstatus().get("open_files") or {}
    out = []
    for f in files.values():
        for o in (f.get("opens") or {}).values():
            lease = o.get("lease") or {}
            if lease.get("lease_key") == key:
                out.append(lease.get("text", ""))
    return out


async def test_smbclient_write_breaks_our_lease(samba: Any, tmp_path: Path) -> None:
    name = unique("l")
    local = tmp_path / "upload"
    local.write_bytes(b"from smbclient")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        await f.write(0, b"from smbfs")
        assert f.lease is not None and f.lease_state == 0x7
        assert server_lease_state(samba, f.lease.key) == ["RWH"]
        table = tree.session.leases
        events: list[BreakEvent] = []
        table.subscribe(events.append)
        with trio.fail_after(BOUND):
            r = await trio.to_thread.run_sync(
                lambda: samba.smbclient("share", f"put {local} {name}", timeout=BOUND))
        assert r.returncode == 0, r.stdout + r.stderr
        assert table.breaks_received >= 1 and table.acks_sent >= 1
        assert table.ack_errors == 0
        assert events and events[0].lease_key == f.lease.key and events[0].old_state == 0x7
        assert events[0].path == name and events[0].ack_required
        # Overwritten by the other client: no caching left, here and on the server.
        assert f.lease_state == events[-1].new_state
        assert not f.lease_state & 0x4  # never keep write caching after a break
        assert server_lease_state(samba, f.lease.key) == [
            "".join(c for c, bit in (("R", 1), ("W", 4), ("H", 2)) if f.lease_state & bit)
        ]
        # We still work on the file and see the other client's data.
        assert await f.read(0, 100) == b"from smbclient"
        await f.close()
        await paths.unlink(tree, name)


@pytest.mark.parametrize("share", ["share", "encrypted"])
async def test_second_engine_session_open_is_not_left_hanging(samba: Any, share: str) -> None:
    """On the encrypted share the acknowledgment must be sealed too."""
    name = unique("l")
    async with tree_on(samba, share) as a, tree_on(samba, share) as b:
        fa = await a.create(name, disposition=CreateDisposition.FILE_CREATE)
        await fa.write(0, b"x" * 1000)
        assert fa.lease_state == 0x7
        table_a = a.session.leases
        with trio.fail_after(BOUND):
            fb = await b.create(name)
            # The break is processed in the background; wait for its ack.
            while table_a.acks_sent == 0:
                await table_a.wait_processed()
        assert table_a.breaks_received == 1 and table_a.ack_errors == 0
        # Another client opening for write takes W away; R and H may stay.
        assert fa.lease_state & 0x4 == 0
        assert fb.lease is not None
        assert await fb.read(0, 2000) == b"x" * 1000
        await fb.write(1000, b"y")
        assert await fa.read(999, 10) == b"xy"
        await fb.close()
        await fa.close()
        await paths.unlink(a, name)


async def test_our_own_opens_share_one_lease(samba: Any) -> None:
    name = unique("l")
    async with tree_on(samba) as tree:
        f1 = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        f2 = await tree.create(name)
        assert f1.lease is f2.lease and f1.lease is not None
        assert f2.lease_state == 0x7
        assert tree.session.leases.breaks_received == 0
        await f1.close()
        await f2.close()
        await paths.unlink(tree, name)


async def test_lease_v1_break_on_smb21(samba: Any) -> None:
    name = unique("l")
    async with tree_on(samba, min_dialect=Dialect.SMB2_1, max_dialect=Dialect.SMB2_1) as a, \
            tree_on(samba) as b:
        fa = await a.create(name, disposition=CreateDisposition.FILE_CREATE)
        assert fa.lease is not None and fa.lease.version == 1 and fa.durable
        table = a.session.leases
        with trio.fail_after(BOUND):
            fb = await b.create(name)
            while table.acks_sent == 0:
                await table.wait_processed()
        assert table.ack_errors == 0 and fa.lease_state & 0x4 == 0
        await fb.close()
        await fa.close()
        await paths.unlink(a, name)


async def test_oplock_break_acknowledged_on_smb202(samba: Any) -> None:
    name = unique("l")
    async with tree_on(samba, min_dialect=Dialect.SMB2_0_2,
                       max_dialect=Dialect.SMB2_0_2) as a, tree_on(samba) as b:
        fa = await a.create(name, disposition=CreateDisposition.FILE_CREATE,
                            oplock=OplockLevel.SMB2_OPLOCK_LEVEL_BATCH)
        assert fa.lease is None and not fa.durable
        assert fa.oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_BATCH
        table = a.session.leases
        events: list[BreakEvent] = []
        table.subscribe(events.append)
        with trio.fail_after(BOUND):
            fb = await b.create(name)
            while table.acks_sent == 0:
                await table.wait_processed()
        assert table.ack_errors == 0
        assert events and events[0].file_id == fa.file_id and events[0].lease_key is None
        assert fa.oplock_level in (OplockLevel.SMB2_OPLOCK_LEVEL_II,
                                   OplockLevel.SMB2_OPLOCK_LEVEL_NONE)
        await fb.close()
        await fa.close()
        await paths.unlink(a, name)


async def test_slow_subscriber_on_one_file_does_not_hold_up_another(samba: Any) -> None:
    """The FUSE cache may take its time flushing one file before the ack; the
    breaks of other files must still be acknowledged meanwhile."""
    x, y = unique("x"), unique("y")
    async with tree_on(samba) as a, tree_on(samba) as b:
        fx = await a.create(x, disposition=CreateDisposition.FILE_CREATE)
        fy = await a.create(y, disposition=CreateDisposition.FILE_CREATE)
        assert fx.lease is not None
        release = trio.Event()
        seen: list[str | None] = []

        async def slow_for_x(ev: BreakEvent) -> None:
            seen.append(ev.path)
            if ev.path == x:
                await release.wait()

        a.session.leases.subscribe(slow_for_x)
        opened_x: list[Any] = []
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as n:
                async def open_x() -> None:
                    opened_x.append(await b.create(x))

                n.start_soon(open_x)
                while x not in seen:  # X's break is being held by the subscriber
                    await trio.sleep(0.01)
                gy = await b.create(y)  # acknowledged although X's ack waits
                assert not opened_x
                release.set()
        assert opened_x and fx.lease_state & 0x4 == 0 and fy.lease_state & 0x4 == 0
        for h in (opened_x[0], gy, fx, fy):
            await h.close()
        await paths.unlink(a, x)
        await paths.unlink(a, y)


async def test_file_renamed_by_another_client_frees_its_old_name(samba: Any) -> None:
    """Our lease key follows the file the server moved; the old name is free:
    a stat there is "not found", not a refusal of a key filed elsewhere."""

    name, moved = unique("leased-before"), unique("leased-after")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE,
                              lease_key=b"K" * 16)
        assert f.lease is not None and f.lease.key == b"K" * 16
        # In a thread: the rename waits for us to acknowledge the lease break.
        r = await trio.to_thread.run_sync(
            lambda: samba.smbclient(samba.shares.rw, f'rename "{name}" "{moved}"'))
        assert r.returncode == 0, r.stdout + r.stderr
        with pytest.raises(SMBError) as e:
            await paths.stat(tree, name)
        assert e.value.status == NTStatus.STATUS_OBJECT_NAME_NOT_FOUND
        await f.close()
        await paths.unlink(tree, moved)
