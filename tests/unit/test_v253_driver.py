"""The real V.253 driver against both emulated modems (USR 5637, Conexant) over real ptys."""

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
    LineError,
    LineEvent,
    LineStatus,
    Ringing,
)
from appliance.lines.v253 import CODECS, V253Driver
from appliance.sim.v253 import V253Modem

RATE = 8000
CALLER = "5551234567"
VARIANTS = ["usr", "conexant"]


def tone(hz: float, samples: int, start: int = 0, amplitude: int = 8000, rate: int = RATE):
    t = np.arange(start, start + samples) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


class ProbePort:
    """The device side of a DeviceAudioPort: keeps what the caller said, says ``outgoing``."""

    outgoing: Callable[[int, int], np.ndarray] = staticmethod(  # type: ignore[assignment]
        lambda index, samples: tone(400, samples, start=index * samples)
    )

    def __init__(self, name: str, fmt: AudioFormat, device_rate: int, device_frame_samples: int):
        self.name, self.samples = name, device_frame_samples
        self.heard: queue.Queue[np.ndarray] = queue.Queue()
        self.frames_in = self.frames_out = 0
        self.closed = False

    def device_frame_in(self, samples: np.ndarray) -> None:
        self.heard.put(samples.copy())
        self.frames_in += 1

    def device_frame_out(self) -> np.ndarray:
        frame = self.outgoing(self.frames_out, self.samples)
        self.frames_out += 1
        return frame

    def close(self) -> None:
        self.closed = True


@dataclass
class Line:
    modem: V253Modem
    driver: V253Driver
    events: queue.Queue[LineEvent]

    def next(self, kind: type, timeout: float = 10.0) -> Any:
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

    def pending(self) -> list[LineEvent]:
        seen = []
        while not self.events.empty():
            seen.append(self.events.get_nowait())
        return seen

    def connect(self) -> Any:
        self.modem.ring(CALLER, "Grandma")
        self.next(Ringing)
        self.driver.answer()
        return self.next(Connected).port


@pytest.fixture
def make_line() -> Iterator[Callable[..., Line]]:
    """An emulated modem (speed 4: rings every 1.5 s) with the driver running on it."""
    started: list[tuple[V253Modem, V253Driver, threading.Thread]] = []

    def make(variant: str = "usr", *, modem: dict[str, Any] | None = None, **options: Any):
        emulator = V253Modem(variant=variant, speed=4, **(modem or {}))
        emulator.start()
        events: queue.Queue[LineEvent] = queue.Queue()
        driver = V253Driver(
            "pots0",
            events.put,
            control=emulator.control_path,
            fmt=AudioFormat(16000, 20),
            number="+15550000001",
            **{"port_factory": ProbePort, "ring_timeout": 2.5, "cid_wait": 1.2, **options},
        )
        thread = threading.Thread(target=driver.run, name="driver-run")
        thread.start()
        started.append((emulator, driver, thread))
        line = Line(emulator, driver, events)
        while line.next(LineStatus).state != "idle":
            pass
        return line

    yield make
    for emulator, driver, thread in started:
        driver.stop()
        thread.join(timeout=10)
        emulator.stop()
        assert not thread.is_alive()


