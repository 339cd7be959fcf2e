"""``smbfs demo``: a private Samba on loopback, its demo share mounted with
the real ``mount.smbfs`` (as a user would run it), listed, read and written
through the mount, then unmounted and stopped (or kept until Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from smbfs.cli.daemon import find_daemons, is_mounted
from smbfs.cli.install import entry_point

DEMO_SHARE = "demo"
DEMO_FILES: dict[str, bytes] = {
    "README.txt": b"This share is served by a private Samba started by `smbfs demo`.\n",
    "hello.txt": b"Hello from smbfs!\n",
    "docs/numbers.txt": b"".join(b"%d\n" % i for i in range(1, 101)),
    "docs/empty.txt": b"",
}
WRITTEN = "written-through-smbfs.txt"
STEP_TIMEOUT = 60.0


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM/SIGHUP (CI, a closed terminal) must run the same clean-up as Ctrl-C;
    # SIGINT too, even when started from a shell that ignores it in background jobs.
    raise KeyboardInterrupt


def _mount_command() -> list[str]:
    ep = entry_point()
    if ep.exists():
        return [str(ep)]
    return [sys.executable, "-m", "smbfs.cli.mount"]


def _show(cmd: list[str], shown: str | None = None) -> int:
    print(f"$ {shown or ' '.join(cmd)}", flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        print(out, flush=True)
    return r.returncode


def unmount(mountpoint: str, timeout: float = 30.0) -> bool:
    """``umount`` (the daemon then closes handles and logs off), waiting for
    the daemon to exit, bounded; fusermount3 -u as a fallback."""
    from smbfs.devserver import process_alive

    pids = find_daemons(mountpoint)
    if is_mounted(mountpoint):
        r = subprocess.run(["umount", mountpoint], capture_output=True, timeout=timeout)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-u", mountpoint], capture_output=True,
                           timeout=timeout)
    deadline = time.monotonic() + timeout
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_mounted(mountpoint)


def demo_main(port: int = 0, keep: bool = False) -> int:
    from smbfs.devserver import PrivateSamba, SambaConfig, SambaError, Share

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    share = Share(DEMO_SHARE, {"read only": "no"}, files=DEMO_FILES)
    server = PrivateSamba(SambaConfig(port=port, shares=(share,)))
    try:
        server.start()
    except SambaError as e:
        print(f"smbfs demo: {e}", file=sys.stderr)
        return 1
    mnt = tempfile.mkdtemp(prefix="smbfs-demo-")
    mounted = False
    try:
        u = server.user
        print(f"Private Samba running: pid {server.smbd_pid}, {server.host} port {server.port}")
        print(f"  share //{server.host}/{DEMO_SHARE}  user {u.name}  password {u.password}")
        print(f"  files on disk: {server.share_path(DEMO_SHARE)}")
        print()
        # A credentials file keeps the password off every command line.
        creds = server.base_dir / "demo.cred"
        fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"username={u.name}\npassword={u.password}\n")
        source = f"//{server.host}:{server.port}/{DEMO_SHARE}"
        cmd = [*_mount_command(), source, mnt, "-o", f"credentials={creds}"]
        shown = f"mount.smbfs {source} {mnt} -o credentials={creds}"
        if _show(cmd, shown) != 0:
            print("smbfs demo: mount.smbfs failed", file=sys.stderr)
            return 1
        mounted = True
        _show(["findmnt", "-n", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS", mnt])
        print()
        _show(["ls", "-l", mnt])
        _show(["ls", "-l", os.path.join(mnt, "docs")])
        print()
        _show(["cat", os.path.join(mnt, "hello.txt")])
        print()
        text = f"written through the smbfs mount at {time.strftime('%H:%M:%S')}\n"
        target = Path(mnt) / WRITTEN
        print(f"$ echo '{text.strip()}' > {target}")
        target.write_text(text)
        print("Seen by the server (Samba's own client, smbclient):")
        r = server.smbclient(DEMO_SHARE, f"get {WRITTEN} -")
        lines = (r.stdout or r.stderr).splitlines()
        print(f"$ smbclient //{server.host}/{DEMO_SHARE} -p {server.port} -U {u.name}%... "
              f"-c 'get {WRITTEN} -'")
        print(lines[0] if lines else "(no output)")
        print(f"and on the server's disk: {(server.share_path(DEMO_SHARE) / WRITTEN).read_text().strip()}")
        print()
        if keep:
            print(f"The share stays mounted on {mnt}; try it (ls, cp, an editor...).")
            print(f"Unmount it with:  umount {mnt}   (or fusermount3 -u {mnt})")
            print("Press Ctrl-C to unmount and stop the server.", flush=True)
            while is_mounted(mnt):
                time.sleep(0.5)
            print("The mount is gone; stopping.")
            return 0
        print(f"Unmounting (what you would type: umount {mnt}):")
        print(f"$ umount {mnt}")
        ok = unmount(mnt)
        mounted = not ok
        print("Unmounted; mount.smbfs closed its handles, logged off and exited."
              if ok else "smbfs demo: the unmount failed")
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (subprocess.TimeoutExpired, OSError) as e:
        print(f"smbfs demo: {e}", file=sys.stderr)
        return 1
    finally:
        if mounted or is_mounted(mnt):
            unmount(mnt)
        try:
            os.rmdir(mnt)
        except OSError:
            pass
        server.stop()
        print("Private Samba stopped.")
