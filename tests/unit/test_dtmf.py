"""In-band DTMF detection against ITU-T Q.24's limits, and the merger of in-band and modem keys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.audio.dtmf import DtmfDetector, KeyMerger
from appliance.audio.tones import DTMF_FREQS, dtmf

KEYS = "123A456B789C*0#D"
RATES = (8000, 16000)
MOH = Path("/usr/share/asterisk/moh")
SPEECH = (
    "Welcome to the family conference line. Please enter your PIN, followed by the pound key. "
    "I think we should meet at seven o'clock at the station, unless the train is late again. "
    "One, two, three, four, five, six, seven, eight, nine, zero. Could you repeat that please?"
)


def pair(
    key: str,
    ms: float,
    rate: int,
    offsets: tuple[float, float] = (0.0, 0.0),
    level_db: float = -20.0,
    seed: int = 0,
) -> np.ndarray:
    """A DTMF pair with each tone moved by a relative ``offsets``, 5 ms ramps, as float."""
    rng = np.random.default_rng(seed)
    n = round(rate * ms / 1000)
    t = np.arange(n) / rate
    signal = np.zeros(n)
    for freq, offset in zip(DTMF_FREQS[key], offsets, strict=True):
        phase = rng.uniform(0, 2 * np.pi)
        signal += 10 ** (level_db / 20) * np.sin(2 * np.pi * freq * (1 + offset) * t + phase)
    ramp = min(round(rate * 0.005), n // 2)
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    signal[:ramp] *= rise
    signal[n - ramp :] *= rise[::-1]
    return signal


def pcm(signal: np.ndarray) -> np.ndarray:
    if signal.dtype == np.int16:
        return signal
    return np.clip(np.round(signal * 32767), -32768, 32767).astype(np.int16)


def silence(ms: float, rate: int) -> np.ndarray:
    return np.zeros(round(rate * ms / 1000), dtype=np.int16)


def detect(rate: int, *parts: np.ndarray, chunk: int = 0) -> str:
    """Keys found in ``parts`` played one after the other, fed in frames of ``chunk`` samples."""
    audio = np.concatenate([silence(30, rate), *map(pcm, parts), silence(100, rate)])
    chunk = chunk or rate // 50
    detector = DtmfDetector(rate)
    found: list[str] = []
    for start in range(0, len(audio), chunk):
        found += detector.feed(audio[start : start + chunk])
    return "".join(found)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("key", KEYS)
def test_every_key_is_detected_once(rate, key):
    assert detect(rate, dtmf(key, 100, rate)) == key


@pytest.mark.parametrize("rate", RATES)
def test_40_ms_tones_are_accepted_at_any_alignment(rate):
    for lead_ms in range(0, 20, 3):
        for key in KEYS:
            assert detect(rate, silence(lead_ms, rate), dtmf(key, 40, rate)) == key, lead_ms


@pytest.mark.parametrize("rate", RATES)
def test_20_ms_tones_are_rejected(rate):
    for lead_ms in range(0, 20, 3):
        for key in KEYS:
            assert detect(rate, silence(lead_ms, rate), dtmf(key, 20, rate)) == ""


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("offsets", [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015)])
def test_frequencies_1_5_percent_off_are_accepted(rate, offsets):
    for seed, key in enumerate(KEYS):
        assert detect(rate, pair(key, 50, rate, offsets, seed=seed)) == key


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("offsets", [(0.035, 0.035), (-0.035, -0.035), (0.035, 0.0), (0.0, -0.035)])
def test_frequencies_3_5_percent_off_are_rejected(rate, offsets):
    for seed, key in enumerate(KEYS):
        assert detect(rate, pair(key, 100, rate, offsets, seed=seed)) == ""


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("twist_db", [-8.0, -4.0, 4.0, 8.0])
def test_twist_within_8_db_either_way_is_accepted(rate, twist_db):
    for key in KEYS:
        assert detect(rate, dtmf(key, 50, rate, level_db=-20, twist_db=twist_db)) == key


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("twist_db", [-12.0, 12.0])
def test_twist_beyond_the_limit_is_rejected(rate, twist_db):
    for key in KEYS:
        assert detect(rate, dtmf(key, 100, rate, level_db=-20, twist_db=twist_db)) == ""


@pytest.mark.parametrize("rate", RATES)
def test_tones_below_minus_30_dbm0_are_ignored(rate):
    assert detect(rate, dtmf("5", 100, rate, level_db=-28)) == "5"
    assert detect(rate, dtmf("5", 100, rate, level_db=-40)) == ""


@pytest.mark.parametrize("rate", RATES)
def test_tones_in_noise_at_20_db_snr_are_accepted(rate):
    rng = np.random.default_rng(7)
    sequence = KEYS * 2
    tones = np.concatenate(
        [np.concatenate([silence(80, rate), dtmf(key, 40, rate, level_db=-20)]) for key in sequence]
    ).astype(np.float64)
    tone_power = 2 * 0.5 * (32767 * 10 ** (-20 / 20)) ** 2
    noisy = tones + rng.normal(0, np.sqrt(tone_power / 100), len(tones))
    assert detect(rate, pcm(noisy / 32767)) == sequence


@pytest.mark.parametrize("rate", RATES)
def test_a_long_press_is_reported_once(rate):
    assert detect(rate, dtmf("#", 3000, rate)) == "#"


@pytest.mark.parametrize("rate", RATES)
def test_a_fast_sequence_is_decoded_in_order(rate):
    parts = [part for key in "1234567890" for part in (dtmf(key, 50, rate), silence(50, rate))]
    assert detect(rate, *parts) == "1234567890"


@pytest.mark.parametrize("rate", RATES)
def test_the_same_key_twice_with_a_pause_is_two_presses(rate):
    assert detect(rate, dtmf("7", 60, rate), silence(40, rate), dtmf("7", 60, rate)) == "77"


@pytest.mark.parametrize("rate", RATES)
def test_an_interruption_of_10_ms_is_not_a_pause(rate):
    tone = pcm(pair("9", 200, rate))
    tone[round(rate * 0.08) : round(rate * 0.09)] = 0
    assert detect(rate, tone) == "9"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=40))
def test_frame_sizes_do_not_change_what_is_found(sizes):
    rate = 8000
    audio = np.concatenate(
        [part for key in "5#5" for part in (dtmf(key, 45, rate), silence(45, rate))]
    )
    detector = DtmfDetector(rate)
    found: list[str] = []
    start = 0
    while start < len(audio):
        for size in sizes:
            found += detector.feed(audio[start : start + size])
            start += size
    assert "".join(found) == "5#5"


def test_a_rate_below_8_khz_is_refused():
    with pytest.raises(ValueError, match="8000 Hz"):
        DtmfDetector(4000)


def resampled(path: Path, rate: int) -> np.ndarray:
    data, source_rate = soundfile.read(path, dtype="float64", always_2d=True)
    return pcm(soxr.resample(data.mean(axis=1), source_rate, rate))


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[Path]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    folder = tmp_path_factory.mktemp("speech")
    paths = []
    for voice in ("en-us", "en-us+f3", "en-gb+m3", "de+f2", "fr-fr+m4"):
        path = folder / f"{voice}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), SPEECH], check=True)
        paths.append(path)
    return paths


@pytest.mark.parametrize("rate", RATES)
def test_speech_is_not_taken_for_keys(speech, rate):
    for path in speech:
        assert detect(rate, resampled(path, rate), chunk=rate) == "", path.name


@pytest.mark.parametrize("rate", RATES)
def test_hold_music_is_not_taken_for_keys(rate):
    files = sorted(MOH.glob("*.wav"))
    if not files:
        pytest.skip(f"no hold music in {MOH}")
    for path in files:
        assert detect(rate, resampled(path, rate), chunk=rate) == "", path.name


def test_the_modem_report_of_an_inband_press_is_swallowed():
    merger = KeyMerger()
    assert merger.from_inband("5", 10.00)
    assert not merger.from_modem("5", 10.12)


def test_the_inband_detection_of_a_modem_press_is_swallowed():
    merger = KeyMerger(window_ms=200)
    assert merger.from_modem("#", 3.0)
    assert not merger.from_inband("#", 3.05)


def test_a_second_real_press_of_the_same_key_gets_through():
    merger = KeyMerger()
    assert merger.from_modem("1", 1.0)
    assert not merger.from_inband("1", 1.04)
    assert merger.from_modem("1", 1.15)  # the modem saw a new press
    assert not merger.from_inband("1", 1.19)
    assert merger.from_inband("1", 1.30)
    assert not merger.from_modem("1", 1.34)


def test_reports_outside_the_window_or_of_other_keys_are_delivered():
    merger = KeyMerger(window_ms=200)
    assert merger.from_modem("2", 5.0)
    assert merger.from_inband("3", 5.05)
    assert not merger.from_modem("3", 5.1)
    assert merger.from_inband("2", 5.3)


def test_keys_from_one_source_alone_are_all_delivered():
    merger = KeyMerger()
    assert [merger.from_inband(key, 0.1 * i) for i, key in enumerate("1212")] == [True] * 4
