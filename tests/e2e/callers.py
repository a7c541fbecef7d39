"""What simulated callers do and hear in the conference tests: dial, talk, listen."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import SpeechSynth, hold_music
from appliance.sim.simcom import SimcomModem
from tests.audio_checks import beep_times, normalised_xcorr, rms_dbfs

RATE = 8000  # what the modem carries
QUIET_DBFS = -55.0  # a caller who hears this or less hears nothing


def conference(name: str, after: Callable[[VoiceResponse], object] | None = None,
               dial: dict | None = None, **attributes) -> str:
    """A document made by twilio's builder: ``<Dial><Conference>``, then ``after``'s verbs."""
    response = VoiceResponse()
    verb = Dial(**(dial or {}))
    verb.conference(name, **attributes)
    response.append(verb)
    if after is not None:
        after(response)
    return str(response)


def wait_for(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition",
             every: float = 0.05) -> None:
    """Poll ``condition`` (the emulated modems keep no event for "has heard X")."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def wait_clock(modem: SimcomModem, samples: int, timeout: float = 60.0) -> None:
    """Wait until the modem's own clock has run ``samples`` of call audio."""
    wait_for(lambda: modem.sample_clock >= samples, timeout, f"{samples} samples of audio")


def dial_in(modem: SimcomModem, caller: str) -> int:
    """The caller rings and is answered; returns the sample clock at the answer."""
    modem.ring(caller)
    assert modem.wait_state("active", 20), f"{modem.name} was not answered"
    assert modem.wait_audio(20), f"{modem.name} has no audio"
    return modem.sample_clock


def listen(modem: SimcomModem, seconds: float, timeout: float = 30.0) -> np.ndarray:
    """What the caller hears during the next ``seconds`` of its own clock."""
    start = modem.sample_clock
    target = start + int(seconds * RATE)
    wait_clock(modem, target, timeout)
    return modem.heard()[start:target]


def talk(modem: SimcomModem, samples: np.ndarray, tail: float = 0.5) -> int:
    """The caller says ``samples``; returns once it was said (plus ``tail`` seconds), with
    the sample index where it started."""
    start = modem.play(samples)
    end = start + len(samples) + int(tail * RATE)
    wait_clock(modem, end, 30)
    return start


def until_hung_up(modem: SimcomModem, timeout: float = 20.0) -> np.ndarray:
    """Everything the caller hears from now until the appliance hangs up."""
    mark = modem.sample_clock
    assert modem.wait_state("idle", timeout), f"{modem.name} was not hung up"
    return modem.heard()[mark:]


def heard_while(speaker: SimcomModem, samples: np.ndarray,
                 *listeners: SimcomModem) -> list[np.ndarray]:
    """The speaker says ``samples``; what each listener heard meanwhile (each modem counts
    samples on its own clock, so each listener is marked on its own)."""
    marks = [listener.sample_clock for listener in listeners]
    talk(speaker, samples)
    return [listener.heard()[mark:] for listener, mark in zip(listeners, marks, strict=True)]


class Heard:
    """Whether ``reference`` is in a recording: truthy above the threshold, and shows its
    correlation peak when an assertion on it fails."""

    def __init__(self, peak: float, threshold: float) -> None:
        self.peak = peak
        self.threshold = threshold

    def __bool__(self) -> bool:
        return self.peak > self.threshold

    def __repr__(self) -> str:
        return f"ncc {self.peak:.2f} (threshold {self.threshold})"


def hears(recording: np.ndarray, reference: np.ndarray, threshold: float = 0.5) -> Heard:
    """Whether ``recording`` holds ``reference``, judged piece by piece (0.25 s each): the
    median piece's correlation peak, so a dropped frame or a drift buffer's slips on a busy
    machine do not hide a sentence that was clearly heard."""
    piece = RATE // 4
    pieces = [reference[start : start + piece]
              for start in range(0, max(1, len(reference) - piece // 2), piece)]
    audible = [p for p in pieces if rms_dbfs(p) > -45] or pieces
    peaks = [normalised_xcorr(recording, p)[0] for p in audible]
    return Heard(float(np.median(peaks)), threshold)


def joins_beeped(recording: np.ndarray) -> int:
    return len(beep_times(recording, RATE, 660, 880))


def leaves_beeped(recording: np.ndarray) -> int:
    return len(beep_times(recording, RATE, 880, 660))


def quiet(recording: np.ndarray) -> bool:
    return rms_dbfs(recording) < QUIET_DBFS


def hears_hold_music(recording: np.ndarray) -> bool:
    """The last second of ``recording`` is a second of the default hold music."""
    return hears(hold_music(RATE)[: RATE * 120], recording[-RATE:], 0.6)


class Voices:
    """Speech at the modem's rate from the appliance's own espeak-ng: what callers say and
    what prompts sound like (trimmed of the silence around them)."""

    def __init__(self, synth: SpeechSynth) -> None:
        self._synth = synth

    def __call__(self, text: str) -> np.ndarray:
        samples = self._synth.synthesize(text, "", "en-US", RATE)
        loud = np.flatnonzero(np.abs(samples) > 100)
        return samples[loud[0] : loud[-1] + 1]
