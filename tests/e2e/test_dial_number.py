"""<Dial><Number> on live lines: the caller rings gsm0, the appliance dials out on gsm1; what
each party hears, and what the Dial's action receives, for each outcome."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.tones import tone_segments
from tests.e2e.callers import RATE, dial_in, hears, talk, wait_for
from tests.harness import Daemon
from tests.receiver import API_CONFIG, Receiver

pytestmark = pytest.mark.e2e
CALLED = "+15550002222"
GOODBYE = "<Response><Say>Goodbye</Say></Response>"




def dial_rules(receiver: Receiver, **attributes) -> str:
    response = VoiceResponse()
    dial = Dial(action=receiver.url("/dialed"), **attributes)
    dial.number(CALLED)
    response.append(dial)
    response.say("Goodbye")
    return str(response)


def start(start_daemon, receiver: Receiver, **attributes) -> Daemon:
    receiver.routes["/dialed"] = lambda params: GOODBYE
    return start_daemon(dial_rules(receiver, **attributes), lines=2, extra_config=API_CONFIG)


def assert_clean(daemon: Daemon) -> None:
    """No call, thread, port or room is left behind."""

    def clean() -> bool:
        state = daemon.state()
        return (not state["calls"] and state["call_threads"] == 0
                and state["attached_ports"] == 0 and not state["bridges"]
                and not state["conferences"])

    wait_for(clean, 10, "the daemon to release calls, threads, ports and rooms", every=0.5)


def ringback_seconds(samples) -> float:
    """The longest stretch of 440 Hz + 480 Hz (North American ringback) in ``samples``."""
    found = []
    for freq in (440, 480):
        segments = tone_segments(samples, freq, RATE, window_ms=100, min_ms=300, min_share=0.3)
        found.append(max((end - begin for begin, end in segments), default=0.0))
    return min(found)


def test_an_answered_number_is_bridged_and_the_action_gets_completed_with_the_duration(
    start_daemon, receiver, voices
):
    daemon = start(start_daemon, receiver)
    caller, far = daemon.modems["gsm0"], daemon.modems["gsm1"]
    far.set_far_end("answer", after=4.0)

    answered = dial_in(caller, "+15550001111")
    assert far.wait_state("active", 20), f"the far end was not reached: {far.state}"
    assert far.dialed == CALLED
    assert far.wait_audio(20)
    before_answer = caller.heard()[answered:]
    assert ringback_seconds(before_answer) > 1.0, "the caller heard no ringback while it rang"

    far_words = voices("This is the party you dialled, speaking from the second line.")
    mark = caller.sample_clock
    talk(far, far_words)
    assert (peak := hears(caller.heard()[mark:], far_words)), f"caller heard the far end {peak}"
    caller_words = voices("Hello, this is the caller on the first line.")
    mark = far.sample_clock
    talk(caller, caller_words)
    assert (peak := hears(far.heard()[mark:], caller_words)), f"far end heard the caller {peak}"

    bridged = far.sample_clock / RATE  # the far end's audio runs from its answer
    far.hangup()
    (request,) = receiver.wait("/dialed")
    assert request.signed
    assert request.params["DialCallStatus"] == "completed"
    assert request.params["DialCallSid"].startswith("CA")
    assert request.params["DialCallSid"] != request.params["CallSid"]
    duration = int(request.params["DialCallDuration"])
    assert abs(duration - bridged) <= 1.5, f"DialCallDuration {duration}, bridged {bridged:.1f}"
    mark = caller.sample_clock
    assert caller.wait_state("idle", 20), "the action's Goodbye should end the call"
    assert hears(caller.heard()[mark:], voices("Goodbye")), "the action's TwiML ran"
    assert_clean(daemon)
    assert daemon.stop() == 0


def test_a_busy_number_gives_busy_to_the_action(start_daemon, receiver):
    daemon = start(start_daemon, receiver)
    caller, far = daemon.modems["gsm0"], daemon.modems["gsm1"]
    far.set_far_end("busy", after=0.5)
    dial_in(caller, "+15550001111")
    (request,) = receiver.wait("/dialed")
    assert request.params["DialCallStatus"] == "busy"
    assert request.params["DialCallDuration"] == "0"
    assert far.dialed == CALLED
    assert caller.wait_state("idle", 20)
    assert_clean(daemon)


def test_no_answer_before_the_timeout_hangs_up_the_attempt(start_daemon, receiver):
    daemon = start(start_daemon, receiver, timeout=3)
    caller, far = daemon.modems["gsm0"], daemon.modems["gsm1"]
    far.set_far_end("no-answer")
    answered = dial_in(caller, "+15550001111")
    assert far.wait_state("alerting", 20)
    (request,) = receiver.wait("/dialed")
    rang = (caller.sample_clock - answered) / RATE
    assert request.params["DialCallStatus"] == "no-answer"
    assert 2.5 <= rang <= 6.0, f"the attempt lasted {rang:.1f} s of the caller's audio"
    assert far.wait_state("idle", 10), "the outbound attempt was not hung up"
    after_dial = far.commands[far.commands.index(f"ATD{CALLED};"):]
    assert "AT+CHUP" in after_dial, far.commands
    assert caller.wait_state("idle", 20)
    assert_clean(daemon)


def test_a_caller_who_hangs_up_while_bridged_ends_the_called_partys_call(
    start_daemon, receiver
):
    daemon = start(start_daemon, receiver)
    caller, far = daemon.modems["gsm0"], daemon.modems["gsm1"]
    far.set_far_end("answer", after=1.0)
    dial_in(caller, "+15550001111")
    assert far.wait_state("active", 20)
    assert far.wait_audio(20)
    wait_for(lambda: far.sample_clock > RATE, 20, "a second of the bridge")
    caller.hangup()
    assert far.wait_state("idle", 10), "the called party is still connected"
    (request,) = receiver.wait("/dialed")  # requested still; its TwiML is not run
    assert request.params["DialCallStatus"] == "completed"
    assert request.params["CallStatus"] == "completed"
    assert_clean(daemon)
    assert daemon.stop() == 0
