"""The real-Samba test bed: fixtures every test of smbfs builds on.

* ``samba``: a session-wide private smbd (see :mod:`smbfs.devserver`), shared
  by ordinary tests to keep the suite fast. Tests must leave its shares as
  they found them (use unique file names, delete what they create).
* ``samba_signing``: a second session-wide server with ``server signing = mandatory``.
* ``samba_current``: a session-wide server running the current Samba (4.22,
  from Debian 13, in a root of its own: :func:`smbfs.devserver.current_samba_root`):
  directory leases, SMB3 POSIX extensions, multichannel. Same shares and users.
* ``@pytest.mark.both_sambas``: the test (or module, via ``pytestmark``) runs
  twice, its ``samba`` (and every fixture built on it, such as the fs tests'
  mounts) once the machine's Samba and once the current one.
* ``fresh_samba(**options)``: a new server for one test, for tests that break,
  restart or reconfigure it. Options are :class:`SambaConfig` fields
  (``global_options``, ``share_options``, ``shares``, ``users``...).
* ``fault_proxy(host, port)``: a :class:`tests.faultproxy.FaultProxy` in front
  of any target, stopped at teardown.

When a test fails, the tail of the log of every server it used is attached to
its report and that server's directory (config, logs) is kept for inspection.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultproxy import FaultProxy

from smbfs.devserver import (
    INSTALL_HINT,
    REQUIRED_PROGRAMS,
    PrivateSamba,
    SambaConfig,
    SambaError,
    check_environment,
    current_samba_root,
    samba_version,
    which_program,
)
from smbfs.devserver_ad import PrivateAdDc


def pytest_sessionstart(session: pytest.Session) -> None:
    # Without smbd there is nothing to test against: stop loudly, never skip.
    missing = [p for p in REQUIRED_PROGRAMS if which_program(p) is None]
    if missing:
        pytest.exit(
            f"smbfs tests need a real Samba server: {', '.join(missing)} not found; {INSTALL_HINT}",
            returncode=3,
        )


class FreshSamba:
    """The ``fresh_samba`` factory: remembers its servers so teardown stops them all."""

    def __init__(self) -> None:
        self.servers: list[PrivateSamba] = []

    def __call__(self, **options: Any) -> PrivateSamba:
        server = PrivateSamba(SambaConfig(**options))
        self.servers.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in reversed(self.servers):
            server.stop()


class FaultProxies:
    """The ``fault_proxy`` factory."""

    def __init__(self) -> None:
        self.proxies: list[FaultProxy] = []

    def __call__(self, target_host: str, target_port: int) -> FaultProxy:
        proxy = FaultProxy(target_host, target_port).start()
        self.proxies.append(proxy)
        return proxy

    def stop_all(self) -> None:
        for proxy in self.proxies:
            proxy.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_sambas: run against the machine's Samba and the current one (4.22)"
    )


def _server_ids() -> list[str]:
    """Test ids naming each Samba generation by its version (host, current)."""
    ids = ["host-samba", "current-samba"]
    try:
        ids[0] = "samba{}.{}".format(*samba_version())
        ids[1] = "samba{}.{}".format(*samba_version(current_samba_root(build=False)))
    except (SambaError, OSError):
        pass
    return ids


_SERVER_IDS: list[str] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_sambas") is None:
        return
    if "samba" not in metafunc.fixturenames:
        return  # a module-wide mark also covers tests of other servers (samba_signing)
    if not _SERVER_IDS:
        _SERVER_IDS.extend(_server_ids())
    metafunc.parametrize("samba", ["host", "current"], ids=_SERVER_IDS, indirect=True,
                         scope="session")


def _start_session_server(request: pytest.FixtureRequest, **options: Any) -> PrivateSamba:
    try:
        check_environment(options.get("root"))
        return PrivateSamba(SambaConfig(**options)).start()
    except SambaError as e:
        pytest.fail(f"cannot start the private Samba server: {e}", pytrace=False)


def _report_kept(request: pytest.FixtureRequest, server: PrivateSamba) -> None:
    if server.keep:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"kept Samba test directory {server.base_dir} (log {server.log_path})"
            )


@pytest.fixture(scope="session")
def samba(request: pytest.FixtureRequest) -> PrivateSamba:
    """The shared private server: signing offered, not required. Under
    ``both_sambas`` the current-Samba run gets ``samba_current`` instead."""
    which = getattr(request, "param", "host")
    return request.getfixturevalue("samba_current" if which == "current" else "samba_host")


@pytest.fixture(scope="session")
def samba_host(request: pytest.FixtureRequest) -> Iterator[PrivateSamba]:
    """The machine's own Samba (Debian 12: 4.17): what ``samba`` is by default."""
    server = _start_session_server(request)
    yield server
    server.stop()
    _report_kept(request, server)


@pytest.fixture(scope="session")
def samba_current(request: pytest.FixtureRequest) -> Iterator[PrivateSamba]:
    """The current Samba (4.22) in its Debian 13 root; built on first use if
    .ci/setup has not built it. Fails, never skips."""
    try:
        root = current_samba_root()
    except SambaError as e:
        pytest.fail(f"no current Samba: {e}", pytrace=False)
    server = _start_session_server(request, root=root)
    yield server
    server.stop()
    _report_kept(request, server)


@pytest.fixture(scope="session")
def samba_signing(request: pytest.FixtureRequest) -> Iterator[PrivateSamba]:
    """A separate server whose every session must be signed (a global setting in Samba)."""
    server = _start_session_server(request, global_options={"server signing": "mandatory"})
    yield server
    server.stop()
    _report_kept(request, server)


@pytest.fixture
def fresh_samba(request: pytest.FixtureRequest) -> Iterator[Callable[..., PrivateSamba]]:
    """``fresh_samba(**SambaConfig fields)``: a server of this test's own, stopped after it."""
    try:
        check_environment()
    except SambaError as e:
        pytest.fail(str(e), pytrace=False)
    factory = FreshSamba()
    yield factory
    factory.stop_all()
    for server in factory.servers:
        _report_kept(request, server)


@pytest.fixture(scope="session")
def ad_dc(request: pytest.FixtureRequest) -> Iterator[PrivateAdDc]:
    """A private Samba AD DC (KDC + smbd accepting Kerberos) for the
    Kerberos tests; see :mod:`smbfs.devserver_ad`. Fails, never skips."""
    try:
        dc = PrivateAdDc().start()
    except SambaError as e:
        pytest.fail(f"cannot provision/start the private AD DC: {e}", pytrace=False)
    yield dc
    dc.stop()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[str, int], FaultProxy]]:
    """``fault_proxy(host, port)``: a fault-injecting TCP proxy in front of the target."""
    factory = FaultProxies()
    yield factory
    factory.stop_all()


def _servers_of(item: pytest.Item) -> list[PrivateSamba]:
    servers: list[PrivateSamba] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, PrivateSamba):
            servers.append(value)
        elif isinstance(value, FreshSamba):
            servers.extend(value.servers)
    # ``samba`` is the same object as ``samba_host`` or ``samba_current``.
    return list({id(s): s for s in servers}.values())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not report.failed:
        return report
    for server in _servers_of(item):
        server.keep = True
        report.sections.append(
            (
                f"smbd log {server.host}:{server.port} ({server.log_path})",
                server.log_tail(60),
            )
        )
    return report


if os.environ.get("SMBFS_TEST_DEBUG"):
    import logging

    logging.basicConfig(level=logging.DEBUG)
