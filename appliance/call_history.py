"""The call log and the recordings index, written from the event bus on a thread of their own.

Bus subscribers run on the publisher's thread (a call's thread, the audio tick), so
:meth:`CallHistory._on_event` only queues the events it needs; the worker thread turns them into
:class:`~appliance.store.CallRecord` and :class:`~appliance.store.RecordingEntry` writes.

Events read (their fields, as the calls layer publishes them):

- ``call.ringing``  call_sid, line, caller, to (outbound), direction — a new record
- ``call.answered`` call_sid — status in-progress, answered time
- ``call.ended``    call_sid, status, reason — the final record
- ``conference.join`` call_sid, conference — the room the call went to
- ``conference.recording`` (recording_status "completed") recording_sid, recording_path,
  recording_started, recording_duration, recording_size, conference — a room's recording
- ``call.recording`` (status "completed") recording_sid, call_sid, path, started, duration,
  size — a call's own recording, once the calls layer publishes it
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from appliance.events import Event, EventBus
from appliance.store import CallRecord, RecordingEntry, Store, StoreError
from appliance.store.calllog import DIRECTIONS, STATUSES

log = logging.getLogger(__name__)

KINDS = frozenset({"call.ringing", "call.answered", "call.ended", "conference.join",
                   "conference.recording", "call.recording"})
OPEN_CALLS = 1000  # records kept in memory until their call ends (a bound against leaks)


class CallHistory:
    """Subscribes to ``bus`` on :meth:`start`; :meth:`stop` writes what is queued, then ends."""

    def __init__(self, bus: EventBus, store: Store) -> None:
        self._bus = bus
        self._store = store
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._open: dict[str, CallRecord] = {}  # worker thread only
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._unsubscribe = self._bus.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening, write every queued event, end the thread."""
        if self._thread is None:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """True once every event queued so far is written (for tests and shutdown)."""
        done = threading.Event()
        self._queue.put(Event("call-history.flush", {"done": done}))
        return done.wait(timeout)

    def _on_event(self, event: Event) -> None:
        # The publisher's thread (maybe the tick): a set lookup and a queue put, nothing more.
        if event.kind in KINDS:
            self._queue.put_nowait(event)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                if event.kind == "call-history.flush":
                    event.data["done"].set()
                else:
                    self.apply(event)
            except (StoreError, OSError, ValueError, TypeError):
                log.exception("call history: could not write %s", event.kind)

    # --- worker thread --------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Write what ``event`` says to the store."""
        data = event.data
        if event.kind == "call.ringing":
            self._ringing(data, event.timestamp)
        elif event.kind == "call.answered":
            self._update(data, status="in-progress", answered=event.timestamp)
        elif event.kind == "call.ended":
            status = data.get("status")
            record = self._update(data, status=status if status in STATUSES else "completed",
                                  ended=event.timestamp, reason=data.get("reason") or None)
            if record is not None:
                self._open.pop(record.sid, None)
        elif event.kind == "conference.join":
            self._update(data, conference=data.get("conference"))
        elif event.kind == "conference.recording":
            self._recording(data, prefix="recording_", conference=data.get("conference"))
        elif event.kind == "call.recording":
            self._recording(data, prefix="", call_sid=data.get("call_sid"))

    def _ringing(self, data: dict[str, Any], when: float) -> None:
        sid = data.get("call_sid")
        if not sid or sid in self._open:
            return  # an outbound leg reports ringing twice (placed, then alerting)
        direction = data.get("direction")
        record = CallRecord(sid=sid, line=str(data.get("line") or "unknown"),
                            from_=str(data.get("caller") or ""), to=str(data.get("to") or ""),
                            started=when,
                            direction=direction if direction in DIRECTIONS else "inbound")
        self._save(record)

    def _update(self, data: dict[str, Any], **changes: Any) -> CallRecord | None:
        sid = data.get("call_sid")
        if not sid:
            return None
        record = self._open.get(sid) or self._store.calls.find(sid)
        if record is None:
            log.info("call history: %s is not in the log (it rang before it started)", sid)
            return None
        changes = {k: v for k, v in changes.items() if v is not None}
        if "answered" in changes and record.answered is not None:
            del changes["answered"]
        return self._save(dataclasses.replace(record, **changes))

    def _save(self, record: CallRecord) -> CallRecord:
        saved = self._store.calls.save(record)
        self._open[saved.sid] = saved
        while len(self._open) > OPEN_CALLS:
            self._open.pop(next(iter(self._open)))
        return saved

    def _recording(self, data: dict[str, Any], prefix: str, **owner: Any) -> None:
        status = data.get("recording_status") if prefix else data.get("status")
        sid = data.get("recording_sid")
        path = data.get(prefix + "path")
        if status != "completed" or not sid or not path:
            return  # in-progress, or "absent": nothing was heard, no file was kept
        self._store.recordings.add(RecordingEntry(
            sid=sid, path=str(path), created=float(data.get(prefix + "started") or 0.0),
            duration=float(data.get(prefix + "duration") or 0.0),
            size=int(data.get(prefix + "size") or 0), **owner))
