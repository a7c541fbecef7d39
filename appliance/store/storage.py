"""TinyDB on disk with atomic, durable writes, and one lock per database file.

A write (TinyDB rewrites the whole file every time) goes: serialise → a temp file in the same
folder (``.<name>.<random>.tmp``, mode 0600: settings hold secrets) → flush + fsync → ``os.replace``
over the target → fsync the folder. A reader sees the old file or the new one, never a mix, and
``write`` returns only after the folder's fsync, so a write that returned survives a power cut.

A temp file left behind by a crash holds a write that never returned: it is deleted on open.

A target that is not TinyDB's JSON (the atomic writer never makes one; a failing SD card or a
hand edit can) is handled by the database's ``on_corrupt`` policy:

- ``"raise"`` (settings, rooms, recordings): :class:`StoreCorruptError` naming the file, which
  is left untouched. Starting fresh would silently drop the rooms and, worse, the admin
  password, and a first-run page would then hand the appliance to anyone on the network.
- ``"set_aside"`` (call-log shards: history, not configuration): the file is renamed
  ``<name>.corrupt-<UTC time>`` and kept for the owner, an error is logged, and the database
  starts empty so calls keep being logged.

TinyDB is not thread-safe: every use of a :class:`Database` happens inside ``locked()``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from tinydb import TinyDB
from tinydb.storages import Storage

from appliance.files import TEMP_SUFFIX, atomic_write_bytes, fsync_directory
from appliance.store.errors import StoreCorruptError

log = logging.getLogger(__name__)

CorruptPolicy = Literal["raise", "set_aside"]


def stale_temp_files(path: Path) -> list[Path]:
    """Temp files of ``path``'s writer (only a crash leaves them behind)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"))


def parse_database(path: Path, raw: bytes) -> dict[str, Any] | None:
    """TinyDB's ``{table: {id: document}}`` from a file's bytes; None when the file is empty."""
    if not raw:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError both are
        raise StoreCorruptError(path, f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreCorruptError(path, "the top level is not a JSON object of tables")
    for name, table in data.items():
        if not isinstance(table, dict) or not all(isinstance(d, dict) for d in table.values()):
            raise StoreCorruptError(path, f"table {name!r} is not an object of documents")
    return data


class AtomicJSONStorage(Storage):
    """TinyDB storage: whole-file JSON, written atomically, its content kept in memory.

    The appliance is the only writer of its data folder, so reads come from memory, not the
    disk: ``read`` hands TinyDB the parsed data itself (no copy, which would cost as much as
    the write's serialisation). TinyDB edits that data in place before ``write``; if the write
    fails, the data is parsed again from the text last written, so memory never holds what
    the disk does not.
    """

    def __init__(self, path: str | Path, on_corrupt: CorruptPolicy = "raise") -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for temp in stale_temp_files(self.path):
            log.info("%s: removing %s, left by an interrupted write", self.path, temp.name)
            temp.unlink(missing_ok=True)
        self._data = self._load(on_corrupt)
        self._text = None if self._data is None else self._serialise(self._data)

    @staticmethod
    def _serialise(data: dict[str, Any]) -> str:
        return json.dumps(data, separators=(",", ":"))

    def _load(self, on_corrupt: CorruptPolicy) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_database(self.path, raw)
        except StoreCorruptError as exc:
            if on_corrupt == "raise":
                raise
            aside = self.path.with_name(
                f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
            )
            os.replace(self.path, aside)
            fsync_directory(self.path.parent)
            log.error(
                "%s: unreadable (%s); kept it as %s and started this database empty",
                self.path,
                exc.reason,
                aside.name,
            )
            return None

    def read(self) -> dict[str, dict[str, Any]] | None:
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        try:
            text = self._serialise(data)
            # TinyDB also writes after an update that matched nothing (upsert's first step).
            if text != self._text:
                atomic_write_bytes(self.path, text.encode("ascii"))
        except BaseException:
            self._data = None if self._text is None else json.loads(self._text)
            raise
        self._text = text
        self._data = data


class Database:
    """One TinyDB file and the lock every use of it takes."""

    def __init__(self, path: str | Path, on_corrupt: CorruptPolicy = "raise") -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = TinyDB(self.path, storage=AtomicJSONStorage, on_corrupt=on_corrupt)

    @contextlib.contextmanager
    def locked(self) -> Iterator[TinyDB]:
        """The TinyDB, for the duration of the block, to this thread alone."""
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()
