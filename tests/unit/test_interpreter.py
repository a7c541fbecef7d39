"""The interpreter runs TwiML verb by verb against a fake call; documents are real files or a
loopback HTTP server, prompts come from the real fetcher, media decoder and espeak-ng."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
import soundfile
from plivo import plivoxml
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.frames import AudioFormat
from appliance.audio.media import MediaSource, SpeechSynth, hold_music, load_audio
from appliance.audio.tones import DTMF_FREQS, goertzel_power, join_beep, leave_beep
from appliance.calls.session import ConferenceExit
from appliance.twiml.fetch import Fetcher
from appliance.twiml.interpreter import (
    APOLOGY,
    MAX_DOCUMENTS_PER_CALL,
    Interpreter,
)
from appliance.twiml.media_cache import MediaCache
from appliance.twiml.verbs import Conference, PlivoConference
from appliance.twiml.verbs import Dial as DialVerb
from tests.audio_checks import normalised_xcorr

FMT = AudioFormat(16000, 20)
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
CALL_PARAMS = {
    "CallSid": "CA" + "f" * 32,
    "AccountSid": ACCOUNT_SID,
    "From": "+15550001111",
    "To": "+15551230000",
    "Caller": "+15550001111",
    "Called": "+15551230000",
    "CallStatus": "in-progress",
    "Direction": "inbound",
    "ApiVersion": "2010-04-01",
}
MAX_PLAY_SECONDS = 120  # a source still playing after this is a runaway loop


# --- a fake call ---------------------------------------------------------------------------


@dataclass
class Join:
    noun: Conference
    dial: DialVerb
    wait_audio: Callable[[], MediaSource | None] | None


@dataclass
class PlivoJoin:
    verb: PlivoConference
    wait_audio: Callable[[], MediaSource | None] | None
    enter_sound: np.ndarray | None
    exit_sound: np.ndarray | None


@dataclass
class FakeSession:
    """Plays every source to its end at once and keeps the samples; joins return at once.

    ``presses`` script the caller's keys as (seconds of call audio, key); the fake's
    ``clock`` counts the audio played and the time spent waiting for keys.
    """

    sid: str = CALL_PARAMS["CallSid"]
    dial_status: str = "completed"
    hang_up_after_plays: int | None = None  # the caller hangs up once this many have played
    presses: list[tuple[float, str]] = field(default_factory=list)
    clock: float = 0.0
    discarded: list[str] = field(default_factory=list)
    played: list[np.ndarray] = field(default_factory=list)
    joins: list[Join] = field(default_factory=list)
    plivo_joins: list[PlivoJoin] = field(default_factory=list)
    hangups: int = 0
    _ended: bool = False

    @property
    def ended(self) -> bool:
        return self._ended

    def params(self) -> dict[str, str]:
        return dict(CALL_PARAMS)

    def play(self, source: MediaSource) -> bool:
        self._play(source, interruptible=False)
        return not self._ended

    def play_until_key(self, source: MediaSource) -> str | None:
        return self._play(source, interruptible=True)

    def _play(self, source: MediaSource, interruptible: bool) -> str | None:
        frames = []
        key = None
        for _ in range(FMT.frames_for(MAX_PLAY_SECONDS)):
            if interruptible and self.presses and self.presses[0][0] <= self.clock:
                key = self.presses.pop(0)[1]
                break
            frame = source.read_frame()
            if frame is None:
                break
            frames.append(frame.copy())
            self.clock += FMT.period
            if source.done:
                break
        else:
            raise AssertionError(f"a source played for more than {MAX_PLAY_SECONDS} s")
        self.played.append(np.concatenate(frames) if frames else FMT.silence()[:0])
        if self.hang_up_after_plays is not None and len(self.played) >= self.hang_up_after_plays:
            self._ended = True
        return None if self._ended else key

    def discard_keys(self) -> None:
        while self.presses and self.presses[0][0] <= self.clock:
            self.discarded.append(self.presses.pop(0)[1])

    def collect_digits(
        self, num_digits: int | None, timeout: float, finish_on_key: str,
        first_key: str | None = None,
    ) -> str:
        digits = ""
        pending = first_key
        last = self.clock
        while num_digits is None or len(digits) < num_digits:
            key, pending = pending, None
            if key is None:
                if not self.presses or self.presses[0][0] - last >= timeout:
                    self.clock = last + timeout
                    break
                at, key = self.presses.pop(0)
                self.clock = max(self.clock, at)
            if finish_on_key and key == finish_on_key:
                break
            digits += key
            last = self.clock
        return digits

    def hangup(self) -> None:
        self.hangups += 1
        self._ended = True

    def join_conference(
        self, noun: Conference, dial: DialVerb, wait_audio: Callable[[], MediaSource | None] | None
    ) -> str:
        self.joins.append(Join(noun, dial, wait_audio))
        if self.dial_status == "hangup":
            self._ended = True
        return self.dial_status

    def join_plivo_conference(
        self,
        verb: PlivoConference,
        wait_audio: Callable[[], MediaSource | None] | None,
        enter_sound: np.ndarray | None,
        exit_sound: np.ndarray | None,
    ) -> ConferenceExit:
        self.plivo_joins.append(PlivoJoin(verb, wait_audio, enter_sound, exit_sound))
        if self.dial_status == "hangup":
            self._ended = True
        return ConferenceExit(self.dial_status, {
            "ConferenceName": verb.name, "ConferenceUUID": "uuid-1", "ConferenceMemberID": "1"})


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SpeechSynth:
    return SpeechSynth(tmp_path_factory.mktemp("tts"))


@pytest.fixture
def run(synth: SpeechSynth) -> Callable[..., FakeSession]:
    """``run(url, fallback_url="", session=None)`` -> the session after the interpreter ended."""

    def run_rules(
        url: str, fallback_url: str = "", session: FakeSession | None = None, method: str = "POST"
    ) -> FakeSession:
        session = session or FakeSession()
        fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN, timeout=5.0)
        interpreter = Interpreter(session, fetcher, synth, FMT, MediaCache(fetcher, FMT.rate))
        interpreter.run(url, method, fallback_url)
        return session

    return run_rules


def write(folder: Path, name: str, response: VoiceResponse | str) -> str:
    path = folder / name
    path.write_text(str(response))
    return path.as_uri()


def frames_long(samples: np.ndarray) -> int:
    """Length in samples once padded to whole frames (what a caller hears)."""
    return -(-len(samples) // FMT.samples) * FMT.samples


def speech(synth: SpeechSynth, text: str) -> np.ndarray:
    return synth.synthesize(text, "man", "en-US", FMT.rate)


def apology(synth: SpeechSynth) -> np.ndarray:
    return synth.synthesize(APOLOGY, "", "en-US", FMT.rate)


def assert_apologised_and_hung_up(session: FakeSession, synth: SpeechSynth) -> None:
    assert session.played, "the caller heard nothing"
    peak, _ = normalised_xcorr(session.played[-1], apology(synth))
    assert peak > 0.99, f"the last thing played is not the apology (ncc {peak:.2f})"
    assert session.hangups == 1


def tone_wav(path: Path, seconds: float, frequency: float = 440.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * frequency * t) * 32767).astype(np.int16)
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return samples


# --- a loopback web app ---------------------------------------------------------------------


@dataclass
class Request:
    method: str
    url: str
    form: dict[str, str]
    signature: str | None


@dataclass
class WebApp:
    """Routes by path: ``routes["/voice"] = (status, content_type, body)``."""

    base: str = ""
    routes: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def twiml(self, path: str, response: VoiceResponse | str) -> str:
        self.routes[path] = (200, "text/xml", str(response).encode())
        return self.base + path


@pytest.fixture
def web() -> Iterator[WebApp]:
    app = WebApp()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self, form: dict[str, str]) -> None:
            url = app.base + self.path
            app.requests.append(
                Request(self.command, url, form, self.headers.get("X-Twilio-Signature"))
            )
            route = app.routes.get(urlsplit(self.path).path)
            if route is None:
                self.send_error(404)
                return
            status, content_type, body = route
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve({})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self._serve(dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    app.base = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield app
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- verbs in order -------------------------------------------------------------------------


def test_say_pause_and_play_are_heard_in_order_with_their_lengths(run, synth, tmp_path):
    tone = tone_wav(tmp_path / "tone.wav", 0.5)
    response = VoiceResponse()
    response.say("Welcome to the line.")
    response.pause(length=2)
    response.play("tone.wav")
    session = run(write(tmp_path, "rules.xml", response))

    said, paused, played = session.played
    welcome = speech(synth, "Welcome to the line.")
    assert len(said) == frames_long(welcome)
    assert np.array_equal(said[: len(welcome)], welcome)
    assert len(paused) == 2 * FMT.rate and not paused.any()
    resampled = load_audio(tmp_path / "tone.wav", FMT.rate)  # an 8 kHz file, mixed at 16 kHz
    assert len(resampled) == 2 * len(tone)
    assert len(played) == frames_long(resampled)
    assert np.array_equal(played[: len(resampled)], resampled)
    assert session.hangups == 1, "the end of the document ends the call"


def test_say_loop_repeats_the_speech(run, synth, tmp_path):
    response = VoiceResponse()
    response.say("Again.", loop=3)
    (played,) = run(write(tmp_path, "rules.xml", response)).played
    once = speech(synth, "Again.")
    assert len(played) == frames_long(np.zeros(3 * len(once)))


def test_play_digits_sends_dtmf_tones(run, tmp_path):
    response = VoiceResponse()
    response.play(digits="1w9")
    (played,) = run(write(tmp_path, "rules.xml", response)).played
    assert len(played) == frames_long(np.zeros(FMT.rate * 9 // 10))  # 2 x (tone, gap) + a wait
    first, last = played[: FMT.rate // 10], played[-FMT.rate // 5 :]
    for segment, key in ((first, "1"), (last, "9")):
        low, high = DTMF_FREQS[key]
        powers = {f: goertzel_power(segment, f, FMT.rate) for f in (697, 852, 1209, 1477)}
        loudest = sorted(powers, key=powers.__getitem__)[-2:]
        assert set(loudest) == {low, high}, f"key {key} not heard: {powers}"


def test_hangup_stops_the_document(run, synth, tmp_path):
    response = VoiceResponse()
    response.say("One.")
    response.hangup()
    response.say("Two.")
    session = run(write(tmp_path, "rules.xml", response))
    (said,) = session.played
    assert np.array_equal(said[: len(speech(synth, "One."))], speech(synth, "One."))
    assert session.hangups == 1


def test_caller_hanging_up_stops_the_document_without_a_second_hangup(run, tmp_path):
    response = VoiceResponse()
    response.say("One.")
    response.say("Two.")
    session = run(
        write(tmp_path, "rules.xml", response), session=FakeSession(hang_up_after_plays=1)
    )
    assert len(session.played) == 1
    assert session.hangups == 0


def test_relative_redirect_continues_in_the_other_document(run, synth, tmp_path):
    first = VoiceResponse()
    first.say("First.")
    first.redirect("next/second.xml")
    first.say("Never heard.")
    (tmp_path / "next").mkdir()
    second = VoiceResponse()
    second.say("Second.")
    write(tmp_path / "next", "second.xml", second)
    session = run(write(tmp_path, "first.xml", first))
    assert [len(p) for p in session.played] == [
        frames_long(speech(synth, "First.")),
        frames_long(speech(synth, "Second.")),
    ]
    assert np.array_equal(
        session.played[1][: len(speech(synth, "Second."))], speech(synth, "Second.")
    )


def test_redirect_loop_is_cut_off_with_an_apology(run, synth, web, caplog):
    loop = VoiceResponse()
    loop.redirect("loop.xml")
    url = web.twiml("/loop.xml", loop)
    session = run(url)
    assert len(web.requests) == MAX_DOCUMENTS_PER_CALL
    assert_apologised_and_hung_up(session, synth)
    assert f"more than {MAX_DOCUMENTS_PER_CALL} documents" in caplog.text


# --- Dial + Conference ----------------------------------------------------------------------


def test_dial_conference_joins_with_the_nouns_attributes_then_goes_on(run, synth, tmp_path):
    tone_wav(tmp_path / "wait.wav", 0.4)
    response = VoiceResponse()
    dial = Dial(hangup_on_star=True)
    dial.conference(
        "family",
        muted=True,
        beep="onEnter",
        start_conference_on_enter=False,
        end_conference_on_exit=True,
        wait_url="wait.wav",
        jitter_buffer_size="small",
        participant_label="grandma",
    )
    response.append(dial)
    response.say("Goodbye.")
    session = run(write(tmp_path, "rules.xml", response))

    (join,) = session.joins
    assert join.noun.name == "family"
    assert join.noun.muted and not join.noun.start_conference_on_enter
    assert join.noun.end_conference_on_exit
    assert (join.noun.beep, join.noun.jitter_buffer_size) == ("onEnter", "small")
    assert join.noun.participant_label == "grandma"
    assert join.dial.hangup_on_star
    assert join.wait_audio is not None
    wait = join.wait_audio()
    assert wait is not None
    frame = wait.read_frame()
    assert frame is not None
    reference = load_audio(tmp_path / "wait.wav", FMT.rate)
    assert np.array_equal(frame, reference[: FMT.samples]), "waitUrl resolves next to the rules"
    (said,) = session.played
    assert len(said) == frames_long(speech(synth, "Goodbye."))
    assert session.hangups == 1


def test_dial_conference_waits_to_hold_music_by_default_and_in_silence_with_empty_wait_url(
    run, tmp_path
):
    response = VoiceResponse()
    for wait_url in (None, ""):
        dial = Dial()
        dial.conference("family", wait_url=wait_url)
        response.append(dial)
    session = run(write(tmp_path, "rules.xml", response))
    music, silent = session.joins
    assert music.wait_audio is not None
    source = music.wait_audio()
    assert source is not None
    frame = source.read_frame()
    assert frame is not None
    assert np.array_equal(frame, hold_music(FMT.rate)[: FMT.samples])
    assert silent.wait_audio is None


def test_dial_action_receives_the_dial_call_status_signed(run, synth, web):
    response = VoiceResponse()
    dial = Dial(action="after-dial?room=family")
    dial.conference("family")
    response.append(dial)
    response.say("Not reached: the action's document replaces the rest.")
    voice_url = web.twiml("/voice", response)
    after = VoiceResponse()
    after.say("The conference has ended.")
    web.twiml("/after-dial", after)

    session = run(voice_url, session=FakeSession(dial_status="completed"))

    first, action = web.requests
    assert action.method == "POST"
    assert action.url == f"{web.base}/after-dial?room=family"
    assert action.form == {**CALL_PARAMS, "DialCallStatus": "completed"}
    validator = RequestValidator(AUTH_TOKEN)
    assert validator.validate(first.url, first.form, first.signature)
    assert validator.validate(action.url, action.form, action.signature)
    (said,) = session.played
    assert len(said) == frames_long(speech(synth, "The conference has ended."))


def test_dial_action_is_not_requested_when_the_caller_hung_up(run, web):
    response = VoiceResponse()
    dial = Dial(action="/after-dial")
    dial.conference("family")
    response.append(dial)
    session = run(web.twiml("/voice", response), session=FakeSession(dial_status="hangup"))
    assert [urlsplit(r.url).path for r in web.requests] == ["/voice"]
    assert session.played == []


def test_dial_to_a_sip_address_is_refused_with_an_apology(run, synth, tmp_path, caplog):
    response = VoiceResponse()
    dial = Dial()
    dial.sip("sip:alice@example.com")
    response.append(dial)
    session = run(write(tmp_path, "rules.xml", response))
    assert session.joins == []
    assert_apologised_and_hung_up(session, synth)
    assert "12200" in caplog.text


# --- failures -------------------------------------------------------------------------------


MALFORMED = "<Response><Say>unclosed</Response>"


@pytest.mark.parametrize(
    ("broken", "code"),
    [(None, "11200"), (MALFORMED, "12100")],
    ids=["missing-document", "malformed-xml"],
)
def test_broken_voice_url_falls_back_to_the_fallback_url(
    run, synth, tmp_path, caplog, broken, code
):
    voice_url = (tmp_path / "voice.xml").as_uri()
    if broken is not None:
        write(tmp_path, "voice.xml", broken)
    fallback = VoiceResponse()
    fallback.say("Fallback rules.")
    caplog.set_level(logging.WARNING)
    session = run(voice_url, fallback_url=write(tmp_path, "fallback.xml", fallback))
    (said,) = session.played
    assert len(said) == frames_long(speech(synth, "Fallback rules."))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(code in message and "fallback" in message for message in warnings), warnings


@pytest.mark.parametrize(
    ("broken", "code"),
    [(None, "11200"), (MALFORMED, "12100"), ("<Speak>Plivo?</Speak>", "12100")],
    ids=["missing-document", "malformed-xml", "wrong-root"],
)
def test_broken_voice_url_without_fallback_apologises_and_hangs_up(
    run, synth, tmp_path, caplog, broken, code
):
    voice_url = (tmp_path / "voice.xml").as_uri()
    if broken is not None:
        write(tmp_path, "voice.xml", broken)
    session = run(voice_url)
    assert len(session.played) == 1
    assert_apologised_and_hung_up(session, synth)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(code in message and session.sid in message for message in errors), errors


def test_failing_fallback_url_also_ends_in_the_apology(run, synth, tmp_path, caplog):
    session = run(
        (tmp_path / "voice.xml").as_uri(), fallback_url=(tmp_path / "fallback.xml").as_uri()
    )
    assert_apologised_and_hung_up(session, synth)
    assert "11200" in caplog.text


def test_http_voice_url_answering_404_apologises(run, synth, web, caplog):
    session = run(web.base + "/nowhere")
    assert_apologised_and_hung_up(session, synth)
    assert "11200" in caplog.text and "HTTP 404" in caplog.text


def test_broken_redirected_document_apologises_after_the_first_prompts(
    run, synth, tmp_path, caplog
):
    response = VoiceResponse()
    response.say("First.")
    response.redirect("broken.xml")
    write(tmp_path, "broken.xml", MALFORMED)
    session = run(write(tmp_path, "rules.xml", response))
    assert len(session.played) == 2
    assert_apologised_and_hung_up(session, synth)
    assert "12100" in caplog.text


@pytest.mark.parametrize(
    "verb",
    [
        "<Enqueue>support</Enqueue>",
        "<Sya>typo</Sya>",
    ],
    ids=["enqueue", "unknown"],
)
def test_unsupported_verb_apologises_and_hangs_up(run, synth, tmp_path, caplog, verb):
    session = run(write(tmp_path, "rules.xml", f"<Response>{verb}<Say>After.</Say></Response>"))
    assert len(session.played) == 1, "nothing after the unsupported verb is heard"
    assert_apologised_and_hung_up(session, synth)
    assert "12200" in caplog.text


def test_play_of_a_missing_url_apologises(run, synth, web, caplog):
    response = VoiceResponse()
    response.play("/missing.wav")
    response.say("Not reached.")
    session = run(web.twiml("/voice", response))
    assert_apologised_and_hung_up(session, synth)
    assert "11200" in caplog.text and "HTTP 404" in caplog.text


def test_play_of_something_that_is_not_audio_apologises(run, synth, web, caplog):
    response = VoiceResponse()
    response.play("/page.html")
    web.routes["/page.html"] = (200, "text/html", b"<html><body>not audio</body></html>")
    session = run(web.twiml("/voice", response))
    assert_apologised_and_hung_up(session, synth)
    assert "13420" in caplog.text  # Twilio: "Play: Invalid Content-Type"


# --- Plivo XML -------------------------------------------------------------------------------


def plivo_response(*elements: object) -> str:
    response = plivoxml.ResponseElement()
    for element in elements:
        response.add(element)
    return response.to_string()


def test_plivo_speak_wait_and_play_are_heard_in_order(run, synth, tmp_path):
    tone_wav(tmp_path / "tone.wav", 0.5)
    rules = plivo_response(plivoxml.SpeakElement("Welcome to the line."),
                           plivoxml.WaitElement(None).set_length(2),
                           plivoxml.PlayElement("tone.wav"))
    session = run(write(tmp_path, "rules.xml", rules))
    said, paused, played = session.played
    welcome = synth.synthesize("Welcome to the line.", "woman", "en-US", FMT.rate)
    assert np.array_equal(said[: len(welcome)], welcome)
    assert len(paused) == 2 * FMT.rate and not paused.any()
    assert len(played) == frames_long(load_audio(tmp_path / "tone.wav", FMT.rate))
    assert session.hangups == 1


def test_plivo_hangup_stops_the_document(run, tmp_path):
    rules = plivo_response(plivoxml.HangupElement(), plivoxml.SpeakElement("Not heard."))
    session = run(write(tmp_path, "rules.xml", rules))
    assert session.played == [] and session.hangups == 1


def test_plivo_redirect_sends_plivo_parameters(run, web):
    voice_url = web.twiml("/voice", plivo_response(plivoxml.SpeakElement("Hello."),
                                                   plivoxml.RedirectElement("/next")))
    web.twiml("/next", plivo_response(plivoxml.WaitElement(None).set_length(1)))
    session = run(voice_url)
    _first, redirected = web.requests
    assert redirected.url == f"{web.base}/next"
    form = redirected.form
    assert form["CallUUID"] == CALL_PARAMS["CallSid"] and form["Event"] == "Redirect"
    for name in ("From", "To", "CallStatus", "Direction"):
        assert form[name] == CALL_PARAMS[name]
    assert len(session.played) == 2


def test_plivo_conference_joins_with_its_attributes_and_beeps(run, tmp_path):
    rules = plivo_response(
        plivoxml.ConferenceElement("Room", muted=True, enter_sound="beep:1",
                                   exit_sound="beep:2", stay_alone=False, max_members=5,
                                   digits_match="12,34", record=True, record_file_format="wav"),
        plivoxml.SpeakElement("After."))
    session = run(write(tmp_path, "rules.xml", rules))
    (join,) = session.plivo_joins
    verb = join.verb
    assert (verb.name, verb.muted, verb.stay_alone, verb.max_members) == ("Room", True, False, 5)
    assert verb.digits_match == ("12", "34") and verb.record
    assert join.wait_audio is None, "no waitSound: silence while alone"
    assert join.enter_sound is not None and np.array_equal(join.enter_sound, join_beep(FMT.rate))
    beep = leave_beep(FMT.rate)
    assert join.exit_sound is not None and len(join.exit_sound) == 2 * len(beep) + FMT.rate // 5
    assert len(session.played) == 1, "the next element follows the conference"


def test_plivo_conference_sounds_and_wait_sound_render_their_xml(run, synth, web):
    web.twiml("/enter", plivo_response(plivoxml.SpeakElement("Someone joined."),
                                       plivoxml.HangupElement()))
    web.twiml("/wait", plivo_response(plivoxml.WaitElement(None).set_length(1),
                                      plivoxml.SpeakElement("Please wait.")))
    voice_url = web.twiml("/voice", plivo_response(
        plivoxml.ConferenceElement("Room", enter_sound="/enter", wait_sound="/wait")))
    session = run(voice_url)
    (join,) = session.plivo_joins
    joined = synth.synthesize("Someone joined.", "woman", "en-US", FMT.rate)
    assert join.enter_sound is not None
    assert np.array_equal(join.enter_sound[: len(joined)], joined), "<Hangup> is ignored"
    assert join.exit_sound is None
    assert join.wait_audio is not None
    source = join.wait_audio()
    assert source is not None
    first_second = np.concatenate([source.read_frame() for _ in range(FMT.frames_for(1))])
    assert not first_second.any(), "the <Wait> plays first"
    wait_requests = [r for r in web.requests if r.url.endswith("/wait")]
    assert wait_requests[0].form["CallUUID"] == CALL_PARAMS["CallSid"]


def test_plivo_conference_action_redirect_continues_with_its_document(run, synth, web):
    voice_url = web.twiml("/voice", plivo_response(
        plivoxml.ConferenceElement("Room", action="/after", method="POST"),
        plivoxml.SpeakElement("Not reached.")))
    web.twiml("/after", plivo_response(plivoxml.SpeakElement("Goodbye.")))
    session = run(voice_url)
    _first, action = web.requests
    assert action.form["ConferenceName"] == "Room"
    assert action.form["ConferenceMemberID"] == "1"
    assert action.form["CallUUID"] == CALL_PARAMS["CallSid"]
    (said,) = session.played
    goodbye = synth.synthesize("Goodbye.", "woman", "en-US", FMT.rate)
    assert len(said) == frames_long(goodbye)


def test_plivo_conference_action_without_redirect_is_notified_and_the_call_goes_on(
    run, synth, web
):
    voice_url = web.twiml("/voice", plivo_response(
        plivoxml.ConferenceElement("Room", action="/after", redirect=False),
        plivoxml.SpeakElement("Next element.")))
    web.twiml("/after", plivo_response(plivoxml.SpeakElement("Ignored.")))
    session = run(voice_url)
    assert [r.url for r in web.requests] == [voice_url, f"{web.base}/after"]
    (said,) = session.played
    assert len(said) == frames_long(synth.synthesize("Next element.", "woman", "en-US", FMT.rate))


def test_plivo_conference_refused_skips_the_action_too(run, web):
    voice_url = web.twiml("/voice", plivo_response(
        plivoxml.ConferenceElement("Room", max_members=1, action="/after"),
        plivoxml.WaitElement(None).set_length(1)))
    web.twiml("/after", plivo_response(plivoxml.SpeakElement("Not reached.")))
    session = run(voice_url, session=FakeSession(dial_status="refused"))
    assert [r.url for r in web.requests] == [voice_url]
    (paused,) = session.played
    assert len(paused) == FMT.rate and not paused.any()


# --- <Gather> -------------------------------------------------------------------------------

PIN_PROMPT = "Enter your PIN."


def gather_rules(web: WebApp, attributes: str = 'numDigits="4" action="/pin"',
                 prompt: str = f"<Say>{PIN_PROMPT}</Say>") -> str:
    """/voice gathers with ``attributes`` around ``prompt``, then says "No PIN."; /pin says
    "Thanks."."""
    web.twiml("/pin", "<Response><Say>Thanks.</Say></Response>")
    return web.twiml("/voice", f"<Response><Gather {attributes}>{prompt}</Gather>"
                               "<Say>No PIN.</Say></Response>")


def heard(session: FakeSession, synth: SpeechSynth, text: str) -> bool:
    return any(len(p) >= len(speech(synth, text)) and
               normalised_xcorr(p, speech(synth, text))[0] > 0.99 for p in session.played)


def action_requests(web: WebApp) -> list[Request]:
    return [r for r in web.requests if r.url != web.base + "/voice" or "Digits" in r.form]


def test_gather_posts_the_digits_once_num_digits_are_in(run, synth, web):
    session = run(gather_rules(web), session=FakeSession(presses=[(0.5, "1"), (0.8, "2"),
                                                                  (1.0, "3"), (1.2, "4"),
                                                                  (1.3, "5")]))
    (request,) = action_requests(web)
    assert request.method == "POST" and request.url == web.base + "/pin"
    assert request.form == {**CALL_PARAMS, "Digits": "1234"}
    assert request.signature == RequestValidator(AUTH_TOKEN).compute_signature(
        request.url, request.form)
    prompt, _thanks = session.played
    assert len(prompt) == FMT.frames_for(0.5) * FMT.samples, "the first key stops the prompt"
    assert np.array_equal(prompt, speech(synth, PIN_PROMPT)[: len(prompt)])
    assert heard(session, synth, "Thanks.") and not heard(session, synth, "No PIN.")
    assert session.presses == [(1.3, "5")], "the fifth key is not the Gather's"


@pytest.mark.parametrize(
    ("finish_on_key", "keys", "digits"),
    [(None, "12#3", "12"), ("*", "12*3", "12"), ("", "1#2#", "1#2#")],
    ids=["default-hash", "star", "disabled"],
)
def test_gather_finish_on_key_ends_the_input(run, web, finish_on_key, keys, digits):
    attributes = 'action="/pin"' + (f' finishOnKey="{finish_on_key}"'
                                    if finish_on_key is not None else "")
    presses = [(5.0 + index * 0.5, key) for index, key in enumerate(keys)]
    run(gather_rules(web, attributes), session=FakeSession(presses=presses))
    (request,) = action_requests(web)
    assert request.form["Digits"] == digits


def test_gather_timeout_posts_the_partial_digits(run, synth, web):
    prompt_seconds = frames_long(speech(synth, PIN_PROMPT)) / FMT.rate
    late = prompt_seconds + 1 + 3.5  # 3.5 s after the first key: past timeout="3"
    session = FakeSession(presses=[(prompt_seconds + 1, "1"), (late, "2")])
    run(gather_rules(web, 'numDigits="4" timeout="3" action="/pin"'), session=session)
    (request,) = action_requests(web)
    assert request.form["Digits"] == "1"
    assert session.presses == [(late, "2")]


def test_gather_without_digits_goes_on_with_the_next_verb(run, synth, web):
    session = run(gather_rules(web))
    assert action_requests(web) == []
    prompt, _no_pin = session.played
    assert len(prompt) == frames_long(speech(synth, PIN_PROMPT)), "the prompt played whole"
    assert heard(session, synth, "No PIN.")
    assert session.hangups == 1


def test_gather_action_on_empty_result_requests_the_action_with_empty_digits(run, synth, web):
    session = run(gather_rules(web, 'action="/pin" actionOnEmptyResult="true" method="GET"'))
    (request,) = action_requests(web)
    assert request.method == "GET"
    assert request.url.startswith(web.base + "/pin?") and "Digits=&" in request.url + "&"
    assert heard(session, synth, "Thanks.") and not heard(session, synth, "No PIN.")


def test_gather_prompts_play_in_order_until_a_key_and_earlier_keys_are_dropped(
    run, synth, web
):
    welcome = speech(synth, "Welcome.")
    welcome_seconds = frames_long(welcome) / FMT.rate
    prompt = f'<Say>{PIN_PROMPT}</Say><Pause length="1"/><Play digits="9"/><Say>Again.</Say>'
    # "8" during the welcome is dropped; "7" in the pause stops the prompts and is a digit.
    said = frames_long(speech(synth, PIN_PROMPT)) / FMT.rate
    session = FakeSession(presses=[(0.2, "8"), (welcome_seconds + said + 0.5, "7"),
                                   (welcome_seconds + said + 2, "#")])
    web.twiml("/pin", "<Response><Say>Thanks.</Say></Response>")
    url = web.twiml("/voice", f'<Response><Say>Welcome.</Say><Gather action="/pin">{prompt}'
                              "</Gather></Response>")
    run(url, session=session)
    assert session.discarded == ["8"]
    (request,) = action_requests(web)
    assert request.form["Digits"] == "7"
    _welcome, pin_prompt, pause, _thanks = session.played
    assert len(pin_prompt) == frames_long(speech(synth, PIN_PROMPT))
    assert len(pause) == FMT.frames_for(0.5) * FMT.samples and not pause.any()


def test_gather_action_defaults_to_the_current_document(run, synth, web):
    url = gather_rules(web, 'numDigits="1"')
    session = run(url, session=FakeSession(presses=[(0.5, "7")]))
    assert [(r.url, r.method, r.form.get("Digits")) for r in web.requests] == [
        (url, "POST", None), (url, "POST", "7"), ]
    assert heard(session, synth, "No PIN."), "the second pass got no key and went on"


def test_gather_for_speech_is_refused_with_an_apology(run, synth, tmp_path, caplog):
    rules = '<Response><Gather input="speech"><Say>Say it.</Say></Gather></Response>'
    session = run(write(tmp_path, "rules.xml", rules))
    assert_apologised_and_hung_up(session, synth)
    assert "12200" in caplog.text
