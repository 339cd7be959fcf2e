"""Directory enumeration with continuation, and change notify."""

from __future__ import annotations

from typing import Any

import trio
from smb_trees import tree_on, unique

from smbfs.client import paths
from smbfs.client.open import FileInfo
from smbfs.proto.change_notify import CompletionFilter, FileAction
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions
from smbfs.proto.fscc.attributes import FileInformationClass

DIR_OPEN: dict[str, Any] = dict(
    desired_access=AccessMask.FILE_LIST_DIRECTORY | AccessMask.FILE_READ_ATTRIBUTES
    | AccessMask.SYNCHRONIZE,
    options=CreateOptions.FILE_DIRECTORY_FILE,
)


async def test_enumerate_3000_entries_with_continuation(samba: Any) -> None:
    d = unique("big")
    path = samba.share_path("share") / d
    path.mkdir()
    names = {f"entry-{i:05d}-{'x' * (i % 40)}" for i in range(3000)}
    for n in names:
        (path / n).write_bytes(b"")
    (path / "sub").mkdir()
    try:
        async with tree_on(samba) as tree:
            async with await tree.create(d, **DIR_OPEN) as h:
                before = h.requests
                seen: list[FileInfo] = []
                async for e in h.query_directory(output_buffer_length=16384):
                    if e.file_name not in (".", ".."):
                        seen.append(FileInfo.from_directory_entry(e))
                # 3000 entries of ~110 bytes never fit in 16 KiB: continuation used.
                assert h.requests - before > 10
                got = {i.name for i in seen}
                assert got == names | {"sub"}
                assert len(seen) == len(got)
                by_name = {i.name: i for i in seen}
                assert by_name["sub"].is_directory and not by_name[min(names)].is_directory
                assert all(i.file_id for i in seen)  # FileIdBothDirectoryInformation
                # Default buffer (MaxTransactSize-bounded): same answer, fewer trips.
                listed = await h.list_directory()
                assert {i.name for i in listed} == names | {"sub"}
                # A pattern.
                few = [e.file_name async for e in h.query_directory("entry-0000*")]
                assert sorted(few) == sorted(n for n in names if n.startswith("entry-0000"))
                none = [e async for e in h.query_directory("no-such-*")]
                assert none == []
                plain = [e.file_name async for e in h.query_directory(
                    "entry-00001*", info_class=FileInformationClass.FileNamesInformation)]
                assert plain == [n for n in names if n.startswith("entry-00001")]
    finally:
        for n in names:
            (path / n).unlink()
        (path / "sub").rmdir()
        path.rmdir()


async def test_change_notify_reports_a_new_file(samba: Any) -> None:
    d = unique("watch")
    async with tree_on(samba) as tree:
        await paths.mkdir(tree, d)
        h = await tree.create(d, **DIR_OPEN)
        got: list[Any] = []

        async def watcher(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            got.append(await h.change_notify(CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME))

        with trio.fail_after(20):
            async with trio.open_nursery() as n:
                await n.start(watcher)
                # Let the CHANGE_NOTIFY reach the server (it answers STATUS_PENDING)
                # before creating: poll the instrumentation, never a bare sleep.
                while h.in_flight == 0:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)
                f = await tree.create(f"{d}/new.txt", disposition=CreateDisposition.FILE_CREATE)
                await f.close()
        changes = got[0]
        assert changes is not None
        assert any(c.action == FileAction.FILE_ACTION_ADDED and c.file_name == "new.txt"
                   for c in changes)
        await h.close()
        await paths.unlink(tree, f"{d}/new.txt")
        await paths.rmdir(tree, d)


async def test_cancelled_change_notify_returns_promptly(samba: Any) -> None:
    d = unique("cancel")
    async with tree_on(samba) as tree:
        await paths.mkdir(tree, d)
        conn = tree.session.connection
        h = await tree.create(d, **DIR_OPEN)
        cancels = conn.cancels_sent
        t0 = trio.current_time()
        with trio.move_on_after(0.5) as scope:
            await h.change_notify(CompletionFilter.FILE_NOTIFY_CHANGE_FILE_NAME,
                                  watch_tree=True)
        assert scope.cancelled_caught
        assert trio.current_time() - t0 < 5  # prompt, bounded
        assert conn.cancels_sent == cancels + 1
        # The connection is still usable: more requests succeed afterwards.
        with trio.fail_after(10):
            st = await paths.stat(tree, d)
            assert st.is_directory
            assert [e async for e in h.query_directory("nothing*")] == []
            await h.close()
            await paths.rmdir(tree, d)
        assert conn.alive
