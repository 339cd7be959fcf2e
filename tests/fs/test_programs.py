"""Real programs on the mount: cp -a, dd, tar, git."""

from __future__ import annotations

import filecmp
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from fsmount import WorkDir

# Real programs on a mount of the machine's Samba and of the current one.
pytestmark = pytest.mark.both_sambas


def _make_tree(root: Path) -> None:
    rnd = random.Random(42)
    (root / "empty-dir").mkdir(parents=True)
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello\n")
    (root / "a" / "one-mib.bin").write_bytes(rnd.randbytes(1024 * 1024))
    (root / "a" / "b" / "odd.bin").write_bytes(rnd.randbytes(3 * 1024 * 1024 + 17))
    (root / "a" / "b" / "c" / "name with space é").write_text("x" * 5000)
    for i in range(30):
        (root / "a" / f"f{i}").write_bytes(rnd.randbytes(rnd.randrange(0, 70000)))
    os.utime(root / "small.txt", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.funny_files, cmp.report()
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    assert not mismatch and not errors
    for d in cmp.common_dirs:
        _same_tree(a / d, b / d)


def test_cp_a_in_and_out(work: WorkDir, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    subprocess.run(["cp", "-a", str(src), str(work.path / "tree")], check=True)
    _same_tree(src, work.path / "tree")
    _same_tree(src, work.server / "tree")
    assert (work.path / "tree" / "small.txt").stat().st_mtime_ns == 1_600_000_000_000_000_000
    back = tmp_path / "back"
    subprocess.run(["cp", "-a", str(work.path / "tree"), str(back)], check=True)
    _same_tree(src, back)
    assert (back / "small.txt").stat().st_mtime_ns == 1_600_000_000_000_000_000
    shutil.rmtree(work.path / "tree")
    assert os.listdir(work.path) == []


@pytest.mark.parametrize(("bs", "count"), [
    ("1", 3000), ("512", 100), ("4096", 64), ("65536", 20), ("1M", 5), ("8M", 2)])
def test_dd_block_sizes(work: WorkDir, tmp_path: Path, bs: str, count: int) -> None:
    src = tmp_path / "src"
    subprocess.run(["dd", "if=/dev/urandom", f"of={src}", f"bs={bs}", f"count={count}",
                    "status=none", "iflag=fullblock"], check=True)
    dst = work.path / "dd"
    subprocess.run(["dd", f"if={src}", f"of={dst}", f"bs={bs}", "status=none"], check=True)
    assert (work.server / "dd").read_bytes() == src.read_bytes()
    back = tmp_path / "back"
    subprocess.run(["dd", f"if={dst}", f"of={back}", f"bs={bs}", "status=none"], check=True)
    assert back.read_bytes() == src.read_bytes()


def test_tar_create_and_extract(work: WorkDir, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_tree(src)
    archive = work.path / "t.tar"
    subprocess.run(["tar", "-C", str(src), "-cf", str(archive), "."], check=True)
    out = work.path / "x"
    out.mkdir()
    subprocess.run(["tar", "-C", str(out), "-xf", str(archive)], check=True)
    _same_tree(src, out)
    local = tmp_path / "local"
    local.mkdir()
    subprocess.run(["tar", "-C", str(local), "-xf", str(archive)], check=True)
    _same_tree(src, local)


def test_git_on_the_mount(work: WorkDir) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is not installed (apt-get install git)")
    repo = work.path / "repo"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(work.path)}

    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    repo.mkdir()
    git("init", "-q", "-b", "main")
    (repo / "README").write_text("first\n")
    (repo / "src").mkdir()
    (repo / "src" / "m.py").write_text("print('hi')\n")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    (repo / "README").write_text("second\n")
    git("commit", "-q", "-am", "second")
    log = git("log", "--format=%s")
    assert log.split() == ["second", "first"]
    assert git("status", "--porcelain") == ""
    git("gc", "-q")
    assert git("show", "HEAD~1:README") == "first\n"
    assert git("fsck", "--no-progress").strip() == ""


def test_dd_o_direct(work: WorkDir, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    subprocess.run(["dd", f"if={src}", f"of={work.path / 'd'}", "bs=1M", "oflag=direct",
                    "status=none"], check=True)
    back = tmp_path / "back"
    subprocess.run(["dd", f"if={work.path / 'd'}", f"of={back}", "bs=1M", "iflag=direct",
                    "status=none"], check=True)
    assert back.read_bytes() == src.read_bytes()
