"""Unit tests of mount.smbfs argument parsing: source, every -o option and
alias, credentials files, PASSWD/USER, mount(8)'s helper flags, the password
stripping of the re-exec, and the one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smbfs.cli.daemon import describe_error
from smbfs.cli.mount import Invocation, parse_argv
from smbfs.cli.options import (
    MountRequest,
    UsageError,
    parse_mount,
    parse_source,
    read_credentials,
    split_username,
)
from smbfs.cli.secret import Secrets, read_env_password, strip_options
from smbfs.client.errors import (
    AuthenticationError,
    ConnectionLostError,
    EncryptionUnavailableError,
    KerberosUnavailableError,
    SMBError,
)
from smbfs.fs.errors import MountError, NoAnswerError
from smbfs.proto.constants import Dialect

SRC = "//srv/share"


def parse(opts: str = "", env: dict[str, str] | None = None, **kw: object) -> MountRequest:
    items = [x for x in opts.split(",") if x]
    return parse_mount(SRC, "/mnt", items, env=env if env is not None else {}, **kw)  # type: ignore[arg-type]


# -- source -------------------------------------------------------------------

@pytest.mark.parametrize("spec, host, port, share, subdir", [
    ("//srv/share", "srv", None, "share", ""),
    ("//srv:1445/share", "srv", 1445, "share", ""),
    ("//srv/share/a/b", "srv", None, "share", "a/b"),
    ("//srv/share/a/b/", "srv", None, "share", "a/b"),
    ("\\\\srv\\share\\sub", "srv", None, "share", "sub"),
    ("//[::1]:4455/s", "::1", 4455, "s", ""),
    ("//[fe80::1]/s", "fe80::1", None, "s", ""),
    ("//10.0.0.1/s", "10.0.0.1", None, "s", ""),
])
def test_parse_source(spec: str, host: str, port: int | None, share: str, subdir: str) -> None:
    s = parse_source(spec)
    assert (s.host, s.port, s.share, s.subdir) == (host, port, share, subdir)


@pytest.mark.parametrize("spec", ["srv/share", "//srv", "//srv/", "///share", "//srv:x/s",
                                  "//srv:0/s", "//srv:70000/s", "//[::1/s"])
def test_parse_source_rejects(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_source(spec)


# -- options ------------------------------------------------------------------

def test_defaults() -> None:
    r = parse(env={"USER": "bob"})
    c = r.client
    assert (c.host, c.port, c.username, c.password, c.domain, c.auth) == (
        "srv", 445, "bob", "", "", "ntlm")
    # no vers= is vers=default: SMB 2.1 or later, as cifs.ko.
    assert (c.min_dialect, c.max_dialect) == (Dialect.SMB2_1, Dialect.SMB3_1_1)
    assert not c.require_signing and not c.require_encryption
    f = r.fs
    assert (f.uid, f.gid) == (os.getuid(), os.getgid())
    assert (f.file_mode, f.dir_mode, f.read_only, f.cache) == (0o755, 0o755, False, "strict")
    assert f.fsname == "//srv/share"
    # Every mount reconnects; soft (bounded waits) is the default, as in cifs.ko.
    assert c.reconnect and not c.hard
    assert (c.soft_timeout, c.echo_interval) == (30.0, 60.0)


@pytest.mark.parametrize("opt", ["username=alice", "user=alice"])
def test_username_aliases(opt: str) -> None:
    assert parse(opt, env={"USER": "bob"}).client.username == "alice"


@pytest.mark.parametrize("opt", ["password=s3cr,t", "pass=s3cr,t"])
def test_password_aliases(opt: str) -> None:
    # A comma ends the option (as in mount.cifs); the rest is another option.
    with pytest.raises(UsageError, match="'t'"):
        parse(opt)
    assert parse(opt.split(",")[0]).client.password == "s3cr"


@pytest.mark.parametrize("opt", ["domain=CORP", "dom=CORP", "workgroup=CORP"])
def test_domain_aliases(opt: str) -> None:
    assert parse(opt).client.domain == "CORP"


def test_username_forms() -> None:
    assert split_username("CORP/al%pw") == ("al", "CORP", "pw")
    assert split_username("CORP\\al") == ("al", "CORP", None)
    assert split_username("al%p%w") == ("al", None, "p%w")
    c = parse("user=CORP/al%pw").client
    assert (c.username, c.domain, c.password) == ("al", "CORP", "pw")
    # Explicit options win over the embedded forms.
    c = parse("user=CORP/al%pw,domain=X,password=Y").client
    assert (c.domain, c.password) == ("X", "Y")


def test_bare_user_is_generic_option() -> None:
    r = parse("user,users,nouser", env={"USER": "bob"})
    assert r.client.username == "bob"


def test_port() -> None:
    assert parse("port=1445").client.port == 1445
    assert parse_mount("//srv:99/s", "/m", [], env={}).client.port == 99
    assert parse_mount("//srv:99/s", "/m", ["port=100"], env={}).client.port == 100
    for bad in ("port=0", "port=65536", "port=x", "port"):
        with pytest.raises(UsageError):
            parse(bad)


@pytest.mark.parametrize("vers, lo, hi", [
    ("2.0", Dialect.SMB2_0_2, Dialect.SMB2_0_2),
    ("2.1", Dialect.SMB2_1, Dialect.SMB2_1),
    ("3", Dialect.SMB3_0, Dialect.SMB3_1_1),
    ("3.0", Dialect.SMB3_0, Dialect.SMB3_0),
    ("3.02", Dialect.SMB3_0_2, Dialect.SMB3_0_2),
    ("3.0.2", Dialect.SMB3_0_2, Dialect.SMB3_0_2),
    ("3.1.1", Dialect.SMB3_1_1, Dialect.SMB3_1_1),
    ("3.11", Dialect.SMB3_1_1, Dialect.SMB3_1_1),
    ("default", Dialect.SMB2_1, Dialect.SMB3_1_1),
])
def test_vers(vers: str, lo: Dialect, hi: Dialect) -> None:
    c = parse(f"vers={vers}").client
    assert (c.min_dialect, c.max_dialect) == (lo, hi)


def test_vers_unknown() -> None:
    with pytest.raises(UsageError, match=r"vers=1\.0"):
        parse("vers=1.0")


@pytest.mark.parametrize("sec, auth, sign", [
    ("ntlmssp", "ntlm", False), ("ntlmsspi", "ntlm", True), ("ntlmv2", "ntlm", False),
    ("krb5", "kerberos", False), ("krb5i", "kerberos", True), ("none", "anonymous", False),
])
def test_sec(sec: str, auth: str, sign: bool) -> None:
    c = parse(f"sec={sec}").client
    assert (c.auth, c.require_signing) == (auth, sign)


def test_sec_refused() -> None:
    with pytest.raises(UsageError, match="sec=ntlm"):
        parse("sec=ntlm")


def test_guest_sign_seal() -> None:
    assert parse("guest").client.auth == "guest"
    assert parse("guest", env={"USER": "bob"}).client.username == ""
    assert parse("sign").client.require_signing
    assert parse("seal").client.require_encryption
    with pytest.raises(UsageError):
        parse("guest,seal")
    with pytest.raises(UsageError):
        parse("sec=krb5,guest")
    with pytest.raises(UsageError, match="SMB3"):
        parse("seal,vers=2.1")
    with pytest.raises(UsageError, match="takes no value"):
        parse("seal=1")


def test_ids() -> None:
    f = parse("uid=1000,gid=100,forceuid,forcegid").fs
    assert (f.uid, f.gid, f.forceuid, f.forcegid) == (1000, 100, True, True)
    f = parse("uid=root,gid=root").fs
    assert (f.uid, f.gid) == (0, 0)
    f = parse("forceuid,noforceuid").fs
    assert not f.forceuid
    with pytest.raises(UsageError, match="no such user"):
        parse("uid=no-such-user-here")
    with pytest.raises(UsageError, match="no such group"):
        parse("gid=no-such-group-here")


def test_modes_are_octal() -> None:
    f = parse("file_mode=0640,dir_mode=750").fs
    assert (f.file_mode, f.dir_mode) == (0o640, 0o750)
    for bad in ("file_mode=0999", "dir_mode=rwx", "file_mode=17777"):
        with pytest.raises(UsageError):
            parse(bad)


def test_ro_rw_cache_actimeo_sizes() -> None:
    assert parse("ro").fs.read_only
    assert not parse("ro,rw").fs.read_only
    for mode in ("strict", "loose", "none"):
        assert parse(f"cache={mode}").fs.cache == mode
    with pytest.raises(UsageError):
        parse("cache=fast")
    assert parse("actimeo=0").fs.actimeo == 0
    assert parse("actimeo=2.5").fs.actimeo == 2.5
    with pytest.raises(UsageError):
        parse("actimeo=-1")
    f = parse("rsize=65536,wsize=0x100000").fs
    assert (f.rsize, f.wsize) == (65536, 1 << 20)
    with pytest.raises(UsageError):
        parse("rsize=0")


def test_serverino_echo_allow_other_misc() -> None:
    assert parse("noserverino").fs.noserverino
    assert not parse("noserverino,serverino").fs.noserverino
    assert parse("echo_interval=10").client.echo_interval == 10
    for bad in ("echo_interval=0", "echo_interval=601"):
        with pytest.raises(UsageError):
            parse(bad)
    assert parse("allow_other").fs.allow_other
    assert parse("log=/tmp/x.log").log_file == "/tmp/x.log"
    parse("iocharset=utf8,nounix")
    with pytest.raises(UsageError):
        parse("iocharset=iso8859-1")


@pytest.mark.parametrize("opts, hard", [
    ("hard", True), ("soft", False), ("nosoft", True), ("nohard", False),
    ("hard,soft", False), ("soft,hard", True), ("hard,nohard", False),
    ("nosoft,nohard", False), ("soft,nosoft", True),
])
def test_hard_soft(opts: str, hard: bool) -> None:
    # cifs.ko's fs_context.c takes hard, soft and their no- forms; the last wins.
    c = parse(opts).client
    assert (c.hard, c.reconnect) == (hard, True)


@pytest.mark.parametrize("bad", ["hard=1", "soft=yes", "nohard=0"])
def test_hard_soft_take_no_value(bad: str) -> None:
    with pytest.raises(UsageError, match="takes no value"):
        parse(bad)


def test_echo_interval_reaches_the_engine() -> None:
    assert parse("echo_interval=1").client.echo_interval == 1.0
    assert parse("echo_interval=600,hard").client.echo_interval == 600.0
    assert parse("echo_interval=2.5").client.echo_interval == 2.5


def test_generic_fstab_options_accepted() -> None:
    parse("defaults,_netdev,auto,noauto,user,nouser,users,nofail,exec,noexec,suid,nosuid,"
          "dev,nodev,relatime,noatime,x-systemd.automount,x-systemd.idle-timeout=60,"
          "comment=hello,sync,async")


def test_unknown_option_refused_by_name() -> None:
    with pytest.raises(UsageError, match="'frobnicate'"):
        parse("frobnicate=3")
    with pytest.raises(UsageError, match="'defaults'"):
        parse("defaults=1")  # generic flags take no value
    warnings: list[str] = []
    parse("frobnicate=3", sloppy=True, warn=warnings.append)
    assert warnings == ["warning: ignoring unknown option frobnicate"]


def test_subdir_in_fsname() -> None:
    r = parse_mount("//srv/share/a/b", "/m", [], env={})
    assert (r.source.share, r.source.subdir, r.fs.fsname) == ("share", "a/b", "//srv/share/a/b")


# -- credentials and environment ----------------------------------------------

def _creds(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "cred"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_credentials_file(tmp_path: Path) -> None:
    p = _creds(tmp_path, "# comment\nusername=al\npassword= sp ace\ndomain=CORP\n\n")
    warnings: list[str] = []
    c = parse(f"credentials={p}", warn=warnings.append).client
    assert (c.username, c.password, c.domain) == ("al", " sp ace", "CORP")
    assert warnings == []
    p = _creds(tmp_path, "user=al\npass=pw\ndom=D\n")
    c = parse(f"cred={p}").client
    assert (c.username, c.password, c.domain) == ("al", "pw", "D")


def test_credentials_permission_warning(tmp_path: Path) -> None:
    p = _creds(tmp_path, "username=al\npassword=pw\n", 0o644)
    warnings: list[str] = []
    read_credentials(str(p), warnings.append)
    assert len(warnings) == 1 and "group/others" in warnings[0] and "0644" in warnings[0]


def test_credentials_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No such file"):
        parse(f"credentials={tmp_path}/none")
    p = _creds(tmp_path, "username=al\nbogus=1\n")
    with pytest.raises(UsageError, match="unknown key 'bogus'"):
        parse(f"credentials={p}")
    p = _creds(tmp_path, "just a line\n")
    with pytest.raises(UsageError, match=":1: expected"):
        parse(f"credentials={p}")


def test_precedence(tmp_path: Path) -> None:
    p = _creds(tmp_path, "username=fileuser\npassword=filepw\n")
    env = {"USER": "envuser", "PASSWD": "envpw"}
    c = parse(f"credentials={p}", env=env).client
    assert (c.username, c.password) == ("fileuser", "filepw")
    c = parse(f"credentials={p},user=opt,password=optpw", env=env).client
    assert (c.username, c.password) == ("opt", "optpw")
    c = parse("", env=env).client
    assert (c.username, c.password) == ("envuser", "envpw")
    # The password stripped off argv by the re-exec ranks as password=.
    c = parse(f"credentials={p}", env=env, password="passed").client
    assert c.password == "passed"
    # USER is only the fallback username; LOGNAME next.
    assert parse("", env={"LOGNAME": "ln"}).client.username == "ln"


def test_env_password_sources(tmp_path: Path) -> None:
    assert read_env_password({"PASSWD": "a"}) == "a"
    f = tmp_path / "pw"
    f.write_text("frompath\nignored\n")
    assert read_env_password({"PASSWD_FILE": str(f)}) == "frompath"
    r, w = os.pipe()
    os.write(w, b"fromfd\n")
    os.close(w)
    assert read_env_password({"PASSWD_FD": str(r)}) == "fromfd"
    assert read_env_password({}) is None


def test_strip_options() -> None:
    kept, pw = strip_options(["user=al%pw1", "ro", "password=pw2", "uid=1"])
    assert kept == ["user=al", "ro", "uid=1"] and pw == "pw2"
    kept, pw = strip_options(["username=al%x"])
    assert kept == ["username=al"] and pw == "x"
    assert strip_options(["ro"]) == (["ro"], None)
    assert Secrets().option is None


# -- argv (mount(8) helper syntax) ---------------------------------------------

def test_parse_argv_helper_syntax() -> None:
    inv = parse_argv(["//s/x", "/mnt", "-s", "-f", "-n", "-v", "-N", "123", "-o", "ro,uid=1",
                      "-t", "smbfs"])
    assert inv.positional == ["//s/x", "/mnt"]
    assert (inv.sloppy, inv.short_f, inv.nomtab, inv.verbose) == (True, True, True, 1)
    assert (inv.namespace, inv.fstype, inv.options) == ("123", "smbfs", ["ro", "uid=1"])
    inv = parse_argv(["-sfnv", "-oro", "-o", "uid=1", "//s/x", "/mnt", "--foreground"])
    assert inv.options == ["ro", "uid=1"] and inv.foreground and inv.short_f and inv.sloppy
    inv = parse_argv(["//s/x", "/m", "--options=ro", "--fake", "-vv"])
    assert inv.options == ["ro"] and inv.fake and inv.verbose == 2
    assert parse_argv(inv.to_argv()) == inv


@pytest.mark.parametrize("argv", [["-x", "//s/x", "/m"], ["//s/x", "/m", "-o"],
                                  ["--bogus", "//s/x", "/m"]])
def test_parse_argv_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_argv(argv)


def test_to_argv_round_trip() -> None:
    inv = Invocation(positional=["//s/x", "/m"], options=["ro"], verbose=2, namespace="1")
    assert parse_argv(inv.to_argv()) == inv


# -- one-line errors -------------------------------------------------------------

def test_describe_error() -> None:
    r = parse("user=al")
    logon = AuthenticationError(0xC000006D)
    assert describe_error(logon, r) == (
        "//srv/share: login failed (wrong user name or password) for user 'al' "
        "(STATUS_LOGON_FAILURE)")
    share = SMBError(0xC00000CC)
    assert describe_error(share, r) == (
        "//srv/share: share 'share' not found (STATUS_BAD_NETWORK_NAME)")
    assert describe_error(SMBError(0xC0000022), r) == "//srv/share: access denied (STATUS_ACCESS_DENIED)"
    assert describe_error(ConnectionLostError("cannot connect"), r) == "cannot connect"
    assert describe_error(MountError("mount point /x does not exist"), r) == (
        "mount point /x does not exist")
    assert "\n" not in describe_error(ValueError("boom"), r)


def test_describe_a_silent_server() -> None:
    line = describe_error(NoAnswerError("srv", 445, 30.0), parse())
    assert line == "//srv/share: the server accepted the connection but did not answer within 30 s"
    r = parse_mount("//[::1]:4455/s", "/m", [], env={})
    assert describe_error(NoAnswerError("::1", 4455, 30.0), r) == (
        "//[::1]:4455/s: the server accepted the connection but did not answer within 30 s")


def test_describe_local_errors() -> None:
    """What this machine cannot do is not dressed up as a server status."""
    r = parse("user=al,sec=krb5")
    line = describe_error(KerberosUnavailableError("pip install 'smbfs[kerberos]'"), r)
    assert line.startswith("//srv/share: Kerberos is not available") and "STATUS_" not in line
    line = describe_error(EncryptionUnavailableError("SMB2_1 cannot encrypt"), r)
    assert "encryption is required but not available" in line and "STATUS_" not in line
