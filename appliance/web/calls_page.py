"""The call log: newest calls first, filtered by a GET form, a page of them at a time.

Dates in the form are days on the appliance's own clock (its local time zone); "Older calls"
continues from the oldest call shown (``before``, seconds since the epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import bottle
from bottle import request

from appliance.store import CallRecord, Store
from appliance.store.calllog import STATUSES
from appliance.web.access import current_session
from appliance.web.context import WebContext
from appliance.web.recordings_page import duration_text
from appliance.web.render import render

PAGE_SIZE = 50
FILTERS = ("from", "to", "line", "caller", "status")
STATUS_LABELS = {
    "queued": "Queued", "ringing": "Ringing", "in-progress": "In progress",
    "completed": "Completed", "busy": "Busy", "failed": "Failed", "no-answer": "Not answered",
    "canceled": "Caller hung up",
}


@dataclass
class CallFilter:
    """The form's values, as typed, and what they mean for the query."""

    values: dict[str, str]
    since: float | None = None
    until: float | None = None
    before: float | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, query: Any) -> CallFilter:
        values = {name: query.getunicode(name, "").strip()[:64] for name in FILTERS}
        found = cls(values)
        first = found._day("from", "From")
        last = found._day("to", "To")
        if first is not None:
            found.since = _local_midnight(first)
        if last is not None:
            found.until = _local_midnight(last + timedelta(days=1))
        if first and last and first > last:
            found.errors.append("The “From” day is after the “To” day.")
        if values["status"] and values["status"] not in STATUSES:
            found.errors.append(f"There is no status “{values['status']}”.")
        before = query.getunicode("before", "")
        if before:
            try:
                found.before = float(before)
            except ValueError:
                found.errors.append("That page of the log does not exist.")
            else:
                if not math.isfinite(found.before):
                    found.before = None
                    found.errors.append("That page of the log does not exist.")
        return found

    def _day(self, name: str, label: str) -> date | None:
        text = self.values[name]
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.errors.append(f"“{label}” must be a day such as 2024-05-31.")
            return None

    def query(self, store: Store, limit: int) -> list[CallRecord]:
        until = self.until
        if self.before is not None:
            until = self.before if until is None else min(until, self.before)
        return store.calls.query(since=self.since, until=until,
                                 line=self.values["line"] or None,
                                 caller=self.values["caller"] or None,
                                 status=self.values["status"] or None, limit=limit)

    def older_link(self, oldest: CallRecord) -> str:
        kept = {k: v for k, v in self.values.items() if v}
        return "/calls?" + urlencode({**kept, "before": repr(oldest.started)})

    def newest_link(self) -> str:
        kept = {k: v for k, v in self.values.items() if v}
        return "/calls" + ("?" + urlencode(kept) if kept else "")

    @property
    def active(self) -> bool:
        return any(self.values.values())


def _local_midnight(day: date) -> float:
    return datetime.combine(day, time()).astimezone().timestamp()


def call_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%d %b %Y, %H:%M:%S")


def call_duration(record: CallRecord) -> str:
    if record.answered is None:
        return "—"  # never answered: no length to speak of
    if record.duration is None:
        return "ongoing"
    return duration_text(record.duration)


def install(app: bottle.Bottle, ctx: WebContext, store: Store | None) -> None:
    """Add /calls."""

    @app.get("/calls")
    def calls() -> str:
        found = CallFilter.parse(request.query)
        records: list[CallRecord] = []
        if store is not None and not found.errors:
            records = found.query(store, PAGE_SIZE + 1)
        more = len(records) > PAGE_SIZE
        records = records[:PAGE_SIZE]
        lines = sorted(set(ctx.lines()) | ({found.values["line"]} - {""}))
        if found.errors:
            bottle.response.status = 400
        return render("calls", ctx=ctx, session=current_session(request), title="Call log",
                      styles=["pages.css"], records=records, found=found, lines=lines,
                      statuses=STATUS_LABELS, available=store is not None,
                      older=found.older_link(records[-1]) if more else "",
                      first_page=found.before is None, call_time=call_time,
                      call_duration=call_duration)
