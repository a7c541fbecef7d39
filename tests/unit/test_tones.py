"""Tone generation and detection: DTMF pairs, beeps, and finding them again in noise."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.tones import (
    DTMF_FREQS,
    DTMF_HIGH,
    DTMF_LOW,
    JOIN_BEEP,
    LEAVE_BEEP,
    dtmf,
    goertzel_power,
    join_beep,
    leave_beep,
    tone,
    tone_segments,
    tone_sequence,
)

RATE = 8000


def test_tone_has_the_requested_length_level_and_soft_edges():
    samples = tone(1000, 100, RATE, amplitude=0.5)
    assert samples.dtype == np.int16 and len(samples) == 800
    assert abs(int(samples[0])) < 200 and abs(int(samples[-1])) < 200
    assert 0.49 * 32767 < np.abs(samples).max() <= 0.5 * 32767 + 1


def test_frequency_zero_is_silence_in_a_sequence():
    samples = tone_sequence([(440, 50), (0, 30), (440, 20)], RATE)
    assert len(samples) == 800
    assert not samples[400:640].any()


def test_goertzel_power_of_a_full_scale_sine_is_one_half():
    steady = tone(1000, 1000, RATE, amplitude=1.0)[100:-100]
    assert goertzel_power(steady, 1000, RATE) == pytest.approx(0.5, rel=0.01)
    assert goertzel_power(steady, 1300, RATE) < 1e-3


@pytest.mark.parametrize("key", sorted(DTMF_FREQS))
def test_each_dtmf_key_is_its_q23_pair_and_nothing_else(key):
    samples = dtmf(key, 100, RATE)
    low, high = DTMF_FREQS[key]
    low_powers = {f: goertzel_power(samples, f, RATE) for f in DTMF_LOW}
    high_powers = {f: goertzel_power(samples, f, RATE) for f in DTMF_HIGH}
    assert max(low_powers, key=low_powers.get) == low
    assert max(high_powers, key=high_powers.get) == high
    for freq, power in {**low_powers, **high_powers}.items():
        if freq not in (low, high):
            assert power < low_powers[low] / 100


def test_dtmf_level_and_twist_set_each_group():
    samples = dtmf("5", 200, RATE, level_db=-20.0, twist_db=6.0)
    low = goertzel_power(samples, 770, RATE)
    high = goertzel_power(samples, 1336, RATE)
    assert 10 * np.log10(low / 0.5) == pytest.approx(-20.0, abs=0.5)
    assert 10 * np.log10(high / low) == pytest.approx(6.0, abs=0.3)


def test_dtmf_rejects_what_is_not_a_key():
    with pytest.raises(ValueError, match="not a DTMF key"):
        dtmf("E", 100, RATE)


def test_beeps_are_the_documented_notes():
    assert JOIN_BEEP == [(660.0, 120.0), (880.0, 180.0)]
    assert LEAVE_BEEP == [(880.0, 120.0), (660.0, 180.0)]
    assert len(join_beep(RATE)) == len(leave_beep(RATE)) == 2400


def _in_noise(signal: np.ndarray, at: float, seconds: float, noise_level: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    out = rng.normal(0.0, noise_level * 32767, int(seconds * RATE))
    start = int(at * RATE)
    out[start : start + len(signal)] += signal
    return np.clip(out, -32768, 32767).astype(np.int16)


def test_join_beep_is_found_in_noise_rising():
    mix = _in_noise(join_beep(RATE), at=0.5, seconds=1.5, noise_level=0.05)
    ((low_start, low_end),) = tone_segments(mix, 660, RATE)
    ((high_start, high_end),) = tone_segments(mix, 880, RATE)
    assert low_start == pytest.approx(0.5, abs=0.02)
    assert low_end == pytest.approx(0.62, abs=0.02)
    assert high_start == pytest.approx(0.62, abs=0.02)
    assert high_end == pytest.approx(0.80, abs=0.02)


def test_leave_beep_is_found_falling_under_speech_like_noise():
    rng = np.random.default_rng(3)
    babble = sum(
        0.05 * np.sin(2 * np.pi * f * np.arange(2 * RATE) / RATE + rng.uniform(0, 6))
        for f in (150, 310, 470, 1250, 2100)
    )
    mix = _in_noise(leave_beep(RATE), at=1.0, seconds=2.0, noise_level=0.01)
    mix = np.clip(mix + babble * 32767, -32768, 32767).astype(np.int16)
    ((high_start, _),) = tone_segments(mix, 880, RATE)
    ((low_start, _),) = tone_segments(mix, 660, RATE)
    assert high_start == pytest.approx(1.0, abs=0.02)
    assert low_start == pytest.approx(1.12, abs=0.02)


def test_silence_noise_and_short_blips_are_not_segments():
    assert tone_segments(np.zeros(8000, dtype=np.int16), 660, RATE) == []
    noise = _in_noise(np.zeros(0), 0, 1.0, noise_level=0.1)
    assert tone_segments(noise, 660, RATE) == []
    blip = _in_noise(tone(660, 30, RATE), at=0.3, seconds=1.0, noise_level=0.001)
    assert tone_segments(blip, 660, RATE) == []
