"""Sans-IO SMB2/SMB3 wire layer: bytes <-> message objects.

Nothing in this package touches a socket, a clock or trio. Every decoder
takes a bytes-like object and either returns a value or raises
:class:`smbfs.proto.codec.DecodeError`; no other exception escapes a decoder,
whatever bytes it is fed.
"""

from smbfs.proto.codec import DecodeError

__all__ = ["DecodeError"]
