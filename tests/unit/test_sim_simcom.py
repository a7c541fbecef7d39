"""The SIM7600 emulator, driven through its real ptys with pyserial as a line driver would."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import serial
import soundfile

from appliance.audio.tones import goertzel_power
from appliance.sim.simcom import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SimcomModem,
    clip_line,
    hhmmss,
    parse_extended,
    split_command_line,
)

SPEED = 8.0
FINAL = ("OK", "ERROR", "NO CARRIER", "+CME ERROR")


class AtPort:
    """The control tty as a driver sees it: lines in, command responses out."""

    def __init__(self, path: str) -> None:
        self.serial = serial.Serial(path, 115200, timeout=5)

    def line(self, timeout: float = 5.0) -> str:
        """The next non-empty line (echo included), without its CR/LF."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.serial.timeout = max(0.01, deadline - time.monotonic())
            raw = self.serial.read_until(b"\n")
            text = raw.decode().strip()
            if text:
                return text
        raise AssertionError("no line from the modem")

    def expect(self, wanted: str, timeout: float = 5.0) -> list[str]:
        """Lines up to and including the first that starts with ``wanted``."""
        seen = []
        while True:
            seen.append(self.line(timeout))
            if seen[-1].startswith(wanted):
                return seen

    def command(self, text: str) -> list[str]:
        """Send a command line; the lines answered up to its final result code."""
        self.serial.write(text.encode() + b"\r")
        lines = []
        while not lines or not lines[-1].startswith(FINAL):
            lines.append(self.line())
        return lines

    def close(self) -> None:
        self.serial.close()


class AudioPort:
    """The audio tty: reads every byte from the stream's start, with arrival times."""

    def __init__(self, path: str) -> None:
        self.serial = serial.Serial(path, 115200, timeout=0.2)
        self.data = bytearray()
        self.arrivals: list[tuple[float, int]] = []

    def read_until_bytes(self, count: int, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.data) < count:
            assert time.monotonic() < deadline, f"only {len(self.data)} of {count} bytes"
            chunk = self.serial.read(max(1, self.serial.in_waiting))
            if chunk:
                self.data += chunk
                self.arrivals.append((time.monotonic(), len(self.data)))
        return bytes(self.data)

    def close(self) -> None:
        self.serial.close()


@pytest.fixture
def modem() -> Iterator[SimcomModem]:
    modem = SimcomModem(name="gsm0", number="+15551230000", speed=SPEED)
    modem.start()
    yield modem
    modem.stop()


@pytest.fixture
def at(modem: SimcomModem) -> Iterator[AtPort]:
    port = AtPort(modem.control_path)
    port.expect("PB DONE")
    yield port
    port.close()


@pytest.fixture
def quiet(at: AtPort) -> AtPort:
    """The control port after ``ATE0`` (no echo)."""
    assert at.command("ATE0") == ["ATE0", "OK"]
    return at


def booted(modem: SimcomModem) -> AtPort:
    """A control port past the boot banner, echo off."""
    port = AtPort(modem.control_path)
    port.expect("PB DONE")
    port.command("ATE0")
    return port


def answered(modem: SimcomModem, at: AtPort) -> None:
    modem.ring("+15550001111")
    at.expect("RING")
    assert at.command("ATA") == ["VOICE CALL: BEGIN", "OK"]


def streaming(modem: SimcomModem, at: AtPort) -> AudioPort:
    audio = AudioPort(modem.audio_path)
    answered(modem, at)
    assert at.command("AT+CPCMREG=1") == ["OK"]
    assert modem.wait_audio(5)
    return audio


# --- the command interpreter ------------------------------------------------------------------


def test_command_lines_split_into_v250_commands():
    assert split_command_line("E0V1+CLIP=1;+CRC=1") == ["E0", "V1", "+CLIP=1", "+CRC=1"]
    assert split_command_line('+VTS="1;2";+CLIP?') == ['+VTS="1;2"', "+CLIP?"]
    assert split_command_line("S0=0&FI") == ["S0=0", "&F", "I"]
    assert parse_extended("+cpcmreg=?") == ("+CPCMREG", "=?", [])
    assert parse_extended('+CLIP="a,b",2') == ("+CLIP", "=", ["a,b", "2"])
    with pytest.raises(ValueError):
        split_command_line("%%")


def test_clip_and_duration_formats():
    assert clip_line("+15551234567") == '+CLIP: "+15551234567",145,,,,0'
    assert clip_line("5551234", "Grandma") == '+CLIP: "5551234",129,,,"Grandma",0'
    assert clip_line("") == '+CLIP: "",128,,,,1'
    assert hhmmss(3725.9) == "010205"


