"""The call manager hands a ringing call to its rules, which answer it or refuse it.

The rig wires the real CallManager, LiveCallSession, Interpreter, AudioRouter and a timer-ticked
AudioEngine (running fast) to fake line drivers that log every command; documents are files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from plivo import plivoxml
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.engine import AudioEngine
from appliance.audio.frames import AudioFormat
from appliance.audio.media import SpeechSynth
from appliance.audio.port import DeviceAudioPort
from appliance.calls.call import Call
from appliance.calls.conference import ConferenceRegistry
from appliance.calls.dial import NumberDialer, Rooms
from appliance.calls.manager import CallManager
from appliance.calls.recording import RecordingStore
from appliance.calls.router import AudioRouter
from appliance.calls.session import LiveCallSession
from appliance.events import Event, EventBus
from appliance.lines.base import (
    Alerting,
    Connected,
    Disconnected,
    LineDriver,
    LineError,
    LineEvent,
    LineStatus,
    Ringing,
)
from appliance.twiml.fetch import Fetcher
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache
from appliance.webhooks import WebhookSender

FMT = AudioFormat(16000, 20)
SPEED = 10.0  # audio seconds per real second: a 3 s timeout takes 0.3 s
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
WAIT = 10.0


class FakeLine(LineDriver):
    """A modem that logs commands; its events come on its own thread, in order, as a
    GsmDriver's do. ``far`` says what the far end of the next dial does."""

    def __init__(self, name: str, handler, dialable: bool = True) -> None:
        super().__init__(name, handler)
        self.commands: list[str] = []
        self.dialable = dialable
        self.far = "answer"
        self.answer_after = 0.2  # real seconds
        self.in_call = False
        self._events: queue.Queue[LineEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._emit_loop, daemon=True)
        self._thread.start()
        self._timers: list[threading.Timer] = []

    def _emit_loop(self) -> None:
        while (event := self._events.get()) is not None:
            self.emit(event)

    def post(self, event: LineEvent) -> None:
        self._events.put(event)

    def run(self) -> None:  # pragma: no cover - the rig never runs the driver loop
        pass

    def stop(self) -> None:
        self._events.put(None)
        for timer in self._timers:
            timer.cancel()

    # --- incoming ---

    def ring(self, caller: str = "+15550001111") -> None:
        self.in_call = True
        self.post(Ringing(caller))

    def answer(self) -> None:
        self.commands.append("ATA")
        if not self.in_call:
            raise LineError("no call is ringing")
        self._connect()

    def _connect(self) -> None:
        self.post(Connected(DeviceAudioPort(self.name, FMT, device_rate=16000,
                                            device_frame_samples=320)))

    def reject(self, reason: str = "rejected") -> None:
        self.commands.append(f"reject {reason}")
        self._end("local")

    def hangup(self) -> None:
        self.commands.append("AT+CHUP")
        self._end("local")

    def remote_hangup(self, reason: str = "remote") -> None:
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self.in_call:
            self.in_call = False
            for timer in self._timers:
                timer.cancel()
            self.post(Disconnected(reason))

    # --- outbound ---

    @property
    def can_dial(self) -> bool:
        return self.dialable

    def dial(self, number: str) -> None:
        self.commands.append(f"ATD{number};")
        if self.far == "refuse":
            raise LineError("+CME ERROR: operation not allowed")
        self.in_call = True
        if self.far == "unreachable":
            self.post(Disconnected("failed"))
            self.in_call = False
            return
        self.post(Alerting())
        if self.far == "busy":
            self._later(0.1, lambda: self._end("busy"))
        elif self.far == "answer":
            self._later(self.answer_after, self._connect)

    def _later(self, seconds: float, action) -> None:
        timer = threading.Timer(seconds, lambda: self.in_call and action())
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def send_dtmf(self, digits: str) -> None:
        self.commands.append(f"AT+VTS={digits}")


