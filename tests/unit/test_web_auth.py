"""The web page's front door over real HTTP: first run, login, logout, the login rate limit,
idle expiry, a session on every route, CSRF on every form, security headers."""

from __future__ import annotations

import re

import pytest
import requests

from appliance.web.access import POLICIES, PUBLIC, SETUP
from appliance.web.csrf import UNSAFE_METHODS
from appliance.web.passwords import verify_password
from appliance.web.settings import ADMIN_PASSWORD
from tests.web_harness import HTML, PASSWORD, WebHarness, csrf_in, running_web

# The only routes anyone may reach without logging in; a new one must be added here on purpose.
OPEN_ROUTES = {
    ("GET", "/setup"), ("POST", "/setup"),
    ("GET", "/login"), ("POST", "/login"),
    ("GET", "/static/<filename:path>"),
}


@pytest.fixture
def web():
    with running_web() as harness:
        yield harness


@pytest.fixture
def first_run():
    with running_web(password=None) as harness:
        yield harness


def concrete(rule: str) -> str:
    """A path that matches a bottle rule: every wildcard filled with a plausible value."""
    return re.sub(r"<([^>:]*)(?::([^>:]*)[^>]*)?>",
                  lambda m: "1" if m.group(2) in ("int", "float") else "x", rule)


def submit(web: WebHarness, client: requests.Session, path: str, data: dict,
           form: str | None = None) -> requests.Response:
    """Post ``data`` with the CSRF token of the form on page ``form`` (default: ``path``)."""
    token = web.form_token(client, form or path)
    return client.post(web.url + path, data={**data, "csrf_token": token}, allow_redirects=False)


# --- first run ------------------------------------------------------------------------------


def test_first_run_sends_every_page_to_setup_and_scripts_get_401(first_run):
    client = first_run.browser()
    for path in ("/", "/settings", "/login"):
        reply = client.get(first_run.url + path, allow_redirects=False)
        assert reply.status_code == 303, path
        assert reply.headers["Location"].endswith("/setup")
    for path in ("/events", "/api/status"):
        reply = requests.get(first_run.url + path)
        assert reply.status_code == 401
        assert "admin password" in reply.json()["error"]


def test_setup_refuses_short_or_mismatched_passwords_with_clear_errors(first_run):
    client = first_run.browser()
    short = submit(first_run, client, "/setup", {"password": "short", "confirm": "short"})
    assert short.status_code == 400
    assert "too short: use at least 8 characters" in short.text
    differ = submit(first_run, client, "/setup",
                    {"password": "long enough one", "confirm": "long enough two"})
    assert differ.status_code == 400
    assert "The two passwords differ" in differ.text
    assert first_run.settings.get(ADMIN_PASSWORD) is None


