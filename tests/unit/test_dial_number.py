"""<Dial><Number>: each outcome of the outbound leg, on fake lines (the rig of
test_reject_flow); the action URL is a loopback web application."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.tones import goertzel_power
from appliance.calls import session as session_module
from appliance.calls.dial import ringback
from appliance.lines.base import DtmfReceived
from tests.receiver import Receiver
from tests.unit.test_reject_flow import FMT, SPEED, Rig

ACTION = "/dial-done"


@pytest.fixture
def rig(tmp_path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


@pytest.fixture
def web() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.routes[ACTION] = lambda params: "<Response><Pause length=\"1\"/></Response>"
    yield receiver
    receiver.close()


def dial_rules(rig: Rig, web: Receiver | None, *numbers: str, after: bool = True,
               **attributes) -> None:
    response = VoiceResponse()
    dial = Dial(action=web.url(ACTION) if web else None, **attributes)
    for number in numbers or ("+15550002222",):
        dial.number(number)
    response.append(dial)
    if after:
        response.pause(length=1)
    rig.rules.write_text(str(response))


def audio_seconds(rig: Rig) -> float:
    return rig.engine.ticks * FMT.period


def wait_audio(rig: Rig, seconds: float) -> None:
    """Let ``seconds`` of audio time pass (the engine's ticks)."""
    target = audio_seconds(rig) + seconds
    deadline = time.monotonic() + seconds / SPEED + 10
    while audio_seconds(rig) < target:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def outbound(rig: Rig, kind: str) -> dict:
    return rig.wait_event(kind, direction="outbound-dial")[0].data


def test_an_answered_number_is_bridged_until_it_hangs_up_and_the_action_gets_the_outcome(
    rig, web
):
    dial_rules(rig, web)
    rig.lines["gsm0"].ring()
    ringing = outbound(rig, "call.ringing")
    caller = rig.wait_event("call.ringing", direction="inbound")[0].data
    assert ringing["parent_call_sid"] == caller["call_sid"]
    assert ringing["to"] == "+15550002222"
    answered = outbound(rig, "call.answered")
    wait_audio(rig, 3.0)
    assert [room.name for room in rig.bridges.active()] == [f"dial-{caller['call_sid']}"]
    rig.lines["gsm1"].remote_hangup()
    request = web.wait(ACTION)[0]
    assert request.params["DialCallStatus"] == "completed"
    assert request.params["DialCallSid"] == answered["call_sid"]
    assert abs(int(request.params["DialCallDuration"]) - 3) <= 1
    assert request.params["CallSid"] == caller["call_sid"]
    assert outbound(rig, "call.ended")["status"] == "completed"
    assert rig.lines["gsm1"].commands == ["ATD+15550002222;"]
    rig.wait_event("call.ended", direction="inbound")
    rig.idle()


@pytest.mark.parametrize(("far", "status"), [("busy", "busy"), ("unreachable", "failed"),
                                              ("refuse", "failed")])
def test_a_number_that_is_not_answered_gives_its_status_to_the_action(rig, web, far, status):
    rig.lines["gsm1"].far = far
    dial_rules(rig, web)
    rig.lines["gsm0"].ring()
    request = web.wait(ACTION)[0]
    assert request.params["DialCallStatus"] == status
    assert request.params["DialCallDuration"] == "0"
    assert request.params["DialCallSid"].startswith("CA")
    assert outbound(rig, "call.ended")["status"] == status
    rig.wait_event("call.ended", direction="inbound")
    rig.idle()


def test_nobody_answering_before_the_timeout_is_no_answer_and_the_attempt_is_hung_up(rig, web):
    rig.lines["gsm1"].far = "no-answer"
    dial_rules(rig, web, timeout=3)
    rig.lines["gsm0"].ring()
    start = audio_seconds(rig)
    request = web.wait(ACTION)[0]
    waited = audio_seconds(rig) - start
    assert request.params["DialCallStatus"] == "no-answer"
    assert 2.5 < waited < 5.0, f"the attempt rang {waited:.1f} s of audio for timeout=3"
    assert rig.lines["gsm1"].commands == ["ATD+15550002222;", "AT+CHUP"]
    assert outbound(rig, "call.ended")["status"] == "no-answer"
    rig.idle()


def test_without_an_action_the_caller_goes_on_with_the_next_verb(rig):
    rig.lines["gsm1"].far = "busy"
    dial_rules(rig, None)
    rig.lines["gsm0"].ring()
    answered = rig.wait_event("call.answered", direction="inbound")[0]
    ended = rig.wait_event("call.ended", direction="inbound")[0]
    assert ended.timestamp - answered.timestamp >= 0.9 / SPEED, "the Pause after the Dial ran"
    rig.idle()


def test_no_free_line_fails_the_dial_and_says_why(rig, web, caplog):
    rig.lines["gsm1"].dialable = False
    dial_rules(rig, web)
    rig.lines["gsm0"].ring()
    request = web.wait(ACTION)[0]
    assert request.params["DialCallStatus"] == "failed"
    assert request.params.get("DialCallSid", "") == "", "no call was placed"
    assert "no free line (gsm1 cannot place calls)" in caplog.text
    rig.idle()


def test_a_caller_who_hangs_up_while_bridged_ends_the_called_party_too(rig, web):
    dial_rules(rig, web)
    rig.lines["gsm0"].ring()
    outbound(rig, "call.answered")
    wait_audio(rig, 1.0)
    rig.lines["gsm0"].remote_hangup()
    request = web.wait(ACTION)[0]  # requested still, its TwiML not run
    assert request.params["DialCallStatus"] == "completed"
    assert request.params["CallStatus"] == "completed"
    assert rig.lines["gsm1"].commands == ["ATD+15550002222;", "AT+CHUP"]
    assert outbound(rig, "call.ended")["status"] == "completed"
    rig.idle()


def test_a_caller_who_hangs_up_while_it_rings_cancels_the_attempt(rig, web):
    rig.lines["gsm1"].far = "no-answer"
    dial_rules(rig, web)
    rig.lines["gsm0"].ring()
    outbound(rig, "call.ringing")
    rig.lines["gsm0"].remote_hangup()
    assert web.wait(ACTION)[0].params["DialCallStatus"] == "canceled"
    assert outbound(rig, "call.ended")["status"] == "canceled"
    assert rig.lines["gsm1"].commands[-1] == "AT+CHUP"
    rig.idle()


def test_star_leaves_the_bridge_with_hangup_on_star_and_the_rules_go_on(rig, web):
    dial_rules(rig, web, hangup_on_star=True)
    rig.lines["gsm0"].ring()
    outbound(rig, "call.answered")
    wait_audio(rig, 1.0)
    rig.manager.on_line_event("gsm0", DtmfReceived("*"))
    request = web.wait(ACTION)[0]
    assert request.params["DialCallStatus"] == "completed"
    assert rig.lines["gsm1"].commands == ["ATD+15550002222;", "AT+CHUP"]
    assert not [e for e in rig.events if e.kind == "call.ended" and
                e.data["direction"] == "inbound"], "the caller is still on the line"
    rig.wait_event("call.ended", direction="inbound")  # after the action's Pause
    rig.idle()


def test_time_limit_ends_the_bridge(rig, web):
    dial_rules(rig, web, time_limit=2)
    rig.lines["gsm0"].ring()
    request = web.wait(ACTION)[0]
    assert request.params["DialCallStatus"] == "completed"
    assert request.params["DialCallDuration"] == "2"
    assert rig.lines["gsm1"].commands[-1] == "AT+CHUP"
    rig.idle()


def test_send_digits_go_to_the_called_party_once_it_answers(rig, web):
    response = VoiceResponse()
    dial = Dial(action=web.url(ACTION), time_limit=1)
    dial.number("+15550002222", send_digits="12w34")
    response.append(dial)
    rig.rules.write_text(str(response))
    rig.lines["gsm0"].ring()
    web.wait(ACTION)
    assert rig.lines["gsm1"].commands[:3] == ["ATD+15550002222;", "AT+VTS=12", "AT+VTS=34"]
    rig.idle()


def test_answer_on_bridge_answers_the_caller_only_when_the_number_answers(rig, web):
    dial_rules(rig, web, answer_on_bridge=True, time_limit=1)
    rig.lines["gsm0"].ring()
    far_answered = outbound(rig, "call.answered")
    caller_answered = rig.wait_event("call.answered", direction="inbound")[0].data
    order = [e.data["call_sid"] for e in rig.events if e.kind == "call.answered"]
    assert order == [far_answered["call_sid"], caller_answered["call_sid"]]
    assert web.wait(ACTION)[0].params["DialCallStatus"] == "completed"
    rig.idle()


def test_answer_on_bridge_to_a_busy_number_leaves_the_caller_unanswered(rig, web):
    rig.lines["gsm1"].far = "busy"
    web.routes[ACTION] = lambda params: '<Response><Reject reason="busy"/></Response>'
    dial_rules(rig, web, answer_on_bridge=True)
    rig.lines["gsm0"].ring()
    assert web.wait(ACTION)[0].params["DialCallStatus"] == "busy"
    ended = rig.wait_event("call.ended", direction="inbound")[0].data
    assert ended["status"] == "busy", "the action's <Reject> still refused the ringing call"
    assert "ATA" not in rig.lines["gsm0"].commands
    rig.idle()


def test_record_from_answer_records_the_bridge_and_tells_the_action_and_the_callback(rig, web):
    dial_rules(rig, web, record="record-from-answer", trim="do-not-trim", time_limit=2,
               recording_status_callback=web.url("/recording"))
    rig.lines["gsm0"].ring()
    params = web.wait(ACTION)[0].params
    assert params["DialCallStatus"] == "completed"
    assert params["RecordingSid"].startswith("RE")
    assert params["RecordingDuration"] == "2"
    assert (rig.tmp_path / "recordings" / f"{params['RecordingSid']}.wav").exists()
    callback = web.wait("/recording")[0].params
    assert callback["RecordingSid"] == params["RecordingSid"]
    assert callback["RecordingStatus"] == "completed"
    assert callback["RecordingSource"] == "DialVerb"
    assert callback["CallSid"] == params["CallSid"]
    rig.idle()


def test_more_numbers_than_free_lines_ring_those_it_can(rig, web, caplog):
    dial_rules(rig, web, "+15550002222", "+15550003333", time_limit=1)
    rig.lines["gsm0"].ring()
    assert web.wait(ACTION)[0].params["DialCallStatus"] == "completed"
    assert rig.lines["gsm1"].commands[0] == "ATD+15550002222;"
    assert "+15550003333 not rung: no free line" in caplog.text
    rig.idle()


def test_caller_id_cannot_be_set_and_is_noted_not_fatal(rig, web, caplog, monkeypatch):
    caplog.set_level(logging.INFO, "appliance.calls.session")
    monkeypatch.setattr(session_module, "_caller_id_noted", threading.Event())
    dial_rules(rig, web, caller_id="+15559999999", time_limit=1)
    rig.lines["gsm0"].ring()
    assert web.wait(ACTION)[0].params["DialCallStatus"] == "completed"
    assert 'callerId="+15559999999"> ignored' in caplog.text
    rig.idle()


def test_ringback_is_the_us_cadence_of_440_and_480_hz_two_seconds_on_four_off():
    rate = 8000
    cycle = ringback(None, rate)
    assert len(cycle) == 6 * rate
    on, off = cycle[: 2 * rate], cycle[2 * rate :]
    assert not off.any()
    for freq in (440, 480):
        assert goertzel_power(on, freq, rate) > 100 * goertzel_power(on, 1000, rate)
    assert np.abs(on).max() < 32767 * 0.25
    uk = ringback("uk", rate)
    assert len(uk) == round(3.0 * rate)
