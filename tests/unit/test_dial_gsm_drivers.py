"""Outbound calls: every GSM driver dials on its own emulator, both on real ptys."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.lines.base import (
    Alerting,
    Connected,
    Disconnected,
    LineError,
    LineEvent,
    LineStatus,
    Ringing,
)
from appliance.lines.gsm import GsmDriver, dial_outcome, dial_string
from appliance.lines.huawei import HuaweiDriver
from appliance.lines.quectel import QuectelDriver
from appliance.lines.sim800 import Sim800Driver
from appliance.lines.simcom import SimcomDriver
from appliance.sim.huawei import HuaweiModem
from appliance.sim.quectel import QuectelModem
from appliance.sim.sim800 import Sim800Modem
from appliance.sim.simcom import SimcomModem
from tests.unit.test_alsa_audio import alsa_sim_config  # noqa: F401 - a fixture
from tests.unit.test_simcom_driver_on_emulator import (
    CALLER,
    RATE,
    Line,
    ProbePort,
    dominant_hz,
    tone,
)

CALLED = "+15557654321"
# dialect: (modem class, driver class, serial voice?, command that hangs up first)
DIALECTS: dict[str, tuple[type, type[GsmDriver], bool, str]] = {
    "simcom": (SimcomModem, SimcomDriver, True, "AT+CHUP"),
    "quectel": (QuectelModem, QuectelDriver, True, "AT+CHUP"),
    "huawei": (HuaweiModem, HuaweiDriver, True, "AT+CHUP"),
    "sim800": (Sim800Modem, Sim800Driver, False, "ATH"),
}


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request: pytest.FixtureRequest) -> str:
    if request.param == "sim800":
        request.getfixturevalue("alsa_sim_config")  # its voice goes through libasound
    return request.param


@pytest.fixture
def make_line(dialect: str) -> Iterator[Callable[..., Line]]:
    """The dialect's emulator (speed 8 unless told) with its driver running on it, idle."""
    started: list[tuple[Line, threading.Thread]] = []
    modem_class, driver_class, serial_voice, _ = DIALECTS[dialect]

    def make(speed: float = 8.0, **options: Any) -> Line:
        modem = modem_class(name=dialect, speed=speed)
        modem.start()
        audio = f"serial:{modem.audio_path}" if serial_voice else f"alsa:{modem.alsa_device}"
        events: queue.Queue[LineEvent] = queue.Queue()
        driver = driver_class(
            dialect,
            events.put,
            control=modem.control_path,
            audio=audio,
            fmt=AudioFormat(16000, 20),
            number=modem.number,
            **{"port_factory": ProbePort, **options},
        )
        line = Line(modem, driver, events)
        thread = threading.Thread(target=driver.run, name="driver-run")
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


def call_events(line: Line, timeout: float = 10.0) -> list[LineEvent]:
    """The call's events up to its Connected or Disconnected, status reports left out."""
    seen: list[LineEvent] = []
    while not seen or not isinstance(seen[-1], (Connected, Disconnected)):
        event = line.events.get(timeout=timeout)
        if not isinstance(event, LineStatus):
            seen.append(event)
    return seen


def test_a_dialled_party_rings_then_answers_and_voice_flows_both_ways(line: Line):
    assert line.driver.can_dial
    line.modem.set_far_end("answer", after=2.0)
    line.driver.dial(CALLED)
    assert line.modem.dialed == CALLED
    events = call_events(line)
    assert events[0] == Alerting() and isinstance(events[-1], Connected)
    assert len(events) == 2
    assert line.modem.state == "active"
    assert line.driver.status()["dialed"] == CALLED
    port = events[-1].port
    assert line.modem.wait_audio(timeout=5)
    line.modem.play(tone(1000, RATE))
    assert port.hundred_frames.wait(timeout=10)
    said = []
    while sum(len(f) for f in said) < RATE // 2:
        said.append(port.heard.get(timeout=5))
    loudest = max(said, key=lambda frame: int(np.abs(frame.astype(np.int32)).sum()))
    assert dominant_hz(loudest) == 1000
    heard = line.modem.heard()[-800:]
    assert np.abs(heard).max() > 4000 and dominant_hz(heard) == 400
    line.modem.hangup()  # the called party hangs up
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed


def test_the_far_end_answers_when_told(line: Line):
    line.modem.set_far_end("no-answer")
    line.driver.dial(CALLED)
    assert line.next(Alerting) == Alerting()
    assert line.modem.wait_state("alerting", timeout=5)
    line.modem.answer_far_end()
    assert isinstance(line.next(Connected), Connected)
    assert line.modem.wait_audio(timeout=5)


def test_a_busy_party_ends_the_call_as_busy(line: Line):
    line.modem.set_far_end("busy", after=0.5)
    line.driver.dial(CALLED)
    assert call_events(line) == [Disconnected("busy")]
    assert line.modem.state == "idle"


def test_a_party_declining_while_it_rings_is_busy(line: Line):
    line.modem.set_far_end("no-answer")
    line.driver.dial(CALLED)
    line.next(Alerting)
    line.modem.hangup()
    assert line.next(Disconnected) == Disconnected("busy")


def test_nobody_answering_ends_the_call_when_the_network_gives_up(make_line):
    line = make_line(speed=40.0)  # the network's 60 s pass in 1.5 s
    line.modem.set_far_end("no-answer")
    line.driver.dial(CALLED)
    assert call_events(line) == [Alerting(), Disconnected("no-answer")]
    assert line.modem.state == "idle"


def test_an_unreachable_number_fails(line: Line):
    line.modem.set_far_end("unreachable")
    line.driver.dial("555 0100")
    assert line.modem.dialed == "5550100"
    assert call_events(line) == [Disconnected("failed")]


def test_hanging_up_while_it_rings_abandons_the_call_and_the_line_takes_calls_again(
    line: Line, dialect: str
):
    line.modem.set_far_end("no-answer")
    line.driver.dial(CALLED)
    line.next(Alerting)
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)
    assert DIALECTS[dialect][3] in line.modem.commands
    line.modem.ring(CALLER)
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []
    line.driver.answer()
    assert isinstance(line.next(Connected), Connected)
    assert line.modem.wait_state("active", timeout=5)


def test_dialling_needs_an_idle_line_and_a_dialable_number(line: Line):
    with pytest.raises(LineError, match="not a dialable number"):
        line.driver.dial("call mum")
    line.modem.ring(CALLER)
    line.next(Ringing)
    with pytest.raises(LineError, match="call is in progress"):
        line.driver.dial(CALLED)
    assert not any(c.startswith("ATD") for c in line.modem.commands)


def test_the_next_dial_after_a_call_gets_its_own_outcome(line: Line):
    line.modem.set_far_end("busy", after=0.2)
    line.driver.dial(CALLED)
    assert line.next(Disconnected) == Disconnected("busy")
    line.modem.set_far_end("answer", after=0.5)
    line.driver.dial(CALLER)
    assert isinstance(call_events(line)[-1], Connected)
    assert line.modem.dialed == CALLER
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)


def test_dial_strings_and_result_codes():
    assert dial_string("+1 (555) 123-4567") == "+15551234567"
    assert dial_string("*31#0123") == "*31#0123"
    for bad in ("", "+", "12+3", "555-CALL"):
        with pytest.raises(ValueError, match="not a dialable number"):
            dial_string(bad)
    assert [dial_outcome(r) for r in ("BUSY", "NO ANSWER", "NO CARRIER", "ERROR")] == [
        "busy",
        "no-answer",
        "failed",
        "failed",
    ]
