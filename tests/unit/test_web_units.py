"""The web page's parts without HTTP: password hashes, the login limiter, sessions, masking,
and the server runner's start and stop."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from appliance.web import MemoryApiCredentials, WebServer
from appliance.web.access import safe_next
from appliance.web.passwords import hash_password, password_problem, verify_password
from appliance.web.ratelimit import LoginLimiter, describe_wait
from appliance.web.sessions import SessionStore
from appliance.web.settings import mask_secret
from tests.web_harness import FakeClock

# --- passwords ----------------------------------------------------------------------------------


def test_a_password_hash_is_salted_scrypt_and_verifies_only_its_password():
    first, second = hash_password("open sesame"), hash_password("open sesame")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$16384$8$1$") and "open sesame" not in first
    assert verify_password("open sesame", first) and verify_password("open sesame", second)
    assert not verify_password("open sesame!", first)
    assert not verify_password("", first)


@pytest.mark.parametrize("stored", [
    "", "plain text", "md5$abc", "scrypt$16384$8$1$!!!$???",
    "scrypt$16384$8$1$c2FsdA==", "scrypt$99999999999$8$1$c2FsdA==$a2V5",
])
def test_a_malformed_or_foreign_hash_matches_nothing(stored):
    assert not verify_password("anything", stored)


def test_a_tampered_hash_no_longer_verifies():
    stored = hash_password("open sesame")
    scheme, n, r, p, salt, key = stored.split("$")
    flipped = ("A" if key[0] != "A" else "B") + key[1:]
    assert not verify_password("open sesame", "$".join((scheme, n, r, p, salt, flipped)))


@pytest.mark.parametrize(("password", "confirm", "reason"), [
    ("", "", "Enter a password."),
    ("abcdefgh", "abcdefgi", "The two passwords differ"),
    ("abc", "abc", "too short: use at least 8 characters"),
    ("x" * 257, "x" * 257, "too long"),
    (" " * 9, " " * 9, "only spaces"),
])
def test_new_password_rules_explain_the_problem(password, confirm, reason):
    assert reason in (password_problem(password, confirm) or "")


def test_a_good_new_password_has_no_problem():
    assert password_problem("correct horse", "correct horse") is None


# --- login limiter ----------------------------------------------------------------------------


def test_limiter_locks_after_five_failures_doubling_up_to_the_cap():
    clock = FakeClock()
    limiter = LoginLimiter(max_failures=5, base_lockout=30, max_lockout=120, clock=clock)
    assert [limiter.failure("10.0.0.2") for _ in range(4)] == [0, 0, 0, 0]
    assert limiter.retry_after("10.0.0.2") == 0
    lockouts = [limiter.failure("10.0.0.2") for _ in range(4)]
    assert lockouts == [30, 60, 120, 120]
    assert limiter.retry_after("10.0.0.2") == 120
    assert limiter.retry_after("10.0.0.3") == 0  # per address
    clock.advance(100)
    assert limiter.retry_after("10.0.0.2") == pytest.approx(20)
    limiter.success("10.0.0.2")
    assert limiter.retry_after("10.0.0.2") == 0
    assert limiter.failure("10.0.0.2") == 0


def test_limiter_forgets_old_failures_and_bounds_its_memory():
    clock = FakeClock()
    limiter = LoginLimiter(max_failures=2, forget_after=60, max_addresses=100, clock=clock)
    limiter.failure("a")
    clock.advance(61)
    assert limiter.failure("a") == 0  # the first failure was forgotten
    for n in range(500):
        limiter.failure(f"flood-{n}")
    assert len(limiter._records) <= 100


def test_waits_are_described_in_words():
    assert describe_wait(1) == "1 second"
    assert describe_wait(29.2) == "30 seconds"
    assert describe_wait(120) == "2 minutes"
    assert describe_wait(3600 * 3) == "3 hours"


# --- sessions -----------------------------------------------------------------------------------


def test_sessions_expire_when_idle_and_each_has_its_own_tokens():
    clock = FakeClock()
    store = SessionStore(idle_timeout=60, clock=clock)
    one, two = store.create(), store.create()
    assert one.id != two.id and one.csrf_token != two.csrf_token and len(one.id) >= 40
    clock.advance(59)
    assert store.get(one.id) is one  # touched
    assert store.get(two.id, touch=False) is two
    clock.advance(2)
    assert store.get(one.id) is one
    assert store.get(two.id) is None
    assert store.get("") is None and store.get(None) is None


def test_ending_other_sessions_keeps_this_one_and_the_oldest_go_first_when_full():
    clock = FakeClock()
    store = SessionStore(idle_timeout=600, max_sessions=3, clock=clock)
    sessions = []
    for _ in range(4):
        sessions.append(store.create())
        clock.advance(1)
    assert store.get(sessions[0].id) is None and len(store) == 3
    assert store.delete_others(sessions[3].id) == 2
    assert len(store) == 1 and store.get(sessions[3].id) is sessions[3]


def test_flashes_are_shown_once():
    session = SessionStore(60).create()
    session.flash("ok", "Saved.")
    assert session.take_flashes() == [("ok", "Saved.")]
    assert session.take_flashes() == []


# --- where login leads -------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "expected"), [
    ("/settings", "/settings"), ("/settings?tab=api", "/settings?tab=api"), ("/", "/"),
    ("", "/"), ("settings", "/"), ("https://evil.example/", "/"), ("//evil.example", "/"),
    ("/\\evil.example", "/"), ("/\t/evil.example", "/"), ("/\n/evil.example", "/"),
    ("javascript:alert(1)", "/"),
])
def test_login_only_returns_to_a_path_on_this_appliance(target, expected):
    assert safe_next(target) == expected


# --- credentials ----------------------------------------------------------------------------------


def test_masking_keeps_only_the_last_four_characters():
    assert mask_secret("0123456789abcdef") == "••••••••••••cdef"
    assert mask_secret("short") == "•••••"


def test_memory_credentials_rotate_the_token_and_keep_the_sid():
    credentials = MemoryApiCredentials()
    before = credentials.current()
    assert before.account_sid.startswith("AC") and len(before.account_sid) == 34
    after = credentials.rotate()
    assert after.account_sid == before.account_sid and after.auth_token != before.auth_token
    assert credentials.current() == after


# --- server runner -------------------------------------------------------------------------------


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def test_server_on_port_zero_reports_its_port_and_stops_cleanly():
    before = {thread.name for thread in threading.enumerate()}
    server = WebServer(hello, "127.0.0.1", 0)
    assert server.port > 0
    server.start()
    assert requests.get(server.url, timeout=5).text == "hello"
    server.stop()
    assert not server._thread.is_alive()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)
    # The port is free again and no waitress thread is left behind.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
    leftover = {t.name for t in threading.enumerate()} - before
    assert not {name for name in leftover if "waitress" in name or name == "web"}


def test_a_server_never_started_can_still_be_stopped():
    server = WebServer(hello, "127.0.0.1", 0)
    server.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
