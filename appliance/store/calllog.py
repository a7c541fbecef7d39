"""The call log: one record per call, sharded into one TinyDB file per day.

TinyDB rewrites its whole file on every write, so a single file of 100,000 calls would make
every logged call rewrite megabytes. Instead ``calls/calls-YYYY-MM-DD.json`` holds the calls
that *started* on that UTC day (a few hundred at most on a home line): logging a call rewrites
one small file, and room edits never touch the log. Queries walk the shards newest first and
stop once they have ``limit`` records; pruning deletes whole shards older than the retention.

Saving takes the log's lock and keeps the shards being written (today's, yesterday's) open in
memory; queries take no lock and read the shard files, which writes replace atomically.

A shard that cannot be read is set aside (``.corrupt-…``) and a fresh one started: history is
worth less than a working line (see :mod:`appliance.store.storage`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query
from tinydb.queries import QueryInstance

from appliance.store.errors import Problems, StoreCorruptError
from appliance.store.storage import TEMP_SUFFIX, Database, parse_database

# Twilio's CallStatus and Direction values.
STATUSES = (
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
)
DIRECTIONS = ("inbound", "outbound-api", "outbound-dial")
log = logging.getLogger(__name__)

TABLE = "calls"
SHARD = re.compile(r"calls-(\d{4}-\d{2}-\d{2})\.json")
OPEN_SHARDS = 3  # shards kept open for writing: today's, yesterday's, one more


@dataclass(frozen=True)
class CallRecord:
    """One call. Times are seconds since the epoch; ``duration`` counts from the answer."""

    sid: str
    line: str
    from_: str
    to: str
    started: float
    direction: str = "inbound"
    status: str = "ringing"
    answered: float | None = None
    ended: float | None = None
    duration: int | None = None  # filled in from answered/ended when the call has ended
    conference: str | None = None
    reason: str | None = None  # why it ended or was refused, e.g. "wrong PIN", "busy"

    def to_document(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["from"] = doc.pop("from_")
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> CallRecord:
        fields = {("from_" if k == "from" else k): v for k, v in doc.items()}
        return cls(**{k: v for k, v in fields.items() if k in _FIELD_NAMES})


_FIELD_NAMES = {f.name for f in dataclasses.fields(CallRecord)}


def shard_day(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validated(record: CallRecord) -> CallRecord:
    """The record with its duration filled in; raises ValidationError."""
    problems = Problems()
    for name in ("sid", "line"):
        if not isinstance(getattr(record, name), str) or not getattr(record, name):
            problems.add(name, "must be non-empty text")
    for name in ("from_", "to"):
        if not isinstance(getattr(record, name), str):
            problems.add(name.rstrip("_"), "must be text (empty when unknown)")
    if record.direction not in DIRECTIONS:
        problems.add("direction", "must be one of " + ", ".join(DIRECTIONS))
    if record.status not in STATUSES:
        problems.add("status", "must be one of " + ", ".join(STATUSES))
    if not _is_time(record.started):
        problems.add("started", "must be a time in seconds since the epoch")
    for name in ("answered", "ended"):
        value = getattr(record, name)
        if value is not None and not (_is_time(value) and value >= record.started):
            problems.add(name, "must be a time no earlier than started")
    if record.duration is not None and (
        not isinstance(record.duration, int)
        or isinstance(record.duration, bool)
        or record.duration < 0
    ):
        problems.add("duration", "must be a whole number of seconds, 0 or more")
    for name in ("conference", "reason"):
        if getattr(record, name) is not None and not isinstance(getattr(record, name), str):
            problems.add(name, "must be text")
    problems.raise_if_any()
    if record.duration is None and record.ended is not None:
        answered = record.answered if record.answered is not None else record.ended
        record = dataclasses.replace(record, duration=max(0, round(record.ended - answered)))
    return record


class CallLog:
    """Saves and queries call records across the day shards of one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for temp in self.folder.glob(f".calls-*.json.*{TEMP_SUFFIX}"):
            # A shard's temp file is removed when the shard opens; this catches the temp of a
            # day whose first write was cut short, which no shard would ever open.
            log.info("%s: removing %s, left by an interrupted write", self.folder, temp.name)
            temp.unlink(missing_ok=True)
        self._open: OrderedDict[date, Database] = OrderedDict()
        self._lock = threading.RLock()

    def path_for(self, day: date) -> Path:
        return self.folder / f"calls-{day.isoformat()}.json"

    def _shard(self, day: date) -> Database:
        """The open database of ``day`` (opened, and the least used one closed, when needed)."""
        shard = self._open.pop(day, None)
        if shard is None:
            shard = Database(self.path_for(day), on_corrupt="set_aside")
        self._open[day] = shard
        while len(self._open) > OPEN_SHARDS:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return shard

    def days(self) -> list[date]:
        """Days that have a shard, newest first."""
        found = (SHARD.fullmatch(p.name) for p in self.folder.iterdir())
        return sorted((date.fromisoformat(m[1]) for m in found if m), reverse=True)

    def save(self, record: CallRecord) -> CallRecord:
        """Insert the call, or replace the record with the same sid; returns what was stored.

        A call keeps its ``started`` time from its first save on: it names the shard.
        """
        record = validated(record)
        with self._lock, self._shard(shard_day(record.started)).locked() as db:
            table = db.table(TABLE)
            # Not upsert(): it serialises the shard twice when the call is new.
            stored = table.get(Query().sid == record.sid)
            if stored is None:
                table.insert(record.to_document())
            else:
                table.update(record.to_document(), doc_ids=[stored.doc_id])
        return record

    def _documents(self, day: date) -> list[dict[str, Any]]:
        """The calls of ``day`` as on disk, without taking the lock.

        Writes replace a shard atomically, so a reader sees it before or after any write; a
        query walking a year of shards never holds up a call being logged.
        """
        path = self.path_for(day)
        try:
            data = parse_database(path, path.read_bytes())
        except FileNotFoundError:
            return []  # pruned since the folder was listed
        except StoreCorruptError:
            with self._lock:
                self._shard(day)  # sets the file aside (logged) and starts the day afresh
            return []
        return list((data or {}).get(TABLE, {}).values())

    def find(self, sid: str) -> CallRecord | None:
        """The call with this sid, searching the newest days first."""
        for day in self.days():
            for doc in self._documents(day):
                if doc.get("sid") == sid:
                    return CallRecord.from_document(doc)
        return None

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        line: str | None = None,
        caller: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[CallRecord]:
        """Calls newest first: started in [since, until), on ``line``, from a number that
        contains ``caller``, with ``status``; at most ``limit`` of them."""
        if limit < 1:
            raise ValueError(f"limit must be 1 or more, not {limit}")
        condition = _condition(since, until, line, caller, status)
        found: list[CallRecord] = []
        for day in self._days_between(since, until):
            docs = [doc for doc in self._documents(day) if condition(doc)]
            docs.sort(key=lambda d: (d["started"], d["sid"]), reverse=True)
            found.extend(CallRecord.from_document(d) for d in docs[: limit - len(found)])
            if len(found) >= limit:
                break
        return found

    def _days_between(self, since: float | None, until: float | None) -> Iterator[date]:
        first = shard_day(since) if since is not None else date.min
        last = shard_day(until) if until is not None else date.max
        return (day for day in self.days() if first <= day <= last)

    def prune(self, retention_days: int, now: float | None = None) -> int:
        """Delete the shards of days older than ``retention_days``; returns how many."""
        cutoff = shard_day(time.time() if now is None else now) - timedelta(days=retention_days)
        removed = 0
        with self._lock:
            for day in self.days():
                if day < cutoff:
                    shard = self._open.pop(day, None)
                    if shard is not None:
                        shard.close()
                    self.path_for(day).unlink(missing_ok=True)
                    removed += 1
        return removed

    def close(self) -> None:
        with self._lock:
            while self._open:
                self._open.popitem()[1].close()


def _condition(
    since: float | None,
    until: float | None,
    line: str | None,
    caller: str | None,
    status: str | None,
) -> QueryInstance:
    call = Query()
    # What CallRecord needs: a record someone edited by hand into another shape is passed over.
    condition = call.sid.exists() & call.line.exists() & call["from"].exists() & call.to.exists()
    condition &= call.started.test(_is_time)
    if since is not None:
        condition &= call.started >= since
    if until is not None:
        condition &= call.started < until
    if line:
        condition &= call.line == line
    if status:
        condition &= call.status == status
    if caller:
        wanted = caller.strip().casefold()
        condition &= call["from"].test(lambda number: wanted in number.casefold())
    return condition
