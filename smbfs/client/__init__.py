"""The trio engine: Client -> Session -> Channel(s) -> Connection.

All concurrency of smbfs lives here; it speaks SMB only through smbfs.proto.
"""

from smbfs.client.client import open_session
from smbfs.client.config import ClientConfig
from smbfs.client.connection import Connection, NegotiatedInfo, Response
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    NegotiateError,
    SMBError,
    SMBTimeoutError,
)
from smbfs.client.session import Channel, Session

__all__ = [
    "AuthenticationError",
    "Channel",
    "ClientConfig",
    "Connection",
    "ConnectionLostError",
    "NegotiateError",
    "NegotiatedInfo",
    "Response",
    "SMBError",
    "SMBTimeoutError",
    "Session",
    "open_session",
]
