"""Directory leases on Samba 4.22 (SMB2_GLOBAL_CAP_DIRECTORY_LEASING):
granted as RH, kept through our own name changes inside the directory
(they carry its key as ParentLeaseKey), broken by another client's."""

from __future__ import annotations

import uuid
from typing import Any

import trio
from smb_trees import tree_on, unique

from smbfs.client import compound_ops, paths
from smbfs.client.lease import BreakEvent
from smbfs.proto.create import CreateDisposition, CreateOptions
from smbfs.proto.create_contexts import LeaseState

BOUND = 15
_RH = LeaseState.SMB2_LEASE_READ_CACHING | LeaseState.SMB2_LEASE_HANDLE_CACHING


def server_lease_texts(samba: Any, lease_key: bytes) -> list[str]:
    key = str(uuid.UUID(bytes_le=lease_key))
    out = []
    for f in (samba.smbstatus().get("open_files") or {}).values():
        for o in (f.get("opens") or {}).values():
            lease = o.get("lease") or {}
            if lease.get("lease_key") == key:
                out.append(lease.get("text", ""))
    return out


async def test_directory_lease_survives_our_changes_and_breaks_on_theirs(
        samba_current: Any) -> None:
    samba = samba_current
    d = unique("dl")
    async with tree_on(samba) as tree:
        await paths.mkdir(tree, d)
        dop = await tree.create(d, options=CreateOptions.FILE_DIRECTORY_FILE, lease=True,
                                durable=False)
        assert dop.lease is not None and dop.lease_state == _RH
        assert server_lease_texts(samba, dop.lease.key) == ["RH"]
        events: list[BreakEvent] = []
        tree.session.leases.subscribe(events.append)
        # Our own changes: a file created (with its own lease), written and
        # closed; renamed, deleted; a directory made and removed.
        f = await tree.create(f"{d}\\a", disposition=CreateDisposition.FILE_CREATE)
        await f.write(0, b"data")
        await f.close()
        await paths.rename(tree, f"{d}\\a", f"{d}\\b")
        await compound_ops.mkdir_stat(tree, f"{d}\\sub")
        await paths.rmdir(tree, f"{d}\\sub")
        await paths.unlink(tree, f"{d}\\b")
        # A round trip on the directory handle after them: a break sent for
        # any of them would have arrived before its answer.
        await dop.query_attributes()
        assert [e for e in events if e.lease_key == dop.lease.key] == []
        assert dop.lease_state == _RH
        assert server_lease_texts(samba, dop.lease.key) == ["RH"]
        # Another client's create breaks it (to none).
        with trio.fail_after(BOUND):
            r = await trio.to_thread.run_sync(
                lambda: samba.smbclient("share", f"mkdir {d}/theirs", timeout=BOUND))
            assert r.returncode == 0, r.stdout + r.stderr
            while dop.lease_state != 0:
                await tree.session.leases.wait_processed()
        assert any(e.lease_key == dop.lease.key and e.new_state == 0 for e in events)
        await dop.close()
        await paths.rmdir(tree, f"{d}\\theirs")
        await paths.rmdir(tree, d)


async def test_directory_leasing_can_be_turned_off(samba_current: Any) -> None:
    async with tree_on(samba_current, directory_leasing=False) as tree:
        dop = await tree.create("", options=CreateOptions.FILE_DIRECTORY_FILE, lease=True,
                                durable=False)
        assert dop.lease is None
        await dop.close()
