#!/bin/bash
# make image: the flashable SD image build/appliance-<version>-arm64.img.xz and its .bmap.
#
# Stages: host tools, base root filesystem (cached, base.sh), the appliance wheel, the root
# filesystem (base + appliance + this folder's rootfs/ + systemd units + udev rules), the boot
# partition, genimage (vfat + mke2fs -d, MBR; no loop devices, no mounts), xz and bmap.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/build}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)
name=appliance-$version-arm64
rootfs=$build/rootfs
bootfs=$build/bootfs
HOST_TOOLS="mmdebstrap qemu-user-static binfmt-support arch-test genimage dosfstools mtools
            e2fsprogs fdisk bmap-tools xz-utils systemd"

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap --mode=root, file ownership in the image)"
[ -n "$version" ] || die "no version in pyproject.toml"
log "building $name"

stage "host tools"
missing=""
for package in $HOST_TOOLS; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
ensure_binfmt

stage "base root filesystem"
base=$("$here/base.sh" | tail -n 1)
[ -s "$base" ] || die "base.sh made no tarball"

stage "appliance wheel"
rm -rf "$build/wheel"
mkdir -p "$build/wheel"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$build/wheel" "$repo"
wheel=$(ls "$build"/wheel/appliance-"$version"-*.whl)
log "$(basename "$wheel")"

stage "root filesystem"
rm -rf "$rootfs" "$bootfs"
mkdir -p "$rootfs" "$bootfs"
tar -xf "$base" -C "$rootfs" --numeric-owner --xattrs --xattrs-include='*'
in_root() {
    chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"
}
log "the appliance into /opt/appliance/venv (pip, under qemu-user)"
cp "$wheel" "$rootfs/tmp/"
in_root /opt/appliance/venv/bin/pip install --quiet --no-deps --no-index --no-cache-dir \
    --disable-pip-version-check "/tmp/$(basename "$wheel")"
rm -f "$rootfs/tmp/$(basename "$wheel")"
in_root /opt/appliance/venv/bin/pip check --disable-pip-version-check
in_root /opt/appliance/venv/bin/python -c \
    'import alsaaudio, bottle, numpy, serial, soundfile, soxr, tinydb, waitress, appliance.cli'
log "files: rootfs/, systemd units, udev rules, documentation"
tar -C "$here/rootfs" --owner=0 --group=0 -cf - . | tar -C "$rootfs" -xf - --no-overwrite-dir
install -m 0644 "$repo"/systemd/*.service "$rootfs/usr/lib/systemd/system/"
install -m 0644 "$repo"/hardware/*.rules "$rootfs/etc/udev/rules.d/"
install -d "$rootfs/usr/share/doc/appliance"
install -m 0644 "$repo/docs/image.md" "$repo/README.md" "$rootfs/usr/share/doc/appliance/"
log "users and groups (systemd-sysusers)"
systemd-sysusers --root="$rootfs"
in_root chown root:appliance /etc/appliance/config.toml
chmod 0640 "$rootfs/etc/appliance/config.toml"
log "units: enable"
cp "$rootfs/usr/share/systemd/tmp.mount" "$rootfs/etc/systemd/system/tmp.mount"
systemctl --root="$rootfs" enable --quiet \
    appliance.service appliance-grow-root.service appliance-ssh-keys.service \
    appliance-userconf.service appliance-import.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    avahi-daemon.service ssh.service fake-hwclock.service tmp.mount
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
log "per-device identity: no SSH host keys, no machine-id (made on first boot)"
rm -f "$rootfs"/etc/ssh/ssh_host_*
echo uninitialized > "$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
ln -s /etc/machine-id "$rootfs/var/lib/dbus/machine-id"
rm -rf "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/*
log "boot files: config.txt and cmdline.txt"
# raspi-firmware wrote both when the base made its initrd; the image's
# /etc/default/raspi-firmware drops the cma= the base had (no display; it breaks the Pi 4), as
# raspi-firmware itself will on the next kernel upgrade.
sed -i 's/ cma=[^ ]*//' "$rootfs/boot/firmware/cmdline.txt"
grep -q 'root=LABEL=appliance-root' "$rootfs/boot/firmware/cmdline.txt" \
    || die "cmdline.txt does not name the root by label: $(cat "$rootfs/boot/firmware/cmdline.txt")"
log "    cmdline.txt: $(cat "$rootfs/boot/firmware/cmdline.txt")"
# The boot partition holds what raspi-firmware put in /boot/firmware; on the card it is
# mounted there again (fstab), so the root file system keeps only the empty mount point.
cp -r "$rootfs/boot/firmware/." "$bootfs/"
find "$rootfs/boot/firmware" -mindepth 1 -delete
log "boot partition: $(du -sh "$bootfs" | cut -f1); root file system: $(du -sh "$rootfs" | cut -f1)"

stage "partitions and image (genimage)"
rm -rf "$build/genimage-tmp" "$build/images"
# Every image names its own srcpath: genimage's root and input folders stay empty.
mkdir -p "$build/images" "$build/genimage-input" "$build/genimage-root"
root_kib=$(du -s -k "$rootfs" | cut -f1)
# Room for the file system's own metadata and a first start's state; first boot grows it.
root_mib=$(( (root_kib * 13 / 10 / 1024 + 256 + 63) / 64 * 64 ))
BOOT_DIR=$bootfs ROOT_DIR=$rootfs ROOT_SIZE=${root_mib}M IMAGE_NAME=$name.img \
    genimage --config "$here/genimage.cfg" \
        --rootpath "$build/genimage-root" \
        --tmppath "$build/genimage-tmp" \
        --inputpath "$build/genimage-input" \
        --outputpath "$build/images" >"$build/genimage.log" 2>&1 \
    || { cat "$build/genimage.log" >&2; die "genimage failed"; }
rm -rf "$build/genimage-tmp"
image=$build/$name.img
mv "$build/images/$name.img" "$image"
rm -rf "$build/images"
sfdisk --dump "$image" | sed 's/^/    /'

stage "bmap and xz"
bmaptool -q create -o "$build/$name.img.bmap" "$image"
rm -f "$image.xz"
nice -n 19 xz -T0 -6 "$image"
stage_done
log "done: $(du -h "$image.xz" | cut -f1) $image.xz ($(( $(stat -c %s "$image.xz") / 1048576 )) MiB)"
log "      $build/$name.img.bmap (bmaptool copy $name.img.xz /dev/sdX)"
