# Shared helpers of the image-build scripts: progress and timing per stage.
# shellcheck shell=bash

BUILD_START=${BUILD_START:-$(date +%s)}
export BUILD_START

_stage_name=""
_stage_start=0

log() {
    printf '[%4ss] %s\n' "$(( $(date +%s) - BUILD_START ))" "$*" >&2
}

stage() {
    stage_done
    _stage_name=$1
    _stage_start=$(date +%s)
    log "==> $_stage_name"
}

stage_done() {
    if [ -n "$_stage_name" ]; then
        log "    $_stage_name: done in $(( $(date +%s) - _stage_start ))s"
        _stage_name=""
    fi
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The package lists without comments and blank lines.
list_of() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$@"
}

# The arm64 binaries of the root filesystem run through qemu-user (binfmt_misc).
ensure_binfmt() {
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        update-binfmts --enable qemu-aarch64
    fi
    arch-test arm64 >/dev/null || die "arm64 binaries do not run here (qemu-user-static, binfmt-support)"
}
