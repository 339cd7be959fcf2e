"""The random-operation checker (tests/fsx.py) itself, on a local directory:
it runs clean, it is deterministic, and it catches corruption made behind
its back, reporting the op, the seed and the first wrong offset."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fsx import OPS, Fsx, FsxConfig, FsxError, first_difference

FSX = Path(__file__).resolve().parents[1] / "fsx.py"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_on_local_dir(tmp_path: Path, seed: int) -> None:
    config = FsxConfig(seed=seed, ops=5000, files=1 + seed % 2, rename=True)
    fsx = Fsx(tmp_path, config)
    stats = fsx.run()
    assert sum(stats.ops.values()) == 5000
    assert set(stats.ops) == set(OPS)  # every op ran at least once
    assert stats.bytes_written > 0 and stats.bytes_read > 0
    for i in range(config.files):
        assert fsx.path(i).read_bytes() == fsx.expected(i)


def test_same_seed_same_ops_other_seed_other_ops(tmp_path: Path) -> None:
    runs = []
    for n, seed in enumerate((5, 5, 6)):
        d = tmp_path / str(n)
        d.mkdir()
        fsx = Fsx(d, FsxConfig(seed=seed, ops=800, log_size=800))
        fsx.run()
        runs.append(([str(e) for e in fsx.history], fsx.expected()))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_disabled_ops_never_run(tmp_path: Path) -> None:
    fsx = Fsx(tmp_path, FsxConfig(seed=4, ops=1000, mmap=False, weights={"append": 0}))
    stats = fsx.run()
    assert not {"mapread", "mapwrite", "append", "rename"} & set(stats.ops)
    with pytest.raises(ValueError, match="unknown fsx op"):
        FsxConfig(weights={"nosuchop": 1}).effective_weights()


def _flip(fsx: Fsx, offset: int) -> bool:
    """Make the byte at ``offset`` differ from the model, through a second fd
    (the checker is not told); False if the file does not reach it."""
    model = fsx.files[0].model
    if len(model) <= offset:
        return False
    fd = os.open(fsx.path(), os.O_WRONLY)
    try:
        os.pwrite(fd, bytes([model[offset] ^ 0x5A]), offset)
    finally:
        os.close(fd)
    return True


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detects_a_byte_changed_behind_its_back(tmp_path: Path, seed: int) -> None:
    """From op ``at_op`` on, a bad "disk" keeps the byte at ``bad`` wrong
    (re-flipped after every op, so a write there does not heal it). The
    first op after that which compares a range covering it must fail, with
    that op's number and exactly that offset."""
    at_op, bad = 300, 5000
    fsx: Fsx

    def between_ops(i: int) -> None:
        if i >= at_op:
            _flip(fsx, bad)

    fsx = Fsx(tmp_path / "run", FsxConfig(seed=seed, ops=3000, log_size=16), between_ops)
    fsx.dir.mkdir()
    with pytest.raises(FsxError) as info:
        fsx.run()
    err = info.value
    assert err.kind == "mismatch"
    assert err.seed == seed
    assert err.offset == bad
    assert len(err.log) == 16 and err.log[-1].startswith(f"#{err.op} ")
    assert f"op {err.op} (seed {seed})" in str(err)
    assert f"--seed {seed} --ops {err.op}" in err.replay
    # Replay the seed without the fault, with the whole log kept: it runs
    # clean, and its first op after at_op that compared the bad offset is
    # the one that failed.
    clean = Fsx(tmp_path / "replay", FsxConfig(seed=seed, ops=err.op, log_size=err.op + 10))
    clean.dir.mkdir()
    clean.run()
    first = next(e.op for e in clean.history
                 if e.op > at_op and e.checked and e.checked[0] <= bad < e.checked[1])
    assert err.op == first


def test_detects_lost_tail_behind_its_back(tmp_path: Path) -> None:
    """The file silently loses its last bytes (as if a write never reached
    the server): a size or content error at the old end."""
    seed, at_op = 8, 200
    lost: dict[str, int] = {}
    fsx: Fsx

    def between_ops(i: int) -> None:
        if i == at_op:
            size = len(fsx.files[0].model)
            assert size > 10
            os.truncate(fsx.path(), size - 10)
            lost["offset"] = size - 10

    fsx = Fsx(tmp_path, FsxConfig(seed=seed, ops=2000), between_ops=between_ops)
    with pytest.raises(FsxError) as info:
        fsx.run()
    err = info.value
    assert err.kind in ("size", "mismatch")
    assert err.op > at_op
    assert err.offset == lost["offset"]


