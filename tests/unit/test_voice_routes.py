"""The built-in entry's /voice/... TwiML, fetched the way the interpreter fetches it (the
appliance's Fetcher, signed), each step parsed with the appliance's own TwiML parser."""

from __future__ import annotations

import html
import re
from datetime import datetime

import pytest
import requests
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Conference as TwilioConference
from twilio.twiml.voice_response import Dial as TwilioDial
from twilio.twiml.voice_response import VoiceResponse

from appliance.store import Room
from appliance.store.rooms import OpeningHours
from appliance.twiml.fetch import Fetcher
from appliance.twiml.parse import parse_twiml
from appliance.twiml.verbs import Conference, Dial, Gather, Hangup, Say
from appliance.web import room_twiml
from appliance.web.pin_lockout import LockoutPolicy
from tests.unit.test_web_rooms import AUTH_TOKEN, rooms_web

CALLER = "+15557654321"
MONDAY_NOON = datetime(2026, 11, 23, 12, 0)  # a Monday


class Wall:
    """The appliance's local wall clock, set by the test."""

    def __init__(self) -> None:
        self.moment = MONDAY_NOON

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def voice(tmp_path):
    wall = Wall()
    with rooms_web(tmp_path, LockoutPolicy(max_failures=3, window=900, lockout=900),
                   now=wall) as (harness, services):
        services.rooms.create(Room(name="family", pin="1234", moderator_pin="9876",
                                   end_on_moderator_exit=True, max_participants=12))
        yield Voice(harness, services, wall)


class Voice:
    def __init__(self, harness, services, wall) -> None:  # type: ignore[no-untyped-def]
        self.harness, self.services, self.wall = harness, services, wall
        self.fetcher = Fetcher("AC" + "0" * 32, AUTH_TOKEN)

    def fetch(self, path: str, caller: str = CALLER, **params: str):  # type: ignore[no-untyped-def]
        """What the interpreter gets for ``path``, parsed."""
        url = self.harness.url + path
        final, body, _type = self.fetcher.fetch_document(
            url, "POST", {"CallSid": "CA" + "1" * 32, "From": caller, "To": "+15551230000",
                          "CallStatus": "in-progress", **params})
        return parse_twiml(body, final), body.decode()

    def pin(self, digits: str, attempt: int = 1, caller: str = CALLER):  # type: ignore[no-untyped-def]
        return self.fetch(f"/voice/entry/pin?attempt={attempt}", caller, Digits=digits)[0]


def says(document) -> list[str]:  # type: ignore[no-untyped-def]
    """Every sentence the caller hears, those inside a <Gather> too, in order."""
    heard = []
    for verb in document.verbs:
        children = verb.children if isinstance(verb, Gather) else (verb,)
        heard += [child.text for child in children if isinstance(child, Say)]
    return heard


def conference_of(document) -> Conference:  # type: ignore[no-untyped-def]
    dial = next(verb for verb in document.verbs if isinstance(verb, Dial))
    assert isinstance(dial.nouns[0], Conference)
    return dial.nouns[0]