@dataclass
class Rig:
    """The calls layer and interpreter around fake lines ``gsm0`` and ``gsm1``."""

    tmp_path: Path
    bus: EventBus = field(default_factory=EventBus)
    events: list[Event] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.bus.subscribe(self._keep)
        self.conferences = ConferenceRegistry(FMT, self.bus.publish)
        self.bridges = ConferenceRegistry(FMT)
        self.engine = AudioEngine(FMT, lambda: self.router.on_tick(), speed=SPEED)
        self.manager = CallManager(self.engine, self.bus, self._run_call, answer_timeout=2.0)
        self.router = AudioRouter(FMT, self.manager.calls, Rooms(self.conferences, self.bridges))
        self.dialer = NumberDialer(self.manager, self.bridges, FMT,
                                   lambda: self.engine.ticks * FMT.period)
        self.fetcher = Fetcher(ACCOUNT_SID, "token")
        self.synth = SpeechSynth(self.tmp_path / "tts")
        self.media = MediaCache(self.fetcher, FMT.rate)
        self.lines = {name: FakeLine(name, self.manager.handler_for(name))
                      for name in ("gsm0", "gsm1")}
        for index, (name, line) in enumerate(self.lines.items()):
            self.manager.register_line(name, line, f"+1555123000{index}")
            self.manager.on_line_event(name, LineStatus("idle"))
        self.rules = self.tmp_path / "rules.xml"
        self.webhooks = WebhookSender("token")
        self.webhooks.start()
        self.recordings = RecordingStore(self.tmp_path / "recordings", "http://127.0.0.1:8080")
        self.sessions: list[LiveCallSession] = []
        self.engine.start()

    def _keep(self, event: Event) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def _run_call(self, call: Call) -> None:
        session = LiveCallSession(call, self.conferences, self.manager.hangup, ACCOUNT_SID,
                                  self.webhooks, self.recordings, answer=self.manager.answer,
                                  reject=self.manager.reject, dialer=self.dialer)
        self.sessions.append(session)
        Interpreter(session, self.fetcher, self.synth, FMT, self.media,
                    answering=session).run(self.rules.as_uri())

    def document(self, rules: object, name: str = "rules.xml") -> str:
        (self.tmp_path / name).write_text(str(rules))
        return (self.tmp_path / name).as_uri()

    def wait_event(self, kind: str, count: int = 1, **data: object) -> list[Event]:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while True:
                found = [e for e in self.events if e.kind == kind
                         and all(e.data.get(k) == v for k, v in data.items())]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no {kind} {data}; events: {self.events}"
                self.changed.wait(remaining)

    def idle(self) -> None:
        """Every call ended, its thread gone, no room left open."""
        deadline = time.monotonic() + WAIT
        while self.manager.calls() or self.manager.active_threads() or self.bridges.active():
            assert time.monotonic() < deadline, (
                f"left over: {self.manager.calls()} threads {self.manager.active_threads()} "
                f"bridges {self.bridges.active()}")
            time.sleep(0.01)

    def close(self) -> None:
        self.manager.hangup_all()
        self.engine.stop()
        self.webhooks.stop()
        for line in self.lines.values():
            line.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


def rules(rig: Rig, response: object) -> None:
    rig.rules.write_text(str(response))


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "status"), [("busy", "busy"), ("rejected", "no-answer")])
def test_reject_as_first_verb_refuses_the_call_without_answering(rig, reason, status):
    response = VoiceResponse()
    response.reject(reason=reason)
    response.say("Never heard")
    rules(rig, response)
    rig.lines["gsm0"].ring()
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["status"] == status
    assert ended.data["direction"] == "inbound"
    assert rig.lines["gsm0"].commands == [f"reject {reason}"], "never answered (no ATA)"
    assert not [e for e in rig.events if e.kind == "call.answered"]
    rig.idle()


