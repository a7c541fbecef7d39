"""The live view: running conferences and their participants, and the owner's controls.

The page (``/live``, kept current by ``static/live.js`` from the ``/events`` stream) shows each
line and each conference; its buttons POST here with the session's CSRF header and get JSON
back. Conferences are found by their sid, so a button pressed on a room that has since ended
(and whose name a new room took) never acts on the new one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import bottle
from bottle import request

from appliance.calls.conference import Conference, ConferenceRegistry, ConferenceState
from appliance.web.access import current_session
from appliance.web.context import WebContext
from appliance.web.render import render

Callers = Callable[[], Mapping[str, str]]  # CallSid → the caller's number, for live calls

# action → (what it does to the conference, what the reply says it did)
ACTIONS: dict[str, tuple[Callable[[Conference, str], None], str]] = {
    "mute": (lambda c, sid: c.set_muted(sid, True), "muted"),
    "unmute": (lambda c, sid: c.set_muted(sid, False), "unmuted"),
    "hold": (lambda c, sid: c.set_held(sid, True), "put on hold"),
    "unhold": (lambda c, sid: c.set_held(sid, False), "taken off hold"),
    "kick": (lambda c, sid: c.kick(sid), "removed"),
}
GONE = "That conference has ended."
LEFT = "{who} has already left the conference."


def no_callers() -> Mapping[str, str]:
    return {}


class LiveView:
    """Conferences and callers as plain data, for the page, its snapshot and the actions."""

    def __init__(self, conferences: ConferenceRegistry | None, callers: Callers = no_callers
                 ) -> None:
        self.conferences = conferences
        self.callers = callers

    def running(self) -> list[Conference]:
        if self.conferences is None:
            return []
        rooms = [c for c in self.conferences.active() if c.state is not ConferenceState.ENDED]
        return sorted(rooms, key=lambda c: (c.created_at, c.name))

    def find(self, conference_sid: str) -> Conference | None:
        return next((c for c in self.running() if c.sid == conference_sid), None)

    def conference(self, conference: Conference, callers: Mapping[str, str] | None = None
                   ) -> dict[str, Any]:
        callers = self.callers() if callers is None else callers
        participants = []
        for participant in sorted(conference.participants, key=lambda p: p.member_id):
            state = participant.state().as_dict()
            state["caller"] = callers.get(participant.call_sid, "")
            participants.append(state)
        return {"name": conference.name, "sid": conference.sid,
                "state": conference.state.value, "created_at": conference.created_at,
                "recording": conference.recording_sid is not None,
                "participants": participants}

    def snapshot(self) -> dict[str, Any]:
        """Every running conference and the callers of live calls; ``now`` lets the page
        count "joined since" on the appliance's clock, whatever the phone's clock says."""
        callers = dict(self.callers())
        return {"now": time.time(), "callers": callers,
                "conferences": [self.conference(c, callers) for c in self.running()]}


def _reply(status: int, body: dict[str, Any]) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(json.dumps(body), status, {"Content-Type": "application/json"})


def install(app: bottle.Bottle, ctx: WebContext, live: LiveView) -> None:
    """Add /live, /api/live and the conference actions to ``app``."""

    @app.get("/live")
    def live_page() -> str:
        return render("live", ctx=ctx, session=current_session(request), title="Live",
                      scripts=["live.js"], styles=["pages.css"])

    @app.get("/api/live")
    def live_json() -> dict[str, Any]:
        return {"lines": ctx.lines(), **live.snapshot()}

    @app.post("/api/live/<conference_sid>/end")
    def end_conference(conference_sid: str) -> bottle.HTTPResponse:
        conference = live.find(conference_sid)
        if conference is None:
            return _reply(404, {"error": GONE})
        conference.end()
        return _reply(200, {"ok": True, "message": f"Conference {conference.name} ended."})

    @app.post("/api/live/<conference_sid>/<call_sid>/<action>")
    def participant_action(conference_sid: str, call_sid: str, action: str
                           ) -> bottle.HTTPResponse:
        if action not in ACTIONS:
            return _reply(404, {"error": f"There is no action {action!r}."})
        conference = live.find(conference_sid)
        if conference is None:
            return _reply(404, {"error": GONE})
        who = live.callers().get(call_sid) or "That participant"
        act, done = ACTIONS[action]
        try:
            act(conference, call_sid)
        except KeyError:
            return _reply(404, {"error": LEFT.format(who=who)})
        if conference.participant(call_sid) is None and action != "kick":
            return _reply(404, {"error": LEFT.format(who=who)})
        return _reply(200, {"ok": True, "message": f"{who} {done}.",
                            "conference": live.conference(conference)})
