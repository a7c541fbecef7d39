"""In-band DTMF detection (ITU-T Q.23 tones, Q.24 receiver limits) and the merger of in-band and
modem-reported keys, so that one key press is delivered once.

The detector evaluates a bank of Goertzel filters (as matrix products over half-blocks) on
blocks of 13.25 ms (106 samples at 8 kHz) that advance by half a block. A block names a key when:

- each tone is at least -30 dBm0 and the two tones hold at least 70 % of the block's energy;
- each tone is 8 dB above the other tones of its group (relative peak) and the high tone's
  second harmonic is 10 dB below it (speech and music have harmonics, DTMF has none);
- twist (high-group level minus low-group level) is within ±8 dB (+3 dB for one block's noise):
  Q.24 allows 8 dB of normal and 4 dB of reverse twist; 8 dB is taken both ways because GSM
  codecs and analog lines tilt the balance either way;
- each tone's frequency, measured from the phase advance of a Hann-windowed Goertzel between
  consecutive blocks, is within ±2.5 % of nominal: Q.24 accepts ±1.5 % and rejects ±3.5 %.

A press is recognised once consecutive blocks naming the same key hold at least 20 ms of steady
tone (the run's energy over its peak power, plus what the partial blocks at its ends miss) and
the run's twist is within 8 dB (+1 dB for measurement). Q.24 accepts 40 ms and rejects 23 ms;
here tones of 30 ms with 5 ms ramps pass and 20 ms ones never do, while a square-edged burst of
20-23 ms may. A press is held until four blocks in a row (about 26 ms) miss the key or fall 6 dB
below its level: pauses of 25 ms and more separate two presses of the same key, interruptions
of up to 15 ms are bridged (Q.24: 10 ms). One bad block inside a run is ridden over.

Cost: 45-90 µs per 20 ms frame at 16 kHz on an x86-64 core, under 0.5 % of the frame's time;
``python -m tests.bench.dtmf`` measures it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from appliance.audio.tones import DTMF_HIGH, DTMF_KEYS, DTMF_LOW

STEP_AT_8K = 53  # half a block: 6.625 ms; the block (13.25 ms) resolves rows 73 Hz apart
FULL_SCALE = 32767.0
DBM0_AT_FULL_SCALE = 3.17  # G.711: a full-scale sine is +3.17 dBm0
MIN_TONE_DBM0 = -30.0
MIN_TONE_SHARE = 0.7  # of the block's energy held by the two tones
RELATIVE_PEAK_DB = 8.0
HARMONIC_DB = 10.0
TWIST_DB = 8.0  # both ways, plus TWIST_MARGIN_DB for measurement error
TWIST_MARGIN_DB = 1.0  # measured over the whole run
BLOCK_TWIST_SLACK_DB = 3.0  # one block's measure, which noise spreads more
FREQ_TOLERANCE = 0.025
MIN_PRESS_MS = 20.0
RELEASE_BLOCKS = 4
RELEASE_DROP = 0.25  # 6 dB below the press's level counts as a miss

_FREQS = np.array(DTMF_LOW + DTMF_HIGH)
_HARMONICS = 2.0 * np.array(DTMF_HIGH)
_KEYS = "".join(DTMF_KEYS)  # index = row * 4 + column


def _db(value: float) -> float:
    return 10.0 ** (value / 10.0)


def _hann_response(bins: np.ndarray) -> np.ndarray:
    """Power gain of a Hann window's bin for a tone ``bins`` bins off its centre."""
    return (np.sinc(bins) + 0.5 * np.sinc(bins + 1) + 0.5 * np.sinc(bins - 1)) ** 2


_GAIN_BINS = np.linspace(-1.0, 1.0, 401)  # a tone 2.5 % off is at most 0.55 bins away
_HANN_GAIN = _hann_response(_GAIN_BINS)


