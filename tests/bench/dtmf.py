"""In-band DTMF: accuracy, must-reject cases, false detections per hour and cost per frame,
beside Debian's ``multimon-ng -a DTMF`` decoding the very same audio in the same run.

Run with ``python -m tests.bench.dtmf``. Every track is made at 8 kHz, as a modem delivers it
(white noise, where there is noise, fills that band); the appliance's detector hears it
resampled to 16 kHz as the line edge does, and at its native 8 kHz; multimon-ng hears it at the
22050 Hz it requires. Targets: every valid press decoded, nothing decoded from the must-reject
cases, no false detection in an hour of speech or music (scaled from the minutes run here).
"""

from __future__ import annotations

import difflib
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from appliance.audio.dtmf import DtmfDetector
from appliance.audio.tones import DTMF_FREQS

LINE_RATE = 8000
RATES = (16000, 8000)
MULTIMON_RATE = 22050
FRAME_MS = 20
KEYS = "123A456B789C*0#D"
REPEATS = 3  # each key this many times per case
LEVEL_DB = -20.0  # low-group tone, relative to a full-scale sine
MOH = Path("/usr/share/asterisk/moh")
VOICES = (
    *("en-us", "en-us+f3", "en-gb+m3", "en-us+f5", "en-gb-scotland+f1", "en-029+m5"),
    *("de+m2", "fr-fr+f2", "es+m4", "it+f4", "nl+m1", "pt+f3"),
)
SENTENCES = (
    "Welcome to the family conference line. Please enter your PIN, followed by the pound key.",
    "You are the first person in the conference. Please hold while the others join.",
    "The weather today will be mostly sunny, with a few clouds and a light breeze from the west.",
    "I think we should meet at seven o'clock at the station, unless the train is late again.",
    "Grandma said she would bring the apple pie, if somebody remembers to pick her up.",
    "One, two, three, four, five, six, seven, eight, nine and zero are spoken often on calls.",
    "Could you repeat that please? The line is a little noisy and I missed the last part.",
    "Our meeting is on Tuesday at half past nine, in the small room on the second floor.",
)


@dataclass(frozen=True)
class Case:
    """A track of every key ``REPEATS`` times, each press made the same way."""

    name: str
    ms: float = 40.0
    snr_db: float | None = None
    twist_db: float = 0.0
    offset: float = 0.0  # relative, both tones


VALID = [
    *(Case(f"{ms} ms", ms=ms) for ms in (30, 40, 50, 70, 100)),
    *(Case(f"40 ms, SNR {snr} dB", snr_db=snr) for snr in (30, 20, 15, 10)),
    *(Case(f"40 ms, twist {twist:+d} dB", twist_db=twist) for twist in (-8, -4, 4, 8)),
    Case("40 ms, +1.5 %", offset=0.015),
    Case("40 ms, -1.5 %", offset=-0.015),
]
MUST_REJECT = [
    Case("20 ms", ms=20),
    Case("20 ms, SNR 20 dB", ms=20, snr_db=20),
    Case("50 ms, +3.5 %", ms=50, offset=0.035),
    Case("50 ms, -3.5 %", ms=50, offset=-0.035),
    Case("50 ms, twist +12 dB", ms=50, twist_db=12),
    Case("50 ms, twist -12 dB", ms=50, twist_db=-12),
]


