#!/bin/sh
# Essential hook: until the end of the build, update-initramfs does nothing. Every kernel,
# udev and firmware package would otherwise run mkinitramfs again, each time several minutes
# under emulation. base/customize.sh restores it and makes the initrd once.
set -eu
root=$1
chroot "$root" dpkg-divert --local --rename --add /usr/sbin/update-initramfs
mkdir -p "$root/usr/sbin"
printf '#!/bin/sh\necho "update-initramfs: deferred to the end of the image build"\n' \
    > "$root/usr/sbin/update-initramfs"
chmod 755 "$root/usr/sbin/update-initramfs"
