"""The SIMCom driver against a scripted SIM7600 on pty pairs (control and PCM ports)."""

from __future__ import annotations

import os
import queue
import threading
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.lines.base import (
    Connected,
    Disconnected,
    DtmfReceived,
    LineError,
    LineEvent,
    LineStatus,
    Ringing,
)
from appliance.lines.simcom import AudioSpec, SimcomDriver, parse_audio_spec, parse_rxdtmf
from tests.unit.test_at import PtyModem

OK = b"\r\nOK\r\n"
CALLER = "+15551234567"
CLIP = f'\r\n+CLIP: "{CALLER}",145,,,,0\r\n'.encode()

SCRIPT: dict[str, bytes] = {
    "AT": OK,
    "ATE0": OK,
    "AT+CMEE=2": OK,
    "AT+CLIP=1": OK,
    "AT+CRC=1": OK,
    "AT+CPCMFRM=0": OK,
    "AT+DDET=1": b"\r\nERROR\r\n",  # optional: firmware without it still reports +RXDTMF
    "ATI": (
        b"\r\nManufacturer: SIMCOM INCORPORATED\r\nModel: SIMCOM_SIM7600G-H\r\n"
        b"Revision: LE20B04SIM7600G22\r\nIMEI: 861234567890123\r\n\r\nOK\r\n"
    ),
    "AT+CGMM": b"\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n",
    "AT+CPIN?": b"\r\n+CPIN: READY\r\n\r\nOK\r\n",
    "AT+CSQ": b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n",
    "AT+COPS?": b'\r\n+COPS: 0,0,"Test Mobile",7\r\n\r\nOK\r\n',
    "AT+CREG?": b"\r\n+CREG: 0,1\r\n\r\nOK\r\n",
    "ATA": b"\r\nVOICE CALL: BEGIN\r\n\r\nOK\r\n",
    "AT+CPCMREG=1": OK,
    "AT+CPCMREG=0": OK,
    "AT+CHUP": b"\r\nVOICE CALL: END: 000003\r\n\r\nOK\r\n",
    "AT+VTS=1": OK,
    "AT+VTS=#": OK,
    "AT+CLCC": OK,
}


class FakeSim7600(PtyModem):
    """Echoes commands until ATE0 and answers from SCRIPT, like a SIM7600 after boot."""

    def __init__(self) -> None:
        self.echo = True
        self.script = dict(SCRIPT)
        super().__init__(self.reply)

    def reply(self, command: str) -> list[bytes]:
        echo = command.encode() + b"\r" if self.echo else b""
        if command == "ATE0":
            self.echo = False
        return [echo + self.script.get(command, b"\r\nERROR\r\n")]

    def commands_until(self, wanted: str) -> list[str]:
        seen = []
        while (command := self.next_command()) != wanted:
            seen.append(command)
        return seen


class FakePort:
    """The device side of a DeviceAudioPort, recording what the driver's transport does."""

    def __init__(self, name: str, fmt: AudioFormat, device_rate: int, device_frame_samples: int):
        self.name, self.fmt = name, fmt
        self.device_rate, self.device_frame_samples = device_rate, device_frame_samples
        self.heard: queue.Queue[np.ndarray] = queue.Queue()
        self.closed = False

    def device_frame_in(self, samples: np.ndarray) -> None:
        self.heard.put(samples)

    def device_frame_out(self) -> np.ndarray:
        return np.zeros(self.device_frame_samples, dtype=np.int16)

    def close(self) -> None:
        self.closed = True