class DtmfDetector:
    """Finds DTMF key presses in a stream of int16 frames of any length at ``rate`` Hz."""

    def __init__(self, rate: int) -> None:
        if rate < 8000:
            raise ValueError(f"DTMF needs a rate of 8000 Hz or more, not {rate}")
        self.rate = rate
        self.step = round(STEP_AT_8K * rate / 8000)
        self.size = 2 * self.step
        n = np.arange(self.size)
        rect = np.exp(-2j * np.pi * np.outer(n, np.concatenate([_FREQS, _HARMONICS])) / rate)
        hann = (0.5 - 0.5 * np.cos(2 * np.pi * (n + 0.5) / self.size))[:, None] * rect[:, :8]
        basis = np.concatenate([rect, hann], axis=1)
        self._columns = basis.shape[1]
        real = np.concatenate([basis.real, basis.imag], axis=1)
        # a block is two half-blocks: its filters are the sum of two products, one per half
        self._head, self._tail = real[: self.step], real[self.step :]
        self._column_sums = real.sum(axis=0)
        # the phase a nominal tone advances by in one step
        self._advance = np.exp(-2j * np.pi * _FREQS * self.step / rate)
        self._hz_per_radian = rate / (2 * np.pi * self.step)
        self._min_power = 0.5 * _db(MIN_TONE_DBM0 - DBM0_AT_FULL_SCALE)
        self._pending = np.zeros(0)
        self._last_hann = np.zeros(8, dtype=complex)
        self._run_key = -1  # the key of the current run of blocks, -1 for none
        self._run_gap = 0  # blocks missed since the run's last block
        self._run = np.zeros(3)  # low-tone energy, high-tone energy, peak power
        self._down = -1  # the key last reported, until its release
        self._down_level = 0.0
        self._misses = 0

    def feed(self, frame: np.ndarray) -> list[str]:
        """Take the next samples; return the keys whose press was recognised in them."""
        samples = np.concatenate([self._pending, np.asarray(frame, dtype=np.float64) / FULL_SCALE])
        count = len(samples) // self.step - 1
        if count <= 0:
            self._pending = samples
            return []
        self._pending = samples[count * self.step :]
        halves = samples[: (count + 1) * self.step].reshape(count + 1, self.step)
        keys, low, high = self._classify(halves)
        if self._down < 0 and self._run_key < 0 and not keys.any():
            return []
        return self._track((keys - 1).tolist(), low.tolist(), high.tolist())

    def _classify(self, halves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Key + 1 of each block (0 for none) and the power of its low and high tone.

        Block ``i`` is ``halves[i]`` followed by ``halves[i + 1]``.
        """
        sums = halves.sum(axis=1)
        squares = np.einsum("ij,ij->i", halves, halves)
        mean = (sums[:-1] + sums[1:]) / self.size
        total = (squares[:-1] + squares[1:]) / self.size - mean * mean
        spectrum = halves[:-1] @ self._head + halves[1:] @ self._tail
        spectrum -= mean[:, None] * self._column_sums
        bins = spectrum[:, : self._columns] + 1j * spectrum[:, self._columns :]
        hann = bins[:, 12:]
        previous = np.concatenate([self._last_hann[None, :], hann[:-1]])
        self._last_hann = hann[-1]
        power = 2.0 * np.abs(bins[:, :12]) ** 2 / self.size**2

        row = np.argmax(power[:, :4], axis=1)
        col = np.argmax(power[:, 4:8], axis=1) + 4
        index = np.arange(len(power))
        low, high = power[index, row], power[index, col]
        # a cheap first cut with 6 dB to spare; most blocks of speech and silence stop here
        rough = (low + high >= 0.25 * MIN_TONE_SHARE * total) & (
            np.minimum(low, high) >= 0.25 * self._min_power
        )
        none = np.zeros(len(power))
        if not rough.any():
            return none.astype(int), none, none

        offset = np.angle(hann * previous.conj() * self._advance) * self._hz_per_radian
        low_hz, high_hz = _FREQS[row], _FREQS[col]
        low_off, high_off = offset[index, row], offset[index, col]
        # levels from the Hann bins, whose low sidelobes keep one group out of the other's
        # measure, corrected for the loss of a tone that sits off the filter's centre
        level = 2.0 * np.abs(hann) ** 2 / (self.size / 2) ** 2
        low = level[index, row] / self._hann_gain(low_off)
        high = level[index, col] / self._hann_gain(high_off)
        ordered = np.sort(power[:, :8].reshape(-1, 2, 4), axis=2)
        peak, twist = _db(RELATIVE_PEAK_DB), _db(TWIST_DB + BLOCK_TWIST_SLACK_DB)
        ok = (
            rough
            & (low >= self._min_power)
            & (high >= self._min_power)
            & (high <= low * twist)
            & (low <= high * twist)
            & (low + high >= MIN_TONE_SHARE * total)
            & (ordered[:, 0, 3] >= peak * ordered[:, 0, 2])
            & (ordered[:, 1, 3] >= peak * ordered[:, 1, 2])
            & (power[index, col + 4] * _db(HARMONIC_DB) <= power[index, col])
            & (np.abs(low_off) <= FREQ_TOLERANCE * low_hz)
            & (np.abs(high_off) <= FREQ_TOLERANCE * high_hz)
        )
        return np.where(ok, row * 4 + col - 3, 0), low, high

    def _hann_gain(self, offset_hz: np.ndarray) -> np.ndarray:
        """Power gain of a Hann-windowed bin for a tone ``offset_hz`` off its centre."""
        return np.interp(offset_hz * self.size / self.rate, _GAIN_BINS, _HANN_GAIN)

    def _track(self, keys: list[int], lows: list[float], highs: list[float]) -> list[str]:
        """Turn per-block keys into presses: long enough to count, reported once."""
        pressed: list[str] = []
        step_ms = 1000.0 * self.step / self.rate
        smear_ms = 0.2 * 1000.0 * self.size / self.rate  # partial blocks at the run's two ends
        twist = _db(TWIST_DB + TWIST_MARGIN_DB)
        for key, low, high in zip(keys, lows, highs, strict=True):
            power = low + high
            if self._down >= 0:
                if key == self._down and power >= RELEASE_DROP * self._down_level:
                    self._misses = 0
                    self._down_level = max(self._down_level, power)
                else:
                    self._misses += 1
                    if self._misses >= RELEASE_BLOCKS:
                        self._down = self._run_key = -1
            if key != self._run_key:
                if key < 0 and self._run_key >= 0 and self._run_gap == 0:
                    self._run_gap = 1  # ride over one bad block, as noise or a codec makes
                    continue
                self._run_key = key
                self._run[:] = 0.0
            if key < 0:
                continue
            run = self._run
            run[0] += low
            run[1] += high
            run[2] = max(run[2], power)
            self._run_gap = 0
            steady_ms = step_ms * (run[0] + run[1]) / run[2] + smear_ms
            if (
                key != self._down
                and steady_ms >= MIN_PRESS_MS
                and run[1] <= twist * run[0]
                and run[0] <= twist * run[1]
            ):
                pressed.append(_KEYS[key])
                self._down, self._down_level, self._misses = key, run[2], 0
        return pressed


class KeyMerger:
    """Delivers each key press once when both the modem and the in-band detector report it.

    The first report of a press wins; a report of the same key from the other source within
    ``window_ms`` is the same press and is swallowed. Times are seconds on the tick clock.
    """

    def __init__(self, window_ms: int = 200) -> None:
        self.window = window_ms / 1000.0
        self._delivered: dict[str, deque[tuple[str, float]]] = {
            "modem": deque(),
            "inband": deque(),
        }

    def from_modem(self, key: str, t: float) -> bool:
        """The modem reported ``key`` out of band at ``t``: True to deliver it."""
        return self._report("modem", "inband", key, t)

    def from_inband(self, key: str, t: float) -> bool:
        """The in-band detector recognised ``key`` at ``t``: True to deliver it."""
        return self._report("inband", "modem", key, t)

    def _report(self, source: str, other: str, key: str, t: float) -> bool:
        key = key.upper()
        for delivered in self._delivered.values():
            while delivered and t - delivered[0][1] > self.window:
                delivered.popleft()
        unmatched = self._delivered[other]
        for item in unmatched:
            if item[0] == key and abs(t - item[1]) <= self.window:
                unmatched.remove(item)
                return False
        self._delivered[source].append((key, t))
        return True
