"""The Quectel driver against the EC25 emulator, both on real ptys (and libasound for UAC)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import serial

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
from appliance.lines.quectel import QuectelDriver, parse_ccinfo, parse_qtonedet
from appliance.sim.quectel import QuectelModem
from tests.unit.test_alsa_audio import alsa_sim_config  # noqa: F401 - a fixture
from tests.unit.test_simcom_driver_on_emulator import (
    CALLER,
    RATE,
    Line,
    ProbePort,
    dominant_hz,
    tone,
)


def at_exchange(path: str, *commands: str) -> list[str]:
    """Send command lines to an emulator's AT port; the lines it answered, echo included."""
    with serial.Serial(path, 115200, timeout=2) as port:
        lines: list[str] = []
        for command in commands:
            port.write(command.encode() + b"\r")
            while True:
                line = port.readline().decode(errors="replace").strip()
                if not line:
                    continue
                lines.append(line)
                if line in ("OK", "ERROR", "NO CARRIER") or line.startswith("+CME ERROR"):
                    break
        return lines


def start_driver(modem: QuectelModem, audio: str, **options: Any) -> Line:
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = QuectelDriver(
        "ec25",
        events.put,
        control=modem.control_path,
        audio=audio,
        fmt=AudioFormat(16000, 20),
        number=modem.number,
        **{"port_factory": ProbePort, **options},
    )
    return Line(modem, driver, events)  # type: ignore[arg-type]


@pytest.fixture
def make_line() -> Iterator[Callable[..., Line]]:
    """An emulated EC25 (speed 4) with the driver running on it and idle."""
    started: list[tuple[Line, threading.Thread]] = []

    def make(**options: Any) -> Line:
        modem = QuectelModem(speed=4)
        modem.start()
        line = start_driver(modem, f"serial:{modem.audio_path}", **options)
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


def run_until_failure(modem: QuectelModem, **options: Any) -> LineError:
    """Start the driver on ``modem`` and return the LineError its run() raises."""
    line = start_driver(modem, f"serial:{modem.audio_path}", **options)
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


def test_the_driver_reads_the_emulated_ec25(line: Line):
    status = line.driver.status()
    assert (status["model"], status["operator"], status["sim"]) == ("EC25", "Simulated", "READY")
    assert (status["csq"], status["signal_dbm"], status["registration"]) == (21, -71, "home")
    assert {'AT+QINDCFG="ccinfo",1,0', "AT+QTONEDET=1", "AT+QPCMV=1,0"} <= set(line.modem.commands)


def test_a_call_rings_once_with_its_caller_id_and_name(line: Line):
    line.modem.ring(CALLER, "Grandma")
    assert line.next(Ringing) == Ringing(CALLER, "Grandma")
    line.driver.answer()
    assert [e for e in line.until(Connected) if isinstance(e, Ringing)] == []


def test_answering_carries_audio_both_ways_on_the_nmea_port(make_line: Callable[..., Line]):
    line = make_line(port_factory=DeviceAudioPort)
    port = line.connect()
    assert isinstance(port, DeviceAudioPort)
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
    assert dominant_hz(loudest, rate=16000) == 1000
    heard_by_caller = line.modem.heard()[-800:]
    assert np.abs(heard_by_caller).max() > 4000
    assert dominant_hz(heard_by_caller) == 400


def test_the_caller_pressing_a_key_is_reported_by_qtonedet(line: Line):
    line.connect()
    line.modem.press("5#")
    assert line.next(DtmfReceived) == DtmfReceived("5")
    assert line.next(DtmfReceived) == DtmfReceived("#")


def test_the_caller_hanging_up_gives_one_disconnected(line: Line):
    port = line.connect()
    line.modem.hangup()  # NO CARRIER, then the ccinfo release: one Disconnected
    assert line.next(Disconnected) == Disconnected("remote")
    assert port.closed
    line.modem.ring(CALLER)  # the next call proves no second Disconnected was on its way
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


def test_a_caller_giving_up_while_ringing_ends_the_call(line: Line):
    line.modem.ring(CALLER)
    line.next(Ringing)
    line.modem.cancel_ring()  # only the ccinfo release tells
    assert line.next(Disconnected) == Disconnected("remote")
    assert line.driver.status()["state"] == "idle"


