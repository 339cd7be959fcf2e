"""Kerberos inside SPNEGO for SESSION_SETUP, with Kerberos as the only
mechanism offered.

SMB servers expect a SPNEGO NegotiationToken ([RFC 4178], [MS-SPNG]) in the
SESSION_SETUP security buffer, as Windows and cifs.ko send. pyspnego's own
"negotiate" protocol would also offer NTLM and fall back to it without a
word when the Kerberos context cannot be built (no ticket, KDC down, python
gssapi missing); a user who asked for sec=krb5 must get an error instead. So
the Kerberos part (AP-REQ, AP-REP, session key, MIC) comes from pyspnego's
"kerberos" protocol (GSSAPI underneath) and this module adds the thin SPNEGO
framing around it: a NegTokenInit listing only the Kerberos mechanisms with
the AP-REQ as optimistic mechToken, then NegTokenResp parsing, mechListMIC
checks ([RFC 4178] 5) included.

The DER here is the handful of fixed shapes SPNEGO uses, not a general
ASN.1 codec; every length read from the server is bounds-checked and a
malformed token raises :class:`SpnegoFormatError`.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import spnego

log = logging.getLogger(__name__)

# DER encodings (tag 0x06, length, value) of the mechanism OIDs.
OID_SPNEGO: Final = bytes.fromhex("06062b0601050502")  # 1.3.6.1.5.5.2
OID_KRB5: Final = bytes.fromhex("06092a864886f712010202")  # 1.2.840.113554.1.2.2
# 1.2.840.48018.1.2.2: the OID Windows historically announces for Kerberos
# ([MS-SPNG] 3.1.5.2); an acceptor may echo it back as supportedMech.
OID_MS_KRB5: Final = bytes.fromhex("06092a864882f712010202")
_KERBEROS_OIDS: Final = frozenset((OID_KRB5, OID_MS_KRB5))

# NegTokenResp negState values ([RFC 4178] 4.2.2).
ACCEPT_COMPLETED: Final = 0
ACCEPT_INCOMPLETE: Final = 1
REJECT: Final = 2
REQUEST_MIC: Final = 3


class KerberosError(ValueError):
    """Kerberos failed on this side: no ticket, unknown realm or SPN, KDC
    unreachable... (the message carries GSSAPI's/libkrb5's reason)."""


class SpnegoFormatError(ValueError):
    """The server's SPNEGO token is not well-formed DER of the expected shape."""


def _local(what: str, fn: Any, *args: Any) -> Any:
    """Call into pyspnego/GSSAPI/libkrb5, whose failures come as several
    unrelated exception types (SpnegoError, krb5.Krb5Error, GSSError):
    one type, with the library's own reason, for the session layer."""
    try:
        return fn(*args)
    except Exception as e:
        raise KerberosError(f"{what}: {type(e).__name__}: {e}") from e


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"".join((bytes((tag,)), _der_len(len(body)), body))


def _read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``pos``."""
    if pos + 2 > end:
        raise SpnegoFormatError("truncated DER element")
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise SpnegoFormatError("bad DER length")
        length = int.from_bytes(buf[pos:pos + count], "big")
        pos += count
    if length > end - pos:
        raise SpnegoFormatError("DER length runs past the token")
    return tag, pos, pos + length


def encode_neg_token_init(mech_types: bytes, mech_token: bytes) -> bytes:
    """InitialContextToken carrying a NegTokenInit ([RFC 4178] 4.2.1);
    ``mech_types`` is the DER MechTypeList (SEQUENCE OF OID)."""
    neg_token_init = _tlv(0x30, _tlv(0xA0, mech_types), _tlv(0xA2, _tlv(0x04, mech_token)))
    return _tlv(0x60, OID_SPNEGO, _tlv(0xA0, neg_token_init))


def encode_neg_token_resp(response_token: bytes | None, mech_list_mic: bytes | None) -> bytes:
    """A client's follow-up NegTokenResp ([RFC 4178] 4.2.2): negState is
    left out, as the initiator's continuation tokens do."""
    fields = []
    if response_token:
        fields.append(_tlv(0xA2, _tlv(0x04, response_token)))
    if mech_list_mic:
        fields.append(_tlv(0xA3, _tlv(0x04, mech_list_mic)))
    return _tlv(0xA1, _tlv(0x30, *fields))


