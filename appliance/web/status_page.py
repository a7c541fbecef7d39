"""The home page: each line's state, kept live by the /events stream; static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bottle
from bottle import request, response

from appliance.web.access import PUBLIC, current_session, refuse
from appliance.web.context import WebContext
from appliance.web.render import render
from appliance.web.sse import TooManyStreams

STATIC_DIR = Path(__file__).with_name("static")

STATE_LABELS = {
    "starting": "Starting",
    "idle": "Ready",
    "ringing": "Ringing",
    "in-call": "In a call",
    "error": "Error",
    "down": "Down",
}
# What a line's detail shows, in order (static/status.js keeps the same list).
DETAIL_FIELDS = (
    ("signal_dbm", "Signal"),
    ("operator", "Operator"),
    ("registration", "Network"),
    ("sim", "SIM"),
    ("caller_id", "Caller"),
    ("model", "Modem"),
    ("error", "Problem"),
)


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state.capitalize() or "Unknown")


def detail_rows(detail: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, label, text) for each known detail the line reported."""
    rows = []
    for key, label in DETAIL_FIELDS:
        value = detail.get(key)
        if value in (None, ""):
            continue
        text = f"{value} dBm" if key == "signal_dbm" else str(value)
        rows.append((key, label, text))
    return rows


def signal_bars(detail: dict[str, Any]) -> int:
    """0 to 4 bars from dBm, as phones draw them (-113 none … -73 and above full)."""
    dbm = detail.get("signal_dbm")
    if not isinstance(dbm, int | float):
        return 0
    return max(0, min(4, int((dbm + 113) // 10)))


def install(app: bottle.Bottle, ctx: WebContext) -> None:
    """Add /, /api/status, /events and /static/… to ``app``."""

    @app.get("/")
    def status() -> str:
        return render("status", ctx=ctx, session=current_session(request),
                      scripts=["status.js"], lines=ctx.lines(), state_label=state_label,
                      detail_rows=detail_rows, signal_bars=signal_bars)

    @app.get("/api/status")
    def status_json() -> dict[str, Any]:
        return {"name": ctx.appliance_name(), "lines": ctx.lines()}

    @app.get("/events")
    def events() -> Any:
        session = current_session(request)
        assert session is not None
        disconnected = request.environ.get("waitress.client_disconnected", lambda: False)
        try:
            stream = ctx.streams.open(
                disconnected, lambda: ctx.sessions.get(session.id, touch=False) is not None)
        except TooManyStreams as exc:
            refusal = refuse(request, 503, f"{exc}; close one and try again.")
            refusal.set_header("Retry-After", "10")
            return refusal
        response.content_type = "text/event-stream; charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        response.set_header("X-Accel-Buffering", "no")
        return stream

    @app.get("/static/<filename:path>", auth=PUBLIC)
    def static(filename: str) -> Any:
        served = bottle.static_file(filename, root=str(STATIC_DIR))
        served.set_header("Cache-Control", "no-cache")  # revalidate: updates show at once
        return served
