"""The rooms pages over real HTTP: create, edit (an error keeps the values), delete, the TwiML
shown, the session and CSRF on every rooms route."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from appliance.events import EventBus
from appliance.store import Store
from appliance.twiml.parse import parse_twiml
from appliance.twiml.verbs import Conference, Dial
from appliance.web import MemoryApiCredentials, MemorySettings, WebOptions, WebServer, create_app
from appliance.web.passwords import hash_password
from appliance.web.pin_lockout import LockoutPolicy
from appliance.web.room_services import RoomServices
from appliance.web.settings import ADMIN_PASSWORD
from tests.web_harness import PASSWORD, FakeClock, WebHarness, csrf_in

AUTH_TOKEN = "f" * 32


@contextmanager
def rooms_web(tmp_path: Path, policy: LockoutPolicy | None = None,
              now=None) -> Iterator[tuple[WebHarness, RoomServices]]:  # type: ignore[no-untyped-def]
    """The app with its rooms (a real Store in ``tmp_path``) on a free loopback port."""
    settings = MemorySettings({ADMIN_PASSWORD: hash_password(PASSWORD)})
    store = Store.in_data_dir(tmp_path)
    clock = FakeClock()
    extra = {"now": now} if now is not None else {}
    services = RoomServices.in_data_dir(store.rooms, tmp_path, policy=policy, clock=clock,
                                        **extra)
    credentials = MemoryApiCredentials("AC" + "0" * 32, AUTH_TOKEN)
    bus = EventBus()
    app = create_app(settings, bus, credentials=credentials, default_name="Family line",
                     options=WebOptions(stream_poll=0.05, keepalive=0.2), clock=clock,
                     store=store, rooms=services)
    server = WebServer(app, "127.0.0.1", 0, threads=4)
    server.start()
    try:
        yield WebHarness(app, server, bus, settings, credentials, clock), services
    finally:
        server.stop()
        store.close()


@pytest.fixture
def web(tmp_path):
    with rooms_web(tmp_path) as (harness, services):
        yield harness, services


FAMILY = {"name": "family", "pin": "1234", "moderator_pin": "", "beep": "true",
          "wait_music": "default", "max_participants": "10", "allowed_callers": ""}


def post_form(web: WebHarness, client: requests.Session, path: str, data: dict,
              form_page: str, files: dict | None = None) -> requests.Response:
    """Post ``data`` (multipart, as the page's form) with the CSRF token of ``form_page``."""
    token = web.form_token(client, form_page)
    multipart = files or {"wait_file": ("", b"", "application/octet-stream")}
    return client.post(web.url + path, data={**data, "csrf_token": token}, files=multipart,
                        allow_redirects=False)


def field_value(page: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page)
    assert match, f"no {name} field"
    return html.unescape(match.group(1))


def test_a_room_is_created_listed_and_shows_the_twiml_it_is_served_as(web):
    harness, services = web
    client = harness.login()
    assert "No rooms yet" in client.get(harness.url + "/rooms").text
    reply = post_form(harness, client, "/rooms", {
        **FAMILY, "moderator_pin": "9876", "muted_on_entry": "1", "beep": "onEnter",
        "wait_music": "none", "record": "1", "end_on_moderator_exit": "1",
        "hours0_days": ["0", "1", "2", "3", "4"], "hours0_start": "18:00", "hours0_end": "22:00",
        "allowed_callers": "+1 (555) 765-4321\n+15550001111"}, "/rooms/new")
    assert reply.status_code == 303, reply.text
    room = services.rooms.find_by_name("family")
    assert room is not None and reply.headers["Location"].endswith(f"/rooms/{room.id}")
    assert (room.pin, room.moderator_pin, room.beep, room.wait_music) == (
        "1234", "9876", "onEnter", "none")
    assert room.muted_on_entry and room.record and room.end_on_moderator_exit
    assert room.max_participants == 10
    assert [(h.days, h.start, h.end) for h in room.opening_hours] == [
        ((0, 1, 2, 3, 4), "18:00", "22:00")]
    assert room.allowed_callers == ("+15557654321", "+15550001111")

    page = client.get(harness.url + f"/rooms/{room.id}")
    assert "Room “family” is ready." in page.text
    shown = re.findall(r'<pre class="twiml">(.*?)</pre>', page.text, re.S)
    assert len(shown) == 2, "callers' and the moderator's TwiML"
    assert "&lt;Conference" in shown[0], "the TwiML is escaped, not markup"
    callers = parse_twiml(html.unescape(shown[0]))
    dial = callers.verbs[0]
    assert isinstance(dial, Dial) and isinstance(dial.nouns[0], Conference)
    conference = dial.nouns[0]
    assert conference.name == "family" and conference.muted
    assert conference.beep == "onEnter" and conference.wait_url == ""
    assert not conference.start_conference_on_enter and conference.max_participants == 10
    assert conference.record == "record-from-start"
    moderator = parse_twiml(html.unescape(shown[1])).verbs[0].nouns[0]
    assert moderator.start_conference_on_enter and moderator.end_conference_on_exit
    listing = client.get(harness.url + "/rooms").text
    assert f'href="/rooms/{room.id}"' in listing and "PIN 1234" in listing


def test_an_edit_with_errors_keeps_every_value_and_names_each_bad_field(web):
    harness, services = web
    client = harness.login()
    post_form(harness, client, "/rooms", FAMILY, "/rooms/new")
    post_form(harness, client, "/rooms", {**FAMILY, "name": "friends", "pin": "5555"},
              "/rooms/new")
    room = services.rooms.find_by_name("friends")
    bad = {**FAMILY, "name": "Friends & co", "pin": "1234", "moderator_pin": "12",
           "max_participants": "300", "allowed_callers": "+15550001111\nnot a number",
           "hours0_days": ["5"], "hours0_start": "10:00", "hours0_end": "10:00"}
    reply = post_form(harness, client, f"/rooms/{room.id}", bad, f"/rooms/{room.id}")
    assert reply.status_code == 400
    page = reply.text
    assert "already used by room &#039;family&#039;" in page or "already used by room" in page
    assert 'id="error-pin"' in page and 'id="error-moderator_pin"' in page
    assert "must be 4 to 10 digits" in page
    assert 'id="error-max_participants"' in page and "from 2 to 250" in page
    assert 'id="error-allowed_callers"' in page and "“not a number” must be a phone" in page
    assert 'id="error-hours0"' in page and "is not a period of time" in page
    assert field_value(page, "name") == "Friends & co"
    assert field_value(page, "pin") == "1234"
    assert field_value(page, "max_participants") == "300"
    assert "+15550001111\nnot a number</textarea>" in page
    assert re.search(r'name="hours0_days" value="5" checked', page)
    assert services.rooms.get(room.id).pin == "5555", "nothing was saved"

    good = post_form(harness, client, f"/rooms/{room.id}",
                     {**FAMILY, "name": "Friends & co", "pin": "5556"}, f"/rooms/{room.id}")
    assert good.status_code == 303
    assert services.rooms.get(room.id).name == "Friends & co"
    assert services.rooms.get(room.id).pin == "5556"


def test_delete_asks_first_then_removes_the_room(web):
    harness, services = web
    client = harness.login()
    post_form(harness, client, "/rooms", FAMILY, "/rooms/new")
    room = services.rooms.find_by_name("family")
    confirm = client.get(harness.url + f"/rooms/{room.id}/delete")
    assert confirm.status_code == 200 and "Delete “family”?" in confirm.text
    assert services.rooms.find_by_name("family") is not None, "asking deletes nothing"
    token = csrf_in(confirm.text)
    reply = client.post(harness.url + f"/rooms/{room.id}/delete", data={"csrf_token": token},
                        allow_redirects=False)
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/rooms")
    assert services.rooms.list() == []
    assert client.get(harness.url + f"/rooms/{room.id}").status_code == 404
    assert "is deleted" in client.get(harness.url + "/rooms").text


def test_every_rooms_route_needs_a_session_and_every_form_its_csrf_token(web):
    harness, services = web
    client = harness.login()
    post_form(harness, client, "/rooms", FAMILY, "/rooms/new")
    room = services.rooms.find_by_name("family")
    routes = [r for r in harness.app.bottle.routes if r.rule.startswith("/rooms")]
    assert {(r.method, r.rule) for r in routes} == {
        ("GET", "/rooms"), ("GET", "/rooms/new"), ("POST", "/rooms"),
        ("GET", "/rooms/<room_id:int>"), ("POST", "/rooms/<room_id:int>"),
        ("GET", "/rooms/<room_id:int>/delete"), ("POST", "/rooms/<room_id:int>/delete")}
    for route in routes:
        url = harness.url + route.rule.replace("<room_id:int>", str(room.id))
        anonymous = requests.request(route.method, url, data=FAMILY, allow_redirects=False)
        assert anonymous.status_code == 401, route.rule
        if route.method == "POST":
            for token in (None, "wrong"):
                data = FAMILY if token is None else {**FAMILY, "csrf_token": token}
                forged = client.post(url, data=data, allow_redirects=False)
                assert forged.status_code == 403, (route.rule, token)
    assert services.rooms.list() == [room], "no forged form changed anything"
