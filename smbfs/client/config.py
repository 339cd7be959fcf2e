"""What a client needs to reach and authenticate to one server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal

from smbfs.proto.constants import Dialect

AuthMethod = Literal["ntlm", "kerberos", "guest", "anonymous"]


@dataclass(slots=True)
class ClientConfig:
    """Connection, authentication and engine limits.

    ``request_timeout`` bounds the wait for a response when neither a
    response nor an interim (STATUS_PENDING) response arrives; after an
    interim response the request may legitimately take forever (change
    notify, blocking lock), so the bound is lifted and liveness is proven by
    the ECHO keepalive instead (``echo_interval``): a connection with no
    traffic from the peer for ``echo_interval`` gets an ECHO that must be
    answered within another ``echo_interval``.
    """

    host: str
    username: str = ""
    password: str = field(default="", repr=False)
    domain: str = ""
    port: int = 445
    auth: AuthMethod = "ntlm"
    min_dialect: Dialect = Dialect.SMB2_0_2
    max_dialect: Dialect = Dialect.SMB3_1_1
    require_signing: bool = False
    require_encryption: bool = False
    echo_interval: float = 60.0
    request_timeout: float = 60.0
    connect_timeout: float = 20.0
    max_in_flight: int = 32
    # Offer SMB2_GLOBAL_CAP_DIRECTORY_LEASING on 3.x ([MS-SMB2] 3.2.4.2.2.2):
    # a server that grants directory leases lets a cache of a directory's
    # names be exact while the lease holds.
    directory_leasing: bool = True
    # Reconnect ([MS-SMB2] 3.2.4.4 durable reclaim): a lost connection is
    # re-established and requests in flight are replayed. Off by default in
    # the engine (a caller that wants a cut to be an error gets one); the
    # FUSE mount turns it on. ``hard`` waits for the server forever; soft
    # (the default) fails an operation once the server has been unreachable
    # for ``soft_timeout`` seconds.
    reconnect: bool = False
    hard: bool = False
    soft_timeout: float = 30.0
    # The longest wait between two reconnect attempts (the backoff starts
    # at ``reconnect_backoff_min`` and doubles).
    reconnect_backoff_min: float = 0.05
    reconnect_backoff_max: float = 5.0
    # The whole first contact (TCP, NEGOTIATE, SESSION_SETUP) of
    # open_session: a server that accepts TCP and never answers must not
    # hold a mount for request_timeout per step.
    first_contact_timeout: float = 30.0
    client_guid: uuid.UUID = field(default_factory=uuid.uuid4)
    # Name the server knows itself by: the SPN host part and the
    # \\server\share prefix of tree connects. Defaults to ``host``.
    server_name: str = ""
    # The largest frame accepted from the server; a larger length field is
    # treated as malformed input (8 MiB LARGE_MTU payload + headers + slack).
    max_frame_size: int = 16 * 1024 * 1024 + 4096

    def __post_init__(self) -> None:
        # Fail at configuration time, with the field's name, rather than as
        # an obscure protocol error later.
        if self.auth not in ("ntlm", "kerberos", "guest", "anonymous"):
            raise ValueError(f"auth must be ntlm, kerberos, guest or anonymous, not {self.auth!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        if self.min_dialect > self.max_dialect:
            raise ValueError(f"min_dialect {self.min_dialect.name} is above "
                             f"max_dialect {self.max_dialect.name}")
        for name in ("echo_interval", "request_timeout", "connect_timeout", "soft_timeout",
                     "first_contact_timeout", "reconnect_backoff_min",
                     "reconnect_backoff_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")

    @property
    def target_name(self) -> str:
        return self.server_name or self.host
