"""Local errors apart from server errors: their errno in the FUSE layer
(their CLI line: tests/cli/test_mount_options.py), and the one helper that turns a trio exception
group back into the error a caller expects."""

from __future__ import annotations

import errno

import pyfuse3
import pytest
import trio
import trio.testing

from smbfs.client import (
    ConnectionLostError,
    EncryptionUnavailableError,
    HandleClosedError,
    KerberosUnavailableError,
    LocalError,
    SMBError,
)
from smbfs.client.errors import single_error
from smbfs.fs.errors import to_fuse_error


@pytest.mark.parametrize("exc,err", [
    (HandleClosedError("'f' is closed"), errno.EBADF),
    (KerberosUnavailableError("no gssapi"), errno.EOPNOTSUPP),
    (EncryptionUnavailableError("no cipher"), errno.EOPNOTSUPP),
    (LocalError("something else"), errno.EIO),
])
def test_local_errors_map_to_their_errno(exc: LocalError, err: int) -> None:
    assert not isinstance(exc, SMBError | ConnectionLostError)  # never the server's word
    fe = to_fuse_error(exc, "test")
    assert isinstance(fe, pyfuse3.FUSEError) and fe.errno == err


def test_single_error_unwraps_and_keeps_the_group() -> None:
    inner = SMBError(0xC0000022)
    group = BaseExceptionGroup("x", [BaseExceptionGroup("y", [inner])])
    assert single_error(group) is inner and inner.__cause__ is group
    plain = ValueError("not a group")
    assert single_error(plain) is plain and plain.__cause__ is None


async def test_single_error_prefers_a_real_error_to_cancelled_siblings() -> None:
    """A pipelined read's chunk fails; the nursery cancels its siblings:
    the caller gets the chunk's error, as from a single request."""
    lost = ConnectionLostError("gone")

    async def fails() -> None:
        await trio.testing.wait_all_tasks_blocked()
        raise lost

    with pytest.raises(BaseExceptionGroup) as ei:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fails)
    assert single_error(ei.value) is lost


def test_single_error_keeps_an_existing_cause() -> None:
    try:
        try:
            raise OSError(111, "refused")
        except OSError as e:
            raise ConnectionLostError("cannot connect") from e
    except ConnectionLostError as e:
        err = e
    group = BaseExceptionGroup("g", [err])
    assert single_error(group) is err and isinstance(err.__cause__, OSError)