def test_boot_banner_then_echo_until_ate0(modem):
    port = AtPort(modem.control_path)
    assert port.expect("PB DONE") == ["RDY", "+CPIN: READY", "SMS DONE", "PB DONE"]
    port.serial.write(b"AT\r")
    assert port.serial.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"
    assert port.command("ATE0") == ["ATE0", "OK"]
    port.serial.write(b"AT\r")
    assert port.serial.read_until(b"OK\r\n") == b"\r\nOK\r\n"
    assert port.command("ATE1") == ["OK"]
    assert port.command("at") == ["at", "OK"]
    port.close()
    assert modem.commands == ["AT", "ATE0", "AT", "ATE1", "at"]


def test_identification_and_network_queries(quiet, modem):
    assert quiet.command("AT+CGMI") == ["SIMCOM INCORPORATED", "OK"]
    assert quiet.command("AT+CGMM") == ["SIMCOM_SIM7600G-H", "OK"]
    assert quiet.command("AT+CGMR")[0].startswith("+CGMR: ")
    imei, ok = quiet.command("AT+CGSN")
    assert ok == "OK" and imei.isdigit() and len(imei) == 15
    assert quiet.command("ATI")[0] == "Manufacturer: SIMCOM INCORPORATED"
    assert quiet.command("AT+CPIN?") == ["+CPIN: READY", "OK"]
    assert quiet.command("AT+CSQ") == ["+CSQ: 23,99", "OK"]
    assert quiet.command("AT+CREG?") == ["+CREG: 0,1", "OK"]
    assert quiet.command("AT+COPS?")[0].startswith("+COPS: 0,0,")
    assert quiet.command("AT+CNUM") == ['+CNUM: "","+15551230000",145', "OK"]


def test_unknown_commands_fail_and_cmee_selects_the_error_form(quiet):
    assert quiet.command("AT+NOSUCH") == ["ERROR"]
    assert quiet.command("ATD+15551234567") == ["ERROR"]  # a data call: not emulated
    assert quiet.command("AT+VTS=1") == ["ERROR"]
    assert quiet.command("AT+CMEE=1") == ["OK"]
    assert quiet.command("AT+VTS=1") == ["+CME ERROR: 3"]
    assert quiet.command("AT+CMEE=2;+CMEE?") == ["+CMEE: 2", "OK"]
    assert quiet.command("AT+VTS=1") == ["+CME ERROR: operation not allowed"]
    assert quiet.command("AT+CMEE=7") == ["+CME ERROR: incorrect parameters"]
    assert quiet.command("AT+NOSUCH") == ["ERROR"]


def test_settings_answer_their_read_and_test_forms(quiet):
    assert quiet.command("AT+CLIP=1;+CRC=1;+DDET=1") == ["OK"]
    assert quiet.command("AT+CLIP?") == ["+CLIP: 1,1", "OK"]
    assert quiet.command("AT+CRC?") == ["+CRC: 1", "OK"]
    assert quiet.command("AT+CLIP=?") == ["+CLIP: (0-1)", "OK"]
    assert quiet.command("AT+CPCMREG=?") == ["+CPCMREG: (0-1)", "OK"]
    assert quiet.command("AT+CPCMREG?") == ["+CPCMREG: 0", "OK"]
    assert quiet.command("ATS0=0") == ["OK"]
    assert quiet.command("ATS0?") == ["000", "OK"]


# --- an incoming call ---------------------------------------------------------------------------


def test_ringing_repeats_ring_and_clip_every_three_seconds(quiet, modem):
    assert quiet.command("AT+CLIP=1") == ["OK"]
    modem.ring("+15550001111", "Grandma")
    assert modem.state == "ringing"
    started = time.monotonic()
    assert quiet.expect("+CLIP") == ["RING", '+CLIP: "+15550001111",145,,,"Grandma",0']
    assert quiet.expect("+CLIP") == ["RING", '+CLIP: "+15550001111",145,,,"Grandma",0']
    assert time.monotonic() - started == pytest.approx(3.0 / SPEED, abs=0.15)
    assert quiet.command("AT+CLCC") == ['+CLCC: 1,1,4,0,0,"+15550001111",145,"Grandma"', "OK"]


def test_crc_rings_as_cring_voice_and_a_national_number_is_type_129(quiet, modem):
    assert quiet.command("AT+CLIP=1;+CRC=1") == ["OK"]
    modem.ring("5550001111")
    assert quiet.expect("+CLIP") == ["+CRING: VOICE", '+CLIP: "5550001111",129,,,,0']


def test_ata_answers_with_voice_call_begin(quiet, modem):
    assert quiet.command("ATA") == ["NO CARRIER"]
    modem.ring("+15550001111")
    quiet.expect("RING")
    assert quiet.command("ATA") == ["VOICE CALL: BEGIN", "OK"]
    assert modem.wait_state("active", 1)
    assert quiet.command("AT+CLCC") == ['+CLCC: 1,1,0,0,0,"+15550001111",145', "OK"]


