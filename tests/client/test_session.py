"""Session setup outcomes, errors, re-authentication, logoff and the
request/compound API, against the real Samba."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from conn_util import pattern, tree_connect, write_read_close
from smb_trees import config_for

from smbfs.client import AuthenticationError, SMBError, open_session
from smbfs.proto.close import CloseRequest
from smbfs.proto.constants import Command, Dialect
from smbfs.proto.create import (
    AccessMask,
    CreateDisposition,
    CreateOptions,
    CreateRequest,
    CreateResponse,
)
from smbfs.proto.fileid import RELATED
from smbfs.proto.ntstatus import NTStatus
from smbfs.proto.simple import EchoRequest


async def test_wrong_password(samba: Any) -> None:
    with pytest.raises(AuthenticationError) as ei:
        async with open_session(config_for(samba, password="not-the-password")):
            pass
    assert ei.value.status == NTStatus.STATUS_LOGON_FAILURE
    assert ei.value.status_name == "STATUS_LOGON_FAILURE"
    assert ei.value.command == Command.SMB2_SESSION_SETUP
    assert "STATUS_LOGON_FAILURE (0xC000006D) on SMB2_SESSION_SETUP" in str(ei.value)
    assert "not-the-password" not in str(ei.value)


async def test_unknown_user(samba: Any) -> None:
    with pytest.raises(AuthenticationError) as ei:
        async with open_session(config_for(samba, username="nosuchuser")):
            pass
    assert ei.value.status_name == "STATUS_LOGON_FAILURE"


async def test_unknown_share(samba: Any) -> None:
    async with open_session(config_for(samba)) as s:
        with pytest.raises(SMBError) as ei:
            await tree_connect(s, "no-such-share")
        assert ei.value.status_name == "STATUS_BAD_NETWORK_NAME"
        assert ei.value.command == Command.SMB2_TREE_CONNECT
        await s.request(EchoRequest())  # the session is still fine


async def test_second_user(samba: Any) -> None:
    cfg = config_for(samba, username=samba.user2.name, password=samba.user2.password)
    async with open_session(cfg) as s:
        tree = await tree_connect(s, samba.shares.rw)
        assert await write_read_close(s, tree, "user2.bin", b"u2") == b"u2"
        names = {v["username"] for v in samba.smbstatus()["sessions"].values()}
        assert samba.user2.name in names


async def test_password_not_in_repr(samba: Any) -> None:
    cfg = config_for(samba)
    assert samba.user.password not in repr(cfg)


async def test_kerberos_without_ticket_is_clear(samba: Any) -> None:
    with pytest.raises(AuthenticationError, match=r"(?i)kerberos"):
        async with open_session(config_for(samba, auth="kerberos")):
            pass


async def test_anonymous_session(samba: Any) -> None:
    async with open_session(config_for(samba, auth="anonymous", username="", password="")) as s:
        assert s.is_anonymous
        assert not s.signing_required
        await tree_connect(s, "IPC$")


async def test_guest_session(fresh_samba: Any) -> None:
    server = fresh_samba(global_options={"map to guest": "bad user"},
                         share_options={"share": {"guest ok": "yes"}})
    cfg = config_for(server, auth="guest", username="someone-unknown")
    async with open_session(cfg) as s:
        assert s.is_guest
        tree = await tree_connect(s, server.shares.rw)
        assert tree.tree_id


async def test_guest_refused_when_signing_required(fresh_samba: Any) -> None:
    server = fresh_samba(global_options={"map to guest": "bad user"})
    cfg = config_for(server, auth="guest", username="someone-unknown", require_signing=True)
    with pytest.raises(AuthenticationError, match="guest"):
        async with open_session(cfg):
            pass


@pytest.mark.parametrize("opts", [{"require_signing": True}, {"require_encryption": True},
                                  {"max_dialect": Dialect.SMB2_1}], ids=["signed", "sealed", "smb21"])
async def test_reauthenticate_keeps_session(samba: Any, opts: dict[str, Any]) -> None:
    async with open_session(config_for(samba, **opts)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        sid = s.session_id
        await s.reauthenticate()
        assert s.session_id == sid
        assert await write_read_close(s, tree, "reauth.bin", b"again") == b"again"


async def test_logoff_ends_server_session(samba: Any) -> None:
    async with open_session(config_for(samba)) as s:
        sid = s.session_id
        assert any(int(v["session_id"]) == sid for v in samba.smbstatus()["sessions"].values())
    with trio.fail_after(10):
        while any(int(v["session_id"]) == sid
                  for v in samba.smbstatus()["sessions"].values()):
            await trio.sleep(0.05)


async def test_ok_statuses_and_warning(samba: Any) -> None:
    async with open_session(config_for(samba)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        missing = CreateRequest(name="does-not-exist.txt", desired_access=AccessMask.GENERIC_READ,
                                create_disposition=CreateDisposition.FILE_OPEN)
        with pytest.raises(SMBError) as ei:
            await s.request(missing, tree_id=tree.tree_id)
        assert ei.value.status_name == "STATUS_OBJECT_NAME_NOT_FOUND"
        resp = await s.request(missing, tree_id=tree.tree_id,
                               ok_statuses={NTStatus.STATUS_OBJECT_NAME_NOT_FOUND})
        assert resp.status == NTStatus.STATUS_OBJECT_NAME_NOT_FOUND


@pytest.mark.parametrize("opts", [{}, {"require_signing": True}, {"require_encryption": True},
                                  {"require_signing": True, "max_dialect": Dialect.SMB2_1}],
                         ids=["plain", "signed", "sealed", "signed-smb21"])
async def test_related_compound_create_close(samba: Any, opts: dict[str, Any]) -> None:
    async with open_session(config_for(samba, **opts)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        create = CreateRequest(
            name="compound.txt",
            desired_access=AccessMask.GENERIC_READ | AccessMask.GENERIC_WRITE | AccessMask.DELETE,
            create_disposition=CreateDisposition.FILE_OVERWRITE_IF,
            create_options=CreateOptions.FILE_DELETE_ON_CLOSE,
        )
        frames = s.connection.frames_sent
        results = await s.compound([create, CloseRequest(file_id=RELATED)], tree_id=tree.tree_id)
        assert s.connection.frames_sent == frames + 1
        assert all(not isinstance(r, SMBError) for r in results)
        created = results[0]
        assert not isinstance(created, SMBError)
        assert CreateResponse.decode(created.msg).file_id != RELATED
        # A failing first element: both parts fail, reported in place.
        bad = CreateRequest(name="no/such/dir/x", desired_access=AccessMask.GENERIC_READ)
        results = await s.compound([bad, CloseRequest(file_id=RELATED)], tree_id=tree.tree_id)
        assert isinstance(results[0], SMBError)
        assert results[0].status_name == "STATUS_OBJECT_PATH_NOT_FOUND"
        assert isinstance(results[1], SMBError)


async def test_many_requests_in_flight(samba: Any) -> None:
    async with open_session(config_for(samba)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            data = pattern(70_000, seed=100 + i)
            results[i] = await write_read_close(s, tree, f"many-{i}.bin", data)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(one, i)
        assert all(results[i] == pattern(70_000, seed=100 + i) for i in range(40))
        assert s.connection.peak_in_flight > 10
        assert s.connection.credits.available > 40  # the window grew past one credit


async def test_small_credit_window_queues_requests(
    samba: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the client asking for a window of only 8 credits, 30 concurrent
    4-credit requests wait their turn for credits and all complete."""
    import smbfs.client.connection as connection_module
    from smbfs.client.credits import CreditWindow

    monkeypatch.setattr(connection_module, "CreditWindow",
                        lambda: CreditWindow(initial=1, target=8))
    async with open_session(config_for(samba)) as s:
        tree = await tree_connect(s, samba.shares.rw)
        assert s.connection.credits.available <= 16
        results: dict[int, bytes] = {}

        async def one(i: int) -> None:
            data = pattern(200_000, seed=500 + i)  # CreditCharge 4 each
            results[i] = await write_read_close(s, tree, f"small-window-{i}.bin", data)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(30):
                    nursery.start_soon(one, i)
        assert all(results[i] == pattern(200_000, seed=500 + i) for i in range(30))
        assert s.connection.credits.waits > 0  # requests did queue for credits


async def test_domain_qualified_user(samba: Any) -> None:
    """The domain goes into the NTLM AUTHENTICATE message; Samba's own
    workgroup name (the default "WORKGROUP") is accepted for its local users."""
    async with open_session(config_for(samba, domain="WORKGROUP")) as s:
        names = {v["username"] for v in samba.smbstatus()["sessions"].values()
                 if int(v["session_id"]) == s.session_id}
        assert names == {samba.user.name}
