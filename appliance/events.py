"""The in-process event bus: calls, conferences and lines publish; the rest listens."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "call.ringing", "conference.join", "line.status"
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)


Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out; a subscriber that raises is logged and never breaks the publisher."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Subscriber, prefix: str = "") -> Callable[[], None]:
        """Call ``callback`` for each event whose kind starts with ``prefix``.

        Returns a function that unsubscribes.
        """
        entry = (prefix, callback)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, kind: str, **data: Any) -> Event:
        event = Event(kind, data)
        with self._lock:
            targets = [cb for prefix, cb in self._subscribers if kind.startswith(prefix)]
        for callback in targets:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", kind)
        return event