def test_call_events_can_follow_ok_instead():
    late = SimcomModem(name="late", speed=SPEED, events_before_ok=False)
    late.start()
    try:
        port = booted(late)
        late.ring("+15550001111")
        port.expect("RING")
        assert port.command("ATA") == ["OK"]
        assert port.line() == "VOICE CALL: BEGIN"
        port.close()
    finally:
        late.stop()


def test_a_caller_who_gives_up_leaves_a_missed_call(quiet, modem):
    modem.ring("+15550001111")
    quiet.expect("RING")
    modem.cancel_ring()
    assert modem.state == "idle"
    assert quiet.expect("MISSED_CALL")[-1].endswith(" +15550001111")
    with pytest.raises(RuntimeError):
        modem.press("1")


def test_caller_hangup_ends_the_call_then_no_carrier(quiet, modem):
    audio = streaming(modem, quiet)
    modem.hangup()
    assert modem.wait_state("idle", 1)
    end, no_carrier = quiet.line(), quiet.line()
    assert end.startswith("VOICE CALL: END: ") and len(end) == len("VOICE CALL: END: 000000")
    assert no_carrier == "NO CARRIER"
    assert not modem.audio_active
    assert quiet.command("AT+CPCMREG?") == ["+CPCMREG: 0", "OK"]
    audio.close()


@pytest.mark.parametrize("command", ["AT+CHUP", "ATH"])
def test_local_hangup_reports_the_call_duration_before_ok(quiet, modem, command):
    answered(modem, quiet)
    lines = quiet.command(command)
    assert lines[0].startswith("VOICE CALL: END: 0000") and lines[1:] == ["OK"]
    assert modem.state == "idle"
    assert quiet.command(command) == ["OK"]


def test_vts_records_the_keys_the_appliance_sends(quiet, modem):
    answered(modem, quiet)
    assert quiet.command("AT+VTS=1") == ["OK"]
    assert quiet.command('AT+VTS="2#"') == ["OK"]
    assert modem.dtmf_sent == ["1", "2", "#"]


def test_out_of_band_keys_arrive_as_rxdtmf(quiet, modem):
    answered(modem, quiet)
    modem.press("1")
    modem.press("*#")
    assert quiet.expect("+RXDTMF: #") == ["+RXDTMF: 1", "+RXDTMF: *", "+RXDTMF: #"]
    assert quiet.command("AT+DDET=0") == ["OK"]
    modem.press("5")
    assert quiet.command("AT") == ["OK"]  # nothing was reported in between


# --- the audio port -----------------------------------------------------------------------------


def test_cpcmreg_needs_a_call_in_progress(quiet, modem):
    assert quiet.command("AT+CPCMREG=1") == ["ERROR"]
    assert quiet.command("AT+CPCMREG=0") == ["OK"]
    assert not modem.audio_active


def _frame_rate(audio: AudioPort, frames: int) -> float:
    """Frames per second: the slope of bytes received against arrival time.

    Only reads that found at most one frame waiting count: those came on time, while a read
    that found a backlog says when the reader woke, not when the modem sent.
    """
    audio.read_until_bytes(frames * FRAME_BYTES)
    times, counts = np.array(audio.arrivals).T
    timely = np.diff(counts, prepend=0) <= FRAME_BYTES
    return float(np.polyfit(times[timely], counts[timely], 1)[0]) / FRAME_BYTES


def test_frames_of_320_bytes_arrive_fifty_a_second_times_speed(quiet, modem):
    audio = streaming(modem, quiet)
    rate = _frame_rate(audio, 300)
    assert rate == pytest.approx(50 * SPEED, rel=0.03)
    assert modem.stats()["frames"] >= 300
    assert not any(audio.data[: 300 * FRAME_BYTES])  # a silent caller
    audio.close()


def test_drift_ppm_changes_the_frame_rate_by_that_much():
    drifts = (-20000.0, 20000.0)
    modems = [SimcomModem(name=f"drift{i}", speed=4.0, drift_ppm=d) for i, d in enumerate(drifts)]
    rates: dict[float, float] = {}

    def measure(modem: SimcomModem) -> None:
        port = booted(modem)
        audio = streaming(modem, port)
        rates[modem.drift_ppm] = _frame_rate(audio, 300)
        audio.close()
        port.close()

    for modem in modems:
        modem.start()
    try:
        threads = [threading.Thread(target=measure, args=(modem,)) for modem in modems]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for modem in modems:
            span = modem.time_of_sample(8000) - modem.time_of_sample(0)
            assert span == pytest.approx(0.25 / (1 + modem.drift_ppm * 1e-6))
    finally:
        for modem in modems:
            modem.stop()
    assert rates[20000.0] / rates[-20000.0] == pytest.approx(1.02 / 0.98, rel=0.005)