class NegTokenResp:
    """The fields of an acceptor's NegTokenResp ([RFC 4178] 4.2.2)."""

    __slots__ = ("mech_list_mic", "neg_state", "response_token", "supported_mech")

    def __init__(self, neg_state: int | None, supported_mech: bytes | None,
                 response_token: bytes | None, mech_list_mic: bytes | None) -> None:
        self.neg_state = neg_state
        self.supported_mech = supported_mech
        self.response_token = response_token
        self.mech_list_mic = mech_list_mic

    @classmethod
    def decode(cls, token: bytes) -> NegTokenResp:
        tag, start, end = _read_tlv(token, 0, len(token))
        if tag != 0xA1:
            raise SpnegoFormatError(f"expected a NegTokenResp ([1]), got tag {tag:#04x}")
        tag, pos, end = _read_tlv(token, start, end)
        if tag != 0x30:
            raise SpnegoFormatError("NegTokenResp is not a SEQUENCE")
        state = mech = resp = mic = None
        while pos < end:
            ctx_tag, vstart, vend = _read_tlv(token, pos, end)
            pos = vend
            inner, istart, iend = _read_tlv(token, vstart, vend)
            if ctx_tag == 0xA0 and inner == 0x0A and iend - istart == 1:
                state = token[istart]
            elif ctx_tag == 0xA1 and inner == 0x06:
                mech = token[vstart:iend]
            elif ctx_tag == 0xA2 and inner == 0x04:
                resp = token[istart:iend]
            elif ctx_tag == 0xA3 and inner == 0x04:
                mic = token[istart:iend]
            else:
                raise SpnegoFormatError(f"unexpected NegTokenResp field {ctx_tag:#04x}/{inner:#04x}")
        return cls(state, mech, resp, mic)


class KerberosSpnego:
    """A client SPNEGO context that offers Kerberos only.

    Same duck type as a pyspnego context (``step``, ``complete``,
    ``session_key``) so the SESSION_SETUP loop treats it like the others.
    Errors from GSSAPI (no ticket, unknown SPN, KDC unreachable) surface
    from ``__init__``/``step`` as :class:`KerberosError`; protocol problems
    as :class:`SpnegoFormatError` or ``ValueError``.
    """

    def __init__(self, username: str | None, password: str | None, hostname: str,
                 service: str = "cifs") -> None:
        self._krb: Any = _local("Kerberos context", lambda: spnego.client(
            username, password, hostname=hostname, service=service, protocol="kerberos"))
        # Windows and cifs.ko also list the legacy MS OID; Kerberos proper
        # first so the optimistic AP-REQ matches the preferred mechanism.
        self._mech_types = _tlv(0x30, OID_KRB5, OID_MS_KRB5)
        self._started = False
        self._done = False
        self._mic_seen = False

    @property
    def complete(self) -> bool:
        return self._done

    @property
    def negotiated_protocol(self) -> str:
        return "kerberos"

    @property
    def session_key(self) -> bytes:
        """The GSS session key: 16 or 32 bytes depending on the ticket's
        enctype; the SMB KDF takes what it needs ([MS-SMB2] 3.2.5.3.1)."""
        return bytes(_local("Kerberos session key", lambda: self._krb.session_key))

    def step(self, token: bytes | None) -> bytes | None:
        if not self._started:
            self._started = True
            ap_req = _local("Kerberos AP-REQ", self._krb.step, None)
            if not ap_req:
                raise ValueError("Kerberos produced no initial token")
            return encode_neg_token_init(self._mech_types, bytes(ap_req))
        if token is None:
            raise ValueError("SPNEGO: the server sent no token to continue with")
        resp = NegTokenResp.decode(bytes(token))
        if resp.neg_state == REJECT:
            raise ValueError("the server rejected Kerberos (SPNEGO negState reject)")
        if resp.supported_mech is not None and resp.supported_mech not in _KERBEROS_OIDS:
            raise ValueError("the server chose a mechanism other than Kerberos "
                             f"(OID DER {resp.supported_mech.hex()})")
        out = None
        if resp.response_token:
            out = _local("Kerberos AP-REP", self._krb.step, resp.response_token)
        if resp.mech_list_mic is not None:
            if not self._krb.complete:
                raise ValueError("SPNEGO mechListMIC before the Kerberos context completed")
            # Raises on a bad MIC: the mechanism list was tampered with.
            _local("SPNEGO mechListMIC check", self._krb.verify, self._mech_types,
                   resp.mech_list_mic)
            self._mic_seen = True
        if resp.neg_state == ACCEPT_COMPLETED:
            if not self._krb.complete:
                raise ValueError("the server completed SPNEGO but Kerberos mutual "
                                 "authentication did not (no AP-REP)")
            self._done = True
            return None
        # accept-incomplete or request-mic: answer, with our MIC once the
        # Kerberos context is up ([RFC 4178] 5 d).
        mic = (_local("SPNEGO mechListMIC", self._krb.sign, self._mech_types)
               if self._krb.complete else None)
        if mic is not None and self._mic_seen:
            self._done = True
        if not out and not mic:
            raise ValueError("SPNEGO: the server wants more but Kerberos has nothing to send")
        return encode_neg_token_resp(bytes(out) if out else None, mic)