def pcm(signal: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as int16."""
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


def press(key: str, case: Case, rng: np.random.Generator) -> np.ndarray:
    """One DTMF pair at ``LINE_RATE`` with random phases and 5 ms raised-cosine ramps."""
    n = round(LINE_RATE * case.ms / 1000)
    t = np.arange(n) / LINE_RATE
    low, high = DTMF_FREQS[key]
    signal = np.zeros(n)
    for freq, level in ((low, LEVEL_DB), (high, LEVEL_DB + case.twist_db)):
        phase = rng.uniform(0, 2 * np.pi)
        signal += 10 ** (level / 20) * np.sin(2 * np.pi * freq * (1 + case.offset) * t + phase)
    ramp = round(LINE_RATE * 0.005)
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    signal[:ramp] *= rise
    signal[n - ramp :] *= rise[::-1]
    return signal


def track(case: Case, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(expected keys, int16 audio): presses apart by 80-150 ms, noise over the whole track."""
    keys = KEYS * REPEATS
    parts = [np.zeros(LINE_RATE // 10)]
    for key in keys:
        parts += [
            press(key, case, rng),
            np.zeros(rng.integers(LINE_RATE * 8, LINE_RATE * 15) // 100),
        ]
    signal = np.concatenate(parts)
    if case.snr_db is not None:
        tone_power = 0.5 * 10 ** (LEVEL_DB / 10) * (1 + 10 ** (case.twist_db / 10))
        noise_power = tone_power / 10 ** (case.snr_db / 10)
        signal = signal + rng.normal(0.0, np.sqrt(noise_power), len(signal))
    return keys, pcm(signal)


def at_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """``LINE_RATE`` audio resampled to ``rate``, as the line edge does."""
    if rate == LINE_RATE:
        return audio
    return pcm(soxr.resample(audio.astype(np.float64) / 32767, LINE_RATE, rate))


def ours(audio: np.ndarray, rate: int) -> str:
    """Keys our detector reports, fed one 20 ms frame at a time."""
    detector = DtmfDetector(rate)
    samples = at_rate(audio, rate)
    frame = rate * FRAME_MS // 1000
    return "".join(
        key
        for start in range(0, len(samples), frame)
        for key in detector.feed(samples[start : start + frame])
    )


def multimon(audio: np.ndarray) -> str | None:
    """Keys multimon-ng prints, a run of one key counted once (it reprints a wavering tone)."""
    if shutil.which("multimon-ng") is None:
        return None
    raw = at_rate(audio, MULTIMON_RATE).tobytes()
    command = ["multimon-ng", "-q", "-c", "-a", "DTMF", "-t", "raw", "-"]
    output = subprocess.run(command, input=raw, capture_output=True, check=True).stdout
    keys = [line[5:].strip() for line in output.decode().splitlines() if line.startswith("DTMF:")]
    return "".join(key for i, key in enumerate(keys) if i == 0 or key != keys[i - 1])


def score(expected: str, found: str | None) -> str:
    """``hits/total``, plus ``+n`` for keys found that were never pressed."""
    if found is None:
        return "n/a"
    matcher = difflib.SequenceMatcher(None, expected, found, autojunk=False)
    hits = sum(block.size for block in matcher.get_matching_blocks())
    extra = len(found) - hits
    return f"{hits}/{len(expected)}" + (f" +{extra}" if extra else "")


def speech() -> np.ndarray | None:
    """espeak-ng reading ``SENTENCES`` in every voice of ``VOICES``, at ``LINE_RATE``."""
    if shutil.which("espeak-ng") is None:
        return None
    parts = []
    with tempfile.TemporaryDirectory() as folder:
        for voice in VOICES:
            path = Path(folder) / f"{voice}.wav"
            text = " ".join(SENTENCES)
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
            parts.append(load(path))
    return np.concatenate(parts)


def music() -> np.ndarray | None:
    """Debian's hold music, at ``LINE_RATE``."""
    files = sorted(MOH.glob("*.wav"))
    return np.concatenate([load(path) for path in files]) if files else None


def load(path: Path) -> np.ndarray:
    data, rate = soundfile.read(path, dtype="float64", always_2d=True)
    return pcm(soxr.resample(data.mean(axis=1), rate, LINE_RATE))


def decoded(expected: str, found: str | None) -> str:
    """``found/total`` for a track where nothing should be found."""
    return "n/a" if found is None else f"{len(found)}/{len(expected)}"


def per_hour(found: str | None, minutes: float) -> str:
    if found is None:
        return "n/a"
    return f"{len(found)} ({len(found) * 60 / minutes:.0f}/h)"


def median_us_per_frame(rate: int, audio: np.ndarray) -> float:
    """Median µs of one ``feed`` of a 20 ms frame, over runs through ``audio``."""
    samples = at_rate(audio, rate)
    frame = rate * FRAME_MS // 1000
    frames = [samples[i : i + frame] for i in range(0, len(samples) - frame + 1, frame)]
    runs = []
    for _ in range(5):
        detector = DtmfDetector(rate)
        start = time.perf_counter()
        for chunk in frames:
            detector.feed(chunk)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) / len(frames) * 1e6


def wall_seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run() -> None:
    """Print the tables."""
    rng = np.random.default_rng(2)
    width = 28
    print(f"DTMF detection: tracks at {LINE_RATE} Hz, every key x {REPEATS} per case;")
    print(f"multimon-ng hears them at {MULTIMON_RATE} Hz, ours at 16 kHz and 8 kHz")
    print(f"{'case':<{width}} {'ours 16k':>10} {'ours 8k':>10} {'multimon-ng':>12}  target")
    tracks: list[np.ndarray] = []
    for title, cases, judge, target in (
        ("valid presses: decoded/pressed", VALID, score, "all"),
        ("must reject: decoded/pressed", MUST_REJECT, decoded, "none"),
    ):
        print(f"-- {title}")
        for case in cases:
            expected, audio = track(case, rng)
            tracks.append(audio)
            found = [judge(expected, ours(audio, rate)) for rate in RATES]
            theirs = judge(expected, multimon(audio))
            print(f"{case.name:<{width}} {found[0]:>10} {found[1]:>10} {theirs:>12}  {target}")

    print("-- false detections: keys found (per hour)")
    sources = {"speech (espeak-ng)": speech(), "hold music": music()}
    for name, audio in sources.items():
        if audio is None:
            print(f"{name:<{width}} {'not available':>34}")
            continue
        minutes = len(audio) / LINE_RATE / 60
        label = f"{name}, {minutes:.1f} min"
        found = [per_hour(ours(audio, rate), minutes) for rate in RATES]
        theirs = per_hour(multimon(audio), minutes)
        print(f"{label:<{width}} {found[0]:>10} {found[1]:>10} {theirs:>12}  0/h")

    budget = FRAME_MS * 1000
    print(f"-- cost of one 20 ms frame, against the {budget} us budget")
    presses = np.concatenate(tracks)
    talk = sources["speech (espeak-ng)"]
    signals = {"DTMF tracks": presses, "speech": talk if talk is not None else presses}
    for rate in RATES:
        for name, audio in signals.items():
            us = median_us_per_frame(rate, audio)
            label = f"ours {rate // 1000} kHz, {name}"
            print(f"{label:<{width}} {us:8.1f} us {us / budget:8.2%}")
    everything = np.concatenate([a for a in (presses, *sources.values()) if a is not None])
    minutes = len(everything) / LINE_RATE / 60
    ours_s = wall_seconds(lambda: ours(everything, 16000))
    line = f"all {minutes:.1f} min of audio: ours at 16 kHz {ours_s:.2f} s"
    if shutil.which("multimon-ng") is not None:
        line += f", multimon-ng {wall_seconds(lambda: multimon(everything)):.2f} s"
    print(line + " (each with its resampling)")


if __name__ == "__main__":
    run()
