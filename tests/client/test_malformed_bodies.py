"""Malformed response *bodies* from a real Samba (rewritten by the fault
proxy) decoded above the receiver, in open.py/tree.py: each must drop the
connection and raise ConnectionLostError, never let a DecodeError escape
or hand a wrong byte to the caller ([MS-SMB2] 3.2.5.1.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from smb_trees import config_for, unique

from smbfs.client import ConnectionLostError, open_session
from smbfs.client.open import READ_WRITE
from smbfs.client.tree import Tree
from smbfs.proto.constants import Command
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions

HDR = 64

Rewrite = Callable[[bytearray], bytes]


def _hook(command: Command, state: dict[str, Any]) -> Callable[[str, bytes], bytes | None]:
    """Rewrite the next successful ``command`` response with state["rewrite"]
    once state["armed"] is set (the session is unsigned: nothing else
    notices)."""

    def hook(direction: str, frame: bytes) -> bytes | None:
        if (direction == "s2c" and state["armed"] and len(frame) > HDR
                and frame[:4] == b"\xfeSMB"
                and int.from_bytes(frame[12:14], "little") == command
                and int.from_bytes(frame[8:12], "little") == 0
                and int.from_bytes(frame[20:24], "little") == 0):  # last of a chain
            state["armed"] = False
            state["hits"] += 1
            return state["rewrite"](bytearray(frame))
        return frame

    return hook


async def _expect_lost(samba: Any, fault_proxy: Any, command: Command, rewrite: Rewrite,
                       action: Callable[[Tree, str], Any]) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    state: dict[str, Any] = {"armed": False, "hits": 0, "rewrite": rewrite}
    proxy.set_frame_hook(_hook(command, state))
    name = unique("malformed")
    async with open_session(config_for(samba, port=proxy.port)) as s:
        tree = await Tree.connect(s, samba.shares.rw)
        f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF,
                              desired_access=READ_WRITE | AccessMask.DELETE,
                              options=CreateOptions.FILE_DELETE_ON_CLOSE)
        await f.write(0, b"x" * 1000)
        state["armed"] = True
        with trio.fail_after(10), pytest.raises(ConnectionLostError):
            await action(tree, name)
        assert state["hits"] == 1
        assert not s.connection.alive


def _le32(buf: bytearray, at: int, value: int) -> None:
    buf[at:at + 4] = value.to_bytes(4, "little")


async def test_malformed_create_response(samba: Any, fault_proxy: Any) -> None:
    def rewrite(b: bytearray) -> bytes:
        # CreateContextsOffset/Length ([MS-SMB2] 2.2.14) far past the message.
        _le32(b, HDR + 80, HDR + 88)
        _le32(b, HDR + 84, 0x10000)
        return bytes(b)

    await _expect_lost(samba, fault_proxy, Command.SMB2_CREATE, rewrite,
                       lambda tree, name: tree.create(name))


async def test_read_returning_more_than_asked(samba: Any, fault_proxy: Any) -> None:
    async def read(tree: Tree, name: str) -> None:
        f = await tree.create(name)
        await f.read(0, 100)

    def rewrite(b: bytearray) -> bytes:
        # 10 more bytes than the 100 asked, DataLength (2.2.20) to match.
        length = int.from_bytes(b[HDR + 4:HDR + 8], "little")
        _le32(b, HDR + 4, length + 10)
        return bytes(b + b"y" * 10)

    await _expect_lost(samba, fault_proxy, Command.SMB2_READ, rewrite, read)


async def test_read_data_length_past_the_message(samba: Any, fault_proxy: Any) -> None:
    async def read(tree: Tree, name: str) -> None:
        f = await tree.create(name)
        await f.read(0, 100)

    def rewrite(b: bytearray) -> bytes:
        _le32(b, HDR + 4, 50_000)  # DataLength beyond the bytes received
        return bytes(b)

    await _expect_lost(samba, fault_proxy, Command.SMB2_READ, rewrite, read)


async def test_write_count_above_length(samba: Any, fault_proxy: Any) -> None:
    async def write(tree: Tree, name: str) -> None:
        f = await tree.create(name)
        await f.write(0, b"z" * 100)

    def rewrite(b: bytearray) -> bytes:
        _le32(b, HDR + 4, 5000)  # Count (2.2.22) above the 100 bytes sent
        return bytes(b)

    await _expect_lost(samba, fault_proxy, Command.SMB2_WRITE, rewrite, write)


async def test_malformed_directory_listing(samba: Any, fault_proxy: Any) -> None:
    def rewrite(b: bytearray) -> bytes:
        # The first entry's NextEntryOffset ([MS-FSCC] 2.4) points far outside.
        out = int.from_bytes(b[HDR + 2:HDR + 4], "little")
        _le32(b, out, 0x7FFFFFF0)
        return bytes(b)

    await _expect_lost(samba, fault_proxy, Command.SMB2_QUERY_DIRECTORY, rewrite,
                       lambda tree, name: tree.listdir(""))


async def test_malformed_query_info_buffer(samba: Any, fault_proxy: Any) -> None:
    async def stat(tree: Tree, name: str) -> None:
        f = await tree.create(name)
        await f.query_attributes()

    def rewrite(b: bytearray) -> bytes:
        # OutputBufferLength (2.2.38) cut to 10: too short for the
        # FileAllInformation fixed part.
        _le32(b, HDR + 4, 10)
        return bytes(b)

    await _expect_lost(samba, fault_proxy, Command.SMB2_QUERY_INFO, rewrite, stat)


async def test_query_info_as_decodes_and_guards(samba: Any, fault_proxy: Any) -> None:
    from smbfs.proto.fscc.filesystem import FileFsFullSizeInformation
    from smbfs.proto.info import InfoType

    async def statfs(tree: Tree, name: str) -> None:
        f = await tree.create(name)
        fs = await f.query_info_as(FileFsFullSizeInformation.decode,
                                   FileFsFullSizeInformation.INFO_CLASS,
                                   info_type=InfoType.SMB2_0_INFO_FILESYSTEM)
        assert fs.total_allocation_units > 0  # the unmodified first answer
        await f.query_info_as(FileFsFullSizeInformation.decode,
                              FileFsFullSizeInformation.INFO_CLASS,
                              info_type=InfoType.SMB2_0_INFO_FILESYSTEM)

    state = {"n": 0}

    def rewrite(b: bytearray) -> bytes:
        _le32(b, HDR + 4, 3)  # OutputBufferLength too short for the structure
        return bytes(b)

    proxy = fault_proxy(samba.host, samba.port)
    hook_state: dict[str, Any] = {"armed": False, "hits": 0, "rewrite": rewrite}
    inner = _hook(Command.SMB2_QUERY_INFO, hook_state)

    def hook(direction: str, frame: bytes) -> bytes | None:
        if (direction == "s2c" and int.from_bytes(frame[12:14], "little") == 0x10
                and hook_state["armed"]):
            state["n"] += 1
            if state["n"] == 1:
                return frame  # the first answer passes untouched
        return inner(direction, frame)

    proxy.set_frame_hook(hook)
    name = unique("malformed")
    async with open_session(config_for(samba, port=proxy.port)) as s:
        tree = await Tree.connect(s, samba.shares.rw)
        _f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF,
                              desired_access=READ_WRITE | AccessMask.DELETE,
                              options=CreateOptions.FILE_DELETE_ON_CLOSE)
        hook_state["armed"] = True
        with trio.fail_after(10), pytest.raises(ConnectionLostError):
            await statfs(tree, name)
        assert hook_state["hits"] == 1 and not s.connection.alive


async def test_malformed_member_of_a_compound_stat(samba: Any, fault_proxy: Any) -> None:
    """Tree.stat's create+query+close compound, with the QUERY_INFO member's
    OutputBufferLength cut below FileAllInformation's fixed part."""
    proxy = fault_proxy(samba.host, samba.port)
    state = {"armed": False, "hits": 0}

    def hook(direction: str, frame: bytes) -> bytes | None:
        if direction != "s2c" or not state["armed"] or frame[:4] != b"\xfeSMB":
            return frame
        b = bytearray(frame)
        at = 0
        while True:
            if int.from_bytes(b[at + 12:at + 14], "little") == Command.SMB2_QUERY_INFO:
                _le32(b, at + HDR + 4, 10)
                state["hits"] += 1
                state["armed"] = False
                return bytes(b)
            nxt = int.from_bytes(b[at + 20:at + 24], "little")
            if not nxt:
                return frame
            at += nxt

    proxy.set_frame_hook(hook)
    name = unique("malformed")
    async with open_session(config_for(samba, port=proxy.port)) as s:
        tree = await Tree.connect(s, samba.shares.rw)
        f = await tree.create(name, disposition=CreateDisposition.FILE_OVERWRITE_IF)
        await f.close()
        assert (await tree.stat(name)).size == 0
        state["armed"] = True
        with trio.fail_after(10), pytest.raises(ConnectionLostError):
            await tree.stat(name)
        assert state["hits"] == 1 and not s.connection.alive
