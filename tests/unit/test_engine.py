"""The audio engine: timer ticks on absolute deadlines, device clocks as master, fallbacks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from appliance.audio.engine import AudioEngine
from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort

FMT = AudioFormat(rate=16000, frame_ms=20)
WAIT = 10.0  # seconds; only reached when something is broken


class TickRecorder:
    """An on_tick that records each tick's time and kind, then works (or fails) if asked.

    Tests wait on it, never sleep.
    """

    def __init__(self, work: Callable[[], None] | None = None) -> None:
        self.engine: AudioEngine | None = None
        self.times: list[float] = []
        self.device_ticks: list[int] = []
        self._work = work
        self._changed = threading.Condition()

    def __call__(self) -> None:
        assert self.engine is not None
        device_ticks = self.engine.stats()["device_ticks"]
        with self._changed:
            self.times.append(time.monotonic())
            self.device_ticks.append(device_ticks)
            self._changed.notify_all()
        if self._work is not None:
            self._work()

    def wait_for(self, condition: Callable[[], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, WAIT), self.engine

    def wait_for_ticks(self, count: int) -> None:
        self.wait_for(lambda: len(self.times) >= count)


@pytest.fixture
def make_engine() -> Iterator[Callable[..., tuple[AudioEngine, TickRecorder]]]:
    engines: list[AudioEngine] = []

    def make(
        speed: float = 1.0, work: Callable[[], None] | None = None
    ) -> tuple[AudioEngine, TickRecorder]:
        recorder = TickRecorder(work)
        engine = AudioEngine(FMT, recorder, speed=speed)
        recorder.engine = engine
        engines.append(engine)
        return engine, recorder

    yield make
    for engine in engines:
        engine.stop()


def modem(name: str = "gsm0", device_frame_samples: int = 160) -> DeviceAudioPort:
    return DeviceAudioPort(name, FMT, device_rate=8000, device_frame_samples=device_frame_samples)


def feed(port: DeviceAudioPort) -> None:
    """What a device transport does once per period."""
    port.device_frame_in(np.zeros(port.device_frame_samples, dtype=np.int16))
    port.device_frame_out()


def busy(seconds: float) -> Callable[[], None]:
    def work() -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    return work


def test_without_a_device_a_timer_ticks_on_absolute_deadlines(make_engine) -> None:
    speed = 2
    period = FMT.period / speed
    # Each tick works for half a period: sleeping a period after each tick would make the
    # ticks 1.5 periods apart; deadlines at start + n * period keep them one period apart.
    engine, ticks = make_engine(speed=speed, work=busy(period / 2))
    engine.start()
    ticks.wait_for_ticks(41)
    engine.stop()

    spans = np.diff(ticks.times[:41])
    assert 0.95 * period < np.mean(spans) < 1.2 * period, engine
    assert engine.stats()["timer_ticks"] == engine.ticks >= 41
    assert engine.master is None


def test_a_port_fed_by_its_device_becomes_master_and_paces_the_tick(make_engine) -> None:
    engine, ticks = make_engine(speed=0.01)  # the timer alone would tick every 2 s
    port = modem()
    engine.attach(port)
    engine.start()
    ticks.wait_for_ticks(1)  # the timer's first tick, at start
    for n in range(2, 52):
        feed(port)
        ticks.wait_for_ticks(n)

    assert engine.master is port
    stats = engine.stats()
    assert stats["device_ticks"] == 50 and stats["timer_ticks"] == 1, stats


def test_a_device_period_of_two_frames_gives_two_ticks(make_engine) -> None:
    engine, ticks = make_engine(speed=0.01)
    port = modem(device_frame_samples=320)  # 40 ms periods
    engine.attach(port)
    engine.start()
    ticks.wait_for_ticks(1)
    for n in range(1, 11):
        feed(port)
        ticks.wait_for_ticks(1 + 2 * n)
    assert engine.stats()["device_ticks"] == 20


def test_a_stalled_master_falls_back_to_the_timer_and_takes_over_again(make_engine) -> None:
    engine, ticks = make_engine(speed=10)  # 2 ms periods: stalled after 6 ms
    port = modem()
    engine.attach(port)
    engine.start()
    for _ in range(5):
        seen = engine.stats()["device_ticks"]
        feed(port)
        ticks.wait_for(lambda seen=seen: ticks.device_ticks[-1] > seen)

    # The device goes quiet: the timer keeps the room alive.
    timer_before = engine.stats()["timer_ticks"]
    ticks.wait_for(lambda: engine.stats()["timer_ticks"] >= timer_before + 20)
    assert engine.master is port

    # It comes back: its frames drive the tick again.
    seen = engine.stats()["device_ticks"]
    feed(port)
    ticks.wait_for(lambda: ticks.device_ticks[-1] > seen)


def test_an_exception_in_on_tick_is_logged_and_ticking_goes_on(
    make_engine, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> None:
        raise RuntimeError("mixer bug")

    engine, ticks = make_engine(speed=10, work=fail)
    with caplog.at_level(logging.ERROR, logger="appliance.audio.engine"):
        engine.start()
        ticks.wait_for_ticks(5)
        engine.stop()
    assert engine.ticks >= 5
    assert caplog.text.count("mixer bug") >= 5


def test_detaching_the_master_elects_the_next_open_port(make_engine) -> None:
    engine, _ = make_engine()
    first, second, third = modem("a"), modem("b"), modem("c")
    for port in (first, second, third):
        engine.attach(port)
    assert engine.master is first

    second.close()
    engine.detach(first)
    assert engine.master is third

    engine.detach(third)
    assert engine.master is None


def test_only_the_master_signals_the_engine(make_engine) -> None:
    engine, ticks = make_engine(speed=0.01)
    master, other = modem("a"), modem("b")
    engine.attach(master)
    engine.attach(other)
    engine.start()
    ticks.wait_for_ticks(1)
    for _ in range(5):
        feed(other)
    feed(master)
    ticks.wait_for_ticks(2)
    assert engine.stats()["device_ticks"] == 1


def test_last_tick_age_tells_a_watchdog_whether_the_tick_is_alive(make_engine) -> None:
    engine, ticks = make_engine(speed=10)
    assert engine.last_tick_age() == float("inf")
    engine.start()
    ticks.wait_for_ticks(3)
    assert engine.last_tick_age() < 1.0
    engine.stop()


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        AudioEngine(FMT, lambda: None, speed=0)