@pytest.mark.parametrize("variant", VARIANTS)
def test_setup_resets_turns_caller_id_on_and_picks_ulaw(make_line, variant):
    line = make_line(variant)
    commands = line.modem.commands
    assert commands.index("ATZ") < commands.index("AT+FCLASS=8") < commands.index("AT+VCID=1")
    assert "AT+VSM=131,8000" in commands
    status = line.driver.status()
    assert status["voice_format"] == "ulaw (AT+VSM=131,8000)"
    assert status["product"] == {"usr": "5601", "conexant": "56000"}[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_call_is_announced_once_with_its_caller_id(make_line, variant):
    line = make_line(variant)
    line.modem.ring(CALLER, "Grandma")
    assert line.next(Ringing) == Ringing(CALLER, "Grandma")
    assert line.modem.wait_rings(3, timeout=10)
    assert [e for e in line.pending() if isinstance(e, Ringing)] == []


def test_a_withheld_number_rings_without_caller_id(make_line):
    line = make_line()
    line.modem.ring("")
    assert line.next(Ringing) == Ringing("", "")


def test_caller_id_before_the_first_ring_on_a_uk_line(make_line):
    line = make_line("conexant", modem={"country": "uk"})
    line.modem.ring(CALLER)
    assert line.next(Ringing) == Ringing(CALLER, "")
    assert line.modem.rings == 1


def test_a_line_without_caller_id_rings_at_the_second_ring(make_line):
    line = make_line(modem={"cid_service": False}, cid_wait=10.0)
    line.modem.ring(CALLER)
    assert line.next(Ringing) == Ringing("", "")
    assert line.modem.rings >= 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_answering_carries_audio_both_ways_on_the_tick(make_line, variant):
    line = make_line(variant, port_factory=DeviceAudioPort)
    port: DeviceAudioPort = line.connect()
    assert isinstance(port, DeviceAudioPort) and line.modem.wait_audio(timeout=5)
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
    assert len(loudest) == 320 and dominant_hz(loudest, rate=16000) == 1000
    heard_by_caller = line.modem.heard()[-800:]
    assert np.abs(heard_by_caller).max() > 4000 and dominant_hz(heard_by_caller) == 400


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_modems_stream_paces_the_port(make_line, variant):
    port = make_line(variant).connect()
    for _ in range(60):
        frame = port.heard.get(timeout=5)
        assert len(frame) == 160 and frame.dtype == np.int16
    # one period written for each period read (the last one may be on its way)
    assert port.frames_in - 1 <= port.frames_out <= port.frames_in


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_key_is_reported_once(make_line, variant):
    line = make_line(variant)
    line.connect()
    line.modem.press("12#")
    line.modem.press("9")
    keys = [line.next(DtmfReceived).digit for _ in range(4)]
    assert keys == ["1", "2", "#", "9"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_caller_hanging_up_gives_one_disconnected(make_line, variant):
    line = make_line(variant)
    port = line.connect()
    line.modem.hangup()
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed
    assert line.modem.wait_on_hook(timeout=5) and not line.modem.audio_active
    assert line.modem.commands[-1] == "ATH0"
    line.modem.ring(CALLER)  # the next call proves no second Disconnected was on its way
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_hanging_up_ends_the_stream_then_goes_on_hook(make_line, variant):
    line = make_line(variant)
    line.connect()
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5) and line.modem.wait_on_hook(timeout=5)
    assert line.modem.last_stream_end == "^"
    assert line.modem.commands[-1] == "ATH0"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_dle_byte_in_the_audio_survives_both_ways(make_line, variant):
    dle_sample = int(CODECS["ulaw"].decode(b"\x10")[0])
    pattern = np.array([dle_sample, 0, dle_sample, dle_sample], np.int16)

    class DlePort(ProbePort):
        outgoing = staticmethod(lambda index, samples: np.resize(pattern, samples))

    line = make_line(variant, port_factory=DlePort)
    port = line.connect()
    said = np.resize(pattern, 4 * 160)
    line.modem.play(said)
    received = np.concatenate([port.heard.get(timeout=5) for _ in range(40)])
    start = int(np.argmax(received == dle_sample))
    assert received[start : start + len(said)].tolist() == said.tolist()
    # Frame by frame: on a starved machine a late answer leaves a frame of silence between.
    heard = line.modem.heard()
    frames = heard[: len(heard) // 160 * 160].reshape(-1, 160)
    sounding = [frame.tolist() for frame in frames if frame.any()]
    assert len(sounding) >= 10
    assert all(frame == np.resize(pattern, 160).tolist() for frame in sounding)


@pytest.mark.parametrize(("variant", "cml", "codec"), [("usr", 128, "u8"), ("conexant", 0, "s8")])
def test_8_bit_linear_when_the_modem_has_no_g711(make_line, variant, cml, codec):
    line = make_line(variant, modem={"formats": [cml]})
    assert f"AT+VSM={cml},8000" in line.modem.commands
    port = line.connect()
    assert line.modem.voice_format == codec
    line.modem.play(tone(1000, RATE // 4))
    while np.abs(frame := port.heard.get(timeout=5)).max() < 4000:
        pass
    assert dominant_hz(frame) == 1000


def test_a_caller_giving_up_while_ringing_ends_the_call(make_line):
    line = make_line()
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.modem.cancel_ring()
    assert line.next(Disconnected) == Disconnected("remote")
    assert not line.modem.off_hook


def test_hanging_up_a_ringing_call_picks_it_up_and_puts_it_down(make_line):
    line = make_line()
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.commands[-2:] == ["AT+VLS=1", "ATH0"]
    assert line.modem.wait_state("idle", timeout=5) and not line.modem.off_hook


def test_a_modem_without_full_duplex_voice_cannot_answer(make_line):
    line = make_line(modem={"duplex": False})
    line.modem.ring(CALLER)
    line.next(Ringing)
    with pytest.raises(LineError, match="full-duplex"):
        line.driver.answer()
    assert line.next(Disconnected) == Disconnected("failed")
    assert line.modem.commands[-2:] == ["AT+VTR", "ATH0"]
    assert line.modem.wait_on_hook(timeout=5)


def test_after_a_call_the_line_takes_the_next_one(make_line):
    line = make_line("conexant")
    line.connect()
    line.driver.hangup()
    line.next(Disconnected)
    port = line.connect()
    line.modem.press("7")
    assert line.next(DtmfReceived) == DtmfReceived("7")
    assert port.heard.get(timeout=5) is not None


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_handset_on_the_line_picked_up_and_put_down_does_not_end_the_call(make_line, variant):
    line = make_line(variant)
    line.connect()
    line.modem.extension(True)
    line.modem.extension(False)
    line.modem.press("4")
    seen = line.until(DtmfReceived) + line.pending()
    assert DtmfReceived("4") in seen
    assert [e for e in seen if isinstance(e, Disconnected)] == []
    line.modem.hangup()
    assert line.next(Disconnected) == Disconnected("remote")
