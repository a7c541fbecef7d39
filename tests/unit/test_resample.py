"""Streaming and one-shot resampling: lengths, delay, fidelity, band-limiting."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.resample import StreamResampler, resample


def speech_like(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced harmonics of a gliding 120-180 Hz pitch, band-limited to 3 kHz, syllable-modulated."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    pitch = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = np.zeros_like(t)
    for harmonic in range(1, 20):
        if harmonic * 180 > 3000:
            break
        formant = np.exp(-(((harmonic * 150 - 700) / 600) ** 2)) + 0.3
        signal += formant / harmonic * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return np.round(signal / np.abs(signal).max() * envelope * 12000).astype(np.int16)


def stream(resampler: StreamResampler, samples: np.ndarray, chunk: int) -> np.ndarray:
    pieces = [resampler.process(samples[i : i + chunk]) for i in range(0, len(samples), chunk)]
    return np.concatenate(pieces)


def aligned_correlation(reference: np.ndarray, delayed: np.ndarray, lag: int) -> float:
    a = reference[: len(reference) - lag].astype(float)
    b = delayed[lag : lag + len(a)].astype(float)
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def best_lag(reference: np.ndarray, delayed: np.ndarray, most: int = 200) -> int:
    return max(range(most), key=lambda lag: aligned_correlation(reference, delayed, lag))


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def tone(hz: float, rate: int, seconds: float, amplitude: float = 10000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def test_round_trip_8k_16k_8k_keeps_speech_after_aligning_the_delay() -> None:
    original = speech_like(8000, 2.0)
    up, down = StreamResampler(8000, 16000), StreamResampler(16000, 8000)
    back = stream(down, stream(up, original, 160), 320)

    lag = best_lag(original, back)
    assert aligned_correlation(original, back, lag) > 0.99
    expected = up.delay_samples / 2 + down.delay_samples
    assert abs(lag - expected) <= 2, (lag, expected)


def test_round_trip_of_a_sine_keeps_its_shape() -> None:
    original = tone(440, 8000, 1.0)
    up, down = StreamResampler(8000, 16000), StreamResampler(16000, 8000)
    back = stream(down, stream(up, original, 160), 320)
    assert aligned_correlation(original, back, best_lag(original, back)) > 0.999


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "chunk"),
    [(8000, 16000, 160), (16000, 8000, 320), (48000, 16000, 960), (44100, 16000, 441)],
)
def test_streaming_in_chunks_gives_the_total_length(
    in_rate: int, out_rate: int, chunk: int
) -> None:
    samples = speech_like(in_rate, 3.0)
    resampler = StreamResampler(in_rate, out_rate)
    lengths = [
        len(resampler.process(samples[i : i + chunk])) for i in range(0, len(samples), chunk)
    ]
    assert abs(sum(lengths) - len(samples) * out_rate // in_rate) <= 3
    assert max(lengths) - min(lengths) <= 1  # steady from the first chunk on


def test_delay_is_a_few_milliseconds_and_as_documented() -> None:
    for in_rate, out_rate in [(8000, 16000), (16000, 8000)]:
        resampler = StreamResampler(in_rate, out_rate)
        impulse = np.zeros(in_rate // 5, dtype=np.int16)
        impulse[in_rate // 50] = 20000
        out = stream(resampler, impulse, in_rate // 50)
        measured = int(np.argmax(out)) - out_rate // 50
        assert measured == pytest.approx(resampler.delay_samples, abs=1)
        assert resampler.delay_samples / out_rate < 0.004


def test_down_sampling_removes_what_would_alias() -> None:
    loud_6k = tone(6000, 16000, 1.0)  # would fold to 2 kHz at 8 kHz
    out = stream(StreamResampler(16000, 8000), loud_6k, 320)[800:]
    assert np.sqrt(np.mean(out.astype(float) ** 2)) < 10000 * 10 ** (-50 / 20)


def test_up_sampling_keeps_the_tone_and_leaves_no_image() -> None:
    out = stream(StreamResampler(8000, 16000), tone(1000, 8000, 1.0), 160)[1600:].astype(float)
    assert peak_hz(out, 16000) == pytest.approx(1000, abs=2)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    image = spectrum[(freqs > 6900) & (freqs < 7100)].max()
    assert image < spectrum.max() * 10 ** (-60 / 20)


def test_an_empty_chunk_gives_nothing_and_leaves_the_stream_intact() -> None:
    resampler = StreamResampler(8000, 16000)
    empty = np.zeros(0, dtype=np.int16)
    lengths = [len(resampler.process(chunk)) for chunk in (empty, tone(440, 8000, 0.02), empty)]
    assert lengths == [0, 320, 0]
    assert len(resampler.process(tone(440, 8000, 0.02))) == 320


def test_equal_rates_pass_chunks_through_without_copying() -> None:
    chunk = tone(1000, 16000, 0.02)
    resampler = StreamResampler(16000, 16000)
    assert resampler.process(chunk) is chunk
    assert resampler.delay_samples == 0


def test_full_scale_overshoot_saturates_instead_of_wrapping() -> None:
    square = np.tile(np.r_[np.full(20, 32767), np.full(20, -32768)], 40).astype(np.int16)
    resampler = StreamResampler(8000, 16000)
    out = stream(resampler, square, 160)
    assert out.dtype == np.int16
    middles_of_highs = np.arange(10, len(square), 40) * 2 + resampler.delay_samples
    assert out[middles_of_highs[1:]].min() > 30000


def test_one_shot_resample_keeps_length_and_pitch() -> None:
    out = resample(tone(440, 8000, 1.0), 8000, 16000)
    assert out.dtype == np.int16
    assert len(out) == 16000
    assert peak_hz(out.astype(float), 16000) == pytest.approx(440, abs=2)


def test_one_shot_resample_of_nothing_or_the_same_rate_returns_the_input() -> None:
    assert len(resample(np.zeros(0, dtype=np.int16), 8000, 16000)) == 0
    same = tone(440, 16000, 0.1)
    assert np.array_equal(resample(same, 16000, 16000), same)


def test_rates_must_be_positive() -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        StreamResampler(0, 16000)
