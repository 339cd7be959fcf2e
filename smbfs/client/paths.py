"""Operations on paths of a share that nobody needs to hold open: each opens
what it needs, acts and closes, in one round trip where a compound can do
it (:mod:`smbfs.client.compound_ops`).

Why a module of its own above :class:`~smbfs.client.tree.Tree`: the tree is
the request pipe (connect, request, compound, create) that opens are made
through; these conveniences use both the tree and :class:`Open`, so they
sit above both and neither imports them (the import graph points one way).

Every answer is decoded under its response's guard: a malformed buffer
drops the connection and raises ConnectionLostError, it never reaches the
caller as a DecodeError.

The short-lived opens made here ask for no lease and no durable handle
unless said otherwise: they are closed before either could be of use.
"""

from __future__ import annotations

from typing import Any

from smbfs.client import compound_ops
from smbfs.client.open import FileInfo, FsAttributes, FsSize, Open, SymbolicLink
from smbfs.client.tree import Tree
from smbfs.proto.create import AccessMask, CreateDisposition, CreateOptions

_A = AccessMask
_ATTRS = _A.FILE_READ_ATTRIBUTES | _A.SYNCHRONIZE


def _kind(directory: bool) -> int:
    return CreateOptions.FILE_DIRECTORY_FILE if directory else 0


async def _open(tree: Tree, path: str, access: int, *, options: int = 0,
                disposition: int = CreateDisposition.FILE_OPEN) -> Open:
    return await tree.create(path, desired_access=access | _ATTRS, options=options,
                             disposition=disposition, lease=False, durable=False)


# ---------------------------------------------------------- names and times


async def stat(tree: Tree, path: str) -> FileInfo:
    """Attributes of ``path`` in one round trip (create+query+close)."""
    return await compound_ops.stat(tree, path)


async def rename(tree: Tree, path: str, new_path: str, *, replace: bool = False) -> None:
    await compound_ops.rename(tree, path, new_path, replace=replace)


async def unlink(tree: Tree, path: str) -> None:
    await compound_ops.delete(tree, path, directory=False)


async def rmdir(tree: Tree, path: str) -> None:
    await compound_ops.delete(tree, path, directory=True)


async def mkdir(tree: Tree, path: str) -> FileInfo:
    return await compound_ops.mkdir(tree, path)


async def truncate(tree: Tree, path: str, size: int) -> None:
    """Set the size of ``path`` in one round trip (create+set-info+close)."""
    await compound_ops.truncate(tree, path, size)


async def set_times(tree: Tree, path: str, **kwargs: Any) -> None:
    """Set times/attributes of ``path`` in one round trip; see
    :func:`smbfs.client.compound_ops.set_basic`."""
    await compound_ops.set_basic(tree, path, **kwargs)


async def listdir(tree: Tree, path: str = "", pattern: str = "*") -> list[FileInfo]:
    """Every entry of a directory (without "." and "..") as FileInfo."""
    d = await tree.create(
        path, desired_access=_A.FILE_LIST_DIRECTORY | _ATTRS,
        options=CreateOptions.FILE_DIRECTORY_FILE,
    )
    async with d:
        return await d.list_directory(pattern)


async def link(tree: Tree, path: str, new_path: str, *, replace: bool = False) -> None:
    """Make ``new_path`` a hard link to the file ``path``."""
    async with await _open(tree, path, _A.FILE_WRITE_ATTRIBUTES) as op:
        await op.link(new_path, replace=replace)


async def read_symbolic_link(tree: Tree, path: str) -> SymbolicLink | None:
    """The symbolic link ``path`` holds, or None for other reparse data."""
    async with await _open(tree, path, _A.FILE_READ_DATA,
                           options=CreateOptions.FILE_OPEN_REPARSE_POINT) as op:
        return await op.get_symbolic_link()


# ------------------------------------------------------------- filesystem


async def statfs(tree: Tree, path: str = "") -> FsSize:
    """Space of the filesystem ``path`` (a directory) is on."""
    async with await _open(tree, path, 0, options=_kind(True)) as op:
        return await op.query_fs_size()


async def fs_attributes(tree: Tree, path: str = "") -> FsAttributes:
    """Capabilities and name limit of the filesystem ``path`` is on."""
    async with await _open(tree, path, 0, options=_kind(True)) as op:
        return await op.query_fs_attributes()


# ------------------------------------------------------- extended attributes


async def get_eas(tree: Tree, path: str, *, directory: bool = False,
                  output_buffer_length: int = 65536) -> list[tuple[bytes, bytes]]:
    """Every EA of ``path`` as (name, value); none is an empty list."""
    async with await _open(tree, path, _A.FILE_READ_EA, options=_kind(directory)) as op:
        return await op.query_eas(output_buffer_length=output_buffer_length)


async def set_ea(tree: Tree, path: str, name: bytes, value: bytes, *,
                 directory: bool = False) -> None:
    """Set one EA of ``path``; an empty value removes it."""
    async with await _open(tree, path, _A.FILE_WRITE_EA, options=_kind(directory)) as op:
        await op.set_ea(name, value)