@dataclass
class Rig:
    modem: FakeSim7600
    audio_master: int
    driver: SimcomDriver
    events: queue.Queue[LineEvent]
    thread: threading.Thread
    failure: list[BaseException] = field(default_factory=list)

    def next(self, kind: type, timeout: float = 5.0) -> LineEvent:
        """The next event of ``kind``; events of other kinds before it are skipped."""
        while True:
            event = self.events.get(timeout=timeout)
            if isinstance(event, kind):
                return event

    def until(self, kind: type, timeout: float = 5.0) -> list[LineEvent]:
        """All events up to and including the next one of ``kind``."""
        seen = []
        while True:
            seen.append(self.events.get(timeout=timeout))
            if isinstance(seen[-1], kind):
                return seen

    def ring(self) -> Ringing:
        self.modem.send(b"\r\nRING\r\n" + CLIP)
        event = self.next(Ringing)
        assert isinstance(event, Ringing)
        return event

    def connect(self) -> FakePort:
        self.ring()
        self.driver.answer()
        event = self.next(Connected)
        assert isinstance(event, Connected)
        return event.port  # type: ignore[return-value]


@pytest.fixture
def make_rig() -> Iterator[Callable[..., Rig]]:
    """Start a driver on a fresh FakeSim7600; ``options`` go to SimcomDriver."""
    started: list[tuple[Rig, int]] = []

    def make(**options: Any) -> Rig:
        modem = FakeSim7600()
        audio_master, audio_slave = os.openpty()
        tty.setraw(audio_slave)
        events: queue.Queue[LineEvent] = queue.Queue()
        driver = SimcomDriver(
            "gsm0",
            events.put,
            control=modem.path,
            audio=f"serial:{os.ttyname(audio_slave)}",
            fmt=AudioFormat(16000, 20),
            number="+15550000000",
            port_factory=FakePort,
            **{"clip_wait": 0.2, **options},
        )
        failure: list[BaseException] = []

        def run() -> None:
            try:
                driver.run()
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=run, name="driver-run")
        rig = Rig(modem, audio_master, driver, events, thread, failure)
        started.append((rig, audio_slave))
        thread.start()
        status = rig.next(LineStatus)
        while status.state != "idle":  # type: ignore[union-attr]
            status = rig.next(LineStatus)
        return rig

    yield make
    for rig, audio_slave in started:
        rig.driver.stop()
        rig.thread.join(timeout=10)
        rig.modem.close()
        os.close(rig.audio_master)
        os.close(audio_slave)


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()


def test_initialisation_reports_the_modem_idle_with_its_details(rig: Rig):
    status = rig.driver.status()
    assert status["state"] == "idle"
    assert status["model"] == "SIMCOM_SIM7600G-H"
    assert status["imei"] == "861234567890123"
    assert status["sim"] == "READY"
    assert (status["csq"], status["signal_dbm"]) == (20, -73)
    assert status["operator"] == "Test Mobile"
    assert status["registration"] == "home"
    assert status["number"] == "+15550000000"


def test_initialisation_sends_the_setup_commands_in_order():
    modem = FakeSim7600()
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = SimcomDriver(
        "gsm0", events.put, control=modem.path, audio="serial:/dev/null", fmt=AudioFormat()
    )
    thread = threading.Thread(target=driver.run)
    thread.start()
    try:
        sent = modem.commands_until("AT+CREG?")
        assert sent[:7] == [
            "AT",
            "ATE0",
            "AT+CMEE=2",
            "AT+CLIP=1",
            "AT+CRC=1",
            "AT+CPCMFRM=0",
            "AT+DDET=1",
        ]
        assert {"ATI", "AT+CGMM", "AT+CPIN?", "AT+CSQ", "AT+COPS?"} <= set(sent)
    finally:
        driver.stop()
        thread.join(timeout=10)
        modem.close()
    assert not thread.is_alive()


