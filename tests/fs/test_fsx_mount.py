"""The random-operation checker (tests/fsx.py) on a real smbfs mount: every
read and size it checks, and the final contents (after a reopen, with the
file's cached pages dropped, and read straight from the server's disk), must
match the checker's model. No faults yet: smbfs has no reconnect; the
durable-reconnect soak adds a fault proxy through ``between_ops``."""

from __future__ import annotations

from fsmount import WorkDir
from fsx import OPS, Fsx, FsxConfig


def test_fsx_on_mount(work: WorkDir) -> None:
    # Every op is on, mmap writes and O_APPEND included: two files, renamed
    # away and back while open.
    config = FsxConfig(seed=11, ops=3000, files=2, rename=True)
    fsx = Fsx(work.path, config)
    stats = fsx.run()
    print(stats.summary())
    assert set(stats.ops) == set(OPS)
    for i in range(config.files):
        server_copy = (work.server / fsx.files[i].name).read_bytes()
        assert server_copy == fsx.expected(i), f"the server's {fsx.files[i].name} differs"
