#!/usr/bin/env bash
# Makes a busybox root filesystem tarball from Debian's busybox-static: /bin/busybox with every
# applet linked, /etc/passwd with root and a uid-1000 user, /etc/group, /tmp 1777.
set -euo pipefail
out="${1:?usage: make-busybox-rootfs.sh OUT.tar}"
root="$(mktemp -d)"
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/user,dev,proc,sys,var,run,tmp}
chmod 1777 "$root/tmp"; chmod 700 "$root/root"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  [ -e "$root/$applet" ] && continue
  depth=$(printf '%s' "$applet" | tr -cd / | wc -c)
  ln -s "$(printf '../%.0s' $(seq "$depth"))bin/busybox" "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n' > "$root/etc/group"
chown 1000:1000 "$root/home/user"
tar --numeric-owner --sort=name -C "$root" -cf "$out" .
