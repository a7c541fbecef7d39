"""The appliance's storage: settings, rooms, recordings index and the call log, on TinyDB.

Files under the store's folder (``data_dir/db`` by default), each written atomically
(:mod:`appliance.store.storage`)::

    settings.json        one settings document        appliance.store.settings
    rooms.json           the rooms                    appliance.store.rooms
    recordings.json      the recordings index         appliance.store.recordings
    calls/calls-YYYY-MM-DD.json   one call-log shard per UTC day   appliance.store.calllog

Each file is its own database with its own lock, so a busy call log never slows a room edit.
The locks live in the :class:`Store`: open one per data folder in the daemon and share it
between the web server's threads and the call threads; no other process may write the folder.
A lower layer: nothing here imports calls/, twiml/ or web/.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.store.calllog import CallLog, CallRecord
from appliance.store.errors import NotFoundError, StoreCorruptError, StoreError, ValidationError
from appliance.store.recordings import RecordingEntry, RecordingIndex
from appliance.store.rooms import OpeningHours, Room, RoomStore
from appliance.store.settings import ApplianceSettings, SettingsStore
from appliance.store.storage import Database

__all__ = [
    "PRUNE_EVERY_SECONDS",
    "ApplianceSettings",
    "CallLog",
    "CallRecord",
    "NotFoundError",
    "OpeningHours",
    "RecordingEntry",
    "RecordingIndex",
    "Room",
    "RoomStore",
    "SettingsStore",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "ValidationError",
]

log = logging.getLogger(__name__)

STORE_FOLDER = "db"  # inside data_dir
PRUNE_EVERY_SECONDS = 3600  # the call-log pruning job's interval (a cheap folder listing)


class Store:
    """Every table of the appliance; raises StoreCorruptError if a settings, rooms or
    recordings file cannot be read (see :mod:`appliance.store.storage` for why)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._databases = [
            Database(self.folder / name)
            for name in ("settings.json", "rooms.json", "recordings.json")
        ]
        settings, rooms, recordings = self._databases
        self.settings = SettingsStore(settings)
        self.rooms = RoomStore(rooms)
        self.recordings = RecordingIndex(recordings)
        self.calls = CallLog(self.folder / "calls")

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Store:
        return cls(Path(data_dir) / STORE_FOLDER)

    def prune_call_log(self, now: float | None = None) -> int:
        """Drop call-log days older than the retention setting (the ``schedule`` job)."""
        days = self.settings.snapshot().call_log_retention_days
        removed = self.calls.prune(days, now)
        if removed:
            log.info("call log: removed %d day(s) older than %d days", removed, days)
        return removed

    def close(self) -> None:
        self.calls.close()
        for database in self._databases:
            database.close()
