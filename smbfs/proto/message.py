"""The shape every SMB2 message body in smbfs.proto shares.

A request is encoded as a list of buffers (``encode_parts``) so that a WRITE
or IOCTL payload is handed to the transport as the caller's own memoryview,
joined once with the header, never copied here. A response is decoded from
the whole message (header included) because MS-SMB2 buffer offsets count
from the start of the header; bulk payloads come back as memoryviews into
the received buffer.
"""

from __future__ import annotations

from typing import ClassVar, Self

from smbfs.proto.codec import Buffer
from smbfs.proto.constants import Command


class Message:
    """Base of every request and response body."""

    COMMAND: ClassVar[Command]
    STRUCTURE_SIZE: ClassVar[int]

    def encode(self) -> bytes:
        """The body as one bytes object (tests and small messages)."""
        return b"".join(self.encode_parts())

    def encode_parts(self) -> list[Buffer]:
        """The body as buffers to be sent back to back; override one of the two."""
        raise NotImplementedError

    @classmethod
    def decode(cls, msg: memoryview) -> Self:
        """Decode the body of ``msg``, which starts at the SMB2 header."""
        raise NotImplementedError
