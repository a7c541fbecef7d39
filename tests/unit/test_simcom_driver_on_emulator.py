"""The real SIMCom driver against the SIM7600 emulator, both on real ptys."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort
from appliance.lines.base import (
    Connected,
    Disconnected,
    DtmfReceived,
    LineEvent,
    LineStatus,
    Ringing,
)
from appliance.lines.simcom import SimcomDriver
from appliance.sim.simcom import SimcomModem

RATE = 8000
CALLER = "+15551234567"


def tone(
    hz: float, samples: int, start: int = 0, amplitude: int = 8000, rate: int = RATE
) -> np.ndarray:
    t = np.arange(start, start + samples) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


class ProbePort:
    """The device side of a DeviceAudioPort: keeps what the caller said, says a 400 Hz tone."""

    def __init__(self, name: str, fmt: AudioFormat, device_rate: int, device_frame_samples: int):
        self.device_rate, self.samples = device_rate, device_frame_samples
        self.heard: queue.Queue[np.ndarray] = queue.Queue()
        self.frames_in = 0
        self.frames_out = 0
        self.hundred_frames = threading.Event()
        self.closed = False

    def device_frame_in(self, samples: np.ndarray) -> None:
        self.heard.put(samples)
        self.frames_in += 1
        if self.frames_in >= 100:
            self.hundred_frames.set()

    def device_frame_out(self) -> np.ndarray:
        frame = tone(400, self.samples, start=self.frames_out * self.samples)
        self.frames_out += 1
        return frame

    def close(self) -> None:
        self.closed = True


@dataclass
class Line:
    modem: SimcomModem
    driver: SimcomDriver
    events: queue.Queue[LineEvent]

    def next(self, kind: type, timeout: float = 10.0) -> LineEvent:
        while True:
            event = self.events.get(timeout=timeout)
            if isinstance(event, kind):
                return event

    def until(self, kind: type, timeout: float = 10.0) -> list[LineEvent]:
        seen = []
        while True:
            seen.append(self.events.get(timeout=timeout))
            if isinstance(seen[-1], kind):
                return seen

    def connect(self) -> ProbePort:
        self.modem.ring(CALLER, "Grandma")
        self.next(Ringing)
        self.driver.answer()
        event = self.next(Connected)
        assert isinstance(event, Connected)
        return event.port  # type: ignore[return-value]


@pytest.fixture
def make_line() -> Iterator[Callable[..., Line]]:
    """An emulated SIM7600 (speed 4) with the driver running on it; ``options`` for the driver."""
    started: list[tuple[SimcomModem, SimcomDriver, threading.Thread]] = []

    def make(**options: Any) -> Line:
        modem = SimcomModem(speed=4)
        modem.start()
        events: queue.Queue[LineEvent] = queue.Queue()
        driver = SimcomDriver(
            "sim0",
            events.put,
            control=modem.control_path,
            audio=f"serial:{modem.audio_path}",
            fmt=AudioFormat(16000, 20),
            number=modem.number,
            **{"port_factory": ProbePort, **options},
        )
        thread = threading.Thread(target=driver.run, name="driver-run")
        thread.start()
        started.append((modem, driver, thread))
        line = Line(modem, driver, events)
        while line.next(LineStatus).state != "idle":  # type: ignore[union-attr]
            pass
        return line

    yield make
    for modem, driver, thread in started:
        driver.stop()
        thread.join(timeout=10)
        modem.stop()
        assert not thread.is_alive()


@pytest.fixture
def line(make_line: Callable[..., Line]) -> Line:
    return make_line()


def test_the_driver_reads_the_emulated_modem(line: Line):
    status = line.driver.status()
    assert (status["model"], status["operator"], status["sim"]) == (
        "SIMCOM_SIM7600G-H",
        "Simulated",
        "READY",
    )
    assert (status["csq"], status["signal_dbm"], status["registration"]) == (23, -67, "home")


def test_a_call_rings_with_its_caller_id(line: Line):
    line.modem.ring(CALLER, "Grandma")
    assert line.next(Ringing) == Ringing(CALLER, "Grandma")


def test_answering_streams_audio_both_ways_at_the_device_rate(line: Line):
    port = line.connect()
    assert line.modem.wait_audio(timeout=5)
    line.modem.play(tone(1000, RATE // 4))
    while True:  # the caller's tone reaches device_frame_in
        frame = port.heard.get(timeout=5)
        assert len(frame) == 160 and frame.dtype == np.int16
        if np.abs(frame).max() > 4000:
            break
    assert dominant_hz(frame) == 1000
    assert port.hundred_frames.wait(timeout=10)
    # One frame read per frame the modem sent: the modem's clock paces the transport.
    frames_in = port.frames_in
    sent = line.modem.stats()["frames"]
    assert sent - 10 <= frames_in <= sent
    heard = line.modem.heard()[-800:]  # and what the port said reached the caller
    assert np.abs(heard).max() > 4000
    assert dominant_hz(heard) == 400


def test_a_real_device_audio_port_carries_the_call_at_the_tick_rate(make_line):
    line = make_line(port_factory=DeviceAudioPort)
    event_port = line.connect()
    assert isinstance(event_port, DeviceAudioPort)
    port: DeviceAudioPort = event_port
    ticks: list[np.ndarray] = []
    enough = threading.Event()

    def tick() -> None:  # the engine's work, driven by the modem's clock as its master
        ticks.append(port.read_frame())
        port.write_frame(tone(400, 320, start=320 * len(ticks), rate=16000))
        if len(ticks) >= 150:
            enough.set()

    port.set_tick_listener(tick)
    line.modem.play(tone(1000, RATE // 2))
    assert enough.wait(timeout=10)
    loudest = max(ticks, key=lambda frame: int(np.abs(frame.astype(np.int32)).sum()))
    assert len(loudest) == 320  # 20 ms at the 16 kHz tick rate, resampled from 8 kHz
    assert dominant_hz(loudest, rate=16000) == 1000
    heard_by_caller = line.modem.heard()[-800:]
    assert np.abs(heard_by_caller).max() > 4000
    assert dominant_hz(heard_by_caller) == 400


def test_the_caller_pressing_a_key_is_reported(line: Line):
    line.connect()
    line.modem.press("5")
    assert line.next(DtmfReceived) == DtmfReceived("5")


def test_the_caller_hanging_up_gives_one_disconnected(line: Line):
    port = line.connect()
    line.modem.hangup()
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed and not line.modem.audio_active
    line.modem.ring(CALLER)  # the next call proves no second Disconnected was on its way
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


def test_a_caller_giving_up_while_ringing_ends_the_call(line: Line):
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.modem.cancel_ring()
    assert line.next(Disconnected) == Disconnected("remote")


def test_hanging_up_leaves_the_modem_idle(line: Line):
    line.connect()
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)
    assert "AT+CHUP" in line.modem.commands
