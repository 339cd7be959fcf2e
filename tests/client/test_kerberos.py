"""Kerberos sessions against a real KDC: a private Samba AD DC on loopback
(:mod:`smbfs.devserver_ad`), provisioned once per test session (the ``ad_dc`` fixture of tests/conftest.py).

What the server saw is checked on the server's side: smbstatus for the
session (dialect, signing, encryption) and Samba's JSON authorization audit
for the mechanism (``authType: krb5``) and account. A DC that cannot be
provisioned makes these tests fail (fixture error with the reason), never
skip. See docs/kerberos.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conn_util import tree_connect, write_read_close
from hypothesis import given
from hypothesis import strategies as st

import smbfs.client.connection as connection_mod
from smbfs.client import AuthenticationError, ClientConfig, Session, kerberos, open_session
from smbfs.client.transport import Transport
from smbfs.devserver_ad import PrivateAdDc
from smbfs.proto.constants import Cipher, Dialect


@pytest.fixture(scope="session")
def kuser_ccache(ad_dc: PrivateAdDc) -> str:
    """A ccache holding kuser's TGT (kinit with the password on stdin)."""
    return ad_dc.kinit()


@pytest.fixture
def krb_env(ad_dc: PrivateAdDc, kuser_ccache: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process's Kerberos settings point at the private realm and
    kuser's ccache; GSSAPI reads both at each context creation."""
    for k, v in ad_dc.client_env(kuser_ccache).items():
        monkeypatch.setenv(k, v)
    return kuser_ccache


def krb_config(dc: PrivateAdDc, **kw: Any) -> ClientConfig:
    opts: dict[str, Any] = dict(host=dc.host, port=dc.port, server_name=dc.server_name,
                                auth="kerberos", request_timeout=15, echo_interval=30)
    opts.update(kw)
    return ClientConfig(**opts)


def local_port(session: Session) -> int:
    transport = session.connection.transport
    assert isinstance(transport, Transport)
    return transport.local_address[1]


def authorization_of(dc: PrivateAdDc, port: int) -> dict[str, Any]:
    """Samba's audit record of the SMB2 session set up from ``port``."""
    found = [e["Authorization"] for e in dc.auth_events()
             if e.get("type") == "Authorization"
             and e["Authorization"].get("remoteAddress", "").endswith(f":{port}")]
    assert found, f"no SMB authorization audit for client port {port}"
    return found[-1]


async def check_io(session: Session, share: str = "data") -> None:
    tree = await tree_connect(session, share)
    data = bytes(range(256)) * 64
    assert await write_read_close(session, tree, f"krb-{local_port(session)}.bin", data) == data


async def test_kerberos_311_session_does_io(ad_dc: PrivateAdDc, krb_env: str) -> None:
    async with open_session(krb_config(ad_dc)) as s:
        assert s.dialect == Dialect.SMB3_1_1
        assert not s.is_guest and not s.is_anonymous
        await check_io(s)
        port = local_port(s)
        status = ad_dc.wait_for_session(port)
        assert status["session_dialect"] == "SMB3_11"
        # smbstatus shows the idmap uid of the domain user (no nss_winbind
        # here to print the name): it must be kuser's.
        assert int(status["uid"]) == ad_dc.uid_of(ad_dc.user)
    auth = authorization_of(ad_dc, port)
    assert auth["authType"] == "krb5"
    assert (auth["domain"], auth["account"]) == ("SMBFS", "kuser")
    assert auth["serviceDescription"] == "SMB2"


async def test_kerberos_30_validate_negotiate_and_signing(ad_dc: PrivateAdDc,
                                                          krb_env: str) -> None:
    # 3.0: Session.setup runs FSCTL_VALIDATE_NEGOTIATE_INFO, signed with the
    # key derived from the Kerberos session key, and the server's signed
    # answer must verify.
    cfg = krb_config(ad_dc, max_dialect=Dialect.SMB3_0, require_signing=True)
    async with open_session(cfg) as s:
        assert s.dialect == Dialect.SMB3_0
        assert s.signing_required
        await check_io(s)
        status = ad_dc.wait_for_session(local_port(s))
        assert status["session_dialect"] == "SMB3_00"
        assert status["signing"]["cipher"] == "AES-128-CMAC"
        assert status["signing"]["degree"] == "full"
        assert authorization_of(ad_dc, local_port(s))["authType"] == "krb5"


async def test_kerberos_reauthentication(ad_dc: PrivateAdDc, krb_env: str) -> None:
    # A second SESSION_SETUP on the same SessionId ([MS-SMB2] 3.2.4.2.3),
    # what the engine does on STATUS_NETWORK_SESSION_EXPIRED: a fresh
    # Kerberos context, signed with the first one's key; the keys stay.
    async with open_session(krb_config(ad_dc, require_signing=True)) as s:
        session_id = s.session_id
        await s.reauthenticate()
        assert s.session_id == session_id
        await check_io(s)


@pytest.mark.parametrize("cipher", [None, Cipher.AES_256_GCM, Cipher.AES_256_CCM, Cipher.AES_128_CCM])
async def test_kerberos_encryption(ad_dc: PrivateAdDc, krb_env: str,
                                   monkeypatch: pytest.MonkeyPatch, cipher: Cipher | None) -> None:
    """Sealed I/O with keys from the Kerberos key. The DC's tickets use
    aes256-cts, so the GSS key is 32 bytes: AES-256 ciphers take all of it
    (Session.FullSessionKey), the others its first 16 bytes."""
    if cipher is not None:
        monkeypatch.setattr(connection_mod, "CIPHER_PREFERENCE", (cipher,))
    async with open_session(krb_config(ad_dc, require_encryption=True)) as s:
        assert s._session_key is not None and len(s._session_key) == 32
        await check_io(s)  # the whole session is sealed
        await check_io(s, "sealed")  # a share with smb encrypt = required
        status = ad_dc.wait_for_session(local_port(s))
        want = {None: "AES-128-GCM", Cipher.AES_256_GCM: "AES-256-GCM",
                Cipher.AES_256_CCM: "AES-256-CCM", Cipher.AES_128_CCM: "AES-128-CCM"}[cipher]
        assert status["encryption"] == {"cipher": want, "degree": "full"}


async def test_kerberos_30_sealed_share(ad_dc: PrivateAdDc, krb_env: str) -> None:
    async with open_session(krb_config(ad_dc, max_dialect=Dialect.SMB3_0)) as s:
        await check_io(s, "sealed")
        status = ad_dc.wait_for_session(local_port(s))
        assert status["encryption"]["cipher"] == "AES-128-CCM"


async def test_kerberos_password_without_ccache(ad_dc: PrivateAdDc, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """username + password with sec=krb5: the TGT is fetched in memory; the
    (empty) ccache is neither needed nor written."""
    ccache = tmp_path / "empty-ccache"
    for k, v in ad_dc.client_env(f"FILE:{ccache}").items():
        monkeypatch.setenv(k, v)
    cfg = krb_config(ad_dc, username=ad_dc.user2.name, domain=ad_dc.realm,
                     password=ad_dc.user2.password)
    async with open_session(cfg) as s:
        await check_io(s)
        port = local_port(s)
    auth = authorization_of(ad_dc, port)
    assert (auth["authType"], auth["account"]) == ("krb5", ad_dc.user2.name)
    assert not ccache.exists()


def _smb_authorizations(dc: PrivateAdDc) -> int:
    return sum(1 for e in dc.auth_events() if e.get("type") == "Authorization"
               and e["Authorization"].get("serviceDescription") == "SMB2")


async def test_no_ticket_is_clear_and_never_ntlm(ad_dc: PrivateAdDc, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ad_dc.client_env(f"FILE:{tmp_path / 'no-such-ccache'}").items():
        monkeypatch.setenv(k, v)
    before = _smb_authorizations(ad_dc)
    # Even with a username whose NTLM logon would succeed (no password is
    # given for Kerberos): nothing may fall back to NTLM.
    cfg = krb_config(ad_dc, username=ad_dc.user.name)
    with pytest.raises(AuthenticationError) as ei:
        async with open_session(cfg):
            pass
    msg = str(ei.value)
    assert "kerberos" in msg.lower()
    assert "credentials" in msg.lower() or "ticket" in msg.lower(), msg
    assert _smb_authorizations(ad_dc) == before


async def test_wrong_spn_is_clear(ad_dc: PrivateAdDc, krb_env: str) -> None:
    # The TCP address is right, the name (the SPN's host part) is not one
    # the KDC knows: the service ticket request fails, with the KDC's reason.
    cfg = krb_config(ad_dc, server_name="not-the-dc")
    with pytest.raises(AuthenticationError) as ei:
        async with open_session(cfg):
            pass
    msg = str(ei.value)
    assert "kerberos" in msg.lower()
    assert "not found in Kerberos database" in msg, msg


# -- the SPNEGO framing alone (no server): shapes Samba never sends us ------


class FakeKerberos:
    """Stands in for pyspnego's Kerberos context to drive KerberosSpnego
    through the SPNEGO states a DC may use (a MIC, request-mic, reject)."""

    def __init__(self) -> None:
        self.complete = False
        self.verified: list[tuple[bytes, bytes]] = []

    def step(self, token: bytes | None) -> bytes | None:
        if token is None:
            return b"\x60\x03AP-REQ"
        assert token == b"AP-REP"
        self.complete = True
        return None

    def verify(self, data: bytes, mic: bytes) -> int:
        if mic != b"good-mic":
            raise RuntimeError("bad MIC")
        self.verified.append((data, mic))
        return 0

    def sign(self, data: bytes) -> bytes:
        return b"our-mic"


def fake_context(monkeypatch: pytest.MonkeyPatch) -> tuple[kerberos.KerberosSpnego, FakeKerberos]:
    fake = FakeKerberos()
    monkeypatch.setattr(kerberos.spnego, "client", lambda *a, **kw: fake)
    return kerberos.KerberosSpnego(None, None, hostname="srv"), fake


def neg_token_resp(state: int | None = None, mech: bytes | None = None,
                   token: bytes | None = None, mic: bytes | None = None) -> bytes:
    tlv = kerberos._tlv
    fields = []
    if state is not None:
        fields.append(tlv(0xA0, tlv(0x0A, bytes((state,)))))
    if mech is not None:
        fields.append(tlv(0xA1, mech))
    if token is not None:
        fields.append(tlv(0xA2, tlv(0x04, token)))
    if mic is not None:
        fields.append(tlv(0xA3, tlv(0x04, mic)))
    return tlv(0xA1, tlv(0x30, *fields))


def test_neg_token_init_offers_kerberos_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from spnego._spnego import unpack_token  # an independent DER decoder

    ctx, _ = fake_context(monkeypatch)
    init = unpack_token(ctx.step(None))
    assert init.mech_types == ["1.2.840.113554.1.2.2", "1.2.840.48018.1.2.2"]
    assert init.mech_token == b"\x60\x03AP-REQ"


def test_accept_completed_with_mic(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, fake = fake_context(monkeypatch)
    ctx.step(None)
    assert ctx.step(neg_token_resp(0, kerberos.OID_MS_KRB5, b"AP-REP", b"good-mic")) is None
    assert ctx.complete
    [(data, _)] = fake.verified
    assert data == kerberos._tlv(0x30, kerberos.OID_KRB5, kerberos.OID_MS_KRB5)


def test_request_mic_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    from spnego._spnego import unpack_token

    ctx, _ = fake_context(monkeypatch)
    ctx.step(None)
    out = ctx.step(neg_token_resp(kerberos.REQUEST_MIC, kerberos.OID_KRB5, b"AP-REP"))
    assert out is not None and unpack_token(out).mech_list_mic == b"our-mic"


@pytest.mark.parametrize("resp, match", [
    (neg_token_resp(kerberos.REJECT), "rejected"),
    # 1.3.6.1.4.1.311.2.2.10 (NTLMSSP): never continued.
    (neg_token_resp(1, bytes.fromhex("060a2b06010401823702020a"), b"NTLM"), "other than Kerberos"),
    (neg_token_resp(0, kerberos.OID_KRB5, b"AP-REP", b"bad-mic"), "bad MIC"),
    (neg_token_resp(0, kerberos.OID_KRB5), "mutual authentication"),
    (b"\xa1\x05\x30\x03\xa0\x01", "DER"),
    (b"\x04\x00", "NegTokenResp"),
])
def test_bad_answers_fail(monkeypatch: pytest.MonkeyPatch, resp: bytes, match: str) -> None:
    ctx, _ = fake_context(monkeypatch)
    ctx.step(None)
    with pytest.raises(ValueError, match=match):
        ctx.step(resp)
    assert not ctx.complete


@given(st.binary(max_size=64))
def test_neg_token_resp_decode_total(data: bytes) -> None:
    try:
        kerberos.NegTokenResp.decode(data)
    except kerberos.SpnegoFormatError:
        pass


async def test_kerberos_session_reconnects_from_the_ticket_cache(
        ad_dc: PrivateAdDc, krb_env: str, fault_proxy: Any) -> None:
    """A cut costs a Kerberos session nothing: the reconnect authenticates
    again with a ticket from the cache (no password in memory)."""
    import trio

    from smbfs.client import paths
    from smbfs.client.tree import Tree
    from smbfs.proto.create import CreateDisposition

    proxy = fault_proxy(ad_dc.host, ad_dc.port)
    cfg = krb_config(ad_dc, port=proxy.port, reconnect=True, reconnect_backoff_max=0.5)
    before = krb5_authorizations(ad_dc)
    data = bytes(range(256)) * 256
    with trio.fail_after(60):
        async with open_session(cfg) as s, await Tree.connect(s, "data") as tree:
            f = await tree.create("krb-reconnect.bin", disposition=CreateDisposition.FILE_OVERWRITE_IF)
            await f.write(0, data[:1000])
            proxy.cut_all()
            await f.write(1000, data[1000:])
            assert s.stats.reconnects == 1 and s.stats.handles_lost == 0
            assert bytes(await f.read(0, len(data))) == data
            await f.close()
            await paths.unlink(tree, "krb-reconnect.bin")
    assert proxy.connections_accepted == 2
    after = krb5_authorizations(ad_dc)
    assert after - before >= 2, (before, after)  # the first logon and the reconnect's


def krb5_authorizations(dc: PrivateAdDc) -> int:
    return sum(1 for e in dc.auth_events() if e.get("type") == "Authorization"
               and e["Authorization"].get("authType") == "krb5")
