"""The trio engine: open_session() -> Session -> Channel(s) -> Connection.

All concurrency of smbfs lives here; it speaks SMB only through smbfs.proto.
"""

from smbfs.client.client import open_session
from smbfs.client.config import ClientConfig
from smbfs.client.connection import Connection, NegotiatedInfo, Response
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    EncryptionUnavailableError,
    FeatureUnavailableError,
    HandleClosedError,
    KerberosUnavailableError,
    LocalError,
    NegotiateError,
    SigningUnavailableError,
    SMBError,
    SMBTimeoutError,
)
from smbfs.client.open import FileInfo, Open
from smbfs.client.session import Channel, Session
from smbfs.client.tree import Tree

__all__ = [
    "AuthenticationError",
    "Channel",
    "ClientConfig",
    "Connection",
    "ConnectionLostError",
    "EncryptionUnavailableError",
    "FeatureUnavailableError",
    "FileInfo",
    "HandleClosedError",
    "KerberosUnavailableError",
    "LocalError",
    "NegotiateError",
    "NegotiatedInfo",
    "Open",
    "Response",
    "SMBError",
    "SMBTimeoutError",
    "Session",
    "SigningUnavailableError",
    "Tree",
    "open_session",
]