def test_setup_stores_only_a_salted_hash_logs_in_and_then_closes(first_run):
    client = first_run.browser()
    reply = submit(first_run, client, "/setup", {"password": PASSWORD, "confirm": PASSWORD})
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/")
    stored = first_run.settings.get(ADMIN_PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    home = client.get(first_run.url + "/")
    assert home.status_code == 200 and "The admin password is set" in home.text
    # Set up once only: the page now leads home, and a second setup is refused.
    assert client.get(first_run.url + "/setup", allow_redirects=False).headers[
        "Location"].endswith("/")
    stranger = first_run.browser()
    token = first_run.form_token(stranger, "/login")
    again = stranger.post(first_run.url + "/setup", allow_redirects=False,
                          data={"password": "x" * 12, "confirm": "x" * 12, "csrf_token": token})
    assert again.status_code == 409
    assert verify_password(PASSWORD, first_run.settings.get(ADMIN_PASSWORD))


# --- login, logout ----------------------------------------------------------------------------


def test_wrong_password_is_refused_and_the_right_one_opens_a_session(web):
    client = web.browser()
    wrong = submit(web, client, "/login", {"password": "not it"})
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    assert client.get(web.url + "/settings", allow_redirects=False).status_code == 303
    web.login(client)
    assert client.get(web.url + "/settings").status_code == 200


def test_session_cookie_is_httponly_strict_and_new_at_each_login(web):
    client = web.browser()
    login = submit(web, client, "/login", {"password": PASSWORD})
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("appliance_session=")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    first = client.cookies["appliance_session"]
    # Logging in again from the same browser replaces the id, and the old one dies.
    again = client.post(web.url + "/login", allow_redirects=False,
                        data={"password": PASSWORD,
                              "csrf_token": client.cookies["appliance_csrf"]})
    assert again.status_code == 303
    assert client.cookies["appliance_session"] != first
    assert requests.get(web.url + "/api/status",
                        cookies={"appliance_session": first}).status_code == 401


def test_login_returns_to_the_page_asked_for_but_never_to_another_site(web):
    client = web.browser()
    reply = client.get(web.url + "/settings", allow_redirects=False)
    assert reply.headers["Location"].endswith("/login?next=/settings")
    page = client.get(web.url + "/login?next=/settings")
    landed = client.post(web.url + "/login", allow_redirects=False,
                         data={"password": PASSWORD, "csrf_token": csrf_in(page.text),
                               "next": "/settings"})
    assert landed.headers["Location"].endswith("/settings")
    other = web.browser()
    page = other.get(web.url + "/login")
    escaped = other.post(web.url + "/login", allow_redirects=False,
                         data={"password": PASSWORD, "csrf_token": csrf_in(page.text),
                               "next": "//evil.example/"})
    assert escaped.headers["Location"] == web.url + "/"


def test_logout_ends_the_session_on_the_server(web):
    client = web.login()
    cookie = client.cookies["appliance_session"]
    token = web.form_token(client, "/")
    reply = client.post(web.url + "/logout", data={"csrf_token": token}, allow_redirects=False)
    assert reply.status_code == 303 and "/login" in reply.headers["Location"]
    assert "You have logged out" in client.get(reply.headers["Location"]).text
    # The old id is dead even if a copy of the cookie is replayed.
    replay = requests.get(web.url + "/api/status", cookies={"appliance_session": cookie})
    assert replay.status_code == 401


# --- rate limit, expiry -------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_address_out_exponentially_and_success_resets(web):
    client = web.browser()
    for attempt in range(4):
        assert submit(web, client, "/login", {"password": f"guess {attempt}"}).status_code == 401
    fifth = submit(web, client, "/login", {"password": "guess 4"})
    assert fifth.status_code == 429
    assert "Too many wrong passwords" in fifth.text and "30 seconds" in fifth.text
    assert fifth.headers["Retry-After"] == "30"
    # Locked: even the right password is not tried.
    locked = submit(web, client, "/login", {"password": PASSWORD})
    assert locked.status_code == 429 and "Try again in 30 seconds" in locked.text
    web.clock.advance(31)
    sixth = submit(web, client, "/login", {"password": "guess 5"})
    assert sixth.status_code == 429 and "60 seconds" in sixth.text  # doubled
    web.clock.advance(61)
    assert submit(web, client, "/login", {"password": PASSWORD}).status_code == 303
    # Success forgets the failures: the next wrong password is an ordinary one.
    other = web.browser()
    assert submit(web, other, "/login", {"password": "typo"}).status_code == 401


def test_an_idle_session_expires_and_activity_keeps_it_alive(web):
    client = web.login()
    idle = web.app.ctx.options.idle_timeout
    for _ in range(3):
        web.clock.advance(idle - 1)
        assert client.get(web.url + "/api/status").status_code == 200
    web.clock.advance(idle + 1)
    page = client.get(web.url + "/settings", allow_redirects=False)
    assert page.status_code == 303 and "/login" in page.headers["Location"]
    assert "appliance_session=\"\"" in page.headers["Set-Cookie"] or \
        "appliance_session=;" in page.headers["Set-Cookie"]
    api = requests.get(web.url + "/api/status",
                       cookies={"appliance_session": "expired-or-forged"})
    assert api.status_code == 401 and "expired" in api.json()["error"]


# --- every route, every form -----------------------------------------------------------------


def test_every_route_without_a_session_is_refused(web):
    routes = web.app.bottle.routes
    assert len(routes) >= 10
    opened = {(route.method, route.rule) for route in routes
              if route.config.get("auth") in (PUBLIC, SETUP)}
    assert opened == OPEN_ROUTES
    for route in routes:
        assert route.config.get("auth", "session") in POLICIES
        if (route.method, route.rule) in OPEN_ROUTES:
            continue
        url = web.url + concrete(route.rule)
        script = requests.request(route.method, url, allow_redirects=False, timeout=5)
        assert script.status_code == 401, (route.method, route.rule, script.status_code)
        forged = requests.request(route.method, url, allow_redirects=False, timeout=5,
                                  cookies={"appliance_session": "forged"})
        assert forged.status_code == 401, (route.method, route.rule)
        person = requests.request(route.method, url, headers=HTML, allow_redirects=False,
                                  timeout=5)
        assert person.status_code in (303, 401), (route.method, route.rule)
        if person.status_code == 303:
            assert "/login" in person.headers["Location"], (route.method, route.rule)


def test_every_form_refuses_a_missing_or_wrong_csrf_token(web):
    client = web.login()
    session_id = client.cookies["appliance_session"]
    unsafe = [route for route in web.app.bottle.routes if route.method in UNSAFE_METHODS]
    assert {route.rule for route in unsafe} >= {"/login", "/setup", "/logout", "/settings/name",
                                                "/settings/password", "/settings/api/rotate"}
    for route in unsafe:
        url = web.url + concrete(route.rule)
        form = {"name": "Hijacked", "password": PASSWORD, "current": PASSWORD,
                "confirm": PASSWORD}
        for token in (None, "wrong", ""):
            data = form if token is None else {**form, "csrf_token": token}
            reply = client.request(route.method, url, data=data, allow_redirects=False)
            assert reply.status_code == 403, (route.rule, token, reply.status_code)
            assert "Reload the page and try again" in reply.text
        header = client.request(route.method, url, data=form, allow_redirects=False,
                                headers={"X-CSRF-Token": "wrong"})
        assert header.status_code == 403, route.rule
    # Nothing happened: same name, same session, same credentials.
    assert "Hijacked" not in client.get(web.url + "/").text
    assert client.cookies["appliance_session"] == session_id
    assert client.get(web.url + "/settings").status_code == 200
    assert web.credentials.current().auth_token == "f" * 32


def test_fetch_may_send_the_token_in_a_header(web):
    client = web.login()
    token = csrf_in(client.get(web.url + "/").text)
    reply = client.post(web.url + "/settings/name", data={"name": "Kitchen"},
                        headers={"X-CSRF-Token": token, "Accept": "*/*"},
                        allow_redirects=False)
    assert reply.status_code == 303
    assert "Kitchen" in client.get(web.url + "/").text


def test_login_form_needs_its_pre_login_token(web):
    client = web.browser()
    client.get(web.url + "/login")  # has the cookie, but sends no token
    reply = client.post(web.url + "/login", data={"password": PASSWORD}, allow_redirects=False)
    assert reply.status_code == 403
    other = web.browser()  # a token from the page, but not the cookie it belongs to
    token = csrf_in(client.get(web.url + "/login").text)
    reply = other.post(web.url + "/login", data={"password": PASSWORD, "csrf_token": token},
                       allow_redirects=False)
    assert reply.status_code == 403


# --- headers, markup ----------------------------------------------------------------------------


def test_security_headers_on_pages_static_files_refusals_and_errors(web):
    client = web.login()
    replies = [client.get(web.url + "/"), client.get(web.url + "/settings"),
               requests.get(web.url + "/login"), requests.get(web.url + "/static/app.css"),
               requests.get(web.url + "/api/status"), requests.get(web.url + "/no/such/page"),
               requests.get(web.url + "/static/../app.py")]
    for reply in replies:
        headers = reply.headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
    assert replies[0].headers["Cache-Control"] == "no-store"
    assert replies[3].headers["Cache-Control"] == "no-cache"
    assert replies[5].status_code == 404
    assert replies[6].status_code in (403, 404)


def test_pages_have_no_inline_script_style_or_handlers(web, first_run):
    client = web.login()
    pages = [client.get(web.url + path).text for path in ("/", "/settings")]
    pages.append(web.browser().get(web.url + "/login").text)
    pages.append(first_run.browser().get(first_run.url + "/setup").text)
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert not re.search(r"<style", html)
        assert not re.search(r"\sstyle=", html)
        assert not re.search(r"\son[a-z]+=", html)
