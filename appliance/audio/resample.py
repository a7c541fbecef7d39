"""Sample-rate conversion at the edge: streaming for live lines, one-shot for files and prompts.

Live audio cannot wait: soxr's filtered qualities (LQ and up) work in DFT blocks and, fed 20 ms
at a time, hold back 60 ms (LQ) to 120 ms (MQ, HQ) at 8 <-> 16 kHz. Its "quick" quality (QQ,
cubic interpolation) streams with a few samples of delay but filters nothing: down-sampling
aliases everything above the new Nyquist frequency and up-sampling leaves images at -26 dB. So
the stream pairs QQ with a short linear-phase low-pass (Kaiser window, -60 dB), applied at the
higher of the two rates: before a rate drop, after a rise. The passband reaches 0.4 of the lower
rate (3.2 kHz for 8 kHz lines; cubic up-sampling droops 2 dB by 3 kHz), and the whole stream
delays audio by about 2.5 ms at 8 <-> 16 kHz (``delay_samples``).
"""

from __future__ import annotations

import numpy as np
import soxr

_INT16 = np.iinfo(np.int16)

# Low-pass design: pass to 0.4 and stop from 0.5 of the lower rate, 60 dB down.
_PASS, _STOP, _ATTENUATION_DB = 0.4, 0.5, 60.0


class StreamResampler:
    """Converts a stream of int16 chunks from ``in_rate`` to ``out_rate``, keeping state.

    Output keeps pace with input: after any number of calls the total output length is the
    total input length times ``out_rate / in_rate``, rounded down. The audio itself lags by
    about ``delay_samples`` output samples. Equal rates pass chunks through untouched.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.delay_samples = 0
        if in_rate == out_rate:
            return
        low, high = min(in_rate, out_rate), max(in_rate, out_rate)
        self._lowpass = _Lowpass(low / high)
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="QQ")
        self._held = _held_back(in_rate, out_rate)
        self._started = False
        filter_delay = self._lowpass.delay * (out_rate / in_rate if out_rate < in_rate else 1)
        self.delay_samples = round(filter_delay) + self._held

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample one chunk of int16 samples (any length); returns int16."""
        if self.in_rate == self.out_rate:
            return np.asarray(samples, dtype=np.int16)
        if len(samples) == 0:  # soxr would take it for the end of the stream and flush
            return np.zeros(0, dtype=np.int16)
        chunk = np.asarray(samples, dtype=np.float32)
        if self.out_rate < self.in_rate:
            chunk = self._lowpass(chunk)
        out = self._stream.resample_chunk(chunk)
        if self.out_rate > self.in_rate:
            out = self._lowpass(out)
        if not self._started:
            # QQ withholds a few samples until it sees what follows them: stand in with
            # silence once, at the start, so the output length keeps pace from the first call.
            self._started = True
            out = np.concatenate((np.zeros(self._held, dtype=np.float32), out))
        return _to_int16(out)

    def __repr__(self) -> str:
        return f"StreamResampler({self.in_rate} -> {self.out_rate}, delay {self.delay_samples})"


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole int16 signal at soxr's high quality (files, prompts, recordings)."""
    samples = np.asarray(samples, dtype=np.int16)
    if in_rate == out_rate or len(samples) == 0:
        return samples
    return np.asarray(soxr.resample(samples, in_rate, out_rate, quality="HQ"), dtype=np.int16)


class _Lowpass:
    """A streaming linear-phase FIR low-pass; ``cutoff`` is the lower rate / the higher rate."""

    def __init__(self, cutoff: float) -> None:
        # Edges in cycles per sample of the higher rate; Kaiser's estimate of the length.
        width = (_STOP - _PASS) * cutoff
        centre = (_PASS + _STOP) / 2 * cutoff
        count = int(np.ceil((_ATTENUATION_DB - 8) / (2.285 * 2 * np.pi * width))) | 1
        offsets = np.arange(count) - (count - 1) / 2
        beta = 0.1102 * (_ATTENUATION_DB - 8.7)  # Kaiser's formula for attenuation > 50 dB
        taps = 2 * centre * np.sinc(2 * centre * offsets) * np.kaiser(count, beta)
        self._taps = (taps / taps.sum()).astype(np.float32)
        self._history = np.zeros(count - 1, dtype=np.float32)
        self.delay = (count - 1) // 2

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        signal = np.concatenate((self._history, chunk))
        self._history = signal[len(signal) - len(self._history) :]
        return np.convolve(signal, self._taps, mode="valid")


def _held_back(in_rate: int, out_rate: int) -> int:
    """How many output samples soxr's QQ stream withholds at first, measured on 20 ms."""
    probe = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="QQ")
    count = in_rate // 50
    produced = len(probe.resample_chunk(np.zeros(count, dtype=np.float32)))
    return max(0, count * out_rate // in_rate - produced)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    rounded = np.rint(samples)
    np.maximum(rounded, _INT16.min, out=rounded)
    np.minimum(rounded, _INT16.max, out=rounded)
    return rounded.astype(np.int16)