def test_a_call_is_answered_only_after_its_rules_were_fetched(rig):
    response = VoiceResponse()
    response.say("Hello")
    rules(rig, response)
    rig.lines["gsm0"].ring()
    ringing = rig.wait_event("call.ringing")[0]
    answered = rig.wait_event("call.answered")[0]
    assert answered.data["call_sid"] == ringing.data["call_sid"]
    rig.wait_event("call.ended")
    assert rig.lines["gsm0"].commands == ["ATA", "AT+CHUP"]
    rig.idle()


def test_reject_after_answering_hangs_up(rig):
    response = VoiceResponse()
    response.pause(length=1)
    response.reject(reason="busy")
    response.say("Never heard")
    rules(rig, response)
    rig.lines["gsm0"].ring()
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["status"] == "completed"
    assert rig.lines["gsm0"].commands == ["ATA", "AT+CHUP"]
    rig.idle()


def test_a_broken_document_is_answered_to_apologise_then_hung_up(rig, caplog):
    rules(rig, "<Response><Say>unclosed</Response>")
    rig.lines["gsm0"].ring()
    rig.wait_event("call.answered")
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["status"] == "completed"
    assert "12100" in caplog.text
    assert rig.lines["gsm0"].commands == ["ATA", "AT+CHUP"]
    rig.idle()


def test_a_caller_who_hangs_up_while_ringing_just_ends(rig, tmp_path):
    # The caller gives up just as the rules answer: ATA fails and the call simply ends.
    line = rig.lines["gsm0"]
    response = VoiceResponse()
    response.say("Hello")
    rules(rig, response)
    original = line.answer

    def slow_answer() -> None:
        line.remote_hangup()  # the caller gives up just as the modem is told to answer
        original()

    line.answer = slow_answer  # type: ignore[method-assign]
    line.ring()
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["reason"] == "remote"
    assert not [e for e in rig.events if e.kind == "call.answered"]
    rig.idle()


def test_plivo_hangup_with_a_reason_as_first_element_rejects(rig):
    response = plivoxml.ResponseElement()
    response.add(plivoxml.HangupElement(reason="busy"))
    # <Speak> makes the document Plivo XML (a lone <Hangup> reads as TwiML's).
    response.add(plivoxml.SpeakElement("Never heard"))
    rules(rig, response.to_string())
    rig.lines["gsm0"].ring()
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["status"] == "busy"
    assert rig.lines["gsm0"].commands == ["reject busy"]
    rig.idle()


def test_plivo_preanswer_plays_after_answering_then_the_hangup_ends_the_call(rig, caplog):
    caplog.set_level(logging.INFO, "appliance.twiml.interpreter")
    response = plivoxml.ResponseElement()
    pre = plivoxml.PreAnswerElement()
    pre.add(plivoxml.WaitElement(length=1))
    response.add(pre)
    response.add(plivoxml.HangupElement(reason="busy"))
    rules(rig, response.to_string())
    rig.lines["gsm0"].ring()
    answered = rig.wait_event("call.answered")[0]
    ended = rig.wait_event("call.ended")[0]
    assert ended.data["status"] == "completed"
    played = ended.timestamp - answered.timestamp
    assert played >= 1.0 / SPEED * 0.9, "the Wait played after answering"
    assert rig.lines["gsm0"].commands == ["ATA", "AT+CHUP"]
    assert "PreAnswer" in caplog.text
    rig.idle()


def test_the_next_call_after_a_rejected_one_is_answered(rig):
    response = VoiceResponse()
    response.reject()
    rules(rig, response)
    rig.lines["gsm0"].ring()
    rig.wait_event("call.ended")
    rig.idle()
    response = VoiceResponse()
    response.say("Welcome")
    rules(rig, response)
    rig.lines["gsm0"].ring()
    rig.wait_event("call.answered")
    rig.wait_event("call.ended", count=2)
    assert rig.lines["gsm0"].commands == ["reject rejected", "ATA", "AT+CHUP"]
    rig.idle()
