"""<Dial><Number>: an outbound call on a free line, ringback for the caller, then a bridge.

The outbound leg is a :class:`Call` of the :class:`CallManager` (direction "outbound-dial").
Once it answers, caller and called party meet in a private two-party room of their own
(:class:`appliance.calls.conference.Conference`: no beeps, no wait audio, ended when either
leaves), kept in a registry apart from the named conferences so that no API lists it.
Timeouts count audio time (the engine's ticks: the modem's clock while a call is up).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource, SilenceSource
from appliance.audio.tones import dtmf, tone
from appliance.calls.call import Call, CallStatus
from appliance.calls.conference import (
    Conference,
    ConferenceEvent,
    ConferenceObserver,
    ConferenceRegistry,
    EndReason,
    EventKind,
    LeaveReason,
    ParticipantOptions,
    RecordingOptions,
    RoomOptions,
)
from appliance.calls.manager import CallManager, NoFreeLine
from appliance.calls.recording import RecordingResult
from appliance.calls.twilio_callbacks import CallbackUrl, rfc2822
from appliance.webhooks import WebhookSender

log = logging.getLogger(__name__)

POLL_SECONDS = 0.02
DIGIT_MS = 100  # sendDigits in band: each key's tone, then a gap as long
DIGIT_WAIT_SECONDS = 0.5  # sendDigits: "w" waits half a second (Twilio)
RECORDING_WAIT_SECONDS = 10.0  # how long the action waits for the bridge's recording file

# Ringback cadences (ITU-T E.180 Supplement 2): (frequencies, ms on, ms off, ...) per country,
# by Twilio's ringTone codes. Unknown codes ring as "us".
RINGBACK: dict[str, tuple[tuple[float, ...], tuple[int, ...]]] = {
    "us": ((440.0, 480.0), (2000, 4000)),
    "ca": ((440.0, 480.0), (2000, 4000)),
    "uk": ((400.0, 450.0), (400, 200, 400, 2000)),
    "au": ((400.0, 450.0), (400, 200, 400, 2000)),
    "nz": ((400.0, 450.0), (400, 200, 400, 2000)),
    "de": ((425.0,), (1000, 4000)),
    "nl": ((425.0,), (1000, 4000)),
    "it": ((425.0,), (1000, 4000)),
    "fr": ((440.0,), (1500, 3500)),
    "es": ((425.0,), (1500, 3000)),
    "jp": ((400.0,), (1000, 2000)),
}


def ringback(country: str | None, rate: int) -> np.ndarray:
    """One cycle of ``country``'s ringback tone (on, off, ...), to be looped."""
    freqs, cadence = RINGBACK.get((country or "us").lower(), RINGBACK["us"])
    parts = []
    for index, ms in enumerate(cadence):
        if index % 2:
            parts.append(np.zeros(rate * ms // 1000, dtype=np.int16))
        else:
            # Each component at -20 dBFS: the sum stays below -14 dBFS, as a network's does.
            total = sum(tone(f, ms, rate, amplitude=0.1).astype(np.int32) for f in freqs)
            parts.append(np.asarray(total, dtype=np.int16))
    return np.concatenate(parts)


@dataclass(frozen=True)
class Target:
    """One <Number>: what to dial and the keys to send once it answers."""

    number: str
    send_digits: str = ""


@dataclass(frozen=True)
class DialOptions:
    """The <Dial> attributes that shape the attempt and the bridge (seconds of audio)."""

    timeout: float = 30.0
    time_limit: float = 14400.0
    hangup_on_star: bool = False
    ring_tone: str | None = None
    ringback: bool = True  # False: the caller is not answered yet (answerOnBridge)
    record: RecordingOptions | None = None
    observer: ConferenceObserver | None = None  # the bridge's events (recording callbacks)


@dataclass(frozen=True)
class DialResult:
    """How the <Dial> ended: Twilio's DialCallStatus, the outbound CallSid ("" when no call
    was placed), seconds bridged and the bridge's recording, if any."""

    status: str
    call_sid: str = ""
    duration: int = 0
    recording: RecordingResult | None = None

    def params(self) -> dict[str, str]:
        """The action URL's Dial parameters (Twilio's names)."""
        params = {"DialCallStatus": self.status, "DialCallSid": self.call_sid,
                  "DialCallDuration": str(self.duration),
                  "DialBridged": "true" if self.status == "completed" else "false"}
        if self.recording is not None and self.recording.status == "completed":
            params.update({"RecordingUrl": self.recording.url,
                           "RecordingSid": self.recording.sid,
                           "RecordingDuration": str(round(self.recording.duration))})
        return params


class Rooms:
    """The named conferences and the private bridges, as the tick's router sees them."""

    def __init__(self, *registries: ConferenceRegistry) -> None:
        self._registries = registries

    def active(self) -> list[Conference]:
        return [room for registry in self._registries for room in registry.active()]


class _RecordingWatch:
    """Passes the bridge's events on, and keeps its recording once the file is done."""

    def __init__(self, observer: ConferenceObserver | None) -> None:
        self._observer = observer
        self.done = threading.Event()
        self.result: RecordingResult | None = None

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        if event.kind is EventKind.RECORDING_END:
            self.result = event.recording
            self.done.set()
        if self._observer is not None:
            self._observer.conference_event(conference, event)


class DialRecordingCallbacks:
    """<Dial recordingStatusCallback>: the bridge's recording events, as Twilio sends them for
    a recording made by <Dial> (RecordingSource "DialVerb", the caller's CallSid)."""

    def __init__(self, sender: WebhookSender, account_sid: str, call_sid: str,
                 callback: CallbackUrl, events: Collection[str] = ("completed",)) -> None:
        self._sender = sender
        self._account_sid = account_sid
        self._call_sid = call_sid
        self._callback = callback
        self._events = frozenset(events)

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        recording = event.recording
        if recording is None:
            return
        # "absent" (nothing was heard) is SignalWire's "failed" (as for conferences).
        wanted = {recording.status} | ({"failed"} if recording.status == "absent" else set())
        if not wanted & self._events:
            return
        params = {
            "AccountSid": self._account_sid,
            "CallSid": self._call_sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": recording.url,
            "RecordingStatus": recording.status,
            "RecordingChannels": "1",
            "RecordingStartTime": rfc2822(recording.started_at),
            "RecordingSource": "DialVerb",
            "ErrorCode": "0",
        }
        if recording.status != "in-progress":
            params["RecordingDuration"] = str(round(recording.duration))
        self._sender.send(self._callback.url, self._callback.method, params)


class NumberDialer:
    """Places <Dial><Number> calls for callers and bridges them."""

    def __init__(self, manager: CallManager, bridges: ConferenceRegistry, fmt: AudioFormat,
                 clock: Callable[[], float]) -> None:
        self._manager = manager
        self._bridges = bridges
        self._fmt = fmt
        self._clock = clock

    def dial(self, caller: Call, targets: Sequence[Target], options: DialOptions) -> DialResult:
        """Ring ``targets`` at once (as many as there are free lines); the first to answer is
        bridged to ``caller`` until either hangs up. Blocks; every outbound leg has ended
        when it returns."""
        attempts: list[tuple[Target, Call]] = []
        for target in targets:
            try:
                attempts.append((target, self._manager.place_call(target.number, caller)))
            except NoFreeLine as exc:
                if not attempts:
                    log.error("call %s: <Dial> %s failed: no free line (%s)", caller.sid,
                              target.number, exc)
                    return DialResult("failed")
                log.warning("call %s: <Dial> %s not rung: no free line (%s)", caller.sid,
                            target.number, exc)
        winner = self._ring(caller, attempts, options)
        if winner is None:
            return DialResult(self._unanswered_status(caller, attempts), attempts[0][1].sid)
        target, far = winner
        return self._bridge(caller, far, target, options)

    # --- ringing ------------------------------------------------------------------------------

    def _ring(self, caller: Call, attempts: list[tuple[Target, Call]],
              options: DialOptions) -> tuple[Target, Call] | None:
        """Wait for the first leg to answer; hang up the others. None: nobody answered."""
        tone_source = None
        if options.ringback and caller.port is not None:
            tone_source = BufferSource(ringback(options.ring_tone, self._fmt.rate), self._fmt,
                                       loop=0)
            caller.start_playing(tone_source)
        start = self._clock()
        winner = None
        timed_out = False
        try:
            while not caller.hung_up.is_set():
                live = [(t, c) for t, c in attempts if not c.hung_up.is_set()]
                winner = next(((t, c) for t, c in live if c.connected.is_set()), None)
                if winner is not None or not live:
                    break
                if self._clock() - start >= options.timeout:
                    timed_out = True
                    log.info("call %s: <Dial> nobody answered in %.0f s", caller.sid,
                             options.timeout)
                    break
                caller.hung_up.wait(POLL_SECONDS)
        finally:
            if tone_source is not None:
                caller.stop_playing(tone_source)
            status = CallStatus.NO_ANSWER if timed_out else CallStatus.CANCELED
            for _target, call in attempts:
                losing = winner is None or call is not winner[1]
                if losing and not call.hung_up.is_set():
                    self._manager.hangup(call, status=status)
        return winner

    @staticmethod
    def _unanswered_status(caller: Call, attempts: list[tuple[Target, Call]]) -> str:
        """DialCallStatus when nobody answered: the most hopeful of the legs' outcomes."""
        if caller.hung_up.is_set():
            return "canceled"
        statuses = {call.status for _target, call in attempts}
        for status in (CallStatus.NO_ANSWER, CallStatus.BUSY):
            if status in statuses:
                return status.value
        return "failed"

    # --- bridged ------------------------------------------------------------------------------

    def _bridge(self, caller: Call, far: Call, target: Target,
                options: DialOptions) -> DialResult:
        watch = _RecordingWatch(options.observer)
        try:
            # answerOnBridge: the caller's phone rang until now; pick it up for the bridge.
            if not caller.connected.is_set() and not self._manager.answer(caller):
                return DialResult("canceled", far.sid)
            if target.send_digits:
                self._send_digits(far, target.send_digits)
            if caller.hung_up.is_set() or far.hung_up.is_set() or caller.port is None:
                return DialResult("completed", far.sid)
            seconds = self._talk(caller, far, options, watch)
        finally:
            if not far.hung_up.is_set():
                self._manager.hangup(far)
        recording = None
        if options.record is not None and watch.done.wait(RECORDING_WAIT_SECONDS):
            recording = watch.result
        return DialResult("completed", far.sid, round(seconds), recording)

    def _talk(self, caller: Call, far: Call, options: DialOptions,
              watch: _RecordingWatch) -> float:
        """Caller and called party in their own room until either leaves; seconds bridged."""
        room = self._bridges.get_or_create(f"dial-{caller.sid}")
        settings = RoomOptions(observer=watch, record=options.record)

        def member() -> ParticipantOptions:
            return ParticipantOptions(beep="false", start_on_enter=True, end_on_exit=True,
                                      room=settings)

        room.join(far.sid, member())
        me = room.join(caller.sid, member())
        caller.discard_keys()
        log.info("call %s: bridged to %s (call %s)", caller.sid, far.to_number, far.sid)
        try:
            while not me.left.is_set():
                if caller.hung_up.is_set():
                    room.leave(caller.sid, LeaveReason.HANGUP)
                elif far.hung_up.is_set():
                    room.leave(far.sid, LeaveReason.HANGUP)
                elif me.seconds >= options.time_limit - self._fmt.period / 2:
                    log.info("call %s: <Dial> timeLimit (%.0f s) reached", caller.sid,
                             options.time_limit)
                    room.end(EndReason.TIME_LIMIT)
                else:
                    try:
                        key = caller.keys.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        continue
                    if key == "*" and options.hangup_on_star:
                        room.leave(caller.sid, LeaveReason.HANGUP_ON_STAR)
        finally:
            room.end()
        return me.seconds

    def _send_digits(self, far: Call, digits: str) -> None:
        """sendDigits to the called party: by the modem where it can, else as tones; "w"
        waits half a second."""
        send = getattr(self._manager.driver(far.line), "send_dtmf", None)
        for index, chunk in enumerate(digits.replace("W", "w").split("w")):
            if index:
                far.play(SilenceSource(self._fmt.frames_for(DIGIT_WAIT_SECONDS), self._fmt))
            if not chunk or far.hung_up.is_set():
                continue
            if send is not None:
                try:
                    send(chunk)
                    continue
                except Exception as exc:
                    log.warning("call %s: sending %s by the modem failed (%s); in band",
                                far.sid, chunk, exc)
            rate = self._fmt.rate
            gap = np.zeros(rate * DIGIT_MS // 1000, dtype=np.int16)
            tones = np.concatenate([part for key in chunk for part in (dtmf(key, DIGIT_MS, rate),
                                                                         gap)])
            far.play(BufferSource(tones, self._fmt))
