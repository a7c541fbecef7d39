"""The recordings index: what the page lists, plays and deletes, kept in ``recordings.json``.

The index holds facts about each file; the files themselves belong to ``calls.recording``
(written there, deleted by whoever calls :meth:`RecordingIndex.delete` once it returns).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from tinydb import Query

from appliance.store.errors import NotFoundError, Problems
from appliance.store.storage import Database

TABLE = "recordings"


@dataclass(frozen=True)
class RecordingEntry:
    """One recording file: of a conference's mix, or of one call."""

    sid: str
    path: str
    created: float  # seconds since the epoch, when the recording started
    duration: float  # seconds of audio in the file
    size: int  # bytes
    call_sid: str | None = None
    conference: str | None = None

    def to_document(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> RecordingEntry:
        return cls(**{k: v for k, v in doc.items() if k in _FIELD_NAMES})


_FIELD_NAMES = {f.name for f in dataclasses.fields(RecordingEntry)}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_recording(entry: RecordingEntry) -> None:
    problems = Problems()
    for name in ("sid", "path"):
        if not isinstance(getattr(entry, name), str) or not getattr(entry, name):
            problems.add(name, "must be non-empty text")
    if not _number(entry.created):
        problems.add("created", "must be a time in seconds since the epoch")
    if not _number(entry.duration) or entry.duration < 0:
        problems.add("duration", "must be 0 seconds or more")
    if isinstance(entry.size, bool) or not isinstance(entry.size, int) or entry.size < 0:
        problems.add("size", "must be a whole number of bytes, 0 or more")
    for name in ("call_sid", "conference"):
        if getattr(entry, name) is not None and not isinstance(getattr(entry, name), str):
            problems.add(name, "must be text")
    if entry.call_sid is None and entry.conference is None:
        problems.add("call_sid", "a recording belongs to a call or a conference")
    problems.raise_if_any()


class RecordingIndex:
    """add / get / list / delete recordings by sid."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, entry: RecordingEntry) -> None:
        """Index a recording (replacing an entry with the same sid)."""
        validate_recording(entry)
        with self._database.locked() as db:
            table = db.table(TABLE)
            stored = table.get(Query().sid == entry.sid)
            if stored is None:
                table.insert(entry.to_document())
            else:
                table.update(entry.to_document(), doc_ids=[stored.doc_id])

    def get(self, sid: str) -> RecordingEntry:
        with self._database.locked() as db:
            doc = db.table(TABLE).get(Query().sid == sid)
        if doc is None:
            raise NotFoundError(f"no recording {sid}")
        return RecordingEntry.from_document(doc)

    def list(
        self, conference: str | None = None, call_sid: str | None = None, limit: int | None = None
    ) -> list[RecordingEntry]:
        """Recordings newest first, of one conference and/or one call when given."""
        recording = Query()
        condition = recording.noop()
        if conference is not None:
            condition &= recording.conference == conference
        if call_sid is not None:
            condition &= recording.call_sid == call_sid
        with self._database.locked() as db:
            docs = db.table(TABLE).search(condition)
        entries = sorted(
            (RecordingEntry.from_document(d) for d in docs),
            key=lambda e: (e.created, e.sid),
            reverse=True,
        )
        return entries[:limit] if limit is not None else entries

    def delete(self, sid: str) -> RecordingEntry:
        """Remove the entry and return it (its file is the caller's to delete)."""
        with self._database.locked() as db:
            table = db.table(TABLE)
            doc = table.get(Query().sid == sid)
            if doc is None:
                raise NotFoundError(f"no recording {sid}")
            table.remove(doc_ids=[doc.doc_id])
        return RecordingEntry.from_document(doc)
