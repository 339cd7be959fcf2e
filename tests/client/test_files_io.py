"""Opens and file I/O through smbfs.client.Open against the real Samba."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from smb_trees import tree_on, unique

from smbfs.client import paths
from smbfs.client.errors import HandleClosedError, SMBError
from smbfs.client.open import FileInfo, Open
from smbfs.client.session import Session
from smbfs.proto.constants import Dialect
from smbfs.proto.create import AccessMask, CreateAction, CreateDisposition, OplockLevel
from smbfs.proto.ntstatus import NTStatus

MIB = 1024 * 1024


def piece(seed: int, index: int, size: int) -> bytes:
    """Deterministic pseudo-random data, regenerated for the read-back check."""
    return random.Random(seed * 1_000_003 + index).randbytes(size)


async def test_256mib_pipelined_round_trip(samba: Any) -> None:
    size, step, seed = 256 * MIB, 64 * MIB, 7
    name = unique("big")
    async with tree_on(samba, max_in_flight=16) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF)
        try:
            assert f.max_write > 64 * 1024, "LARGE_MTU expected from Samba"
            wrote = hashlib.sha256()
            for i in range(size // step):
                data = piece(seed, i, step)
                wrote.update(data)
                assert await f.write(i * step, data) == step
            peak_write = f.peak_in_flight
            assert (await f.query_attributes()).size == size
            f.peak_in_flight = 0
            read = hashlib.sha256()
            for i in range(size // step):
                data = await f.read(i * step, step)
                assert len(data) == step
                read.update(data)
            peak_read = f.peak_in_flight
            assert read.hexdigest() == wrote.hexdigest()
        finally:
            await f.close()
            await paths.unlink(tree, name)
        # Pipelining is shown by the instrumentation, not by timing.
        assert peak_write > 1 and peak_read > 1
        assert peak_write <= 16 and peak_read <= 16
        assert tree.session.connection.peak_in_flight > 1


async def test_read_at_and_past_end_of_file(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba) as tree:
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
            f.max_read = 4096  # force several pipelined chunks on a small file
            data = bytes(range(256)) * 50  # 12800 bytes
            await f.write(0, data)
            assert await f.read(0, 100_000) == data  # short: stops at EOF
            assert await f.read(12_000, 10_000) == data[12_000:]
            assert await f.read(12_800, 10) == b""  # STATUS_END_OF_FILE -> empty
            assert await f.read(50_000, 9000) == b""
            buf = bytearray(5000)
            assert await f.readinto(10_000, buf) == 2800
            assert bytes(buf[:2800]) == data[10_000:]
        await paths.unlink(tree, name)


async def test_create_dispositions_and_actions(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba) as tree:
        with pytest.raises(SMBError) as e:
            await tree.create(name, disposition=CreateDisposition.FILE_OPEN)
        assert e.value.status == NTStatus.STATUS_OBJECT_NAME_NOT_FOUND
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        assert f.create_action == CreateAction.FILE_CREATED
        await f.write(0, b"hello world")
        await f.close()
        with pytest.raises(SMBError) as e:
            await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        assert e.value.status == NTStatus.STATUS_OBJECT_NAME_COLLISION
        f = await tree.create(name, disposition=CreateDisposition.FILE_OPEN_IF)
        assert f.create_action == CreateAction.FILE_OPENED and f.info.size == 11
        await f.close()
        f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE)
        assert f.create_action == CreateAction.FILE_OVERWRITTEN and f.info.size == 0
        await f.close()
        f = await tree.create(name, disposition=CreateDisposition.FILE_SUPERSEDE)
        assert f.create_action == CreateAction.FILE_SUPERSEDED
        info = await f.close()
        assert isinstance(info, FileInfo) and info.size == 0
        # Read-only access: writing is refused by the server.
        async with await tree.create(name, desired_access=AccessMask.GENERIC_READ) as ro:
            with pytest.raises(SMBError) as e:
                await ro.write(0, b"x")
            assert e.value.status == NTStatus.STATUS_ACCESS_DENIED
        await paths.unlink(tree, name)


async def test_truncate_set_times_flush_and_query_all(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba) as tree:
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
            await f.write(0, b"a" * 10_000)
            await f.flush()
            await f.truncate(1234)
            assert (await f.query_attributes()).size == 1234
            await f.truncate(1 << 20)  # extend
            assert (await f.query_attributes()).size == 1 << 20
            when = 1_600_000_000_123_456_700  # on a 100 ns boundary: exact round trip
            await f.set_times(write_ns=when)
            info = await f.query_attributes()
            assert info.write_ns == when
            allinfo = await f.query_all_information()
            assert allinfo.standard.end_of_file == 1 << 20
            assert allinfo.name.file_name.endswith(name)
            assert allinfo.internal.index_number == info.file_id != 0
            final = await f.close()
            assert final is not None and final.size == 1 << 20
        st = await paths.stat(tree, name)
        assert st.size == 1 << 20 and st.write_ns == when and not st.is_directory
        await paths.unlink(tree, name)


async def test_lock_conflict_between_two_opens(samba: Any) -> None:
    name = unique("lock")
    async with tree_on(samba) as tree:
        a = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        b = await tree.create(name, lease=False)
        try:
            await a.write(0, bytes(4096))
            await a.lock(0, 100)
            with pytest.raises(SMBError) as e:
                await b.lock(50, 100)
            assert e.value.status == NTStatus.STATUS_LOCK_NOT_GRANTED
            # A locked range also stops I/O through the other open.
            with pytest.raises(SMBError) as e:
                await b.write(10, b"x")
            assert e.value.status == NTStatus.STATUS_FILE_LOCK_CONFLICT
            await b.lock(200, 100, exclusive=False)  # no overlap: fine
            await a.unlock(0, 100)
            await b.lock(50, 100)
            await b.unlock(50, 100)
            await b.unlock(200, 100)
            with pytest.raises(SMBError) as e:
                await b.unlock(200, 100)  # not locked any more
            assert e.value.status == NTStatus.STATUS_RANGE_NOT_LOCKED
        finally:
            await a.close()
            await b.close()
            await paths.unlink(tree, name)


FSCTL_SRV_REQUEST_RESUME_KEY = 0x00140078
FSCTL_QUERY_NETWORK_INTERFACE_INFO = 0x001401FC


async def test_ioctl(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba) as tree:
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
            out = await f.ioctl(FSCTL_SRV_REQUEST_RESUME_KEY, max_output=32)
            # SRV_REQUEST_RESUME_KEY response: 24-byte key, ContextLength, Context.
            assert len(out) >= 28
        await paths.unlink(tree, name)
    async with tree_on(samba, "IPC$") as ipc:
        assert ipc.is_pipe
        from smbfs.client.open import ioctl

        out = await ioctl(ipc, FSCTL_QUERY_NETWORK_INTERFACE_INFO, max_output=65536)
        assert len(out) >= 152  # at least one NETWORK_INTERFACE_INFO


DIALECT_CASES = [
    # dialect, lease version expected, durable expected
    (Dialect.SMB2_0_2, 0, False),
    (Dialect.SMB2_1, 1, True),
    (Dialect.SMB3_0, 2, True),
    (Dialect.SMB3_0_2, 2, True),
    (Dialect.SMB3_1_1, 2, True),
]


@pytest.mark.parametrize(("dialect", "lease_version", "durable"), DIALECT_CASES,
                         ids=[d.name for d, _, _ in DIALECT_CASES])
async def test_each_dialect_open_write_read_close(samba: Any, dialect: Dialect,
                                                  lease_version: int, durable: bool) -> None:
    name = unique(dialect.name)
    data = piece(3, int(dialect), 3 * MIB + 17)
    async with tree_on(samba, min_dialect=dialect, max_dialect=dialect) as tree:
        session: Session = tree.session
        assert session.dialect == dialect
        f: Open = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        try:
            if lease_version:
                assert f.lease is not None and f.lease.version == lease_version
                assert f.oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_LEASE
                assert f.lease_state & 0x1
            else:
                assert f.lease is None
                assert f.oplock_level == OplockLevel.SMB2_OPLOCK_LEVEL_NONE
            assert f.durable == durable
            assert f.durable_v2 == (durable and dialect.is_smb3)
            assert (f.create_guid is not None) == (durable and dialect.is_smb3)
            if dialect == Dialect.SMB2_0_2:
                assert f.max_write == 65536  # no LARGE_MTU: 64 KiB per request
            assert await f.write(0, data) == len(data)
            assert await f.read(0, len(data) + 1) == data
            assert f.peak_in_flight > 1
        finally:
            info = await f.close()
        assert info is not None and info.size == len(data)
        await paths.unlink(tree, name)


async def test_closed_handle_is_refused_locally(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba) as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        await f.close()
        assert await f.close() is None  # idempotent
        with pytest.raises(HandleClosedError):  # a local error: nothing is sent
            await f.read(0, 1)
        await paths.unlink(tree, name)


async def test_encrypted_share_io(samba: Any) -> None:
    name = unique("f")
    async with tree_on(samba, "encrypted") as tree:
        assert tree.encrypt_data
        data = piece(5, 0, 2 * MIB)
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
            await f.write(0, data)
            assert await f.read(0, len(data)) == data
        await paths.unlink(tree, name)
        await tree.disconnect()  # sealed as well, or the server refuses it
        assert not tree.connected


async def test_pipelined_write_failure_is_a_plain_smberror(samba: Any) -> None:
    """A chunk failing mid-pipeline surfaces as the SMBError itself (not an
    ExceptionGroup): STATUS_DISK_FULL on the 2 MiB share."""
    name = unique("full")
    async with tree_on(samba, "small") as tree:
        f = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        f.max_write = 256 * 1024
        try:
            with pytest.raises(SMBError) as e:
                await f.write(0, bytes(8 * MIB))
            assert e.value.status == NTStatus.STATUS_DISK_FULL
            # The session is fine afterwards.
            await f.truncate(0)
            assert await f.write(0, b"ok") == 2
        finally:
            await f.close()
            await paths.unlink(tree, name)


async def test_blocking_lock_waits_and_can_be_cancelled(samba: Any) -> None:
    """A waiting lock pends at the server (interim response); cancelling it
    returns promptly, and an unlock by the holder grants a waiting one."""
    import trio

    name = unique("wait")
    async with tree_on(samba) as tree:
        a = await tree.create(name, disposition=CreateDisposition.FILE_CREATE)
        b = await tree.create(name, lease=False)
        try:
            await a.lock(0, 10)
            with trio.move_on_after(0.5) as scope:
                await b.lock(0, 10, wait=True)
            assert scope.cancelled_caught
            async with trio.open_nursery() as nursery:
                granted = trio.Event()

                async def waiter() -> None:
                    await b.lock(0, 10, wait=True)
                    granted.set()

                nursery.start_soon(waiter)
                with trio.fail_after(10):
                    while b.in_flight == 0:
                        await trio.sleep(0.01)
                    await trio.sleep(0.2)  # let it reach the server and pend
                    assert not granted.is_set()
                    await a.unlock(0, 10)
                    await granted.wait()
            await b.unlock(0, 10)
        finally:
            await a.close()
            await b.close()
            await paths.unlink(tree, name)


async def test_query_on_disk_id_matches_internal_information(samba: Any) -> None:
    name = unique("qfid")
    async with tree_on(samba) as tree:
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE,
                                     query_on_disk_id=True) as f:
            assert f.info.file_id is not None and f.info.file_id == f.disk_file_id
            assert (await f.query_attributes()).file_id == f.disk_file_id
            assert (await paths.stat(tree, name)).file_id == f.disk_file_id
        await paths.unlink(tree, name)


async def test_cancelled_pipelined_read_leaves_connection_usable(samba: Any) -> None:
    import trio

    name = unique("cancelread")
    data = piece(9, 0, 32 * MIB)
    async with tree_on(samba) as tree:
        async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
            await f.write(0, data)
            f.max_read = 256 * 1024  # many chunks in flight
            conn = tree.session.connection
            with trio.move_on_after(10) as scope:
                async with trio.open_nursery() as n:
                    n.start_soon(f.read, 0, len(data))
                    while f.in_flight < 2:
                        await trio.sleep(0)
                    n.cancel_scope.cancel()
            assert not scope.cancelled_caught  # the cancel itself was prompt
            # Every later request works, and the whole file still reads back.
            with trio.fail_after(20):
                for _ in range(3):
                    assert await f.read(0, len(data)) == data
            assert conn.alive and f.in_flight == 0
        await paths.unlink(tree, name)
