"""Server-side login sessions: random ids, a CSRF token each, idle expiry."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class Session:
    """One logged-in browser. Only ``id`` leaves the server (in the cookie)."""

    id: str
    csrf_token: str
    created: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown once
    reveal_once: dict[str, str] = field(default_factory=dict)  # secrets shown on one page only

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Sessions in memory (a restart logs everyone out); the least recently used go first."""

    def __init__(self, idle_timeout: float, max_sessions: int = 32,
                 clock: Clock = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self) -> Session:
        """A new session with fresh id and CSRF token (a login never reuses an id)."""
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._drop_expired(now)
            while len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions.values(), key=lambda s: s.last_seen)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, touch: bool = True) -> Session | None:
        """The live session with this id (its idle timer restarted if ``touch``), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout:
                del self._sessions[session_id]
                return None
            if touch:
                session.last_seen = now
            return session

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def delete_others(self, keep_id: str) -> int:
        """End every session but ``keep_id`` (after a password change); returns how many."""
        with self._lock:
            others = [sid for sid in self._sessions if sid != keep_id]
            for sid in others:
                del self._sessions[sid]
            return len(others)

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired(self._clock())
            return len(self._sessions)

    def _drop_expired(self, now: float) -> None:
        expired = [sid for sid, s in self._sessions.items()
                   if now - s.last_seen > self.idle_timeout]
        for sid in expired:
            del self._sessions[sid]
