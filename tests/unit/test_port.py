"""The device audio port: resampling both ways, exact period lengths, small latency."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort

FMT = AudioFormat(rate=16000, frame_ms=20)


def tone(hz: float, rate: int, count: int, amplitude: float = 10000) -> np.ndarray:
    t = np.arange(count) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(float) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


def modem_port(**kwargs: int) -> DeviceAudioPort:
    return DeviceAudioPort("gsm0", FMT, device_rate=8000, device_frame_samples=160, **kwargs)


def test_a_tone_heard_by_an_8k_device_reaches_the_tick_at_16k_with_its_pitch() -> None:
    port = modem_port()
    heard = tone(1000, 8000, 8000)
    frames = []
    for start in range(0, len(heard), 160):
        port.device_frame_in(heard[start : start + 160])
        frames.append(port.read_frame())

    assert all(len(frame) == FMT.samples and frame.dtype == np.int16 for frame in frames)
    steady = np.concatenate(frames[5:])
    assert peak_hz(steady, 16000) == pytest.approx(1000, abs=2)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    above_band = spectrum[np.fft.rfftfreq(len(steady), 1 / 16000) > 4500]
    assert above_band.max() < spectrum.max() * 10 ** (-50 / 20), "no images above 4 kHz"
    assert port.stats()["inbound"]["underruns"] == 0


@pytest.mark.parametrize(
    ("device_rate", "device_frame_samples"),
    [(8000, 160), (8000, 80), (8000, 320), (48000, 960), (44100, 441), (16000, 256)],
)
def test_written_frames_come_out_as_exact_device_periods(
    device_rate: int, device_frame_samples: int
) -> None:
    port = DeviceAudioPort("alsa0", FMT, device_rate, device_frame_samples)
    device_period = device_frame_samples / device_rate
    written = played = 0.0
    for _ in range(200):
        while written <= played:  # the tick keeps up with the device
            port.write_frame(tone(440, FMT.rate, FMT.samples))
            written += FMT.period
        out = port.device_frame_out()
        played += device_period
        assert len(out) == device_frame_samples and out.dtype == np.int16


def test_a_played_tone_keeps_its_pitch_at_the_device_rate() -> None:
    port = modem_port()
    source = tone(700, FMT.rate, FMT.rate)
    out = []
    for start in range(0, len(source), FMT.samples):
        port.write_frame(source[start : start + FMT.samples])
        out.append(port.device_frame_out())
    assert peak_hz(np.concatenate(out[5:]), 8000) == pytest.approx(700, abs=2)


def test_path_from_device_in_through_the_tick_to_device_out_adds_little_latency() -> None:
    port = modem_port()
    port.set_tick_listener(lambda: None)  # the master: its device paces the tick
    click = np.zeros(160 * 40, dtype=np.int16)
    click[160 * 10] = 20000
    out = []
    for start in range(0, len(click), 160):  # the device thread and a tick it drives
        port.device_frame_in(click[start : start + 160])
        port.write_frame(port.read_frame())
        out.append(port.device_frame_out())

    latency_ms = (int(np.argmax(np.concatenate(out))) - 160 * 10) / 8
    # One device period (the output is taken before the tick writes) plus the two resamplers.
    assert 20 <= latency_ms < 26, latency_ms
    stats = port.stats()
    assert stats["inbound"]["underruns"] == stats["outbound"]["underruns"] == 0, stats
    assert stats["frames_in"] == stats["frames_out"] == 40


def test_the_tick_listener_hears_once_per_frame_of_device_input() -> None:
    calls = []
    port = DeviceAudioPort("usb0", FMT, device_rate=8000, device_frame_samples=80)  # 10 ms
    port.set_tick_listener(lambda: calls.append(1))
    for _ in range(10):
        port.device_frame_in(np.zeros(80, dtype=np.int16))
    assert len(calls) == 5

    long_periods = DeviceAudioPort("usb1", FMT, device_rate=8000, device_frame_samples=320)
    long_periods.set_tick_listener(lambda: calls.append(2))
    long_periods.device_frame_in(np.zeros(320, dtype=np.int16))
    assert calls.count(2) == 2

    port.set_tick_listener(None)
    port.device_frame_in(np.zeros(80, dtype=np.int16))
    assert len(calls) == 7


def test_jitter_target_sets_how_much_the_tick_waits_for() -> None:
    port = modem_port(target_ms=60)
    frame = tone(1000, 8000, 160)
    port.device_frame_in(frame)
    port.device_frame_in(frame)
    assert not port.read_frame().any(), "40 ms buffered, 60 wanted: still priming"
    port.set_jitter_target(0)  # off: one frame is enough
    assert port.read_frame().any()
    assert port.stats()["jitter_target_ms"] == 0
    with pytest.raises(ValueError, match="negative"):
        port.set_jitter_target(-20)


def test_a_closed_port_gives_silence_of_the_right_lengths_and_stops_signalling() -> None:
    calls = []
    port = modem_port()
    port.set_tick_listener(lambda: calls.append(1))
    port.close()
    assert port.closed
    port.device_frame_in(tone(1000, 8000, 160))
    assert calls == []
    assert np.array_equal(port.read_frame(), FMT.silence())
    out = port.device_frame_out()
    assert len(out) == 160 and not out.any()


def test_repr_names_the_port_and_its_rates() -> None:
    assert repr(modem_port()) == "DeviceAudioPort('gsm0', 8000 Hz x 160 <-> 16000 Hz x 320, open)"


def test_off_the_master_clock_the_first_outbound_gap_buys_a_frame_of_headroom() -> None:
    port = modem_port()
    period = FMT.samples
    assert port._outbound.target == period, "two clocks in step need no more than a period"
    for _ in range(50):  # the tick and the device in step
        port.write_frame(tone(440, FMT.rate, FMT.samples))
        port.device_frame_out()
    assert port._outbound.target == period and port.stats()["outbound"]["underruns"] == 0
    port.device_frame_out()  # the device came twice between two ticks: their phases crossed
    assert port.stats()["outbound"]["underruns"] == 1
    assert port._outbound.target == 2 * period, "a frame more from now on"


def test_the_master_keeps_one_period_outbound_whatever_happens() -> None:
    port = modem_port()
    port.set_tick_listener(lambda: None)
    port.write_frame(tone(440, FMT.rate, FMT.samples))
    port.device_frame_out()
    port.device_frame_out()  # a late tick (a busy machine), not another clock
    assert port.stats()["outbound"]["underruns"] == 1
    assert port._outbound.target == FMT.samples


@pytest.mark.parametrize("ppm", [300, -300])
def test_a_port_on_a_drifting_clock_gaps_at_most_once_then_slips_one_way(ppm: int) -> None:
    # Simulated time: the modem's periods (+-5 ms of jitter) against the tick's frames.
    rng = np.random.default_rng(3)
    port = modem_port(target_ms=60)  # Twilio's default jitterBufferSize, "large"
    seconds, period = 300, FMT.period
    device = np.arange(int(seconds / period)) * period / (1 + ppm * 1e-6) + 0.3 * period
    device = np.maximum.accumulate(device + rng.uniform(-0.005, 0.005, len(device)))
    ticks = np.arange(int(seconds / period)) * period
    ticks = ticks[ticks < device[-1] - 0.1]  # no ticks after the device's last period
    device = device[device < ticks[-1]]  # and none after the tick's last frame
    events = sorted([(t, 0) for t in device] + [(t, 1) for t in ticks])
    silence = np.zeros(160, dtype=np.int16)
    for _, kind in events:
        if kind == 0:
            port.device_frame_in(silence)
            port.device_frame_out()
        else:
            port.read_frame()
            port.write_frame(FMT.silence())
    stats = port.stats()
    inbound, outbound = stats["inbound"], stats["outbound"]
    assert inbound["underruns"] == 0, stats
    if ppm > 0:  # the device takes faster than the tick gives: one gap at the first crossing
        assert outbound["underruns"] == 1, stats
        assert port._outbound.target == 2 * FMT.samples, "a frame more after it"
    else:  # it takes slower: the fill only ever steps up, one period is enough
        assert outbound["underruns"] == 0 and port._outbound.target == FMT.samples, stats
    # A fast device (ppm > 0): inbound drops what it adds, outbound stretches; and vice versa.
    drift = abs(ppm) * 1e-6 * FMT.rate * seconds  # 1440 samples
    keys = [("inbound", "slips_dropped"), ("outbound", "slips_added")]
    if ppm < 0:
        keys = [("inbound", "slips_added"), ("outbound", "slips_dropped")]
    wrong_way = {"slips_added": "slips_dropped", "slips_dropped": "slips_added"}
    for side, key in keys:
        assert 0.5 * drift < stats[side][key] < 1.2 * drift, stats
        assert stats[side][wrong_way[key]] == 0, stats
