"""FSCTL payloads and handle messages (IOCTL, QUERY_INFO...) against the real Samba: what smbd sends
must decode with smbfs.proto.fsctl, and what we encode must be accepted.

The engine (smbfs.client) only carries the bytes here; the assertions are on
the decoded structures.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from collections.abc import Callable
from typing import Any

from smb_trees import tree_on, unique

from smbfs.client import paths
from smbfs.client.open import ioctl
from smbfs.devserver import Share
from smbfs.proto.create import AccessMask, CreateDisposition
from smbfs.proto.fsctl import (
    CtlCode,
    FileAllocatedRangeBuffer,
    FileSetSparseBuffer,
    FileZeroDataInformation,
    ReqGetDfsReferral,
    RespGetDfsReferral,
    SrvCopychunk,
    SrvCopychunkCopy,
    SrvCopychunkResponse,
    SrvRequestResumeKey,
    SrvSnapshotArray,
    decode_allocated_ranges,
    decode_network_interfaces,
)
from smbfs.proto.ntstatus import NTStatus

KIB = 1024


async def test_network_interfaces_from_samba(samba: Any) -> None:
    async with tree_on(samba, "IPC$") as ipc:
        out = await ioctl(ipc, CtlCode.FSCTL_QUERY_NETWORK_INTERFACE_INFO)
    nics = decode_network_interfaces(out)
    assert nics, "Samba with multi channel support lists at least one interface"
    # The test server binds only to lo.
    assert ipaddress.ip_address("127.0.0.1") in {n.address for n in nics}
    assert all(n.link_speed > 0 for n in nics)


async def test_server_side_copy(samba: Any) -> None:
    src, dst = unique("src"), unique("dst")
    data = os.urandom(200 * KIB)
    async with tree_on(samba) as tree:
        try:
            async with await tree.create(src, disposition=CreateDisposition.FILE_CREATE) as f:
                await f.write(0, data)
                key = SrvRequestResumeKey.decode(
                    await f.ioctl(CtlCode.FSCTL_SRV_REQUEST_RESUME_KEY, max_output=32))
                assert len(key.resume_key) == 24
                async with await tree.create(
                        dst, disposition=CreateDisposition.FILE_CREATE,
                        desired_access=AccessMask.GENERIC_READ | AccessMask.GENERIC_WRITE,
                ) as g:
                    copy = SrvCopychunkCopy(key.resume_key, [
                        SrvCopychunk(0, 100 * KIB, 100 * KIB),  # second half first
                        SrvCopychunk(100 * KIB, 0, 100 * KIB),
                    ])
                    rsp = SrvCopychunkResponse.decode(await g.ioctl(
                        CtlCode.FSCTL_SRV_COPYCHUNK, copy.encode(), max_output=12))
                    assert rsp == SrvCopychunkResponse(2, 0, 200 * KIB)
                    got = await g.read(0, 200 * KIB)
                    assert got == data[100 * KIB:] + data[:100 * KIB]
                    # Over the server's limits: STATUS_INVALID_PARAMETER and the
                    # limits themselves in the same structure ([MS-SMB2] 2.2.32.1).
                    too_many = SrvCopychunkCopy(key.resume_key,
                                                [SrvCopychunk(0, 0, 1)] * 10_000)
                    limits = SrvCopychunkResponse.decode(await g.ioctl(
                        CtlCode.FSCTL_SRV_COPYCHUNK_WRITE, too_many.encode(), max_output=12,
                        ok_statuses={NTStatus.STATUS_INVALID_PARAMETER}))
                    assert 0 < limits.chunks_written < 10_000
                    assert limits.chunk_bytes_written > 0 and limits.total_bytes_written > 0
        finally:
            for name in (src, dst):
                await paths.unlink(tree, name)


async def test_sparse_zero_and_allocated_ranges(samba: Any) -> None:
    name = unique("sparse")
    async with tree_on(samba) as tree:
        try:
            async with await tree.create(name, disposition=CreateDisposition.FILE_CREATE) as f:
                await f.write(0, b"\x11" * (256 * KIB))
                await f.ioctl(CtlCode.FSCTL_SET_SPARSE, FileSetSparseBuffer(True).encode(),
                              max_output=0)
                await f.ioctl(CtlCode.FSCTL_SET_ZERO_DATA,
                              FileZeroDataInformation(64 * KIB, 128 * KIB).encode(),
                              max_output=0)
                got = await f.read(0, 256 * KIB)
                assert got == (b"\x11" * (64 * KIB) + bytes(64 * KIB)
                               + b"\x11" * (128 * KIB))
                out = await f.ioctl(CtlCode.FSCTL_QUERY_ALLOCATED_RANGES,
                                    FileAllocatedRangeBuffer(0, 256 * KIB).encode(),
                                    max_output=64 * KIB)
                ranges = decode_allocated_ranges(out)
                assert ranges, "the written data must be reported allocated"
                # Whatever the file system's granularity, the ranges are sorted,
                # inside the query and cover the data that is not zero.
                assert all(0 <= r.file_offset and r.length > 0 for r in ranges)
                assert all(a.file_offset + a.length <= b.file_offset
                           for a, b in itertools.pairwise(ranges))
                assert ranges[-1].file_offset + ranges[-1].length <= 256 * KIB
                covered = [(r.file_offset, r.file_offset + r.length) for r in ranges]
                for probe in (0, 64 * KIB - 1, 128 * KIB, 256 * KIB - 1):
                    assert any(lo <= probe < hi for lo, hi in covered), probe
        finally:
            await paths.unlink(tree, name)


async def test_snapshots_from_shadow_copy2(fresh_samba: Callable[..., Any]) -> None:
    stamps = ["@GMT-2024.01.02-03.04.05", "@GMT-2025.06.07-08.09.10"]
    files = {f".snapshots/{s}/a.txt": b"old" for s in stamps}
    files["a.txt"] = b"new"
    server = fresh_samba(shares=[Share("snap", {
        "read only": "no",
        "vfs objects": "shadow_copy2",
        "shadow:snapdir": ".snapshots",
        # The share is not a mount point: look for .snapshots in the share itself.
        "shadow:snapdirseverywhere": "yes",
        "shadow:format": "@GMT-%Y.%m.%d-%H.%M.%S",
        "shadow:sort": "desc",
    }, files=files)])
    async with tree_on(server, "snap") as tree:
        async with await tree.create("a.txt", desired_access=AccessMask.GENERIC_READ) as f:
            # Too small a buffer first: counts and the size needed, no names.
            small = SrvSnapshotArray.decode(await f.ioctl(
                CtlCode.FSCTL_SRV_ENUMERATE_SNAPSHOTS, max_output=16))
            assert small.number_of_snapshots == 2 and small.snapshots == []
            assert small.required_output_size > 16
            full = SrvSnapshotArray.decode(await f.ioctl(
                CtlCode.FSCTL_SRV_ENUMERATE_SNAPSHOTS, max_output=small.required_output_size))
    assert full.number_of_snapshots == 2
    assert sorted(full.snapshots) == stamps


async def test_dfs_referral_from_samba(fresh_samba: Callable[..., Any]) -> None:
    server = fresh_samba(
        global_options={"host msdfs": "yes"},
        shares=[Share("share", {"read only": "no"}),
                Share("dfsroot", {"read only": "no", "msdfs root": "yes"})],
    )
    link = server.share_path("dfsroot") / "link"
    os.symlink("msdfs:127.0.0.1\\share", link)
    async with tree_on(server, "IPC$") as ipc:
        path = f"\\{server.host}\\dfsroot\\link"
        out = await ioctl(ipc, CtlCode.FSCTL_DFS_GET_REFERRALS,
                          ReqGetDfsReferral(path, 4).encode(), max_output=16 * KIB)
    rsp = RespGetDfsReferral.decode(out)
    assert rsp.referrals, rsp
    ref = rsp.referrals[0]
    assert ref.version in (3, 4) and not ref.is_name_list
    assert ref.network_address.lower() == "\\127.0.0.1\\share"
    assert ref.dfs_path.lower().endswith("\\dfsroot\\link")
    assert 0 < rsp.path_consumed <= 2 * len(path)