def test_voice_routes_refuse_unsigned_forged_and_stale_signatures(voice):
    routes = [r for r in voice.harness.app.bottle.routes if r.rule.startswith("/voice")]
    assert {r.rule for r in routes} == {
        "/voice/entry", "/voice/entry/pin", "/voice/room/<room_id:int>",
        "/voice/room/<room_id:int>/moderator", "/voice/media/<name>"}
    assert all(r.config.get("auth") == "custom" for r in routes)
    client = voice.harness.login()  # a logged-in person is not the interpreter either
    room = voice.services.rooms.find_by_name("family")
    for route in routes:
        path = re.sub(r"<room_id:int>", str(room.id), route.rule).replace("<name>", "x.wav")
        url = voice.harness.url + path
        assert requests.request(route.method, url, data={"From": CALLER}).status_code == 403
        assert client.request(route.method, url).status_code == 403
        forged = requests.request(route.method, url, data={"From": CALLER},
                                  headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
        assert forged.status_code == 403, route.rule
    # Signed for other parameters than those sent: refused.
    url = voice.harness.url + "/voice/entry/pin?attempt=1"
    signed_for = RequestValidator(AUTH_TOKEN).compute_signature(url, {"Digits": "0000"})
    tampered = requests.post(url, data={"Digits": "1234"},
                             headers={"X-Twilio-Signature": signed_for})
    assert tampered.status_code == 403
    # After the auth token is rotated, the old token's signatures are refused.
    old = RequestValidator(AUTH_TOKEN).compute_signature(voice.harness.url + "/voice/entry",
                                                         {"From": CALLER})
    voice.harness.credentials.rotate()
    stale = requests.post(voice.harness.url + "/voice/entry", data={"From": CALLER},
                          headers={"X-Twilio-Signature": old})
    assert stale.status_code == 403


def test_twilios_own_request_validator_signatures_are_accepted(voice):
    url = voice.harness.url + "/voice/entry"
    params = {"From": CALLER, "CallSid": "CA" + "2" * 32}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    reply = requests.post(url, data=params, headers={"X-Twilio-Signature": signature})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/xml")
    get_url = voice.harness.url + "/voice/entry?From=%2B15557654321"
    signed_get = RequestValidator(AUTH_TOKEN).compute_signature(get_url, {})
    assert requests.get(get_url, headers={"X-Twilio-Signature": signed_get}).status_code == 200


def test_the_entry_welcomes_with_the_appliance_name_and_gathers_the_pin(voice):
    document, _ = voice.fetch("/voice/entry")
    (gather,) = document.verbs
    assert isinstance(gather, Gather)
    assert gather.finish_on_key == "#" and gather.num_digits == room_twiml.MAX_PIN_DIGITS
    assert gather.action == "/voice/entry/pin?attempt=1" and gather.method == "POST"
    assert gather.action_on_empty_result
    assert [child.text for child in gather.children] == [
        "Welcome to Family line.", room_twiml.ENTER_PIN]


def test_a_wrong_pin_asks_again_and_the_third_says_goodbye_and_hangs_up(voice):
    first = voice.pin("1111", attempt=1)
    assert says(first) == ["That PIN is not right.", room_twiml.ENTER_PIN]
    gather = first.verbs[-1]
    assert isinstance(gather, Gather) and gather.action == "/voice/entry/pin?attempt=2"
    second = voice.pin("", attempt=2)
    assert says(second) == [room_twiml.NO_PIN, room_twiml.ENTER_PIN]
    assert second.verbs[-1].action == "/voice/entry/pin?attempt=3"
    third = voice.pin("2222", attempt=3)
    assert says(third) == ["That PIN is not right.", "Goodbye."]
    assert isinstance(third.verbs[-1], Hangup)
    assert not any(isinstance(v, Gather | Dial) for v in third.verbs)


def test_the_pin_joins_the_room_and_waits_for_the_moderator(voice):
    document = voice.pin("1234")
    assert says(document) == ["Joining family."]
    conference = conference_of(document)
    assert conference.name == "family"
    assert not conference.start_conference_on_enter, "callers wait for the moderator"
    assert not conference.end_conference_on_exit
    assert conference.wait_url is None, "the bundled hold music plays"
    assert conference.max_participants == 12 and conference.beep == "true"
    assert conference.record == "do-not-record" and not conference.muted


def test_the_moderator_pin_starts_the_room_and_ends_it_on_leaving(voice):
    document = voice.pin("9876")
    assert says(document) == ["Joining family as the moderator."]
    conference = conference_of(document)
    assert conference.start_conference_on_enter and conference.end_conference_on_exit


def test_a_closed_room_says_when_it_opens_and_hangs_up(voice):
    room = voice.services.rooms.find_by_name("family")
    voice.services.rooms.update(room.id, opening_hours=(OpeningHours((0, 2), "18:00", "22:00"),))
    assert says(voice.pin("1234")) == [
        "This room is closed now. It opens today at 18:00. Goodbye."]
    voice.wall.moment = datetime(2026, 11, 23, 23, 0)  # Monday night: next is Wednesday
    closed = voice.pin("1234")
    assert says(closed) == ["This room is closed now. It opens on Wednesday at 18:00. Goodbye."]
    assert isinstance(closed.verbs[-1], Hangup)
    voice.wall.moment = datetime(2026, 11, 23, 19, 30)
    assert conference_of(voice.pin("1234")).name == "family"


def test_callers_not_on_the_rooms_list_are_turned_away(voice):
    room = voice.services.rooms.find_by_name("family")
    voice.services.rooms.update(room.id, allowed_callers=("+15550001111",))
    refused = voice.pin("1234", caller=CALLER)
    assert says(refused) == [room_twiml.NOT_ALLOWED] and isinstance(refused.verbs[-1], Hangup)
    assert conference_of(voice.pin("1234", caller="+15550001111")).name == "family"


def test_repeated_wrong_pins_lock_the_caller_id_out_until_the_lockout_ends(voice):
    clock = voice.harness.clock
    voice.pin("1111", 1)
    voice.pin("1112", 2)
    locked = voice.pin("1113", 3)
    assert says(locked) == ["That PIN is not right.", room_twiml.LOCKED_OUT]
    entry, _ = voice.fetch("/voice/entry")
    assert says(entry) == [room_twiml.LOCKED_OUT] and isinstance(entry.verbs[-1], Hangup)
    assert says(voice.pin("1234")) == [room_twiml.LOCKED_OUT], "even the right PIN"
    other = voice.pin("1234", caller="+15550002222")
    assert conference_of(other).name == "family", "other callers are not affected"
    clock.advance(899)
    assert says(voice.fetch("/voice/entry")[0]) == [room_twiml.LOCKED_OUT]
    clock.advance(2)
    assert isinstance(voice.fetch("/voice/entry")[0].verbs[-1], Gather)
    assert conference_of(voice.pin("1234")).name == "family"


def test_wrong_pins_outside_the_window_do_not_add_up(voice):
    clock = voice.harness.clock
    voice.pin("1111")
    voice.pin("1112")
    clock.advance(901)
    assert isinstance(voice.pin("1113").verbs[-1], Gather), "two old failures expired"
    assert voice.services.lockout.retry_after(CALLER) == 0


def twilio_conference(room: Room, moderator: bool) -> str:
    """The same room, written with the twilio package's own generator."""
    response, dial = VoiceResponse(), TwilioDial()
    options: dict[str, object] = {"beep": room.beep, "max_participants": room.max_participants}
    if room.muted_on_entry and not moderator:
        options["muted"] = True
    if moderator:
        options.update(start_conference_on_enter=True,
                       end_conference_on_exit=room.end_on_moderator_exit)
    elif room.moderator_pin:
        options["start_conference_on_enter"] = False
    if room.wait_music == "none":
        options["wait_url"] = ""
    elif room.wait_music != "default":
        options.update(wait_url="/voice/media/" + room.wait_music, wait_method="GET")
    if room.record:
        options["record"] = "record-from-start"
    dial.append(TwilioConference(room.name, **options))
    response.append(dial)
    return str(response)


@pytest.mark.parametrize("room", [
    Room(name="family", pin="1234"),
    Room(name="Book club & friends", pin="2345", moderator_pin="5432", muted_on_entry=True,
         beep="onExit", wait_music="none", max_participants=2, record=True,
         end_on_moderator_exit=True),
    Room(name="choir", pin="3456", moderator_pin="6543", wait_music="Choir warmup.mp3",
         beep="false"),
])
@pytest.mark.parametrize("moderator", [False, True])
def test_room_twiml_matches_what_twilios_generator_writes(room, moderator):
    ours = parse_twiml(room_twiml.room_document(room, moderator))
    theirs = parse_twiml(twilio_conference(room, moderator))
    assert ours == theirs


def test_the_room_page_shows_exactly_what_voice_room_serves(voice):
    room = voice.services.rooms.find_by_name("family")
    client = voice.harness.login()
    page = client.get(voice.harness.url + f"/rooms/{room.id}").text
    shown = [html.unescape(t) for t in re.findall(r'<pre class="twiml">(.*?)</pre>', page, re.S)]
    _, callers = voice.fetch(f"/voice/room/{room.id}")
    _, moderator = voice.fetch(f"/voice/room/{room.id}/moderator")
    assert shown == [callers, moderator]
    missing = requests.post(voice.harness.url + "/voice/room/999", data={},
                            headers={"X-Twilio-Signature": RequestValidator(
                                AUTH_TOKEN).compute_signature(
                                voice.harness.url + "/voice/room/999", {})})
    assert missing.status_code == 404
