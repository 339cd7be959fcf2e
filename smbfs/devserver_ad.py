"""A private Samba Active Directory domain controller on loopback: a real KDC
and an smbd that accepts Kerberos, for the Kerberos tests (docs/kerberos.md).

The standalone smbd of :mod:`smbfs.devserver` has no KDC. This module
provisions a throw-away domain (realm ``SMBFS.TEST``, NetBIOS domain
``SMBFS``, DC host name ``smbfsdc``) into one temporary directory with
``samba-tool domain provision``, then runs the ``samba`` binary in the
foreground with only the services the tests need (``s3fs`` = smbd, ``kdc``,
``winbindd``), each on a free loopback port -- nothing binds 88, 389 or 445,
so it neither needs nor disturbs the machine's own Samba or Kerberos.

Why a private mount namespace: an AD DC's smbd maps domain SIDs to Unix IDs
through winbindd, and in Debian's build libwbclient only looks for the
winbindd socket under the compiled-in ``/run/samba/winbindd`` (the
``winbindd socket directory`` option moves the server side only). So
``samba`` runs under ``unshare --mount`` with a private directory bound over
``/run/samba``: the DC gets its own, the host's stays untouched, and several
DCs (parallel test runs) can coexist. Root is required, as for smbd.

Clients use :attr:`PrivateAdDc.krb5_conf` (``KRB5_CONFIG``: the KDC's port,
no DNS) and a credential cache of their own (:meth:`PrivateAdDc.kinit`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from smbfs.devserver import (
    SambaError,
    User,
    _can_connect,
    _pids_with_arg,
    _running,
    _terminate,
    free_port,
    tail_log,
    which_program,
)

log = logging.getLogger(__name__)

REALM = "SMBFS.TEST"
DOMAIN = "SMBFS"
DC_HOSTNAME = "smbfsdc"
AD_REQUIRED_PROGRAMS = ("samba", "samba-tool", "winbindd", "wbinfo", "smbstatus", "kinit",
                        "unshare", "nsenter", "mount")
AD_INSTALL_HINT = ("a Samba AD DC and MIT Kerberos client tools are needed: `apt-get install "
                   "samba samba-ad-provision samba-dsdb-modules winbind krb5-user` "
                   "(or run `sudo bash .ci/setup`)")


@dataclass
class AdDcConfig:
    admin_password: str = "Adm1n-Pass!smbfs"
    # Domain users the tests log on as (created with samba-tool).
    users: tuple[User, ...] = (User("kuser", "Kerb-Pass1!"), User("kuser2", "Kerb-Pass2!"))
    host: str = "127.0.0.1"
    provision_timeout: float = 120.0
    start_timeout: float = 60.0
    stop_timeout: float = 10.0
    keep: bool = False
    extra_global: dict[str, str] = field(default_factory=dict)


def check_ad_environment() -> None:
    """Raise SambaError naming what is missing (the tests then fail, not skip)."""
    missing = [p for p in AD_REQUIRED_PROGRAMS if which_program(p) is None]
    if missing:
        raise SambaError(f"cannot run a private AD DC: {', '.join(missing)} not found; "
                         f"{AD_INSTALL_HINT}")
    if os.geteuid() != 0:
        raise SambaError("the private AD DC needs root (mount namespace, samba)")


class PrivateAdDc:
    """One provisioned, running domain controller; ``start()``/``stop()``
    or use as a context manager."""

    def __init__(self, config: AdDcConfig | None = None) -> None:
        self.config = config or AdDcConfig()
        self.host = self.config.host
        self.server_name = DC_HOSTNAME
        self.realm = REALM
        self.domain = DOMAIN
        self.port = 0
        self.kdc_port = 0
        self.base: Path | None = None
        self.keep = self.config.keep
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths ---------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        assert self.base is not None, "server not started"
        return self.base.joinpath(*parts)

    @property
    def conf_path(self) -> Path:
        return self._path("dc", "etc", "smb.conf")

    @property
    def krb5_conf(self) -> Path:
        return self._path("krb5.conf")

    @property
    def log_path(self) -> Path:
        return self._path("log", "samba.log")

    @property
    def user(self) -> User:
        return self.config.users[0]

    @property
    def user2(self) -> User:
        return self.config.users[1]

    def share_path(self, name: str) -> Path:
        return self._path("shares", name)

    def principal(self, user: User | None = None) -> str:
        return f"{(user or self.user).name}@{REALM}"

    @property
    def samba_pid(self) -> int:
        assert self._proc is not None, "server not running"
        return self._proc.pid

    def __repr__(self) -> str:
        return f"<PrivateAdDc {self.server_name} {self.host}:{self.port} kdc:{self.kdc_port}>"

    # -- life cycle ----------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        check_ad_environment()
        self.base = Path(tempfile.mkdtemp(prefix="smbfs-addc-"))
        try:
            t0 = time.monotonic()
            self._provision()
            t1 = time.monotonic()
            for attempt in range(3):
                self.port, self.kdc_port = free_port(self.host), free_port(self.host)
                self._write_config()
                if self._launch():
                    break
                log.info("AD DC lost a port race (attempt %d); retrying", attempt + 1)
            else:
                raise SambaError("AD DC: ports kept being taken by others")
            _running.add(self)
            log.info("AD DC %r: provisioned in %.1fs, running in %.1fs", self,
                     t1 - t0, time.monotonic() - t1)
        except BaseException:
            self.keep = True
            self.stop()
            raise
        return self

    def _run(self, args: list[str], timeout: float, what: str,
             input: str | None = None, env: dict[str, str] | None = None) -> str:
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                               input=input, env=env,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise SambaError(f"{what} did not finish within {timeout:.0f}s") from e
        if r.returncode != 0:
            raise SambaError(f"{what} failed ({r.returncode}): "
                             f"{(r.stderr or r.stdout).strip()[-2000:]}")
        return r.stdout

    def _provision(self) -> None:
        self._run([
            "samba-tool", "domain", "provision", f"--targetdir={self._path('dc')}",
            f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
            "--dns-backend=NONE", f"--host-name={DC_HOSTNAME}",
            f"--adminpass={self.config.admin_password}",
            "--option=interfaces=lo", "--option=bind interfaces only=yes",
        ], self.config.provision_timeout, "samba-tool domain provision")
        # Users go straight into sam.ldb (no server needed yet).
        provisioned = self._path("dc", "etc", "smb.conf")
        for user in self.config.users:
            self._run(["samba-tool", "user", "create", user.name, user.password,
                       "-s", str(provisioned)], 60, f"samba-tool user create {user.name}")
        # mkdtemp made the base 0700: domain users must reach the shares.
        self._path().chmod(0o755)
        # cifs/localhost on the DC's account: mount.smbfs takes the server
        # name from //host/share, and "localhost" reaches loopback without
        # touching /etc/hosts (the tests' stand-in for a real DNS name).
        self._run(["samba-tool", "spn", "add", "cifs/localhost", f"{DC_HOSTNAME.upper()}$",
                   "-s", str(provisioned)], 60, "samba-tool spn add cifs/localhost")
        for share in ("data", "sealed"):
            p = self.share_path(share)
            p.mkdir(parents=True)
            # Domain users get Unix IDs from idmap (3000000+): let them all write.
            p.chmod(0o1777)
        self._path("run").mkdir()
        self._path("log").mkdir()

    def _write_config(self) -> None:
        dc = self._path("dc")
        extra = "".join(f"\t{k} = {v}\n" for k, v in self.config.extra_global.items())
        self.conf_path.write_text(f"""\
