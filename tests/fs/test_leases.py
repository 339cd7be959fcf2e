"""Every file the mount opens holds a lease (so that its handle can be
durable, and a reconnect can take it back), under one lease key per file:
our own opens and renames never break our own lease, another client's
open does, and nobody waits for the acknowledgment."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fsmount import WorkDir

from smbfs.devserver import PrivateSamba

# Far below Samba's own break timeout (35 s): an smbclient that finishes
# within it was not held up waiting for our acknowledgment.
BOUND = 15.0


def _opens(samba: PrivateSamba, name: str) -> list[dict[str, Any]]:
    """The server's opens of the file whose last name component is ``name``."""
    out = []
    for f in samba.open_files():
        fn = str(f.get("filename", "")).replace("\\", "/")
        if fn == name or fn.endswith("/" + name):
            out.extend((f.get("opens") or {}).values())
    return out


def _leases(samba: PrivateSamba, name: str) -> list[tuple[str, str]]:
    """(lease key, lease state) of every open of ``name`` on the server."""
    return [((o.get("lease") or {}).get("lease_key", ""), (o.get("lease") or {}).get("text", ""))
            for o in _opens(samba, name)]


def _wait(cond: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s")
        time.sleep(0.05)


def test_one_lease_per_file_across_opens_and_renames(samba: PrivateSamba,
                                                     work: WorkDir) -> None:
    p = work.path / "leased"
    with open(p, "w+b") as w:
        w.write(b"x" * 1000)
        w.flush()
        with open(p, "rb") as r:
            leases = _leases(samba, f"{work.name}/leased")
            assert len(leases) == 2, samba.open_files()
            (k1, s1), (k2, s2) = leases
            # Both handles under one key, still read/write/handle: the
            # second open did not break the first one's lease.
            assert k1 and k1 == k2 and s1 == s2 == "RWH", leases
            moved = work.path / "moved"
            os.rename(p, moved)  # renaming an open file keeps its key
            with open(moved, "rb") as r2:
                assert r2.read() == b"x" * 1000
                leases = _leases(samba, f"{work.name}/moved")
                assert [k for k, _ in leases] == [k1] * 3, leases
                assert {s for _, s in leases} == {"RWH"}, leases
            assert r.read() == b"x" * 1000
    _wait(lambda: not _opens(samba, f"{work.name}/moved"), "the last close")


def test_a_new_file_gets_its_own_key(samba: PrivateSamba, work: WorkDir) -> None:
    with open(work.path / "a", "wb") as a, open(work.path / "b", "wb") as b:
        a.write(b"a")
        b.write(b"b")
        (ka, sa), = _leases(samba, f"{work.name}/a")
        (kb, sb), = _leases(samba, f"{work.name}/b")
        assert ka and kb and ka != kb and sa == sb == "RWH"


def test_another_client_breaks_our_lease_without_waiting(samba: PrivateSamba, work: WorkDir,
                                                         tmp_path: Path) -> None:
    """smbclient's open breaks the write caching of our lease; our engine
    acknowledges at once, and what each side sees stays right (nothing the
    mount keeps is trusted on the strength of the lease)."""
    p = work.path / "shared"
    got = tmp_path / "got"
    up = tmp_path / "up"
    up.write_bytes(b"from smbclient\n")
    with open(p, "w+b") as f:
        f.write(b"from the mount\n")
        f.flush()
        assert [s for _, s in _leases(samba, f"{work.name}/shared")] == ["RWH"]
        start = time.monotonic()
        r = samba.smbclient(samba.shares.rw, f'get "{work.name}/shared" "{got}"',
                            timeout=BOUND)
        assert r.returncode == 0, r.stdout + r.stderr
        assert time.monotonic() - start < BOUND
        assert got.read_bytes() == b"from the mount\n"
        # Our lease lost its write caching to the reader.
        assert [s for _, s in _leases(samba, f"{work.name}/shared")] in (["RH"], ["R"])
        start = time.monotonic()
        r = samba.smbclient(samba.shares.rw, f'put "{up}" "{work.name}/shared"',
                            timeout=BOUND)
        assert r.returncode == 0, r.stdout + r.stderr
        assert time.monotonic() - start < BOUND
        f.seek(0)
        assert f.read() == b"from smbclient\n"
    assert p.read_bytes() == b"from smbclient\n"



def test_hard_link_opened_while_the_other_name_is_open(samba: PrivateSamba,
                                                       work: WorkDir) -> None:
    """A server files a lease under one name and refuses its key under
    another (STATUS_INVALID_PARAMETER, [MS-SMB2] 3.3.5.9.8): the second name
    of a hard-linked file is opened under a key of its own meanwhile."""
    a, b = work.path / "a", work.path / "b"
    a.write_bytes(b"linked")
    with open(a, "r+b") as fa:
        os.link(a, b)
        assert os.stat(b).st_ino == os.fstat(fa.fileno()).st_ino
        with open(b, "rb") as fb:
            assert fb.read() == b"linked"
            keys = {k for k, _ in _leases(samba, f"{work.name}/a") + _leases(samba, f"{work.name}/b")}
            assert len(keys) == 2, samba.open_files()
        fa.write(b"L")
    assert b.read_bytes() == b"Linked"


def test_renamed_by_another_client_while_open(samba: PrivateSamba, work: WorkDir) -> None:
    """The server moves our lease with the file; the name it left is free:
    looking it up is ENOENT, and a new file there is a new file (not
    refused because our lease key was last seen under that name)."""
    p = work.path / "before"
    with open(p, "w+b") as f:
        f.write(b"data")
        f.flush()
        r = samba.smbclient(samba.shares.rw,
                            f'rename "{work.name}/before" "{work.name}/after"', timeout=BOUND)
        assert r.returncode == 0, r.stdout + r.stderr
        _wait(lambda: not p.exists(), "the old name gone (actimeo)")
        p.write_bytes(b"new")
        assert p.read_bytes() == b"new"
        f.seek(0)
        assert f.read() == b"data"
    assert (work.path / "after").read_bytes() == b"data"