def test_a_modem_still_booting_is_synced_after_its_banner():
    modem = FakeSim7600()
    answers = iter([[b"\xff\x00\xfe\r\nRDY\r\n"]])  # the first AT is lost in the boot noise
    modem.replies = lambda command: next(answers, None) or modem.reply(command)
    events: queue.Queue[LineEvent] = queue.Queue()
    driver = SimcomDriver(
        "gsm0", events.put, control=modem.path, audio="serial:/dev/null", fmt=AudioFormat()
    )
    thread = threading.Thread(target=driver.run)
    thread.start()
    try:
        states = []
        while "idle" not in states:
            event = events.get(timeout=10)
            if isinstance(event, LineStatus):
                states.append(event.state)
        assert states == ["starting", "idle"]
    finally:
        driver.stop()
        thread.join(timeout=10)
        modem.close()


def test_ring_then_clip_gives_one_ringing_with_the_caller_id(rig: Rig):
    rig.modem.send(b"\r\nRING\r\n" + CLIP + b"\r\nRING\r\n" + CLIP + b"\r\nRING\r\n")
    assert rig.next(Ringing) == Ringing(CALLER, "")
    assert rig.driver.status()["state"] == "ringing"
    rig.driver.hangup()
    assert [e for e in rig.until(Disconnected) if isinstance(e, Ringing)] == []


def test_clip_before_ring_is_announced_at_once(rig: Rig):
    rig.modem.send(CLIP + b"\r\n+CRING: VOICE\r\n")
    assert rig.next(Ringing) == Ringing(CALLER, "")


def test_ring_without_clip_is_announced_after_a_moment(rig: Rig):
    rig.modem.send(b"\r\n+CRING: VOICE\r\n")
    assert rig.next(Ringing) == Ringing("", "")
    rig.modem.send(CLIP)  # too late: the call was announced already
    rig.driver.hangup()
    assert [e for e in rig.until(Disconnected) if isinstance(e, Ringing)] == []


def test_answer_connects_the_pcm_port(rig: Rig):
    port = rig.connect()
    assert isinstance(port, FakePort)
    assert (port.name, port.device_rate, port.device_frame_samples) == ("gsm0", 8000, 160)
    assert "ATA" in rig.modem.commands_until("AT+CPCMREG=1")
    frame = (np.arange(160) * 50).astype(np.int16)
    os.write(rig.audio_master, frame.astype("<i2").tobytes())
    np.testing.assert_array_equal(port.heard.get(timeout=5), frame)
    assert rig.driver.status()["state"] == "in-call"


def test_keys_pressed_by_the_caller_are_reported(rig: Rig):
    rig.connect()
    rig.modem.send(b"\r\r\n+RXDTMF: 1\r\r\n\r\n+RXDTMF: #\r\n")
    assert rig.next(DtmfReceived) == DtmfReceived("1")
    assert rig.next(DtmfReceived) == DtmfReceived("#")


@pytest.mark.parametrize(
    "hangup",
    [
        b"\r\nVOICE CALL: END: 000010\r\n\r\nNO CARRIER\r\n",
        b"\r\nNO CARRIER\r\n\r\nVOICE CALL: END: 000010\r\n",
        b"\r\nVOICE CALL: END: 000010\r\n",
        b"\r\nNO CARRIER\r\n",
    ],
)
def test_the_caller_hanging_up_gives_one_disconnected(rig: Rig, hangup: bytes):
    port = rig.connect()
    rig.modem.send(hangup)
    assert rig.next(Disconnected) == Disconnected("remote")
    assert port.closed
    rig.modem.commands_until("AT+CPCMREG=0")
    # The next call's Ringing proves every URC before it was handled: no second Disconnected.
    rig.modem.send(b"\r\nRING\r\n" + CLIP)
    assert [e for e in rig.until(Ringing) if isinstance(e, Disconnected)] == []


def test_hanging_up_gives_one_local_disconnected(rig: Rig):
    port = rig.connect()
    rig.driver.hangup()
    assert rig.next(Disconnected) == Disconnected("local")
    assert port.closed
    assert "AT+CHUP" in rig.modem.commands_until("AT+CPCMREG=0")
    rig.driver.hangup()  # idle: nothing to do
    rig.modem.send(b"\r\nNO CARRIER\r\n\r\nRING\r\n" + CLIP)
    assert [e for e in rig.until(Ringing) if isinstance(e, Disconnected)] == []


