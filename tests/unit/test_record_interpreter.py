"""The interpreter's <Record> (TwiML and Plivo) and Plivo's <DTMF> against a fake call: what
is asked of the call, what the caller hears, and what the action URL receives."""
# ruff: noqa: F811 (the fixtures run, synth and web come from test_interpreter)

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pytest
from plivo import plivoxml
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.media import MediaSource
from appliance.audio.tones import DTMF_FREQS, goertzel_power, tone_segments
from appliance.twiml.record import (
    RecordOutcome,
    RecordRequest,
    SessionRecordingStarted,
    StatusCallback,
)
from tests.unit.test_interpreter import (  # noqa: F401
    AUTH_TOKEN,
    CALL_PARAMS,
    FMT,
    FakeSession,
    WebApp,
    run,
    synth,
    web,
    write,
)

SID = "RE" + "1" * 32


@dataclass
class RecordingSession(FakeSession):
    """The fake call, recording too: each take ends as ``outcome`` says."""

    ended_by: str = "#"
    duration: float = 4.2
    empty: bool = False
    requests: list[RecordRequest] = field(default_factory=list)
    sessions: list[tuple] = field(default_factory=list)
    overlays: list[np.ndarray] = field(default_factory=list)

    def record(self, request: RecordRequest) -> RecordOutcome | None:
        self.requests.append(request)
        if self.ended_by == "hangup":
            self._ended = True
        return RecordOutcome(SID, f"http://appliance.local/recordings/{SID}", self.duration,
                             self.ended_by, 1000.0, 1000.0 + self.duration, self.empty)

    def record_session(self, file_format: str, stereo: bool, max_seconds: float | None,
                       callback: StatusCallback | None) -> SessionRecordingStarted | None:
        self.sessions.append((file_format, stereo, max_seconds, callback))
        return SessionRecordingStarted(SID, f"http://appliance.local/recordings/{SID}", 1000.0)

    def play_over(self, source: MediaSource) -> None:
        parts = []
        while (frame := source.read_frame()) is not None:
            parts.append(frame)
        self.overlays.append(np.concatenate(parts))


def twiml_record(**attributes) -> VoiceResponse:
    response = VoiceResponse()
    response.record(**attributes)
    response.say("After the recording.")
    return response


def test_twiml_record_beeps_then_records_with_twilios_defaults(run, web):
    web.twiml("/voice", twiml_record(action="/done", recording_status_callback="/status"))
    web.twiml("/done", "<Response><Hangup/></Response>")
    session = run(web.base + "/voice", session=RecordingSession())
    beep = session.played[0]
    ((start, end),) = tone_segments(beep, 1000, FMT.rate, min_ms=100)
    assert end - start == pytest.approx(0.5, abs=0.03), "a half-second beep"
    (request,) = session.requests
    assert request == RecordRequest(
        max_seconds=3600, silence_seconds=5, finish_on_key="1234567890*#", trim=True,
        file_format="wav", drop_silent=True,
        callback=StatusCallback(web.base + "/status", "POST", ("completed",), "twiml"))


def test_twiml_record_action_defaults_to_this_document_with_the_recording(run, web):
    url = web.twiml("/voice", twiml_record(play_beep=False, timeout=0, max_length=30))
    session = RecordingSession(ended_by="#")
    run(url, session=session)
    assert session.requests[0].silence_seconds == 0 and session.requests[0].max_seconds == 30
    _first, again = web.requests[:2]
    assert again.url == url and again.method == "POST"
    assert again.form == {**CALL_PARAMS, "RecordingUrl": f"http://appliance.local/recordings/{SID}",
                          "RecordingDuration": "4", "RecordingSid": SID, "Digits": "#"}
    assert again.signature == RequestValidator(AUTH_TOKEN).compute_signature(url, again.form)


def test_an_empty_twiml_recording_requests_no_action_and_goes_on(run, synth, web):
    url = web.twiml("/voice", twiml_record(action="/recorded", play_beep=False))
    session = run(url, session=RecordingSession(empty=True, ended_by="timeout"))
    assert [r.url for r in web.requests] == [url]
    (after,) = session.played
    assert len(after) >= len(synth.synthesize("After the recording.", "man", "en-US", FMT.rate))


def test_a_caller_hanging_up_still_reaches_the_action_whose_twiml_is_ignored(run, web):
    url = web.twiml("/voice", twiml_record(action="/recorded", play_beep=False))
    web.twiml("/recorded", "<Response><Say>Not heard.</Say></Response>")
    session = run(url, session=RecordingSession(ended_by="hangup"))
    (action,) = [r for r in web.requests if r.url.endswith("/recorded")]
    assert action.form["Digits"] == "hangup"
    assert session.played == [] and session.hangups == 0


def test_transcribe_is_noted_once_and_the_recording_goes_on(run, web, caplog):
    url = web.twiml("/voice", twiml_record(play_beep=False, action="/recorded", transcribe=True,
                                           transcribe_callback="/text"))
    web.twiml("/recorded", "<Response><Hangup/></Response>")
    with caplog.at_level(logging.INFO):
        session = run(url, session=RecordingSession())
    assert session.requests and "no transcriber" in caplog.text
    assert not [r for r in web.requests if r.url.endswith("/text")]