# Written by smbfs.devserver_ad: a private AD DC for tests.
[global]
\tnetbios name = {DC_HOSTNAME.upper()}
\trealm = {REALM}
\tworkgroup = {DOMAIN}
\tserver role = active directory domain controller
\tserver services = s3fs, kdc, winbindd
\tinterfaces = lo
\tbind interfaces only = yes
\tsmb ports = {self.port}
\tkrb5 port = {self.kdc_port}
\tkpasswd port = {free_port(self.host)}
\tprivate dir = {dc}/private
\tlock directory = {dc}
\tstate directory = {dc}/state
\tcache directory = {dc}/cache
\tbinddns dir = {dc}/bind-dns
\tserver min protocol = SMB2_02
\tserver max protocol = SMB3_11
\tdisable spoolss = yes
\tload printers = no
\t# auth_json_audit: one JSON line per authentication (which mechanism,
\t# which account) in the log, for the tests to check.
\tlog level = 1 auth_json_audit:5
{extra}
[data]
\tpath = {self.share_path('data')}
\tread only = no
[sealed]
\tpath = {self.share_path('sealed')}
\tread only = no
\tsmb encrypt = required
""")
        self.krb5_conf.write_text(f"""\
[libdefaults]
\tdefault_realm = {REALM}
\tdns_lookup_realm = false
\tdns_lookup_kdc = false
\trdns = false
\tdns_canonicalize_hostname = false
\tudp_preference_limit = 1
[realms]
\t{REALM} = {{
\t\tkdc = {self.host}:{self.kdc_port}
\t}}
[domain_realm]
\t{DC_HOSTNAME} = {REALM}
\tlocalhost = {REALM}
\t.{REALM.lower()} = {REALM}
""")

    def _launch(self) -> bool:
        """Start samba; False when a port was taken (try other ports)."""
        Path("/run/samba").mkdir(parents=True, exist_ok=True)
        run_dir = self._path("run")
        logf = open(self.log_path, "ab")
        start = logf.tell()
        script = ('mount --bind "$1" /run/samba && exec samba -s "$2" --foreground '
                  '--no-process-group --debug-stdout')
        try:
            self._proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                 str(run_dir), str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            logf.close()
        deadline = time.monotonic() + self.config.start_timeout
        while True:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                raise SambaError(f"samba (AD DC) exited with status {rc} during start; "
                                 f"log {self.log_path}:\n{self.log_tail()}")
            if "Address already in use" in self.log_tail(200, since=start):
                self._kill()
                return False
            if (_can_connect(self.host, self.port) and _can_connect(self.host, self.kdc_port)
                    and self._winbind_ready()):
                return True
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self._kill()
                raise SambaError(f"AD DC not ready within {self.config.start_timeout:.0f}s "
                                 f"(smb {self.port}, kdc {self.kdc_port}, winbindd); "
                                 f"log {self.log_path}:\n{tail}")
            time.sleep(0.1)

    def _winbind_ready(self) -> bool:
        # smbd cannot map a domain user to a uid before winbindd answers:
        # until then every session setup fails with STATUS_INTERNAL_ERROR.
        if not self._path("run", "winbindd", "pipe").exists():
            return False
        r = subprocess.run(["nsenter", f"--mount=/proc/{self.samba_pid}/ns/mnt", "wbinfo", "-p"],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=10)
        return r.returncode == 0

    def _kill(self) -> None:
        if self._proc is not None:
            _terminate(self._proc.pid, self.config.stop_timeout, self._proc)
            self._proc = None
        # Tasks samba forked (smbd, winbindd, kdc workers) carry the conf path.
        if self.base is not None:
            for pid in _pids_with_arg(str(self.conf_path)):
                _terminate(pid, self.config.stop_timeout)

    def stop(self) -> None:
        _running.discard(self)
        self._kill()
        if self.base is not None and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- client side ---------------------------------------------------------

    def kinit(self, user: User | None = None, ccache: Path | None = None) -> str:
        """Get a TGT for ``user`` into a new FILE ccache (password on stdin);
        returns the KRB5CCNAME value."""
        user = user or self.user
        path = ccache or Path(tempfile.mkstemp(prefix="krb5cc-", dir=self.base)[1])
        name = f"FILE:{path}"
        env = dict(os.environ, KRB5_CONFIG=str(self.krb5_conf), KRB5CCNAME=name)
        self._run(["kinit", self.principal(user)], 30, f"kinit {self.principal(user)}",
                  input=user.password + "\n", env=env)
        return name

    def client_env(self, ccache: str) -> dict[str, str]:
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5CCNAME": ccache}

    # -- what the server saw -------------------------------------------------

    def log_tail(self, lines: int = 40, since: int = 0) -> str:
        return tail_log(self.log_path, lines, since, 256 * 1024)

    def smbstatus(self, timeout: float = 30) -> dict[str, Any]:
        out = self._run(["smbstatus", "-s", str(self.conf_path), "--json"], timeout, "smbstatus")
        result: dict[str, Any] = json.loads(out)
        return result

    def sessions(self) -> list[dict[str, Any]]:
        s = self.smbstatus().get("sessions") or {}
        return list(s.values())

    def wbinfo(self, *args: str) -> str:
        """wbinfo against this DC's winbindd (inside its mount namespace)."""
        return self._run(["nsenter", f"--mount=/proc/{self.samba_pid}/ns/mnt", "wbinfo", *args],
                         30, f"wbinfo {' '.join(args)}").strip()

    def uid_of(self, user: User | None = None) -> int:
        """The Unix uid smbd gives a domain user (idmap), as smbstatus shows
        it: without nss_winbind on the host, smbstatus prints no name."""
        # Name lookups in winbindd would need the DC's rpc service (not
        # run here): the SID comes from sam.ldb, the uid from idmap.
        out = self._run(["samba-tool", "user", "show", (user or self.user).name,
                         "--attributes=objectSid", "-s", str(self.conf_path)], 30,
                        "samba-tool user show")
        sid = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                   if line.startswith("objectSid:"))
        return int(self.wbinfo("--sid-to-uid", sid))

    def auth_events(self) -> Iterator[dict[str, Any]]:
        """The JSON authentication/authorization audit records in the log
        (``Authentication``: NTLM password checks; ``Authorization``: every
        session, with ``authType`` such as ``krb5`` or ``NTLMSSP``)."""
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            for raw in f:
                line = raw.decode(errors="replace")
                at = line.find('{"timestamp"')
                if at < 0:
                    continue
                with contextlib.suppress(json.JSONDecodeError):
                    yield json.loads(line[at:])

    def wait_for_session(self, remote_port: int, timeout: float = 10.0) -> dict[str, Any]:
        """The smbstatus session of the client connected from ``remote_port``."""
        deadline = time.monotonic() + timeout
        while True:
            for s in self.sessions():
                if s.get("hostname", "").endswith(f":{remote_port}"):
                    return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"no session from port {remote_port} in smbstatus")
            time.sleep(0.1)
