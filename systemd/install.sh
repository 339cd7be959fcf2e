#!/usr/bin/env bash
# Install smbfs's systemd units and the mount helper: sudo bash systemd/install.sh
#
# Idempotent: run it again after an upgrade. Installs
#   /etc/systemd/system/smbfs@.service     the template (instance = /etc/smbfs/<name>.conf)
#   /etc/smbfs/                            configuration directory (0755; .cred files 0600)
#   /etc/smbfs/examples/                   example .conf/.cred, .mount/.automount, fstab line
#   /sbin/mount.smbfs                      the helper mount(8) and the units run (a symlink)
# then reloads systemd when it is running. Never enables or starts a unit.
#
# DESTDIR=/some/root installs below that root instead (packaging, tests).
# SMBFS_MOUNT_HELPER=/path/to/mount.smbfs: the program the helper runs
# (default: the mount.smbfs next to the Python that has smbfs installed, e.g.
# this checkout's .venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${DESTDIR:-}"

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    echo "error: installing into /etc and /usr/sbin needs root: sudo bash $0" >&2
    exit 1
fi

target="${SMBFS_MOUNT_HELPER:-}"
if [ -z "$target" ]; then
    for candidate in "$here/../.venv/bin/mount.smbfs" "$(command -v mount.smbfs 2>/dev/null || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        case "$candidate" in
            # The helper itself (found on PATH): follow it to the installation.
            /sbin/mount.smbfs | /usr/sbin/mount.smbfs)
                [ -L "$candidate" ] || continue
                candidate="$(readlink -f "$candidate")" ;;
        esac
        target="$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"
        break
    done
fi
if [ -z "$target" ]; then
    echo "error: no mount.smbfs found: install smbfs first (pip install, or sudo bash .ci/setup)," >&2
    echo "       or set SMBFS_MOUNT_HELPER=/path/to/mount.smbfs" >&2
    exit 1
fi

install -d -m 0755 "$root/etc/systemd/system" "$root/etc/smbfs" "$root/etc/smbfs/examples"
[ -z "$root" ] || install -d -m 0755 "$root/usr/sbin"
install -m 0644 "$here/smbfs@.service" "$root/etc/systemd/system/smbfs@.service"
for f in example.conf fstab.example mnt-share.mount mnt-share.automount; do
    install -m 0644 "$here/$f" "$root/etc/smbfs/examples/$f"
done
install -m 0600 "$here/example.cred" "$root/etc/smbfs/examples/example.cred"

# The helper is a symlink to the installation's mount.smbfs (a venv's script
# keeps its own interpreter through its shebang). On the live system that is
# `smbfs install-helper`'s job (the one owner of /sbin/mount.smbfs, which is
# /usr/sbin/mount.smbfs on merged-/usr systems); below DESTDIR, done here.
if [ -z "$root" ] && [ -x "$(dirname "$target")/smbfs" ]; then
    "$(dirname "$target")/smbfs" install-helper
else
    ln -sfn "$target" "$root/usr/sbin/mount.smbfs"
    # The unit runs /sbin/mount.smbfs (where install-helper puts it); a
    # merged-/usr root, as on Debian >= 12, has /sbin -> usr/sbin.
    [ -e "$root/sbin" ] || ln -s usr/sbin "$root/sbin"
fi

# Credentials files someone already put here must not stay readable by all.
for cred in "$root"/etc/smbfs/*.cred; do
    [ -e "$cred" ] && chmod go-rwx "$cred"
done

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
echo "smbfs: installed smbfs@.service and /sbin/mount.smbfs (-> $target)${root:+ under $root}"
echo "next: create /etc/smbfs/NAME.conf (see /etc/smbfs/examples/example.conf), then"
echo "      systemctl enable --now smbfs@NAME.service"