def plivo(*elements: object) -> str:
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return response.to_string()


def test_plivo_record_without_redirect_notifies_the_action_and_goes_on(run, synth, web):
    record = plivoxml.RecordElement(action="/recorded", redirect=False, play_beep=False,
                                    timeout=3, max_length=20, file_format="wav",
                                    callback_url="/ready")
    url = web.twiml("/voice", plivo(record, plivoxml.SpeakElement("Saved.")))
    web.twiml("/recorded", plivo(plivoxml.SpeakElement("Not run.")))
    session = run(url, session=RecordingSession(ended_by="#", duration=2.5))
    (request,) = session.requests
    assert (request.max_seconds, request.silence_seconds, request.finish_on_key) == (20, 3, "#")
    assert not request.trim and not request.drop_silent and request.file_format == "wav"
    assert request.callback == StatusCallback(web.base + "/ready", dialect="plivo")
    (action,) = [r for r in web.requests if r.url.endswith("/recorded")]
    assert action.form["CallUUID"] == CALL_PARAMS["CallSid"]
    assert {k: action.form[k] for k in ("RecordUrl", "RecordingID", "RecordingDuration",
                                         "RecordingDurationMs", "RecordingStartMs",
                                         "RecordingEndMs", "Digits")} == {
        "RecordUrl": f"http://appliance.local/recordings/{SID}", "RecordingID": SID,
        "RecordingDuration": "2", "RecordingDurationMs": "2500", "RecordingStartMs": "1000000",
        "RecordingEndMs": "1002500", "Digits": "#"}
    (said,) = session.played
    assert len(said) >= len(synth.synthesize("Saved.", "woman", "en-US", FMT.rate))


def test_plivo_record_beep_is_the_plivo_frameworks(run, web):
    # A <Speak> makes it Plivo XML: a document of <Record> alone reads as TwiML.
    url = web.twiml("/voice", plivo(plivoxml.SpeakElement("Speak now."),
                                    plivoxml.RecordElement(redirect=False)))
    session = run(url, session=RecordingSession())
    ((start, end),) = tone_segments(session.played[1], 700, FMT.rate, min_ms=100)
    assert end - start == pytest.approx(0.3, abs=0.03)
    assert len(session.played[1]) == FMT.frames_for(0.5) * FMT.samples


def test_plivo_record_session_records_in_the_background_and_tells_the_action(run, web):
    record = plivoxml.RecordElement(action="/recorded", record_session=True, max_length=600,
                                    record_channel_type="mono")
    url = web.twiml("/voice", plivo(record, plivoxml.SpeakElement("Go on.")))
    web.twiml("/recorded", plivo(plivoxml.SpeakElement("Recording.")))
    session = run(url, session=RecordingSession())
    assert session.requests == [], "no take: the session recording runs in the background"
    assert session.sessions == [("mp3", False, 600.0, None)]
    (action,) = [r for r in web.requests if r.url.endswith("/recorded")]
    assert action.form["RecordingDuration"] == "-1" and action.form["RecordingID"] == SID
    assert len(session.played) == 1, "redirect: the action's XML runs (no beep first)"


def keys_of(samples: np.ndarray) -> str:
    """Each 100 ms tone's key, by its two loudest DTMF frequencies."""
    keys = ""
    freqs = sorted({f for pair in DTMF_FREQS.values() for f in pair})
    for start in range(0, len(samples), FMT.rate // 10):
        block = samples[start:start + FMT.rate // 10]
        if not block.any():
            continue
        powers = {f: goertzel_power(block, f, FMT.rate) for f in freqs}
        pair = tuple(sorted(sorted(powers, key=powers.__getitem__)[-2:]))
        keys += next(k for k, p in DTMF_FREQS.items() if tuple(sorted(p)) == pair)
    return keys


def test_plivo_dtmf_plays_the_keys_with_half_and_whole_second_waits(run, web):
    url = web.twiml("/voice", plivo(plivoxml.DTMFElement("1w2W#", async_=False)))
    session = run(url, session=RecordingSession())
    (tones,) = session.played
    assert keys_of(tones) == "12#"
    rate = FMT.rate
    expected = 3 * 2 * rate // 10 + rate // 2 + rate  # 3 x (tone + gap), w, W
    assert len(tones) == -(-expected // FMT.samples) * FMT.samples


def test_plivo_async_dtmf_plays_over_the_next_element(run, web):
    url = web.twiml("/voice", plivo(plivoxml.DTMFElement("90"), plivoxml.WaitElement(length=1)))
    session = run(url, session=RecordingSession())
    (overlay,) = session.overlays
    assert keys_of(overlay) == "90"
    (wait,) = session.played
    assert len(wait) == FMT.rate, "the Wait ran as soon as the tones were handed over"
