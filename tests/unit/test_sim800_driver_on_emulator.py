"""The SIM800 driver against the SIM800 emulator: AT on a pty, voice through libasound."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
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
from appliance.lines.sim800 import Sim800Driver
from appliance.sim.sim800 import Sim800Modem
from tests.unit.test_alsa_audio import alsa_sim_config  # noqa: F401 - a fixture
from tests.unit.test_quectel_driver_on_emulator import at_exchange
from tests.unit.test_simcom_driver_on_emulator import (
    CALLER,
    RATE,
    Line,
    ProbePort,
    dominant_hz,
    tone,
)

pytestmark = pytest.mark.usefixtures("alsa_sim_config")


def start_driver(modem: Sim800Modem, **options: Any) -> Line:
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = Sim800Driver(
        "sim800",
        events.put,
        control=modem.control_path,
        audio=f"alsa:{modem.alsa_device}",
        fmt=AudioFormat(16000, 20),
        number=modem.number,
        **{"port_factory": ProbePort, **options},
    )
    return Line(modem, driver, events)  # type: ignore[arg-type]


@pytest.fixture
def make_line() -> Iterator[Callable[..., Line]]:
    """An emulated SIM800 HAT (speed 4) with the driver running on it and idle."""
    started: list[tuple[Line, threading.Thread]] = []

    def make(**options: Any) -> Line:
        modem = Sim800Modem(speed=4)
        modem.start()
        line = start_driver(modem, **options)
        thread = threading.Thread(target=line.driver.run, name="driver-run")
        thread.start()
        started.append((line, thread))
        while line.next(LineStatus).state != "idle":  # type: ignore[union-attr]
            pass
        return line

    yield make
    for line, thread in started:
        line.driver.stop()
        thread.join(timeout=10)
        line.modem.stop()
        assert not thread.is_alive()


@pytest.fixture
def line(make_line: Callable[..., Line]) -> Line:
    return make_line()


def test_the_driver_reads_the_emulated_sim800(line: Line):
    status = line.driver.status()
    assert (status["model"], status["sim"], status["registration"]) == (
        "SIMCOM_SIM800L",
        "READY",
        "home",
    )
    assert {"AT+CLCC=1", "AT+DDET=1"} <= set(line.modem.commands)


def test_a_call_rings_once_with_its_caller_id(line: Line):
    line.modem.ring(CALLER, "Grandma")
    assert line.next(Ringing) == Ringing(CALLER, "Grandma")
    line.driver.answer()
    assert [e for e in line.until(Connected) if isinstance(e, Ringing)] == []


def test_answering_carries_audio_both_ways_through_the_sound_card(make_line):
    line = make_line(port_factory=DeviceAudioPort)
    port = line.connect()
    assert isinstance(port, DeviceAudioPort)
    ticks: list[np.ndarray] = []
    enough = threading.Event()

    def tick() -> None:  # driven by the sound card's capture clock
        ticks.append(port.read_frame())
        port.write_frame(tone(400, 320, start=320 * len(ticks), rate=16000))
        if len(ticks) >= 150:
            enough.set()

    port.set_tick_listener(tick)
    line.modem.play(tone(1000, RATE // 2))
    assert enough.wait(timeout=10)
    loudest = max(ticks, key=lambda frame: int(np.abs(frame.astype(np.int32)).sum()))
    assert dominant_hz(loudest, rate=16000) == 1000
    heard_by_caller = line.modem.heard()[-800:]
    assert np.abs(heard_by_caller).max() > 4000
    assert dominant_hz(heard_by_caller) == 400


def test_the_caller_pressing_a_key_is_reported(line: Line):
    line.connect()
    line.modem.press("9")
    assert line.next(DtmfReceived) == DtmfReceived("9")


def test_the_caller_hanging_up_gives_one_disconnected(line: Line):
    port = line.connect()
    line.modem.hangup()  # +CLCC: ...,6 then NO CARRIER
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed
    line.modem.ring(CALLER)
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
    assert "ATH" in line.modem.commands


def test_a_sound_card_that_vanishes_ends_the_call(line: Line):
    line.connect()
    line.modem.unplug_sound_card()
    assert line.next(Disconnected) == Disconnected("failed")
    assert line.modem.wait_state("idle", timeout=5)  # the driver hung up the call


def test_a_silent_modem_is_a_line_error():
    with Sim800Modem(speed=4, silent=True) as modem:
        line = start_driver(modem, sync_attempts=2)
        with pytest.raises(LineError, match=r"no OK to AT after 2 attempts; is .* SIM800's AT"):
            line.driver.run()


def test_serial_audio_is_refused_for_an_analog_modem():
    with pytest.raises(LineError, match='must be "alsa:'):
        Sim800Driver(
            "sim800", lambda e: None, control="/dev/null", audio="serial:/dev/ttyUSB1",
            fmt=AudioFormat(),
        )  # fmt: skip


def test_the_emulator_speaks_the_sim800_dialect():
    with Sim800Modem(speed=4) as modem:
        lines = at_exchange(
            modem.control_path, "ATE0", "AT+DDET=1,1000,1", "AT+DDET?", "AT+DDET=2", "ATI"
        )
    assert lines == [
        "ATE0", "OK", "OK", "+DDET: 1,1000,1,0", "OK", "ERROR", "SIM800 R14.18", "OK",
    ]  # fmt: skip
