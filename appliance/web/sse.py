"""Server-sent events: the event bus streamed to the page, one bounded queue per client."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from appliance.events import Event, EventBus

RETRY_MS = 3000  # how soon a browser reconnects after the stream ends


class TooManyStreams(Exception):
    """Every stream slot is taken (each open stream holds one server thread)."""


def format_event(kind: str, data: dict[str, Any]) -> bytes:
    """One SSE message: ``event: <kind>`` and a single-line JSON ``data:``."""
    name = kind.replace("\r", "").replace("\n", "")
    payload = json.dumps(data, default=str, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


class EventStream:
    """One client's stream; iterate it for bytes. ``close()`` (from the server, the app or
    the end of iteration) unsubscribes from the bus and frees the slot, once."""

    def __init__(self, owner: EventStreams, disconnected: Callable[[], bool],
                 allowed: Callable[[], bool]) -> None:
        self._owner = owner
        self._disconnected = disconnected
        self._allowed = allowed
        self._queue: queue.Queue[Event | None] = queue.Queue(owner.queue_size)
        self._overflowed = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._unsubscribe = owner.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        # Runs on the publisher's thread (maybe the audio tick): never block it.
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._overflowed = True  # the client lags: end the stream, it reconnects afresh

    def __iter__(self) -> Iterator[bytes]:
        owner = self._owner
        try:
            first = f"retry: {RETRY_MS}\n\n".encode()
            if owner.snapshot is not None:
                first += format_event("snapshot", owner.snapshot())
            yield first
            last_sent = time.monotonic()
            while not self._should_end():
                try:
                    event = self._queue.get(timeout=owner.poll)
                except queue.Empty:
                    if time.monotonic() - last_sent >= owner.keepalive:
                        yield b": keep-alive\n\n"
                        last_sent = time.monotonic()
                    continue
                if event is None:
                    return
                yield format_event(event.kind, {**event.data, "timestamp": event.timestamp})
                last_sent = time.monotonic()
        finally:
            self.close()

    def _should_end(self) -> bool:
        return self._closed or self._overflowed or self._disconnected() or not self._allowed()

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._unsubscribe()
        with contextlib.suppress(queue.Full):  # when full, it sees _closed on its next poll
            self._queue.put_nowait(None)  # wakes the iterating thread at once
        self._owner._release(self)


class EventStreams:
    """Opens and counts the SSE streams of one app."""

    def __init__(self, bus: EventBus, snapshot: Callable[[], dict[str, Any]] | None = None,
                 *, keepalive: float = 15.0, poll: float = 0.5, max_streams: int = 8,
                 queue_size: int = 256) -> None:
        self.bus = bus
        self.snapshot = snapshot
        self.keepalive = keepalive
        self.poll = poll
        self.max_streams = max_streams
        self.queue_size = queue_size
        self._streams: set[EventStream] = set()
        self._changed = threading.Condition()

    def open(self, disconnected: Callable[[], bool] = lambda: False,
             allowed: Callable[[], bool] = lambda: True) -> EventStream:
        """A new stream, subscribed from now on; raises TooManyStreams when full."""
        with self._changed:
            if len(self._streams) >= self.max_streams:
                raise TooManyStreams(f"{self.max_streams} live views are open already")
            stream = EventStream(self, disconnected, allowed)
            self._streams.add(stream)
            self._changed.notify_all()
        return stream

    def _release(self, stream: EventStream) -> None:
        with self._changed:
            self._streams.discard(stream)
            self._changed.notify_all()

    def active(self) -> int:
        with self._changed:
            return len(self._streams)

    def wait_for_active(self, count: int, timeout: float) -> bool:
        """Block until exactly ``count`` streams are open; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._streams) == count, timeout)

    def close_all(self) -> None:
        """End every stream (server shutdown)."""
        with self._changed:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
