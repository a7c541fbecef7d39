"""Mixer cost per tick beside a reference measured in the same run.

Run with ``python -m tests.bench.mixer``. The reference is one plain ``np.sum`` over an
(N, 320) int32 array: the least any mix of N inputs must touch. Targets: 250 participants with
3 talking within 2x the reference, 250 all talking within 4x.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.mixer import mix_conference

FORMAT = AudioFormat(rate=16000, frame_ms=20)
SIZES = (2, 8, 32, 250)
TARGETS = {(250, "3 talking"): 2.0, (250, "all talking"): 4.0}
REPEATS = 101


def median_us(
    call: Callable[[], object], reference: Callable[[], object], number: int = 50
) -> tuple[float, float]:
    """Median µs per call of ``call`` and of ``reference``, timed in alternation.

    Alternating the runs lets both see the same machine load, so their ratio holds even on a
    busy machine.
    """
    timers = timeit.Timer(call), timeit.Timer(reference)
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for timer, times in zip(timers, runs, strict=True):
            times.append(timer.timeit(number) / number * 1e6)
    return statistics.median(runs[0]), statistics.median(runs[1])


def speech_like_frames(count: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """One frame per participant: noise at a talker's level, about -20 dBFS."""
    noise = rng.normal(0.0, 3000.0, size=(count, FORMAT.samples))
    return {i: row for i, row in enumerate(noise.clip(-32768, 32767).astype(np.int16))}


def measure(count: int, case: str, rng: np.random.Generator) -> tuple[float, float]:
    """(mixer µs, reference µs) for ``count`` participants."""
    frames = speech_like_frames(count, rng)
    everyone = list(frames)
    talkers = everyone[:3] if case == "3 talking" else everyone
    reference = np.ones((count, FORMAT.samples), dtype=np.int32)
    return median_us(lambda: mix_conference(frames, talkers, everyone), lambda: np.sum(reference))


def run() -> None:
    """Print the table."""
    rng = np.random.default_rng(1)
    budget_us = FORMAT.period * 1e6
    print(f"mixer per tick, {FORMAT.rate} Hz / {FORMAT.frame_ms} ms ({FORMAT.samples} samples)")
    print(f"{'N':>4} {'case':<12} {'mixer us':>9} {'budget':>7} {'ref us':>7} {'ratio':>6}  target")
    for count in SIZES:
        for case in ("3 talking", "all talking"):
            mixer_us, reference_us = measure(count, case, rng)
            ratio = mixer_us / reference_us
            target = TARGETS.get((count, case))
            verdict = (
                ""
                if target is None
                else f"<= {target:.0f}x " + ("ok" if ratio <= target else "MISSED")
            )
            print(
                f"{count:>4} {case:<12} {mixer_us:>9.1f} {mixer_us / budget_us:>7.2%}"
                f" {reference_us:>7.1f} {ratio:>6.2f}  {verdict}"
            )


if __name__ == "__main__":
    run()
