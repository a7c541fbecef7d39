#!/bin/bash
# The base root filesystem: Debian bookworm arm64 with the kernel, the Pi firmware, the
# packages of packages.txt and the venv of venv-requirements.txt. Slow (tens of minutes under
# emulation), so it is cached as cache/base-<key>.tar, the key a hash of everything that goes
# into it. Prints the path of the tarball on its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

cache=${CACHE_DIR:-$here/cache}
suite=bookworm
key=$(cd "$here" && cat packages.txt venv-requirements.txt base/* | { cat; echo "$suite"; } \
      | sha256sum | cut -c1-16)
tarball=$cache/base-$key.tar

if [ -s "$tarball" ]; then
    log "base root filesystem: cached ($(basename "$tarball"))"
    echo "$tarball"
    exit 0
fi

stage "base root filesystem: mmdebstrap $suite arm64 (cold: about half an hour)"
ensure_binfmt
mkdir -p "$cache"
# What the venv needs from PyPI, fetched here: there is no name resolution inside the build.
downloads=$cache/downloads
rm -rf "$downloads"
mkdir -p "$downloads"
log "downloading venv-requirements.txt: aarch64 wheels for CPython 3.11, sdists to compile"
# pyalsaaudio publishes no Linux wheels: it is compiled inside (base/customize.sh).
list_of "$here/venv-requirements.txt" | grep -v '^pyalsaaudio' > "$downloads/wheels.txt"
list_of "$here/venv-requirements.txt" | grep '^pyalsaaudio' > "$downloads/sdists.txt"
python3 -m pip download --quiet --no-deps --dest "$downloads" --only-binary=:all: \
    --implementation cp --python-version 3.11 \
    --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 --platform any \
    -r "$downloads/wheels.txt"
python3 -m pip download --quiet --no-deps --dest "$downloads" --no-binary=:all: \
    -r "$downloads/sdists.txt"
ls "$downloads" | sed 's/^/    /' >&2
include=$(list_of "$here/packages.txt" "$here/base/build-deps.txt" | paste -sd, -)
# Fewer files: no manuals, no translations, no documentation but the copyright notices.
nice -n 19 ionice -c3 mmdebstrap \
    --mode=root \
    --format=tar \
    --architectures=arm64 \
    --variant=minbase \
    --components='main non-free-firmware' \
    --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --essential-hook="$here/base/no-initramfs.sh \"\$1\"" \
    --customize-hook='mkdir -p "$1/tmp/image-build"' \
    --customize-hook="cp -r $here/venv-requirements.txt $here/base/build-deps.txt $here/base/customize.sh $downloads \"\$1/tmp/image-build/\"" \
    --customize-hook='chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 sh /tmp/image-build/customize.sh' \
    "$suite" "$tarball.part" >&2
mv "$tarball.part" "$tarball"
# Older bases are of no further use.
find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "$(basename "$tarball")" -delete
stage_done
echo "$tarball"
