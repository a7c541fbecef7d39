"""What every route needs: storage, sessions, the limiter, the event streams, options."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.web.ratelimit import LoginLimiter
from appliance.web.sessions import SessionStore
from appliance.web.settings import (
    ADMIN_PASSWORD,
    APPLIANCE_NAME,
    ApiCredentialsManager,
    SettingsStore,
)
from appliance.web.sse import EventStreams

LineStates = Callable[[], Mapping[str, Mapping[str, Any]]]  # line → {"state", "detail"}


@dataclass(frozen=True)
class WebOptions:
    """Tunables; the defaults suit the appliance, tests shorten them."""

    idle_timeout: float = 3600.0  # seconds without a request before a session ends
    min_password: int = 8
    login_failures: int = 5  # wrong passwords before the first lock-out
    lockout: float = 30.0  # the first lock-out; doubles with each further failure
    max_lockout: float = 3600.0
    keepalive: float = 15.0  # seconds between SSE keep-alive comments
    stream_poll: float = 0.5  # how often an idle SSE stream checks its client and session
    max_streams: int = 8  # concurrent SSE clients (each holds one server thread)


@dataclass
class WebContext:
    settings: SettingsStore
    sessions: SessionStore
    limiter: LoginLimiter
    streams: EventStreams
    line_states: LineStates
    credentials: ApiCredentialsManager | None
    default_name: str
    options: WebOptions
    password_lock: threading.Lock = field(default_factory=threading.Lock)  # one hash at a time

    def appliance_name(self) -> str:
        return self.settings.get(APPLIANCE_NAME) or self.default_name

    def password_hash(self) -> str:
        return self.settings.get(ADMIN_PASSWORD) or ""

    def is_set_up(self) -> bool:
        return bool(self.password_hash())

    def lines(self) -> dict[str, dict[str, Any]]:
        """The lines' states as plain data, sorted by name."""
        states = self.line_states()
        return {name: {"state": str(states[name].get("state", "unknown")),
                       "detail": dict(states[name].get("detail") or {})}
                for name in sorted(states)}
