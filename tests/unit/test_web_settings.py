"""The settings page over real HTTP: name, admin password, API credentials (shown once)."""

from __future__ import annotations

import pytest

from appliance.events import EventBus
from appliance.web import MemorySettings, WebServer, create_app
from appliance.web.passwords import hash_password
from appliance.web.settings import ADMIN_PASSWORD, APPLIANCE_NAME
from tests.web_harness import PASSWORD, FakeClock, WebHarness, csrf_in, running_web


@pytest.fixture
def web():
    with running_web() as harness:
        yield harness


def post_settings(web, client, path: str, data: dict):
    token = csrf_in(client.get(web.url + "/settings").text)
    return client.post(web.url + path, data={**data, "csrf_token": token},
                       allow_redirects=False)


def test_renaming_the_appliance_shows_on_every_page(web):
    client = web.login()
    reply = post_settings(web, client, "/settings/name", {"name": "  Family   line "})
    assert reply.status_code == 303
    assert web.settings.get(APPLIANCE_NAME) == "Family line"
    page = client.get(web.url + "/settings").text
    assert "The appliance is now called “Family line”" in page
    assert "<title>Settings · Family line</title>" in page
    assert "Family line" in web.browser().get(web.url + "/login").text


def test_a_bad_name_is_refused_with_a_reason_and_escaped(web):
    client = web.login()
    empty = post_settings(web, client, "/settings/name", {"name": "   "})
    assert empty.status_code == 400 and "Enter a name." in empty.text
    long = post_settings(web, client, "/settings/name", {"name": "x" * 65})
    assert long.status_code == 400 and "at most 64 characters" in long.text
    markup = post_settings(web, client, "/settings/name", {"name": "<b>Home</b>"})
    assert markup.status_code == 303
    page = client.get(web.url + "/").text
    assert "&lt;b&gt;Home&lt;/b&gt;" in page and "<b>Home</b>" not in page


def test_changing_the_password_needs_the_current_one(web):
    client = web.login()
    wrong = post_settings(web, client, "/settings/password",
                          {"current": "nope", "password": "new password 1",
                           "confirm": "new password 1"})
    assert wrong.status_code == 400 and "The current password is wrong." in wrong.text
    differ = post_settings(web, client, "/settings/password",
                           {"current": PASSWORD, "password": "new password 1",
                            "confirm": "new password 2"})
    assert differ.status_code == 400 and "The two passwords differ" in differ.text
    short = post_settings(web, client, "/settings/password",
                          {"current": PASSWORD, "password": "abc", "confirm": "abc"})
    assert short.status_code == 400 and "too short" in short.text


def test_a_new_password_logs_out_other_browsers_and_replaces_the_old(web):
    client = web.login()
    other = web.login()
    reply = post_settings(web, client, "/settings/password",
                          {"current": PASSWORD, "password": "new password 1",
                           "confirm": "new password 1"})
    assert reply.status_code == 303
    assert "Other browsers were logged out" in client.get(web.url + "/settings").text
    assert other.get(web.url + "/api/status", headers={"Accept": "*/*"}).status_code == 401
    stranger = web.browser()
    token = csrf_in(stranger.get(web.url + "/login").text)
    old = stranger.post(web.url + "/login", data={"password": PASSWORD, "csrf_token": token},
                        allow_redirects=False)
    assert old.status_code == 401
    web.login(stranger, "new password 1")


def test_wrong_current_passwords_count_toward_the_lock_out(web):
    client = web.login()
    replies = [post_settings(web, client, "/settings/password",
                             {"current": f"guess {n}", "password": "new password 1",
                              "confirm": "new password 1"}) for n in range(5)]
    assert [r.status_code for r in replies] == [400] * 4 + [429]
    assert "Too many wrong passwords" in replies[-1].text
    locked = post_settings(web, client, "/settings/password",
                           {"current": PASSWORD, "password": "new password 1",
                            "confirm": "new password 1"})
    assert locked.status_code == 429


def test_a_rotated_auth_token_is_shown_once_then_masked(web):
    client = web.login()
    before = web.credentials.current()
    page = client.get(web.url + "/settings").text
    assert before.account_sid in page
    assert before.auth_token not in page and "••••ffff" in page
    reply = post_settings(web, client, "/settings/api/rotate", {})
    assert reply.status_code == 303
    fresh = web.credentials.current()
    assert fresh.account_sid == before.account_sid and fresh.auth_token != before.auth_token
    shown = client.get(web.url + "/settings").text
    assert f'value="{fresh.auth_token}"' in shown and "shown only once" in shown
    again = client.get(web.url + "/settings").text
    assert fresh.auth_token not in again
    assert "••••" + fresh.auth_token[-4:] in again


class PinnedCredentials:
    """Credentials the owner pinned in config.toml: the page may not rotate them."""

    account_sid = "AC" + "1" * 32
    auth_token = "2" * 32

    def current(self):
        return self

    def rotate(self):
        raise ValueError("auth_token is set in config.toml; change it there")


@pytest.mark.parametrize("credentials", [PinnedCredentials(), None])
def test_rotation_that_cannot_happen_says_why(credentials):
    settings = MemorySettings({ADMIN_PASSWORD: hash_password(PASSWORD)})
    app = create_app(settings, EventBus(), credentials=credentials)
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    try:
        web = WebHarness(app, server, EventBus(), settings, PinnedCredentials(), FakeClock())
        client = web.login()
        reply = post_settings(web, client, "/settings/api/rotate", {})
        assert reply.status_code == 409
        if credentials is None:
            assert "no API credentials" in reply.text
        else:
            assert "change it there" in reply.text and "2" * 32 not in reply.text
    finally:
        server.stop()