def test_final_check_catches_a_change_after_the_last_op(tmp_path: Path) -> None:
    """Corruption no op looked at is caught by the whole-file check at the end."""
    ops, bad = 400, 100
    fsx: Fsx

    def between_ops(i: int) -> None:
        if i == ops:
            assert _flip(fsx, bad)

    fsx = Fsx(tmp_path, FsxConfig(seed=3, ops=ops), between_ops=between_ops)
    with pytest.raises(FsxError) as info:
        fsx.run()
    assert info.value.op == ops + 1
    assert info.value.offset == bad
    assert "final read after reopen" in info.value.detail


def test_check_all_from_the_hook(tmp_path: Path) -> None:
    """A fault hook can verify everything at once right after its fault."""
    fsx: Fsx

    def between_ops(i: int) -> None:
        if i == 100:
            assert _flip(fsx, 10)
            fsx.check_all()

    fsx = Fsx(tmp_path, FsxConfig(seed=1, ops=200), between_ops=between_ops)
    with pytest.raises(FsxError) as info:
        fsx.run()
    assert (info.value.op, info.value.offset) == (100, 10)
    assert "check_all" in info.value.detail


def test_an_oserror_is_reported_with_op_and_seed(tmp_path: Path) -> None:
    fsx: Fsx

    def between_ops(i: int) -> None:
        if i == 50:
            os.close(fsx.files[0].fd)  # the next op on it fails with EBADF

    fsx = Fsx(tmp_path, FsxConfig(seed=2, ops=200, weights={"reopen": 0,
                                                             "reopen_trunc": 0,
                                                             "append": 0,
                                                             "truncate": 0}),
              between_ops=between_ops)
    with pytest.raises(FsxError) as info:
        fsx.run()
    assert info.value.kind == "error" and info.value.op == 51
    assert info.value.errno == 9  # EBADF


def test_first_difference() -> None:
    assert first_difference(b"abc", b"abc") is None
    assert first_difference(b"abc", b"abd") == 2
    assert first_difference(b"abc", b"ab") == 2
    big = bytes(10_000)
    assert first_difference(big, big[:7777] + b"x" + big[7778:]) == 7777


def test_script(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(FSX), str(tmp_path), "--ops", "500", "--seed", "1",
                        "--rename", "--files", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "fsx: 500 ops in" in r.stdout and "bytes written" in r.stdout
    assert "write=" in r.stdout
    assert list(tmp_path.iterdir()) == []  # removed after a clean run


def test_map_helper_death_and_errors_are_this_ops_error(tmp_path: Path) -> None:
    """Mapping accesses run in a helper process: its death by SIGBUS (what a
    page the filesystem cannot read does) and errors inside it are the op's
    FsxError; the test process lives on and the next access gets a new one."""
    fsx = Fsx(tmp_path, FsxConfig(seed=1))
    f = fsx.files[0]
    f.fd = os.open(fsx.path(), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(f.fd, b"x" * 2 * mmap.PAGESIZE)
        assert fsx._map_access(f, "mapread", 10, 4) == b"xxxx"
        helper = fsx._helper
        assert helper is not None
        os.kill(helper.proc.pid, signal.SIGBUS)
        helper.proc.wait(timeout=10)
        with pytest.raises(FsxError) as info:
            fsx._map_access(f, "mapread", 10, 4)
        assert info.value.kind == "signal" and "SIGBUS" in info.value.detail
        assert fsx._map_access(f, "mapwrite", mmap.PAGESIZE - 1, 2, b"ab") == b""
        assert os.pread(f.fd, 2, mmap.PAGESIZE - 1) == b"ab"
        with pytest.raises(FsxError) as info:
            fsx._map_access(f, "mapread", 3 * mmap.PAGESIZE, 4)  # past EOF
        assert info.value.kind == "error" and "file size" in info.value.detail
    finally:
        fsx._stop_helper()
        os.close(f.fd)
