"""The app factory: one bottle app with the access guard, its pages and security headers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import bottle

from appliance.calls.conference import ConferenceRegistry
from appliance.calls.recording import RecordingStore
from appliance.events import EventBus
from appliance.store import Store
from appliance.web import (
    auth_pages,
    calls_page,
    live_page,
    recordings_page,
    rooms_page,
    rules_page,
    settings_page,
    simulator_page,
    status_page,
    voice_routes,
)
from appliance.web.access import AccessGuard, wants_html
from appliance.web.context import LineStates, WebContext, WebOptions
from appliance.web.headers import with_security_headers
from appliance.web.line_rules import LineRules, Lines, no_lines
from appliance.web.ratelimit import LoginLimiter
from appliance.web.render import render
from appliance.web.room_services import RoomServices
from appliance.web.rule_files import RuleFiles
from appliance.web.sessions import SessionStore
from appliance.web.settings import ApiCredentialsManager, SettingsStore
from appliance.web.sse import EventStreams

log = logging.getLogger(__name__)

__all__ = ["WebApp", "WebOptions", "create_app"]

ERROR_MESSAGES = {
    404: ("Not found", "There is no such page on this appliance."),
    405: ("Not allowed", "This page does not accept that kind of request."),
    500: ("Something went wrong", "The appliance could not do that. The details are in its log."),
}


class WebApp:
    """The WSGI application; ``bottle`` is the router (its ``routes`` list every route)."""

    def __init__(self, app: bottle.Bottle, ctx: WebContext) -> None:
        self.bottle = app
        self.ctx = ctx
        self._wsgi = with_security_headers(app)

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._wsgi(environ, start_response)

    def close(self) -> None:
        """End the live event streams so server threads are free to stop."""
        self.ctx.streams.close_all()


def _error_page(error: bottle.HTTPError) -> str:
    title, message = ERROR_MESSAGES.get(error.status_code, ("Error", str(error.body or "")))
    if error.status_code >= 500 and error.exception is not None:
        log.error("web: %s %s failed: %r", bottle.request.method, bottle.request.path,
                  error.exception)
    if wants_html(bottle.request):
        bottle.response.content_type = "text/html; charset=utf-8"
        return render("error", ctx=None, session=None, title=title, message=message)
    bottle.response.content_type = "application/json"
    return json.dumps({"error": message})


def create_app(settings: SettingsStore, bus: EventBus, *,
               line_states: LineStates = dict,
               credentials: ApiCredentialsManager | None = None,
               default_name: str = "Conference line",
               options: WebOptions | None = None,
               clock: Callable[[], float] = time.monotonic,
               conferences: ConferenceRegistry | None = None,
               callers: live_page.Callers = live_page.no_callers,
               store: Store | None = None,
               recordings: RecordingStore | None = None,
               rooms: RoomServices | None = None,
               rule_files: RuleFiles | None = None,
               lines: Lines = no_lines,
               simulator: simulator_page.Simulator | None = None) -> WebApp:
    """The web page of one appliance.

    ``settings`` keeps the admin password hash and the name; ``bus`` feeds /events;
    ``line_states()`` returns line name → {"state", "detail"} now; ``credentials`` reads and
    rotates the REST API credentials (None hides that part of the settings page);
    ``clock`` (monotonic seconds) times sessions and lock-outs. The live view shows
    ``conferences`` (``callers()``: CallSid → number of each live call); the call log and the
    recordings come from ``store``, the recordings' files from ``recordings``' folder.
    ``rooms`` adds the rooms pages and the built-in entry's ``/voice/…`` TwiML routes.
    ``rule_files`` adds the rule files page, where each of ``lines()`` ([(name, config.toml's
    voice_url)]) gets its call rules (kept in ``settings``' line_voice_urls).
    ``simulator`` (only when the lines are simulated) adds the simulator page, ``/simulator``.
    """
    options = options or WebOptions()
    ctx: WebContext
    live = live_page.LiveView(conferences, callers)
    streams = EventStreams(bus, lambda: {"lines": ctx.lines(),
                                         **(live.snapshot() if conferences is not None else {})},
                           keepalive=options.keepalive,
                           poll=options.stream_poll, max_streams=options.max_streams)
    ctx = WebContext(
        settings=settings,
        sessions=SessionStore(options.idle_timeout, clock=clock),
        limiter=LoginLimiter(options.login_failures, options.lockout, options.max_lockout,
                             clock=clock),
        streams=streams,
        line_states=line_states,
        credentials=credentials,
        default_name=default_name,
        options=options,
    )
    app = bottle.Bottle()
    app.install(AccessGuard(ctx))
    auth_pages.install(app, ctx)
    settings_page.install(app, ctx)
    status_page.install(app, ctx)
    live_page.install(app, ctx, live)
    recordings_page.install(app, ctx, store, recordings)
    calls_page.install(app, ctx, store)
    if rooms is not None:
        rooms_page.install(app, ctx, rooms)
        voice_routes.install(app, ctx, rooms)
    if rule_files is not None:
        rules_page.install(app, ctx, rule_files, LineRules(settings, lines))
    if simulator is not None:
        simulator_page.install(app, ctx, simulator)
    for code in ERROR_MESSAGES:
        app.error(code)(_error_page)
    return WebApp(app, ctx)
