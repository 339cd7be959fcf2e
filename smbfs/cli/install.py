"""``smbfs install-helper``: the /sbin/mount.smbfs symlink mount(8) needs.

mount(8) runs ``/sbin/mount.<type>`` for ``mount -t <type>`` and fstab
lines; a symlink to the venv's console script keeps the venv's interpreter
(its shebang) without copying anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def entry_point() -> Path:
    """The ``mount.smbfs`` script installed beside this interpreter."""
    # Not resolved: a venv's python is a symlink to the system one, and the
    # venv's bin directory is what we want.
    return Path(os.path.abspath(sys.executable)).parent / "mount.smbfs"


def _is_smbfs_link(path: Path) -> bool:
    return path.is_symlink() and Path(os.readlink(path)).name == "mount.smbfs"


def install_helper(target: str = "/sbin/mount.smbfs", *, force: bool = False,
                   remove: bool = False) -> int:
    src = entry_point()
    dst = Path(target)
    if remove:
        if dst.is_symlink() and Path(os.readlink(dst)) == src:
            dst.unlink()
            print(f"removed {dst}")
        else:
            print(f"{dst} is not our symlink; left alone")
        return 0
    if not src.exists():
        print(f"smbfs install-helper: {src} not found (is smbfs installed in this venv?)",
              file=sys.stderr)
        return 1
    if dst.is_symlink() and Path(os.readlink(dst)) == src:
        print(f"{dst} -> {src} (already installed)")
        return 0
    if dst.exists() or dst.is_symlink():
        # A symlink to some other checkout's (or a removed venv's) mount.smbfs
        # is an older smbfs install: the checkout being set up takes it over.
        # Anything else (a real file, a link elsewhere) needs --force.
        if not force and not _is_smbfs_link(dst):
            print(f"smbfs install-helper: {dst} exists and is not ours; --force replaces it",
                  file=sys.stderr)
            return 1
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}")
    try:
        tmp.symlink_to(src)
        os.replace(tmp, dst)  # atomic: a concurrent mount sees old or new, never none
    except OSError as e:
        tmp.unlink(missing_ok=True)
        print(f"smbfs install-helper: cannot create {dst}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{dst} -> {src}")
    return 0
