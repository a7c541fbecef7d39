"""A call: one caller on one line, its audio port, and what it is hearing right now."""

from __future__ import annotations

import enum
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from appliance.audio.dtmf import DtmfDetector, KeyMerger
from appliance.audio.media import MediaSource
from appliance.audio.port import DeviceAudioPort
from appliance.calls.caller_recording import AudioTap


class CallStatus(enum.StrEnum):
    """Twilio's CallStatus values."""

    INITIATED = "initiated"  # an outbound call the modem is placing
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    FAILED = "failed"
    BUSY = "busy"  # <Reject reason="busy">, or a dialled number that was busy
    NO_ANSWER = "no-answer"  # <Reject reason="rejected">, or nobody answered a dialled number
    CANCELED = "canceled"  # an outbound attempt abandoned before it was answered


KEY_POLL_SECONDS = 0.02  # how often a prompt that a key may stop looks for one


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


@dataclass(eq=False)
class Call:
    """State shared by the line events, the interpreter thread and the tick thread."""

    line: str
    from_number: str
    to_number: str
    sid: str = field(default_factory=new_call_sid)
    direction: str = "inbound"
    status: CallStatus = CallStatus.RINGING
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    port: DeviceAudioPort | None = None
    conference: str | None = None  # name of the conference the call is in, if any
    hung_up: threading.Event = field(default_factory=threading.Event)
    connected: threading.Event = field(default_factory=threading.Event)  # answered, audio flows
    alerting: threading.Event = field(default_factory=threading.Event)  # outbound: far end rings
    end_reason: str = ""  # the line's Disconnected reason (busy, no-answer, remote...)
    parent_sid: str | None = None  # outbound-dial: the call whose <Dial> placed this one
    keys: queue.Queue[str] = field(default_factory=queue.Queue)
    audio_time: float = 0.0  # seconds of this call's audio seen by the tick
    # A press may be reported by the modem and heard in band too: it counts once. 400 ms
    # covers modems that report on release; two real presses of one key are further apart.
    _merger: KeyMerger = field(default_factory=lambda: KeyMerger(window_ms=400))
    _merger_lock: threading.Lock = field(default_factory=threading.Lock)
    _detector: DtmfDetector | None = None
    _player: MediaSource | None = None
    _player_done: threading.Event = field(default_factory=threading.Event)
    # Heard on top of whatever the caller hears (Plivo's asynchronous <DTMF>).
    _overlay: MediaSource | None = None
    _overlay_done: threading.Event = field(default_factory=threading.Event)
    # Recordings fed by the tick (<Record>, Plivo's recordSession); see calls.caller_recording.
    _taps: list[AudioTap] = field(default_factory=list)
    _taps_lock: threading.Lock = field(default_factory=threading.Lock)

    # --- interpreter thread ------------------------------------------------------------------

    def play(self, source: MediaSource) -> bool:
        """Play ``source`` to the caller; block until it ends. False if the call ended first."""
        done = threading.Event()
        self._player_done = done
        self._player = source
        if self.hung_up.is_set():
            done.set()
        done.wait()
        if self._player is source:
            self._player = None
        return not self.hung_up.is_set()

    def play_until_key(self, source: MediaSource) -> str | None:
        """As :meth:`play`, but the first key pressed stops ``source``; returns that key, or
        None when ``source`` played to its end or the call ended."""
        done = threading.Event()
        self._player_done = done
        self._player = source
        key = None
        try:
            while not done.is_set() and not self.hung_up.is_set():
                try:
                    key = self.keys.get(timeout=KEY_POLL_SECONDS)
                except queue.Empty:
                    continue
                break
        finally:
            if self._player is source:
                self._player = None
        return key

    def start_playing(self, source: MediaSource) -> None:
        """Play ``source`` to the caller without waiting (ringback while a number is dialled);
        :meth:`stop_playing` or the next prompt replaces it."""
        self._player_done = threading.Event()
        self._player = source

    def stop_playing(self, source: MediaSource) -> None:
        """Stop ``source`` if it is still what the caller hears."""
        if self._player is source:
            self._player = None

    def discard_keys(self) -> None:
        """Forget the keys pressed so far."""
        while True:
            try:
                self.keys.get_nowait()
            except queue.Empty:
                return

    def end(self) -> None:
        """The line reports the call over: wake whatever the interpreter is waiting for, and
        end the recordings of this call."""
        self.hung_up.set()
        self._player_done.set()
        self._overlay_done.set()
        with self._taps_lock:
            taps, self._taps = self._taps, []
        for tap in taps:
            tap.close()

    # --- audio taps and overlays -------------------------------------------------------------

    def add_tap(self, tap: AudioTap) -> bool:
        """Feed ``tap`` with this call's audio from the next tick; False (and ``tap`` closed)
        when the call has already ended."""
        with self._taps_lock:
            if not self.hung_up.is_set():
                self._taps = [*self._taps, tap]
                return True
        tap.close()
        return False

    def remove_tap(self, tap: AudioTap) -> None:
        with self._taps_lock:
            self._taps = [other for other in self._taps if other is not tap]

    def start_overlay(self, source: MediaSource) -> None:
        """Play ``source`` on top of what the caller hears, without waiting for it."""
        self._overlay_done = threading.Event()
        self._overlay = source

    def wait_overlay(self, timeout: float | None = None) -> bool:
        """Block until the overlay has played (or the call ended); False on timeout."""
        if self._overlay is None:
            return True
        return self._overlay_done.wait(timeout) or self.hung_up.is_set()

    # --- keys ----------------------------------------------------------------------------------

    def key_from_modem(self, key: str) -> bool:
        """A key the modem reported out of band (driver thread); True if it was delivered."""
        with self._merger_lock:
            fresh = self._merger.from_modem(key, self.audio_time)
        if fresh:
            self.keys.put(key)
        return fresh

    def listen_for_keys(self, frame: np.ndarray, rate: int) -> list[str]:
        """Run the in-band DTMF detector on what the caller sent this tick; returns new keys."""
        if self._detector is None:
            self._detector = DtmfDetector(rate)
        self.audio_time += len(frame) / rate
        delivered = []
        for key in self._detector.feed(frame):
            with self._merger_lock:
                fresh = self._merger.from_inband(key, self.audio_time)
            if fresh:
                self.keys.put(key)
                delivered.append(key)
        return delivered

    # --- tick thread ---------------------------------------------------------------------------

    def tap(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        """Hand this tick's audio to the recordings (the list is replaced, never mutated)."""
        for tap in self._taps:
            tap.feed(inbound, outbound)

    def with_overlay(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` with the overlay's next frame added (a new array: ``frame`` may be a
        conference output shared by several listeners)."""
        source = self._overlay
        if source is None:
            return frame
        extra = source.read_frame()
        if extra is None or source.done:
            self._overlay = None
            self._overlay_done.set()
        if extra is None:
            return frame
        total = frame.astype(np.int32) + extra
        return np.clip(total, -32768, 32767).astype(np.int16)

    def next_prompt_frame(self) -> np.ndarray | None:
        """The next frame of whatever is playing to this caller outside a conference."""
        source = self._player
        if source is None:
            return None
        frame = source.read_frame()
        if frame is None or source.done:
            self._player_done.set()
        return frame

    def params(self, account_sid: str) -> dict[str, str]:
        """Twilio's standard voice request parameters."""
        return {
            "CallSid": self.sid,
            "AccountSid": account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Caller": self.from_number,
            "Called": self.to_number,
            "CallStatus": self.status.value,
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }
