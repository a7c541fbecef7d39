"""Plivo's <Conference> (seed 004) played by simulated callers; the documents come from
plivo's XML builder."""

from __future__ import annotations

import re

import pytest
from plivo import plivoxml

from tests.e2e.callers import dial_in, heard_while, hears, joins_beeped, listen
from tests.receiver import API_CONFIG

pytestmark = pytest.mark.e2e
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")




def plivo(*elements: object) -> str:
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return response.to_string()


def test_plivo_room_callers_hear_each_other_and_the_enter_beep(start_daemon, voices):
    room = plivo(plivoxml.ConferenceElement("PlivoRoom", enter_sound="beep:1"))
    daemon = start_daemon(room)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    listen(a, 0.5)
    mark = a.sample_clock
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference PlivoRoom started")
    listen(a, 1.5)
    assert joins_beeped(a.heard()[mark:]) == 1, "beep:1 plays once as b enters"
    words = voices("Hello from the first caller.")
    (at_b,) = heard_while(a, words, b)
    assert hears(at_b, words)
    words = voices("And hello back from the second.")
    (at_a,) = heard_while(b, words, a)
    assert hears(at_a, words)


def test_plivo_stay_alone_and_end_on_exit_end_the_room_to_the_action(
    start_daemon, receiver, voices
):
    alone, ended = "You are alone now.", "The moderator has left."
    receiver.routes["/after-a"] = lambda params: plivo(plivoxml.SpeakElement(alone, voice="MAN"))
    receiver.routes["/after-b"] = lambda params: plivo(plivoxml.SpeakElement(ended, voice="MAN"))
    rules = [
        plivo(plivoxml.ConferenceElement("Board", stay_alone=False,
                                         action=receiver.url("/after-a"))),
        plivo(plivoxml.ConferenceElement("Board", action=receiver.url("/after-b"))),
        plivo(plivoxml.ConferenceElement("Board", end_conference_on_exit=True)),
    ]
    daemon = start_daemon(rules, lines=3, extra_config=API_CONFIG)
    a, b, c = (daemon.modems[f"gsm{i}"] for i in range(3))

    dial_in(a, "+15550000001")
    daemon.wait_log(r"joined conference Board")  # A is member 1
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference Board started")
    listen(a, 1.0)
    mark = a.sample_clock
    b.hangup()
    daemon.wait_log(r"conference Board ended \(member-alone\)")
    (action,) = receiver.wait("/after-a")
    assert action.params["ConferenceName"] == "Board"
    assert UUID.match(action.params["ConferenceUUID"])
    assert action.params["ConferenceMemberID"] == "1"
    assert a.wait_state("idle", 20)
    assert hears(a.heard()[mark:], voices(alone)), "the action's document goes on"

    assert b.wait_state("idle", 20)
    dial_in(b, "+15550000002")
    dial_in(c, "+15550000003")
    daemon.wait_log(r"conference Board started")
    listen(b, 1.0)
    mark_b = b.sample_clock
    c.hangup()
    daemon.wait_log(r"conference Board ended \(participant-with-end-conference-on-exit-left\)")
    receiver.wait("/after-b")
    assert b.wait_state("idle", 20)
    assert hears(b.heard()[mark_b:], voices(ended))


def test_plivo_callback_url_gets_enter_digits_and_exit(start_daemon, receiver):
    room = plivo(plivoxml.ConferenceElement("Desk", callback_url=receiver.url("/cb"),
                                            digits_match="12,99"))
    daemon = start_daemon(room, extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    daemon.wait_log(r"joined conference Desk")  # A is member 1
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference Desk started")
    entered = receiver.wait("/cb", 2, where=lambda r: r.params["ConferenceAction"] == "enter")
    assert sorted(r.params["ConferenceMemberID"] for r in entered) == ["1", "2"]
    for request in entered:
        assert request.params["ConferenceName"] == "Desk"
        assert UUID.match(request.params["ConferenceUUID"])
        assert request.params["CallUUID"].startswith("CA")
    first = next(r for r in entered if r.params["ConferenceMemberID"] == "1")
    caller_a = first.params["CallUUID"]

    a.press("1")
    a.press("2")
    (digits,) = receiver.wait("/cb", where=lambda r: r.params["ConferenceAction"] == "digits")
    assert digits.params["ConferenceDigitsMatch"] == "12"
    assert digits.params["CallUUID"] == caller_a
    assert digits.params["ConferenceMemberID"] == "1"

    a.hangup()
    (left,) = receiver.wait("/cb", where=lambda r: r.params["ConferenceAction"] == "exit")
    assert left.params["CallUUID"] == caller_a and left.params["ConferenceMemberID"] == "1"


def test_plivo_full_room_skips_the_conference_and_its_action(start_daemon, receiver, voices):
    full = "The room is full."
    receiver.routes["/after"] = lambda params: plivo(plivoxml.SpeakElement("Not reached."))
    room = plivo(plivoxml.ConferenceElement("Solo", max_members=1,
                                            action=receiver.url("/after")),
                 plivoxml.SpeakElement(full, voice="MAN"))
    daemon = start_daemon(room, extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    daemon.wait_log(r"joined conference Solo")
    mark = b.sample_clock
    dial_in(b, "+15550000002")
    assert b.wait_state("idle", 20)
    assert hears(b.heard()[mark:], voices(full)), "the next element plays"
    assert receiver.at("/after") == []