def test_hanging_up_leaves_the_modem_idle(line: Line):
    line.connect()
    line.driver.hangup()
    assert line.next(Disconnected) == Disconnected("local")
    assert line.modem.wait_state("idle", timeout=5)
    assert "AT+CHUP" in line.modem.commands
    line.modem.ring(CALLER)
    assert [e for e in line.until(Ringing) if isinstance(e, Disconnected)] == []


@pytest.mark.usefixtures("alsa_sim_config")
def test_uac_voice_goes_through_alsa():
    modem = QuectelModem(speed=4, uac=True)
    modem.start()
    try:
        uac = start_driver(modem, f"alsa:{modem.alsa_device}", port_factory=DeviceAudioPort)
        thread = threading.Thread(target=uac.driver.run, name="driver-run")
        thread.start()
        try:
            while uac.next(LineStatus).state != "idle":  # type: ignore[union-attr]
                pass
            assert "AT+QPCMV=1,2" in modem.commands
            port = uac.connect()
            assert modem.wait_audio(timeout=5)
            heard: list[np.ndarray] = []
            enough = threading.Event()

            def tick() -> None:
                heard.append(port.read_frame())
                port.write_frame(tone(400, 320, start=320 * len(heard), rate=16000))
                if len(heard) >= 100:
                    enough.set()

            port.set_tick_listener(tick)
            modem.play(tone(1000, RATE // 2))
            assert enough.wait(timeout=10)
            loudest = max(heard, key=lambda frame: int(np.abs(frame.astype(np.int32)).sum()))
            assert dominant_hz(loudest, rate=16000) == 1000
            assert dominant_hz(modem.heard()[-800:]) == 400
        finally:
            uac.driver.stop()
            thread.join(timeout=10)
    finally:
        modem.stop()


def test_firmware_without_pcm_voice_is_a_clear_line_error():
    with QuectelModem(speed=4, pcm_voice=False) as modem:
        error = run_until_failure(modem)
    assert "refused AT+QPCMV=1,0" in str(error)
    assert "cannot carry voice" in str(error)


@pytest.mark.parametrize("fault", ["silent", "garbage"])
def test_a_modem_that_answers_nothing_useful_is_a_line_error(fault: str):
    with QuectelModem(speed=4, **{fault: True}) as modem:
        error = run_until_failure(modem, sync_attempts=2)
    assert "no OK to AT after 2 attempts" in str(error)
    assert "EC25's AT port" in str(error)


def test_refresh_status_reads_the_network_again(line: Line):
    status = line.driver.refresh_status()
    assert (status["state"], status["signal_dbm"], status["operator"]) == ("idle", -71, "Simulated")
    assert line.next(LineStatus) == LineStatus("idle", status)


def test_the_emulator_speaks_the_ec25_dialect():
    with QuectelModem(speed=4) as modem:
        lines = at_exchange(
            modem.control_path,
            "ATE0",
            "AT+QPCMV?",
            "AT+QPCMV=1,0;+QPCMV?",
            "AT+QPCMV=1,2",
            'AT+QINDCFG="ccinfo",1,0',
            'AT+QINDCFG="ccinfo"',
            "AT+QTONEDET?",
        )
    assert lines == [
        "ATE0", "OK",
        "+QPCMV: 0,0", "OK",
        "+QPCMV: 1,0", "OK",
        "ERROR",  # no UAC function in this USB configuration
        "OK",
        '+QINDCFG: "ccinfo",1', "OK",
        "+QTONEDET: 0", "OK",
    ]  # fmt: skip


def test_parse_ccinfo_reads_states_and_the_release():
    entry = parse_ccinfo('+QIND: "ccinfo",1,1,4,0,0,"+15551234567",145')
    assert (entry.index, entry.incoming, entry.stat, entry.number) == (1, True, 4, CALLER)
    assert parse_ccinfo('+QIND: "ccinfo",2,0,-1,0,0,"123",129').stat == 7
    with pytest.raises(ValueError, match="malformed ccinfo"):
        parse_ccinfo('+QIND: "csq",20,99')


def test_parse_qtonedet_turns_the_ascii_code_into_a_key():
    assert parse_qtonedet("+QTONEDET: 53") == "5"
    assert parse_qtonedet("+QTONEDET: 35") == "#"
    with pytest.raises(ValueError, match="not a DTMF key"):
        parse_qtonedet("+QTONEDET: 88")
