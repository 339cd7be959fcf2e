"""Extended attributes: the ``user.`` xattr namespace stored as SMB EAs.

``user.foo`` is the EA ``foo`` ([MS-FSCC] 2.4.15 FILE_FULL_EA_INFORMATION);
other namespaces (security., trusted., system.) have no SMB counterpart and
get EOPNOTSUPP. EA names are case-insensitive on the server, so lookups
here are too. The name and value rules are in :mod:`smbfs.fs.posix`.
"""

from __future__ import annotations

import logging

import pyfuse3

from smbfs.client import paths
from smbfs.client.errors import SMBError
from smbfs.client.tree import Tree
from smbfs.fs import posix
from smbfs.fs.inodes import Node

# API vocabulary of the engine: SMBError.status is an NTSTATUS code.
from smbfs.proto.ntstatus import NTStatus

log = logging.getLogger(__name__)

_NO_EAS = (NTStatus.STATUS_EAS_NOT_SUPPORTED, NTStatus.STATUS_NOT_SUPPORTED,
           NTStatus.STATUS_INVALID_DEVICE_REQUEST)


async def probe(tree: Tree, root: Node) -> bool:
    """Does the share take EAs? Ask for the root's (an empty answer is
    fine; STATUS_EAS_NOT_SUPPORTED is not). Samba 4.17 serves EAs without
    announcing FILE_SUPPORTS_EXTENDED_ATTRIBUTES, hence the probe."""
    try:
        await _all(tree, root)
    except SMBError as e:
        if e.status in _NO_EAS:
            return False
        log.debug("EA probe: %s", e)
    return True


async def _all(tree: Tree, node: Node) -> list[tuple[bytes, bytes]]:
    # An EA with an empty value does not exist ([MS-FSCC] 2.4.15).
    return [(n, v) for n, v in await paths.get_eas(tree, node.path, directory=node.is_dir)
            if v]


async def get(tree: Tree, node: Node, name: bytes, supported: bool) -> bytes:
    ea = posix.ea_name(name, supported).lower()
    for n, v in await _all(tree, node):
        if n.lower() == ea:
            return v
    raise pyfuse3.FUSEError(pyfuse3.ENOATTR)


async def names(tree: Tree, node: Node, supported: bool) -> list[bytes]:
    if not supported:
        return []
    return [b"user." + n for n, _ in await _all(tree, node)]


async def store(tree: Tree, node: Node, ea: bytes, value: bytes) -> None:
    posix.check_ea_value(value)
    await paths.set_ea(tree, node.path, ea, value, directory=node.is_dir)


async def remove(tree: Tree, node: Node, ea: bytes) -> None:
    have = {n.lower(): n for n, _ in await _all(tree, node)}
    if ea.lower() not in have:
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
    await paths.set_ea(tree, node.path, have[ea.lower()], b"", directory=node.is_dir)
