"""First run (choose the admin password), login and logout."""

from __future__ import annotations

import logging

import bottle
from bottle import request, response

from appliance.web import csrf
from appliance.web.access import (
    PUBLIC,
    SETUP,
    clear_session_cookie,
    client_address,
    current_session,
    refuse,
    safe_next,
    set_session_cookie,
)
from appliance.web.context import WebContext
from appliance.web.passwords import hash_password, password_problem, verify_password
from appliance.web.ratelimit import describe_wait
from appliance.web.render import render
from appliance.web.settings import ADMIN_PASSWORD

log = logging.getLogger(__name__)


def _page(ctx: WebContext, template: str, status: int = 200, **values: object) -> str:
    """A pre-login page: its form carries the pre-login CSRF cookie's token."""
    response.status = status
    token = csrf.pre_login_token(request, response)
    return render(template, ctx=ctx, session=None, csrf_token=token, **values)


def _lockout_message(seconds: float) -> str:
    return (f"Too many wrong passwords from this device. Try again in {describe_wait(seconds)}.")


def install(app: bottle.Bottle, ctx: WebContext) -> None:
    """Add /setup, /login and /logout to ``app``."""

    def logged_in() -> bool:
        return ctx.sessions.get(request.get_cookie("appliance_session", "")) is not None

    @app.get("/setup", auth=SETUP)
    def setup_form() -> str:
        if ctx.is_set_up():
            bottle.redirect("/" if logged_in() else "/login", 303)
        return _page(ctx, "setup", error="", min_length=ctx.options.min_password)

    @app.post("/setup", auth=SETUP)
    def setup_submit() -> str:
        password = request.forms.getunicode("password", default="")
        confirm = request.forms.getunicode("confirm", default="")
        with ctx.password_lock:
            if ctx.is_set_up():
                raise refuse(request, 409, "The admin password is set already. Log in instead.",
                             "Already set up")
            problem = password_problem(password, confirm, ctx.options.min_password)
            if problem is None:
                ctx.settings.set(ADMIN_PASSWORD, hash_password(password))
        if problem is not None:
            return _page(ctx, "setup", 400, error=problem, min_length=ctx.options.min_password)
        log.info("admin password set (first run) from %s", client_address(request))
        session = ctx.sessions.create()
        session.flash("ok", "The admin password is set. You are logged in.")
        set_session_cookie(request, response, session)
        bottle.redirect("/", 303)

    @app.get("/login", auth=PUBLIC)
    def login_form() -> str:
        if not ctx.is_set_up():
            bottle.redirect("/setup", 303)
        target = safe_next(request.query.getunicode("next", default="/"))
        if logged_in():
            bottle.redirect(target, 303)
        notice = "You have logged out." if request.query.get("bye") else ""
        return _page(ctx, "login", error="", notice=notice, next=target)

    @app.post("/login", auth=PUBLIC)
    def login_submit() -> str:
        if not ctx.is_set_up():
            bottle.redirect("/setup", 303)
        target = safe_next(request.forms.getunicode("next", default="/"))
        password = request.forms.getunicode("password", default="")
        address = client_address(request)
        with ctx.password_lock:  # one scrypt at a time: parallel guesses queue up here
            wait = ctx.limiter.retry_after(address)
            if wait > 0:
                response.set_header("Retry-After", str(int(wait + 0.999)))
                return _page(ctx, "login", 429, error=_lockout_message(wait), notice="",
                             next=target)
            if not verify_password(password, ctx.password_hash()):
                lockout = ctx.limiter.failure(address)
                log.warning("login: wrong password from %s", address)
                if lockout > 0:
                    response.set_header("Retry-After", str(int(lockout + 0.999)))
                    return _page(ctx, "login", 429, error=_lockout_message(lockout), notice="",
                                 next=target)
                return _page(ctx, "login", 401, error="Wrong password. Try again.", notice="",
                             next=target)
            ctx.limiter.success(address)
        old = request.get_cookie("appliance_session", "")
        if old:
            ctx.sessions.delete(old)
        session = ctx.sessions.create()  # a fresh id at each login (no session fixation)
        set_session_cookie(request, response, session)
        log.info("login from %s", address)
        bottle.redirect(target, 303)

    @app.post("/logout")
    def logout() -> None:
        session = current_session(request)
        if session is not None:
            ctx.sessions.delete(session.id)
        clear_session_cookie(response)
        bottle.redirect("/login?bye=1", 303)
