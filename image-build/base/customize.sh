#!/bin/sh
# Runs inside the arm64 base root filesystem (chroot, qemu-user) at the end of mmdebstrap:
# builds the venv, drops the compilers, then makes the initrd once.
set -eu

echo "base: venv /opt/appliance/venv (system site packages + venv-requirements.txt)"
python3 -m venv --system-site-packages /opt/appliance/venv
# From the files base.sh downloaded on the host: the build has no name resolution inside.
# pyalsaaudio compiles, with the venv's own setuptools.
/opt/appliance/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
    --no-index --find-links /tmp/image-build/downloads --no-build-isolation \
    -r /tmp/image-build/venv-requirements.txt
# Debian's numpy must be the one in use: a second numpy from PyPI would double the size.
if [ -d /opt/appliance/venv/lib/python3.11/site-packages/numpy ]; then
    echo "base: numpy was installed into the venv; it should come from python3-numpy" >&2
    exit 1
fi
/opt/appliance/venv/bin/python -c 'import alsaaudio, numpy, soxr, tinydb'

echo "base: purge the build dependencies"
# shellcheck disable=SC2046
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --auto-remove \
    $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' /tmp/image-build/build-deps.txt)

echo "base: raspi-firmware settings (root by label, serial console on the Pi's UART)"
cat > /etc/default/raspi-firmware <<'CONF'
# The SD image mounts its root by label: see image-build/ in the appliance's source.
ROOTPART="LABEL=appliance-root"
CONSOLES="tty0 ttyS1,115200"
CMA=64M
CONF

echo "base: the initrd, once (update-initramfs was diverted to a no-op during the install)"
rm -f /usr/sbin/update-initramfs
dpkg-divert --local --rename --remove /usr/sbin/update-initramfs
update-initramfs -c -k all

apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/image-build
