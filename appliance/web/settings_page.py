"""The settings page: admin password, appliance name, API credentials."""

from __future__ import annotations

import logging
import unicodedata

import bottle
from bottle import request, response

from appliance.web.access import client_address, current_session
from appliance.web.context import WebContext
from appliance.web.passwords import hash_password, password_problem, verify_password
from appliance.web.ratelimit import describe_wait
from appliance.web.render import render
from appliance.web.sessions import Session
from appliance.web.settings import ADMIN_PASSWORD, APPLIANCE_NAME, mask_secret

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 64
REVEALED_TOKEN = "auth_token"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the appliance's name, or None."""
    if not name:
        return "Enter a name."
    if len(name) > MAX_NAME_LENGTH:
        return f"The name is too long: use at most {MAX_NAME_LENGTH} characters."
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        return "The name cannot contain control characters."
    return None


def install(app: bottle.Bottle, ctx: WebContext) -> None:
    """Add /settings and its forms to ``app``."""

    def page(session: Session, status: int = 200, **errors: str) -> str:
        response.status = status
        credentials = ctx.credentials.current() if ctx.credentials else None
        revealed = session.reveal_once.pop(REVEALED_TOKEN, "")
        return render(
            "settings", ctx=ctx, session=session, scripts=["settings.js"],
            name_value=errors.pop("name_value", ctx.appliance_name()),
            name_error=errors.get("name_error", ""),
            password_error=errors.get("password_error", ""),
            api_error=errors.get("api_error", ""),
            account_sid=credentials.account_sid if credentials else "",
            masked_token=mask_secret(credentials.auth_token) if credentials else "",
            new_token=revealed, has_credentials=credentials is not None,
        )

    def session_of_request() -> Session:
        session = current_session(request)
        assert session is not None, "the access guard admits only sessions here"
        return session

    @app.get("/settings")
    def settings_form() -> str:
        return page(session_of_request())

    @app.post("/settings/name")
    def change_name() -> str:
        session = session_of_request()
        name = " ".join(request.forms.getunicode("name", default="").split())
        problem = name_problem(name)
        if problem:
            return page(session, 400, name_error=problem, name_value=name)
        ctx.settings.set(APPLIANCE_NAME, name)
        session.flash("ok", f"The appliance is now called “{name}”.")
        bottle.redirect("/settings", 303)

    @app.post("/settings/password")
    def change_password() -> str:
        session = session_of_request()
        current = request.forms.getunicode("current", default="")
        new = request.forms.getunicode("password", default="")
        confirm = request.forms.getunicode("confirm", default="")
        address = client_address(request)
        with ctx.password_lock:  # the current password is guessable here too: same limit
            wait = ctx.limiter.retry_after(address)
            if wait > 0:
                return page(session, 429, password_error="Too many wrong passwords. Try again "
                                                         f"in {describe_wait(wait)}.")
            if not verify_password(current, ctx.password_hash()):
                lockout = ctx.limiter.failure(address)
                message = "The current password is wrong."
                if lockout:
                    message += f" Too many wrong passwords: wait {describe_wait(lockout)}."
                return page(session, 429 if lockout else 400, password_error=message)
            ctx.limiter.success(address)
            problem = password_problem(new, confirm, ctx.options.min_password)
            if problem:
                return page(session, 400, password_error=problem)
            ctx.settings.set(ADMIN_PASSWORD, hash_password(new))
        ended = ctx.sessions.delete_others(session.id)
        log.info("admin password changed from %s; %d other session(s) ended", address, ended)
        session.flash("ok", "The admin password is changed."
                      + (" Other browsers were logged out." if ended else ""))
        bottle.redirect("/settings", 303)

    @app.post("/settings/api/rotate")
    def rotate_token() -> str:
        session = session_of_request()
        if ctx.credentials is None:
            return page(session, 409, api_error="This appliance has no API credentials to "
                                                "rotate.")
        try:
            fresh = ctx.credentials.rotate()
        except ValueError as exc:
            return page(session, 409, api_error=f"The auth token was not changed: {exc}")
        log.info("API auth token rotated from %s", client_address(request))
        session.reveal_once[REVEALED_TOKEN] = fresh.auth_token
        session.flash("ok", "A new auth token is in use. Copy it now: it is shown only once. "
                            "Clients using the old token must be updated.")
        bottle.redirect("/settings", 303)
