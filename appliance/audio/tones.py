"""Tones: beeps and DTMF to play, and Goertzel measurements to find them again.

Shared by the conference (join/leave beeps), the modem emulator (in-band DTMF from a simulated
caller) and the tests ("A hears the join beep"). Samples are mono int16; levels are relative to
a full-scale sine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EDGE_MS = 5.0  # raised-cosine ramp at each end of a tone, so beeps do not click

JOIN_BEEP: list[tuple[float, float]] = [(660.0, 120.0), (880.0, 180.0)]
LEAVE_BEEP: list[tuple[float, float]] = [(880.0, 120.0), (660.0, 180.0)]

# ITU-T Q.23: each key is one frequency from the low group plus one from the high group.
DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
DTMF_FREQS: dict[str, tuple[float, float]] = {
    key: (DTMF_LOW[row], DTMF_HIGH[col])
    for row, keys in enumerate(DTMF_KEYS)
    for col, key in enumerate(keys)
}

_FULL_SCALE = 32767.0


def _samples_for(ms: float, rate: int) -> int:
    return max(0, round(rate * ms / 1000.0))


def _edges(n: int, rate: int) -> np.ndarray:
    """A gain envelope of ``n`` samples with raised-cosine attack and release."""
    envelope = np.ones(n)
    ramp = min(_samples_for(EDGE_MS, rate), n // 2)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
        envelope[:ramp] = rise
        envelope[n - ramp :] = rise[::-1]
    return envelope


def _to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal * _FULL_SCALE), -32768, 32767).astype(np.int16)


def _sines(components: Sequence[tuple[float, float]], n: int, rate: int) -> np.ndarray:
    """Sum of (frequency, amplitude) sines, amplitudes relative to full scale."""
    t = np.arange(n) / rate
    signal = np.zeros(n)
    for freq, amplitude in components:
        signal += amplitude * np.sin(2 * np.pi * freq * t)
    return signal


def tone(freq_hz: float, ms: float, rate: int, amplitude: float = 0.25) -> np.ndarray:
    """A sine of ``ms`` milliseconds with short raised-cosine edges; ``freq_hz`` 0 is silence."""
    n = _samples_for(ms, rate)
    if freq_hz <= 0:
        return np.zeros(n, dtype=np.int16)
    return _to_int16(_sines([(freq_hz, amplitude)], n, rate) * _edges(n, rate))


def tone_sequence(
    parts: Sequence[tuple[float, float]], rate: int, amplitude: float = 0.25
) -> np.ndarray:
    """Consecutive ``(freq_hz, ms)`` tones (frequency 0 is a pause)."""
    pieces = [tone(freq, ms, rate, amplitude) for freq, ms in parts]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)


def join_beep(rate: int) -> np.ndarray:
    """Rising two-note beep: someone joined."""
    return tone_sequence(JOIN_BEEP, rate)


def leave_beep(rate: int) -> np.ndarray:
    """Falling two-note beep: someone left."""
    return tone_sequence(LEAVE_BEEP, rate)


def dtmf(
    key: str, ms: float, rate: int, level_db: float = -10.0, twist_db: float = 0.0
) -> np.ndarray:
    """The DTMF pair for ``key`` (0-9 * # A-D).

    ``level_db`` is the low-group tone's level relative to a full-scale sine; ``twist_db`` is
    how much louder the high-group tone is than the low-group one.
    """
    try:
        low, high = DTMF_FREQS[key.upper()]
    except KeyError:
        raise ValueError(f"not a DTMF key: {key!r}") from None
    low_amp = 10.0 ** (level_db / 20.0)
    high_amp = 10.0 ** ((level_db + twist_db) / 20.0)
    n = _samples_for(ms, rate)
    return _to_int16(_sines([(low, low_amp), (high, high_amp)], n, rate) * _edges(n, rate))


def _as_float(samples: np.ndarray) -> np.ndarray:
    data = np.asarray(samples)
    if data.dtype == np.int16:
        return data.astype(np.float64) / _FULL_SCALE
    return data.astype(np.float64)


def goertzel_power(samples: np.ndarray, freq: float, rate: int) -> float:
    """Mean-square power of the ``freq`` component of ``samples`` (full-scale sine = 0.5).

    The single DFT bin that Goertzel's recurrence computes, evaluated at the exact frequency
    (not rounded to a bin), so it is comparable with the block's mean square.
    """
    x = _as_float(samples)
    n = len(x)
    if n == 0:
        return 0.0
    basis = np.exp(-2j * np.pi * freq * np.arange(n) / rate)
    return float(2.0 * abs(np.dot(x, basis)) ** 2 / n**2)


def tone_segments(
    samples: np.ndarray,
    freq: float,
    rate: int,
    window_ms: float = 20,
    min_ms: float = 60,
    min_share: float = 0.4,
    floor_db: float = -60.0,
) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of every stretch where ``freq`` dominates ``samples``.

    A Hann-windowed block counts when its power at ``freq`` is at least ``min_share`` of the
    block's whole power and the block is louder than ``floor_db``; blocks step by half a
    window, and runs shorter than ``min_ms`` are dropped.
    """
    x = _as_float(samples)
    size = max(1, _samples_for(window_ms, rate))
    hop = max(1, size // 2)
    if len(x) < size:
        return []
    count = 1 + (len(x) - size) // hop
    blocks = np.lib.stride_tricks.sliding_window_view(x, size)[::hop][:count]
    window = np.hanning(size + 2)[1:-1]  # no zero end points
    weighted = blocks * window
    basis = np.exp(-2j * np.pi * freq * np.arange(size) / rate)
    at_freq = 2.0 * np.abs(weighted @ basis) ** 2 / window.sum() ** 2
    total = np.sum(weighted**2, axis=1) / np.sum(window**2)
    floor = 0.5 * 10.0 ** (floor_db / 10.0)
    hits = (total > floor) & (at_freq >= min_share * np.maximum(total, 1e-30))

    segments: list[tuple[float, float]] = []
    index = 0
    while index < count:
        if not hits[index]:
            index += 1
            continue
        first = index
        while index + 1 < count and hits[index + 1]:
            index += 1
        start = first * hop / rate
        end = (index * hop + size) / rate
        if (end - start) * 1000.0 >= min_ms:
            segments.append((start, end))
        index += 1
    return segments
