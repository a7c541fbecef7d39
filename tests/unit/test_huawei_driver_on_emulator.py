"""The Huawei driver against the E1550 emulator, both on real ptys."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from appliance.audio.dtmf import DtmfDetector
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
from appliance.lines.huawei import CallEnd, HuaweiDriver, parse_cend, parse_cvoice
from appliance.sim.huawei import HuaweiModem
from tests.unit.test_quectel_driver_on_emulator import at_exchange
from tests.unit.test_simcom_driver_on_emulator import (
    CALLER,
    RATE,
    Line,
    ProbePort,
    dominant_hz,
    tone,
)


def start_driver(modem: HuaweiModem, **options: Any) -> Line:
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = HuaweiDriver(
        "e1550",
        events.put,
        control=modem.control_path,
        audio=f"serial:{modem.audio_path}",
        fmt=AudioFormat(16000, 20),
        number=modem.number,
        **{"port_factory": ProbePort, **options},
    )
    return Line(modem, driver, events)  # type: ignore[arg-type]


@pytest.fixture
def make_line() -> Iterator[Callable[..., Line]]:
    """An emulated E1550 (speed 4) with the driver running on it and idle."""
    started: list[tuple[Line, threading.Thread]] = []

    def make(**options: Any) -> Line:
        modem = HuaweiModem(speed=4)
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


def run_until_failure(modem: HuaweiModem, **options: Any) -> LineError:
    """Start the driver on ``modem`` and return the LineError its run() raises."""
    line = start_driver(modem, **options)
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            line.driver.run()
        except BaseException as exc:
            failure.append(exc)
        done.set()

    threading.Thread(target=run, name="driver-run", daemon=True).start()
    assert done.wait(timeout=10), "run() hung"
    assert len(failure) == 1 and isinstance(failure[0], LineError)
    return failure[0]


def test_the_driver_reads_the_emulated_dongle(line: Line):
    status = line.driver.status()
    assert (status["manufacturer"], status["model"], status["sim"]) == ("huawei", "E1550", "READY")
    assert (status["operator"], status["registration"]) == ("Simulated", "home")
    assert "AT^CVOICE?" in line.modem.commands


def test_a_call_rings_once_with_its_caller_id(line: Line):
    line.modem.ring(CALLER, "Grandma")
    assert line.next(Ringing) == Ringing(CALLER, "Grandma")
    assert "AT+CLCC" in line.modem.commands  # every RING is checked against the call list
    line.driver.answer()
    assert [e for e in line.until(Connected) if isinstance(e, Ringing)] == []


def test_answering_routes_voice_to_the_voice_port_both_ways(make_line: Callable[..., Line]):
    line = make_line(port_factory=DeviceAudioPort)
    port = line.connect()
    assert isinstance(port, DeviceAudioPort)
    commands = line.modem.commands
    assert commands.index("AT^DDSETEX=2") > commands.index("ATA")
    ticks: list[np.ndarray] = []
    enough = threading.Event()

    def tick() -> None:
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


def test_keys_the_caller_presses_arrive_in_band_only(line: Line):
    port = line.connect()
    assert line.modem.wait_audio(timeout=5)
    line.modem.press("7")  # the dongle has no DTMF report: the tones travel in the voice
    detector = DtmfDetector(RATE)
    keys: list[str] = []
    while not keys:
        keys += detector.feed(port.heard.get(timeout=5))
    assert keys == ["7"]
    assert not any(isinstance(e, DtmfReceived) for e in list(line.events.queue))


def test_the_caller_hanging_up_gives_one_disconnected(line: Line):
    port = line.connect()
    line.modem.hangup()  # ^CEND
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed
    line.modem.ring(CALLER)
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


def test_a_caller_giving_up_while_ringing_ends_the_call(line: Line):
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.modem.cancel_ring()
    assert line.next(Disconnected) == Disconnected("remote")


def test_hanging_up_leaves_the_dongle_idle(line: Line):
    line.connect()
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)
    assert "AT+CHUP" in line.modem.commands
    line.modem.ring(CALLER)
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


def test_send_dtmf_uses_the_huawei_command_with_the_call_id(line: Line):
    line.connect()
    line.driver.send_dtmf("1#")
    assert line.modem.dtmf_sent == ["1", "#"]
    assert "AT^DTMF=1,1" in line.modem.commands


def test_voice_disabled_firmware_is_a_clear_line_error():
    with HuaweiModem(speed=4, voice=False) as modem:
        error = run_until_failure(modem)
    assert "firmware has voice disabled" in str(error)


@pytest.mark.parametrize("fault", ["silent", "garbage"])
def test_a_dongle_that_answers_nothing_useful_is_a_line_error(fault: str):
    with HuaweiModem(speed=4, **{fault: True}) as modem:
        error = run_until_failure(modem, sync_attempts=2)
    assert "no OK to AT after 2 attempts" in str(error)


def test_alsa_audio_is_refused_for_a_dongle():
    with pytest.raises(LineError, match='must be "serial:'):
        HuaweiDriver(
            "e1550", lambda event: None, control="/dev/null", audio="alsa:hw:1", fmt=AudioFormat()
        )


def test_the_emulator_speaks_the_e1550_dialect():
    with HuaweiModem(speed=4) as modem:
        lines = at_exchange(modem.control_path, "ATE0", "AT^CVOICE?", "AT^DDSETEX=2", "ATI")
    assert lines[:5] == ["ATE0", "OK", "^CVOICE:0,8000,16,20", "OK", "ERROR"]  # no call yet
    assert lines[5:7] == ["Manufacturer: huawei", "Model: E1550"]
    with HuaweiModem(speed=4, voice=False) as modem:
        assert at_exchange(modem.control_path, "ATE0", "AT^CVOICE?") == ["ATE0", "OK", "ERROR"]


def test_parse_cvoice_and_cend():
    assert parse_cvoice("^CVOICE:0,8000,16,20") == (0, 8000, 16, 20)
    with pytest.raises(ValueError, match="malformed"):
        parse_cvoice("^CVOICE:1")
    assert parse_cend("^CEND:1,42,104,16") == CallEnd(1, 42, 104, 16)
    assert parse_cend("^CEND:2,0,255") == CallEnd(2, 0, 255, None)
    assert parse_cend("^CEND:1,0,104,17").outcome == "busy"
    assert parse_cend("^CEND:1,0,104,19").outcome == "no-answer"
    assert parse_cend("^CEND:1,0,104,1").outcome == "failed"  # unassigned number
    with pytest.raises(ValueError, match="malformed"):
        parse_cend("^CEND:x")
