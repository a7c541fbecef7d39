"""Plivo's IVR elements on a live line: <GetDigits> with retries and an invalid key, <DTMF>
heard by the caller, and <Record> notifying its action; documents from plivo's XML builder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from plivo import plivoxml

from appliance.audio.dtmf import DtmfDetector
from appliance.audio.media import load_audio
from appliance.audio.tones import tone, tone_segments
from tests.audio_checks import fraction_heard, normalised_xcorr
from tests.e2e.callers import RATE, dial_in, hears, talk, until_hung_up, wait_for
from tests.receiver import API_CONFIG

pytestmark = pytest.mark.e2e
INVALID_HZ = 1500.0




def plivo(*elements: object) -> str:
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return response.to_string()


def wav_bytes(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def keys_in(samples: np.ndarray) -> list[tuple[str, float]]:
    """The DTMF keys in what a caller heard, with the second each was recognised at. A tone
    that a busy machine's underrun splits counts once (real presses of one key here are
    200 ms apart or more)."""
    detector = DtmfDetector(RATE)
    found: list[tuple[str, float]] = []
    for start in range(0, len(samples) - 160 + 1, 160):
        for key in detector.feed(samples[start:start + 160]):
            at = (start + 160) / RATE
            if not (found and found[-1][0] == key and at - found[-1][1] < 0.15):
                found.append((key, at))
    return found


def prompt_heard_at(heard: np.ndarray, prompt: np.ndarray) -> float:
    """Where (s) the start of ``prompt`` is heard (the prompt was made at the mixing rate and
    resampled by the line, so its copy here correlates well, not perfectly)."""
    peak, lag = normalised_xcorr(heard, prompt[: RATE // 2])
    assert peak > 0.4, f"the prompt was not heard (ncc {peak:.2f})"
    return lag / RATE


def heard_whole(heard: np.ndarray, prompt: np.ndarray) -> bool:
    return fraction_heard(heard, prompt, RATE) > 0.6


def test_getdigits_invalid_key_plays_the_sound_and_the_next_round_takes_the_digits(
    start_daemon, receiver, voices
):
    prompt_text, thanks_text = "Enter your code.", "Thank you."
    receiver.routes["/invalid.wav"] = lambda params: (
        "audio/wav", wav_bytes(tone(INVALID_HZ, 400, RATE)))
    receiver.routes["/digits"] = lambda params: plivo(
        plivoxml.SpeakElement(thanks_text, voice="MAN"), plivoxml.HangupElement())
    get_digits = plivoxml.GetDigitsElement(
        action=receiver.url("/digits"), num_digits=2, retries=2, valid_digits="123#",
        invalid_digits_sound=receiver.url("/invalid.wav"), timeout=3, digit_timeout=2)
    get_digits.add(plivoxml.SpeakElement(prompt_text, voice="MAN"))
    rules = plivo(get_digits, plivoxml.SpeakElement("No input.", voice="MAN"))
    daemon = start_daemon(rules, lines=1, extra_config=API_CONFIG)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    prompt = voices(prompt_text)
    wait_for(lambda: fraction_heard(caller.heard()[answered:], prompt[: RATE // 2], RATE) > 0.6,
             20, "the first prompt")
    caller.press("9")  # not a valid digit: the sound, then the second round
    wait_for(lambda: tone_segments(caller.heard()[answered:], INVALID_HZ, RATE, min_ms=200),
             10, "the invalid digit sound")
    sound_end = tone_segments(caller.heard()[answered:], INVALID_HZ, RATE, min_ms=200)[-1][1]
    after_sound = answered + int(sound_end * RATE)
    wait_for(lambda: heard_whole(caller.heard()[after_sound:], prompt), 20,
             "the prompt of the second round")
    caller.press("12")

    (action,) = receiver.wait("/digits")
    assert action.params["Digits"] == "12"
    assert action.params["CallUUID"] == action.params["CallSid"]
    until_hung_up(caller)
    heard = caller.heard()[answered:]
    assert fraction_heard(heard, voices(thanks_text), RATE) > 0.6, "the action's XML ran"
    assert fraction_heard(heard, voices("No input."), RATE) < 0.3
    assert len(receiver.at("/digits")) == 1, "the invalid round requested no action"


def test_getdigits_without_input_after_every_round_goes_on_to_the_next_element(
    start_daemon, receiver, voices
):
    get_digits = plivoxml.GetDigitsElement(action=receiver.url("/digits"), retries=2, timeout=1)
    get_digits.add(plivoxml.SpeakElement("Your choice?", voice="MAN"))
    rules = plivo(get_digits, plivoxml.SpeakElement("Nothing was pressed.", voice="MAN"))
    daemon = start_daemon(rules, lines=1, extra_config=API_CONFIG)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    until_hung_up(caller, 30)
    heard = caller.heard()[answered:]
    prompt = voices("Your choice?")
    first = prompt_heard_at(heard, prompt)
    rest = heard[int(first * RATE) + len(prompt):]
    assert heard_whole(rest, prompt), "the prompt played again after a second without a key"
    daemon.wait_log(r"<GetDigits> no input after 2 round\(s\)")
    assert fraction_heard(heard, voices("Nothing was pressed."), RATE) > 0.6
    assert not receiver.at("/digits")


def test_dtmf_tones_reach_the_caller_with_plivos_waits(start_daemon):
    rules = plivo(plivoxml.DTMFElement("1w2W3", async_=False))
    daemon = start_daemon(rules, lines=1)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    until_hung_up(caller)
    found = keys_in(caller.heard()[answered:])
    assert [key for key, _ in found] == ["1", "2", "3"]
    (_, one), (_, two), (_, three) = found
    # Keys are recognised a few blocks into each tone; a drift buffer may slip a frame.
    assert 0.6 < two - one < 0.85, "tone, gap, then w waits half a second"
    assert 1.1 < three - two < 1.35, "tone, gap, then W waits a second"


def test_async_dtmf_goes_on_with_the_next_element_while_the_tones_play(start_daemon, voices):
    words = "Hello there."
    rules = plivo(plivoxml.DTMFElement("4WW5"), plivoxml.SpeakElement(words, voice="MAN"))
    daemon = start_daemon(rules, lines=1)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    until_hung_up(caller)
    heard = caller.heard()[answered:]
    found = dict(keys_in(heard))
    assert "5" in found, f"the last key reached the caller: {found}"
    spoken = prompt_heard_at(heard, voices(words))
    assert spoken < found["5"] - 0.5, "the next element started while the tones still played"


def test_plivo_record_stops_at_max_length_and_only_notifies_without_redirect(
    start_daemon, receiver, voices
):
    record = plivoxml.RecordElement(
        action=receiver.url("/recorded"), redirect=False, file_format="wav", max_length=2,
        callback_url=receiver.url("/ready"))
    rules = plivo(record, plivoxml.SpeakElement("Message saved.", voice="MAN"))
    daemon = start_daemon(rules, lines=1, extra_config=API_CONFIG)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    wait_for(lambda: tone_segments(caller.heard()[answered:], 700, RATE, min_ms=60), 10,
             "Plivo's beep")
    words = voices("This message is a little longer than two seconds, on purpose.")
    talk(caller, words, tail=0.0)

    (action,) = receiver.wait("/recorded")
    params = action.params
    assert params["RecordingDuration"] == "2" and params["RecordingDurationMs"] == "2000"
    assert params["CallUUID"] == params["CallSid"]
    assert int(params["RecordingEndMs"]) - int(params["RecordingStartMs"]) >= 1900
    sid = params["RecordingID"]
    assert params["RecordUrl"].endswith(f"/recordings/{sid}")
    path = daemon.workdir / "var" / "recordings" / f"{sid}.wav"
    wait_for(path.exists, 10, str(path))
    recorded = load_audio(path, RATE)
    assert len(recorded) == 2 * RATE, "maxLength cuts the take at two seconds of call audio"
    assert hears(recorded, words[: 2 * RATE], 0.8)
    until_hung_up(caller)
    heard = caller.heard()[answered:]
    assert fraction_heard(heard, voices("Message saved."), RATE) > 0.6, "the document went on"
    (ready,) = receiver.wait("/ready")
    assert ready.params["RecordingID"] == sid and ready.params["RecordUrl"] == params["RecordUrl"]
    assert ready.params["RecordingDurationMs"] == "2000"
