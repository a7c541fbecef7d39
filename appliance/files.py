"""Durable file writes: a power cut leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def fsync_directory(folder: Path) -> None:
    """Make a rename or unlink inside ``folder`` durable (POSIX: the entry lives in the folder).

    A filesystem that cannot open a folder for syncing (some FUSE or network ones) is skipped.
    """
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temp file beside it (mode 0600, so a secret is never
    readable by others, not even for a moment), flushed and fsynced, renamed over ``path``,
    then the folder fsynced. Returns only once the new file would survive a power cut."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_directory(path.parent)


READ_CHUNK = 64 * 1024


def read_at_most(stream: BinaryIO, limit: int) -> bytes | None:
    """All of ``stream`` if it holds at most ``limit`` bytes, else None (read in chunks, so an
    oversized upload is never held in memory whole)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
