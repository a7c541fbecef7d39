"""Recording a call's audio as the tick sees it: the <Record> verb's take of what the caller
says, and Plivo's ``recordSession`` of both directions until the call ends.

Both are *taps* (:class:`AudioTap`): the tick thread hands them the call's inbound frame and
the frame the caller heard (``Call.tap``), and they pass frames on to a
:class:`~appliance.calls.recording.Recorder`, whose writer thread owns the file. Every limit
is counted in samples of the call's audio, the modem's clock, never in wall time.

A key that ends a recording is a tone in the caller's audio before it is a key: it is heard in
band after a few blocks, or reported by the modem, at worst on release. The caller's take
therefore holds its last ``KEY_HOLDBACK_SECONDS`` back and drops them when a key ends it, so
the tone is not in the file.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

import numpy as np

from appliance.audio.talk import TalkDetector, frame_dbfs
from appliance.calls.recording import Recorder

# In-band keys are heard ~50 ms into the tone; modems report at once (a keypad press lasts
# about 100-200 ms, so one that reports on release is later still, but within this).
KEY_HOLDBACK_SECONDS = 0.25
# Below this a frame is silence for the silence timeout: the talk detector's own "stopped
# talking" level (appliance.audio.talk), well above a phone line's noise floor.
SOUND_DBFS = TalkDetector.stop_dbfs

# Why a take ended (besides the key itself).
TIMEOUT = "timeout"
MAX_LENGTH = "max-length"
HANGUP = "hangup"


class AudioTap(Protocol):
    """What the tick feeds with a call's audio (see ``Call.add_tap``)."""

    def feed(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        """One tick: what the caller said and what the caller heard (tick thread)."""
        ...

    def close(self) -> None:
        """The call ended."""
        ...


class CallerRecording:
    """The caller's voice for one <Record>: ends on silence, at its maximum length, by
    :meth:`stop` (a key) or with the call; ``finished`` is set and ``reason`` says why."""

    def __init__(self, recorder: Recorder, rate: int, max_seconds: float,
                 silence_seconds: float = 0.0,
                 holdback_seconds: float = KEY_HOLDBACK_SECONDS) -> None:
        self.recorder = recorder
        self.finished = threading.Event()
        self.reason: str | None = None
        self._rate = rate
        self._max = max(1, round(max_seconds * rate))
        self._silence = round(silence_seconds * rate)  # 0: no silence timeout
        self._holdback = round(holdback_seconds * rate)
        self._held: deque[np.ndarray] = deque()
        self._held_samples = 0
        self._samples = 0  # taken so far, held back or not
        self._quiet = 0  # samples of silence since the last sound
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        """How much of the call's audio was taken."""
        return self._samples / self._rate

    def feed(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            frame = inbound[: self._max - self._samples]
            self._samples += len(frame)
            self._quiet = self._quiet + len(frame) if frame_dbfs(frame) < SOUND_DBFS else 0
            self._held.append(np.array(frame, dtype=np.int16, copy=True))
            self._held_samples += len(frame)
            while self._held_samples - len(self._held[0]) >= self._holdback:
                self._held_samples -= len(self._held[0])
                self.recorder.write(self._held.popleft())
            if self._samples >= self._max:
                self._finish(MAX_LENGTH)
            elif self._silence and self._quiet >= self._silence:
                self._finish(TIMEOUT)

    def stop(self, reason: str, drop_tail: bool = False) -> None:
        """End the take (a key: ``drop_tail`` leaves the held-back tone out)."""
        with self._lock:
            if not self.finished.is_set():
                self._finish(reason, drop_tail)

    def close(self) -> None:
        self.stop(HANGUP)

    def _finish(self, reason: str, drop_tail: bool = False) -> None:
        self.reason = reason
        if not drop_tail:
            for frame in self._held:
                self.recorder.write(frame)
        self._held.clear()
        self._held_samples = 0
        self.recorder.stop()
        self.finished.set()


class SessionRecording:
    """Both directions of the call from now until it ends (or ``max_seconds`` pass): the
    caller on the left channel and what the caller hears on the right, or the two summed
    in ``mono``."""

    def __init__(self, recorder: Recorder, rate: int, max_seconds: float | None,
                 stereo: bool = True) -> None:
        self.recorder = recorder
        self._stereo = stereo
        self._max = round(max_seconds * rate) if max_seconds else None
        self._samples = 0
        self._lock = threading.Lock()
        self._done = False

    def feed(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        with self._lock:
            if self._done:
                return
            if self._stereo:
                frame = np.column_stack((inbound, outbound))
            else:
                total = inbound.astype(np.int32) + outbound.astype(np.int32)
                frame = np.clip(total, -32768, 32767).astype(np.int16)
            if self._max is not None:
                frame = frame[: self._max - self._samples]
            self._samples += len(frame)
            self.recorder.write(frame)
            if self._max is not None and self._samples >= self._max:
                self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if not self._done:
            self._done = True
            self.recorder.stop()