def test_played_audio_arrives_byte_exact_from_its_start_sample(quiet, modem):
    pattern = (np.arange(4000, dtype=np.int16) * 7) - 14000
    audio = streaming(modem, quiet)
    audio.read_until_bytes(10 * FRAME_BYTES)
    first = modem.play(pattern)
    second = modem.play(pattern[:100])
    assert first >= 10 * FRAME_SAMPLES and second == first + len(pattern)
    stream = audio.read_until_bytes(2 * (second + 100))
    assert stream[2 * first : 2 * second] == pattern.astype("<i2").tobytes()
    assert not any(stream[: 2 * first])
    assert stream[2 * second : 2 * second + 200] == pattern[:100].astype("<i2").tobytes()
    audio.close()


def test_play_resamples_a_wav_file_to_8khz(quiet, modem, tmp_path: Path):
    wav = tmp_path / "tone.wav"
    t = np.arange(16000) / 16000
    soundfile.write(wav, 0.5 * np.sin(2 * np.pi * 1000 * t), 16000)
    audio = streaming(modem, quiet)
    start = modem.play(wav)
    stream = audio.read_until_bytes(2 * (start + 8000))
    samples = np.frombuffer(stream[2 * start : 2 * start + 16000], dtype="<i2")
    assert goertzel_power(samples[400:-400], 1000, 8000) == pytest.approx(0.125, rel=0.05)
    audio.close()


def test_inband_keys_are_dtmf_tones_in_the_callers_audio(quiet, modem):
    audio = streaming(modem, quiet)
    modem.press("5", inband=True, ms=100)
    stream = np.frombuffer(audio.read_until_bytes(2 * 2400), dtype="<i2")
    tone = stream[np.flatnonzero(stream)[0] :][:800]
    assert goertzel_power(tone, 770, 8000) > 0.04
    assert goertzel_power(tone, 1336, 8000) > 0.04
    assert goertzel_power(tone, 697, 8000) < 0.001
    audio.close()


def test_appliance_audio_is_heard_in_order_at_its_sample_positions(quiet, modem):
    audio = streaming(modem, quiet)
    frames = 60
    for k in range(frames):
        audio.read_until_bytes((k + 1) * FRAME_BYTES)  # read-paced, as drivers write
        marker = np.full(FRAME_SAMPLES, 100 * (k + 1), dtype="<i2")
        audio.serial.write(marker.tobytes())
    target = (frames + 10) * FRAME_SAMPLES
    audio.read_until_bytes(2 * target)
    heard = modem.heard()
    assert len(heard) >= target and modem.sample_clock >= target
    positions = []
    for k in range(frames):
        (where,) = np.nonzero(heard[::FRAME_SAMPLES] == 100 * (k + 1))
        assert len(where) == 1, f"marker {k} heard {len(where)} times"
        assert np.all(heard[where[0] * FRAME_SAMPLES :][:FRAME_SAMPLES] == 100 * (k + 1))
        positions.append(int(where[0]))
    lags = np.array(positions) - np.arange(frames)
    assert lags.min() >= 1, "heard before it was sent"
    assert lags.max() <= 8 and np.all(np.diff(positions) >= 1)
    audio.close()


def test_late_and_flooding_appliance_audio_is_counted(quiet, modem):
    audio = streaming(modem, quiet)
    audio.read_until_bytes(20 * FRAME_BYTES)
    assert modem.stats()["underruns"] >= 19  # nothing was written yet
    audio.serial.write(np.ones(8000, dtype="<i2").tobytes())  # one second at once
    audio.read_until_bytes(40 * FRAME_BYTES)
    stats = modem.stats()
    assert stats["overruns"] >= 1
    assert stats["frames"] >= 40
    audio.close()


def test_stop_closes_the_ptys_and_leaves_no_threads():
    before = set(threading.enumerate())
    modem = SimcomModem(name="gone", speed=SPEED)
    modem.start()
    port = booted(modem)
    audio = streaming(modem, port)
    modem.stop()
    assert set(threading.enumerate()) <= before
    assert not [t for t in threading.enumerate() if t.name.startswith("sim-gone")]
    with pytest.raises(serial.SerialException):  # the device is gone, as when unplugged
        port.serial.write(b"AT\r")
    with pytest.raises(serial.SerialException):
        audio.serial.write(bytes(FRAME_BYTES))
    port.close()
    audio.close()
    modem.stop()  # twice is harmless
