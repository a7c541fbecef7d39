"""What a caller hears, measured: correlation with a reference, tones, silence."""

from __future__ import annotations

import numpy as np

from appliance.audio.tones import tone_segments


def normalised_xcorr(recording: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Best normalised cross-correlation of ``reference`` inside ``recording``: (peak, lag).

    Each lag is normalised by the energy of the recording window it covers, so loud
    unrelated audio cannot fake a match and a faithful copy scores near 1.0.
    """
    x = recording.astype(np.float64)
    y = reference.astype(np.float64)
    m = len(y)
    if len(x) < m or m == 0:
        return 0.0, 0
    size = 1 << int(np.ceil(np.log2(len(x) + m)))
    numerator = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)
    numerator = numerator[: len(x) - m + 1]
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    window = energy[m:] - energy[:-m]
    denominator = np.sqrt(np.maximum(window, 1e-9) * float(np.dot(y, y)))
    ncc = numerator / denominator
    ncc[window < 1e-6 * max(window.max(), 1.0)] = 0.0  # silent windows match nothing
    lag = int(np.argmax(ncc))
    return float(ncc[lag]), lag


def rms_dbfs(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return -120.0
    rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    return 20 * np.log10(max(rms, 1e-9) / 32768.0)


def beep_times(samples: np.ndarray, rate: int, low: float, high: float) -> list[float]:
    """Start times (s) of two-tone beeps: a ``low`` tone directly followed by ``high``.

    ``(660, 880)`` finds join beeps (rising), ``(880, 660)`` leave beeps (falling).
    """
    firsts = tone_segments(samples, low, rate, min_ms=60)
    seconds = tone_segments(samples, high, rate, min_ms=80)
    found = []
    for start, end in firsts:
        if any(abs(s2 - end) < 0.08 for s2, _ in seconds):
            found.append(start)
    return found


def fraction_heard(
    recording: np.ndarray,
    reference: np.ndarray,
    rate: int,
    window_ms: int = 100,
    threshold: float = 0.8,
) -> float:
    """The share of ``reference``'s audible 100 ms pieces found in ``recording`` (ncc above
    ``threshold``, anywhere).

    A jitter buffer that slips a sample per frame to absorb a burst warps the time scale by a
    few tenths of a percent; a long reference then no longer lines up with itself end to end,
    but every short piece still does. Speech heard this way scores near 1.0 (an underrun costs
    the few pieces it cuts into), other speech and music near 0.
    """
    size = rate * window_ms // 1000
    found = total = 0
    for start in range(0, len(reference) - size + 1, size):
        piece = reference[start : start + size]
        if rms_dbfs(piece) < -40:  # a pause between words matches nothing in particular
            continue
        total += 1
        peak, _ = normalised_xcorr(recording, piece)
        found += peak > threshold
    if total == 0:
        raise ValueError("the reference is silent")
    return found / total
