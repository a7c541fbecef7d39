"""Who may reach which route: login sessions, CSRF checks and the refusals.

Each route declares its policy in its config (``app.route(..., auth=...)``):

- ``session`` (the default): a logged-in session; unsafe methods also need its CSRF token.
- ``setup``: the first-run page; open, its form checked with the pre-login CSRF cookie.
- ``public``: the login page and static files; forms checked with the pre-login cookie.
- ``custom``: the route authenticates by itself (e.g. the REST API's HTTP Basic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import bottle

from appliance.web import csrf
from appliance.web.context import WebContext
from appliance.web.render import render
from appliance.web.sessions import Session

SESSION, SETUP, PUBLIC, CUSTOM = "session", "setup", "public", "custom"
POLICIES = (SESSION, SETUP, PUBLIC, CUSTOM)
SESSION_COOKIE = "appliance_session"
_ENVIRON_KEY = "appliance.session"


def client_address(request: bottle.BaseRequest) -> str:
    """The peer's address as the server saw it (never a spoofable X-Forwarded-For)."""
    return request.environ.get("REMOTE_ADDR", "") or "unknown"


def current_session(request: bottle.BaseRequest) -> Session | None:
    """The session the guard admitted this request with (None on open routes)."""
    return request.environ.get(_ENVIRON_KEY)


def set_session_cookie(request: bottle.BaseRequest, response: bottle.BaseResponse,
                       session: Session) -> None:
    response.set_cookie(SESSION_COOKIE, session.id, path="/", httponly=True, samesite="strict",
                        secure=request.urlparts.scheme == "https")


def clear_session_cookie(response: bottle.BaseResponse) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


def wants_html(request: bottle.BaseRequest) -> bool:
    """A person's browser navigating (gets pages and redirects), not fetch()/EventSource."""
    return "text/html" in request.headers.get("Accept", "")


def refuse(request: bottle.BaseRequest, status: int, message: str,
           title: str = "Not allowed") -> bottle.HTTPResponse:
    """An error a person can read: a small page for browsers, JSON for scripts."""
    if wants_html(request):
        body = render("error", title=title, message=message, session=None, ctx=None)
        return bottle.HTTPResponse(body, status, {"Content-Type": "text/html; charset=utf-8"})
    return bottle.HTTPResponse(json.dumps({"error": message}), status,
                               {"Content-Type": "application/json"})


def safe_next(target: str) -> str:
    """A local path to go back to after login; anything else (another site) becomes ``/``.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so
    ``/<tab>/evil.example`` would become ``//evil.example``: such targets are refused too.
    """
    if (not target.startswith("/") or "\\" in target
            or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in target)
            or target.startswith("//")):
        return "/"
    return target


class AccessGuard:
    """Bottle plugin that applies each route's policy before its callback runs."""

    name = "access_guard"
    api = 2

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        policy = route.config.get("auth", SESSION)
        if policy not in POLICIES:
            raise ValueError(f"route {route.rule}: auth must be one of {POLICIES}, not {policy!r}")
        if policy == CUSTOM:
            return callback

        def guarded(*args: Any, **kwargs: Any) -> Any:
            request = bottle.request
            unsafe = request.method in csrf.UNSAFE_METHODS
            if policy == SESSION:
                session = self._session(request)
                if unsafe and not csrf.tokens_match(session.csrf_token,
                                                    csrf.submitted_token(request)):
                    raise refuse(request, 403, csrf.REFUSED, "Form refused")
                request.environ[_ENVIRON_KEY] = session
            elif unsafe:
                expected = request.get_cookie(csrf.PRE_LOGIN_COOKIE, "")
                if not csrf.tokens_match(expected, csrf.submitted_token(request)):
                    raise refuse(request, 403, csrf.REFUSED, "Form refused")
            return callback(*args, **kwargs)

        return guarded

    def _session(self, request: bottle.BaseRequest) -> Session:
        """The request's live session, or the refusal that sends it to setup or login."""
        if not self.ctx.is_set_up():
            if wants_html(request):
                raise bottle.HTTPResponse(status=303, headers={"Location": "/setup"})
            raise refuse(request, 401, "Set the admin password first, on /setup.")
        cookie = request.get_cookie(SESSION_COOKIE, "")
        session = self.ctx.sessions.get(cookie)
        if session is not None:
            return session
        if wants_html(request):
            target = "/login"
            if request.method == "GET" and request.fullpath != "/":
                path = request.fullpath + (f"?{request.query_string}" if request.query_string
                                           else "")
                target += "?next=" + quote(path, safe="/")
            response = bottle.HTTPResponse(status=303, headers={"Location": target})
        else:
            message = "Your session has expired. Log in again." if cookie else "Log in first."
            response = refuse(request, 401, message)
        if cookie:
            clear_session_cookie(response)
        raise response
