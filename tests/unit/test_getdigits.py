"""Plivo's <GetDigits>: rounds of prompts, digitTimeout, validDigits and invalidDigitsSound,
playBeep and redirect; the interpreter against a fake call, the key collection on a real one."""
# ruff: noqa: F811 (the fixtures run, synth and web come from test_interpreter)

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from plivo import plivoxml

from appliance.audio.tones import tone_segments
from appliance.calls.call import Call
from appliance.calls.session import LiveCallSession
from tests.unit.test_interpreter import (  # noqa: F401
    CALL_PARAMS,
    FMT,
    FakeSession,
    run,
    synth,
    tone_wav,
    web,
)

PROMPT = "Enter your code."


@dataclass
class DigitsSession(FakeSession):
    """The fake call, collecting as <GetDigits> asks: a first-key timeout, a digit timeout,
    and an invalid key that ends the input."""

    def collect_digits(self, num_digits, timeout, finish_on_key, first_key=None,
                       digit_timeout=None, valid_keys=None) -> str:
        digits, pending, last = "", first_key, self.clock
        while num_digits is None or len(digits) < num_digits:
            key, pending = pending, None
            if key is None:
                wait = timeout if not digits or digit_timeout is None else digit_timeout
                if not self.presses or self.presses[0][0] - last >= wait:
                    self.clock = last + wait
                    break
                at, key = self.presses.pop(0)
                self.clock = max(self.clock, at)
            if finish_on_key and key == finish_on_key:
                break
            digits += key
            if valid_keys is not None and key not in valid_keys:
                break
            last = self.clock
        return digits


def plivo(*elements: object) -> str:
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return response.to_string()


def get_digits(web, **attributes) -> str:
    element = plivoxml.GetDigitsElement(action=web.base + "/digits", **attributes)
    element.add(plivoxml.SpeakElement(PROMPT))
    return web.twiml("/voice", plivo(element, plivoxml.SpeakElement("No input.")))


def prompt_length(synth) -> int:
    samples = synth.synthesize(PROMPT, "woman", "en-US", FMT.rate)
    return -(-len(samples) // FMT.samples) * FMT.samples


def actions(web) -> list:
    return [r for r in web.requests if r.url.endswith("/digits")]


def test_an_invalid_key_plays_its_sound_and_the_next_round_takes_the_digits(
    run, synth, web, tmp_path
):
    tone_wav(tmp_path / "invalid.wav", 0.3, frequency=1500)
    web.routes["/invalid.wav"] = (200, "audio/wav", (tmp_path / "invalid.wav").read_bytes())
    web.twiml("/digits", plivo(plivoxml.HangupElement()))
    url = get_digits(web, retries=2, num_digits=3, valid_digits="0123#",
                     invalid_digits_sound="/invalid.wav")
    session = DigitsSession(presses=[(0.3, "9"), (0.4, "1"), (1.2, "2"), (1.4, "3"),
                                     (1.5, "0")])
    run(url, session=session)
    first_prompt, sound, second_prompt, *_ = session.played
    assert len(first_prompt) == FMT.frames_for(0.3) * FMT.samples, "the invalid key stops it"
    assert tone_segments(sound, 1500, FMT.rate, min_ms=200), "invalidDigitsSound is heard"
    assert session.discarded == ["1"], "keys pressed during the sound start nothing"
    assert len(second_prompt) < prompt_length(synth), "the second round's prompt, cut by 2"
    (action,) = actions(web)
    assert action.form["Digits"] == "230"
    assert action.form["CallUUID"] == CALL_PARAMS["CallSid"]


def test_no_input_in_every_round_goes_on_to_the_next_element(run, synth, web):
    url = get_digits(web, retries=3, timeout=2)
    session = run(url, session=DigitsSession())
    prompts = session.played[:3]
    assert [len(p) for p in prompts] == [prompt_length(synth)] * 3, "three whole rounds"
    assert len(session.played) == 4 and not actions(web), "then No input."


def test_digit_timeout_ends_the_input_between_keys(run, web):
    web.twiml("/digits", plivo(plivoxml.HangupElement()))
    url = get_digits(web, timeout=10, digit_timeout=1)
    session = DigitsSession(presses=[(5.0, "4"), (5.9, "5"), (7.0, "6")])
    run(url, session=session)
    (action,) = actions(web)
    assert action.form["Digits"] == "45", "1.1 s after the 5 is past digitTimeout"


def test_play_beep_follows_the_prompts(run, synth, web):
    url = get_digits(web, play_beep=True, retries=1, timeout=1)
    session = run(url, session=DigitsSession())
    prompt, beep, _no_input = session.played
    assert len(prompt) == prompt_length(synth)
    assert tone_segments(beep, 700, FMT.rate, min_ms=250)


def test_without_redirect_the_action_is_told_and_the_document_goes_on(run, web):
    web.twiml("/digits", plivo(plivoxml.SpeakElement("Not run.")))
    element = plivoxml.GetDigitsElement(action=web.base + "/digits", redirect=False)
    element.add(plivoxml.SpeakElement(PROMPT))
    url = web.twiml("/voice", plivo(element, plivoxml.WaitElement(length=1)))
    session = run(url, session=DigitsSession(presses=[(0.2, "7"), (0.3, "#")]))
    (action,) = actions(web)
    assert action.form["Digits"] == "7"
    assert len(session.played[-1]) == FMT.rate and not session.played[-1].any(), "the Wait"


# --- collecting on a real call: the call's audio clock -------------------------------------


def collect_on_call(presses: dict[int, str], ticks: int, **kwargs) -> str:
    """Collect keys while a stand-in tick advances the call's audio by 20 ms per step and
    the caller presses ``presses`` (tick index -> key)."""
    call = Call(line="gsm0", from_number="+15550001111", to_number="+15551230000")
    session = LiveCallSession(call, None, lambda call: None, "AC")  # type: ignore[arg-type]
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(session.collect_digits(**kwargs)))
    thread.start()
    silence = np.zeros(FMT.samples, np.int16)
    for tick in range(ticks):
        if not thread.is_alive():
            break
        if tick in presses:
            call.keys.put(presses[tick])
        call.listen_for_keys(silence, FMT.rate)
        threading.Event().wait(0.002)
    call.end()
    thread.join(5)
    return result[0]


def test_collect_waits_timeout_for_the_first_key_and_digit_timeout_after():
    digits = collect_on_call({100: "1", 140: "2", 200: "3"}, 400, num_digits=None, timeout=3,
                             finish_on_key="#", digit_timeout=1)
    assert digits == "12", "2 s after the first key is far past digitTimeout (audio time)"


def test_collect_stops_at_a_key_outside_the_valid_ones():
    digits = collect_on_call({5: "1", 10: "9", 15: "2"}, 100, num_digits=None, timeout=1,
                             finish_on_key="#", valid_keys="123#")
    assert digits == "19"
