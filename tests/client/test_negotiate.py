"""Negotiate and session setup against the real Samba, one dialect at a time."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conn_util import pattern, tree_connect, write_read_close
from smb_trees import config_for

from smbfs.client import NegotiateError, open_session
from smbfs.proto.constants import Dialect

DIALECTS = [Dialect.SMB2_0_2, Dialect.SMB2_1, Dialect.SMB3_0, Dialect.SMB3_0_2, Dialect.SMB3_1_1]
SMBSTATUS_DIALECT = {
    Dialect.SMB2_0_2: "SMB2_02", Dialect.SMB2_1: "SMB2_10", Dialect.SMB3_0: "SMB3_00",
    Dialect.SMB3_0_2: "SMB3_02", Dialect.SMB3_1_1: "SMB3_11",
}


@pytest.mark.both_sambas
@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
async def test_each_dialect_create_write_read_close(samba: Any, dialect: Dialect) -> None:
    cfg = config_for(samba, min_dialect=dialect, max_dialect=dialect)
    async with open_session(cfg) as s:
        assert s.dialect == dialect
        neg = s.connection.negotiated
        assert neg is not None and neg.max_read_size >= 65536
        tree = await tree_connect(s, samba.shares.rw)
        # Larger than one credit (64 KiB) where the dialect allows it.
        size = 65536 if dialect == Dialect.SMB2_0_2 else 300_000
        data = pattern(size, seed=int(dialect))
        assert await write_read_close(s, tree, f"dialect-{dialect.name}.bin", data) == data
        sessions = [v for v in samba.smbstatus()["sessions"].values()
                    if int(v["session_id"]) == s.session_id]
        assert len(sessions) == 1
        assert sessions[0]["session_dialect"] == SMBSTATUS_DIALECT[dialect]
        assert sessions[0]["username"] == samba.user.name


@pytest.mark.both_sambas
async def test_default_range_picks_311_with_gcm_and_preauth(samba: Any) -> None:
    async with open_session(config_for(samba)) as s:
        neg = s.connection.negotiated
        assert neg is not None
        assert neg.dialect == Dialect.SMB3_1_1
        assert neg.preauth_hash is not None
        # Samba 4.17 honours the client's cipher order: AES-128-GCM first.
        assert neg.cipher is not None and neg.cipher.name == "AES_128_GCM"


async def test_empty_dialect_range_is_rejected(samba: Any) -> None:
    with pytest.raises(ValueError, match="min_dialect"):
        config_for(samba, min_dialect=Dialect.SMB3_1_1, max_dialect=Dialect.SMB3_0)


async def test_server_without_our_dialects(fresh_samba: Any) -> None:
    server = fresh_samba(global_options={"server min protocol": "SMB3_11"})
    cfg = config_for(server, max_dialect=Dialect.SMB3_0_2)
    with trio.fail_after(10), pytest.raises(NegotiateError, match="STATUS_NOT_SUPPORTED"):
        async with open_session(cfg):
            pass


@pytest.mark.parametrize("dialect", [Dialect.SMB3_0, Dialect.SMB3_0_2], ids=lambda d: d.name)
async def test_validate_negotiate_detects_tampered_negotiate(
    samba: Any, fault_proxy: Any, dialect: Dialect
) -> None:
    """A man in the middle changing the (unsigned) NEGOTIATE response is
    caught by the signed FSCTL_VALIDATE_NEGOTIATE_INFO: connection dropped."""
    proxy = fault_proxy(samba.host, samba.port)
    seen: list[int] = []

    def hook(direction: str, frame: bytes) -> bytes | None:
        command = int.from_bytes(frame[12:14], "little")
        seen.append(command)
        if direction == "s2c" and frame[:4] == b"\xfeSMB" and command == 0:
            b = bytearray(frame)
            b[72] ^= 0x01  # a byte of ServerGuid
            return bytes(b)
        return frame

    proxy.set_frame_hook(hook)
    cfg = config_for(samba, port=proxy.port, min_dialect=dialect, max_dialect=dialect)
    with pytest.raises(NegotiateError, match="validate negotiate"):
        async with open_session(cfg):
            pass
    assert 0x0B in seen  # the IOCTL went out


@pytest.mark.parametrize("dialect", [Dialect.SMB3_0, Dialect.SMB3_1_1], ids=lambda d: d.name)
async def test_validate_negotiate_only_for_30x(
    samba: Any, fault_proxy: Any, dialect: Dialect
) -> None:
    proxy = fault_proxy(samba.host, samba.port)
    ioctls: list[bytes] = []

    def hook(direction: str, frame: bytes) -> bytes | None:
        if direction == "c2s" and int.from_bytes(frame[12:14], "little") == 0x0B:
            ioctls.append(frame)
        return frame

    proxy.set_frame_hook(hook)
    cfg = config_for(samba, port=proxy.port, min_dialect=dialect, max_dialect=dialect)
    async with open_session(cfg) as s:
        assert s.connection.alive
    assert len(ioctls) == (1 if dialect == Dialect.SMB3_0 else 0)
    if ioctls:
        assert int.from_bytes(ioctls[0][16:20], "little") & 0x8  # signed


@pytest.mark.parametrize("field", [28, 32, 36], ids=["transact", "read", "write"])
async def test_tiny_negotiated_sizes_are_refused(
    samba: Any, fault_proxy: Any, field: int
) -> None:
    """[MS-SMB2] 3.2.5.2: MaxTransactSize/MaxReadSize/MaxWriteSize below
    64 KiB (here 0) end the connection instead of turning every read into
    a flood of 1-byte requests."""
    proxy = fault_proxy(samba.host, samba.port)

    def hook(direction: str, frame: bytes) -> bytes | None:
        if direction == "s2c" and frame[:4] == b"\xfeSMB" and frame[12:14] == b"\x00\x00":
            b = bytearray(frame)
            b[64 + field:64 + field + 4] = bytes(4)
            return bytes(b)
        return frame

    proxy.set_frame_hook(hook)
    with trio.fail_after(10), pytest.raises(NegotiateError, match="below 65536"):
        async with open_session(config_for(samba, port=proxy.port)):
            pass