def test_a_caller_giving_up_while_it_rings_is_a_remote_disconnect(rig: Rig):
    rig.ring()
    rig.modem.send(b"\r\nMISSED_CALL: 11:01AM +15551234567\r\n")
    assert rig.next(Disconnected) == Disconnected("remote")
    assert rig.driver.status()["state"] == "idle"


def test_answering_a_call_that_went_away_reports_it(rig: Rig):
    rig.ring()
    rig.modem.script["ATA"] = b"\r\nNO CARRIER\r\n"
    with pytest.raises(LineError, match="answer failed: ATA: NO CARRIER"):
        rig.driver.answer()
    assert rig.next(Disconnected) == Disconnected("remote")


def test_ringing_that_stops_without_a_report_ends_the_call(make_rig: Callable[..., Rig]):
    rig = make_rig(ring_timeout=0.2)  # then AT+CLCC lists no incoming call
    rig.ring()
    assert rig.next(Disconnected) == Disconnected("remote")


def test_send_dtmf_plays_keys_with_vts(rig: Rig):
    rig.connect()
    rig.driver.send_dtmf("1#")
    assert rig.modem.commands_until("AT+VTS=#")[-1] == "AT+VTS=1"
    with pytest.raises(ValueError, match="not DTMF keys"):
        rig.driver.send_dtmf("1x")


def test_refresh_status_reads_the_network_again(rig: Rig):
    rig.modem.script["AT+CSQ"] = b"\r\n+CSQ: 31,99\r\n\r\nOK\r\n"
    rig.modem.script["AT+CREG?"] = b"\r\n+CREG: 0,5\r\n\r\nOK\r\n"
    status = rig.driver.refresh_status()
    assert (status["signal_dbm"], status["registration"]) == (-51, "roaming")
    event = rig.next(LineStatus)
    assert event == LineStatus("idle", status)


def test_stop_during_a_call_hangs_up_and_run_returns(rig: Rig):
    rig.connect()
    rig.driver.stop()
    assert rig.next(Disconnected) == Disconnected("local")
    rig.thread.join(timeout=10)
    assert not rig.thread.is_alive() and rig.failure == []


def test_losing_the_modem_ends_the_call_and_run_raises(rig: Rig):
    port = rig.connect()
    rig.modem.unplug()
    assert rig.next(Disconnected) == Disconnected("device-lost")
    rig.thread.join(timeout=10)
    assert port.closed
    assert len(rig.failure) == 1 and isinstance(rig.failure[0], LineError)
    assert "modem lost" in str(rig.failure[0])


def test_a_missing_control_port_is_a_line_error():
    driver = SimcomDriver(
        "gsm0",
        lambda event: None,
        control="/dev/nonexistent-modem",
        audio="serial:/dev/null",
        fmt=AudioFormat(),
    )
    with pytest.raises(LineError, match="cannot open /dev/nonexistent-modem"):
        driver.run()


def test_audio_is_a_serial_tty_or_an_alsa_device():
    assert parse_audio_spec("serial:/dev/ttyUSB4") == AudioSpec("serial", "/dev/ttyUSB4")
    assert parse_audio_spec("alsa:hw:CARD=Android,DEV=0") == AudioSpec(
        "alsa", "hw:CARD=Android,DEV=0"
    )
    with pytest.raises(LineError, match='must be "serial:/dev/ttyUSB4" or "alsa:'):
        parse_audio_spec("/dev/ttyUSB4")


def test_parse_rxdtmf_accepts_both_report_forms():
    assert parse_rxdtmf("+RXDTMF: 8") == "8"
    assert parse_rxdtmf("+DTMF:5,160") == "5"
    with pytest.raises(ValueError, match="not a DTMF key"):
        parse_rxdtmf("+RXDTMF: 12")
