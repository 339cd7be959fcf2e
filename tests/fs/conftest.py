"""Fixtures of the fs tests: real mounts (see fsmount.py), unmounted at
teardown even when the test failed; a failing test's report carries the
logs of the mounts alive at the time."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from fsmount import ACTIVE, Mount, MountFactory, WorkDir, start_mount, unmount

from smbfs.devserver import PrivateSamba


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for m in ACTIVE:
            report.sections.append((f"smbfs mount log {m.path} ({m.log})", m.log_tail()))
    return report


@pytest.fixture(scope="session")
def mounted(samba: PrivateSamba) -> Iterator[Mount]:
    """The rw share mounted once for the session (default options, actimeo 1)."""
    m = start_mount(samba)
    yield m
    unmount(m)


@pytest.fixture
def mount_factory(samba: PrivateSamba) -> Iterator[MountFactory]:
    """``mount_factory(share=..., subdir=..., **FsOptions fields)``: a mount of
    this test's own, unmounted at teardown."""
    mounts: list[Mount] = []

    def factory(share: str | None = None, subdir: str = "", port: int | None = None,
                env: dict[str, str] | None = None, **options: Any) -> Mount:
        m = start_mount(samba, share, subdir, port=port, env=env, **options)
        mounts.append(m)
        return m

    yield factory
    for m in reversed(mounts):
        unmount(m)


@pytest.fixture
def work(mounted: Mount) -> Iterator[WorkDir]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    server = mounted.server_dir / name
    server.mkdir()
    server.chmod(0o777)
    yield WorkDir(mounted.path / name, server, name)
    shutil.rmtree(server, ignore_errors=True)
