"""The V.253 modem emulator, driven through its pty with pyserial as a driver would."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import serial

from appliance.sim.v253 import FRAME_SAMPLES, V253Modem, decode, encode

SPEED = 8.0
FINALS = ("OK", "ERROR", "NO CARRIER", "CONNECT")
CALLER = "5551234567"


class Terminal:
    """The modem's one port: command lines, and raw bytes once voice flows."""

    def __init__(self, path: str) -> None:
        self.serial = serial.Serial(path, 115200, timeout=5)

    def line(self, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.serial.timeout = max(0.01, deadline - time.monotonic())
            text = self.serial.read_until(b"\n").decode("ascii", "replace").strip()
            if text:
                return text
        raise AssertionError("no line from the modem")

    def command(self, text: str) -> list[str]:
        self.serial.write(text.encode() + b"\r")
        lines = []
        while not lines or not lines[-1].startswith(FINALS):
            lines.append(self.line())
        return lines

    def read_bytes(self, count: int, timeout: float = 5.0) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + timeout
        while len(data) < count:
            assert time.monotonic() < deadline, f"only {len(data)} of {count} bytes"
            self.serial.timeout = 0.05
            data += self.serial.read(count - len(data))
        return bytes(data)

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        data = bytearray()
        deadline = time.monotonic() + timeout
        while marker not in data:
            assert time.monotonic() < deadline, f"no {marker!r} in {bytes(data[-40:])!r}"
            self.serial.timeout = 0.05
            data += self.serial.read(max(1, self.serial.in_waiting))
        return bytes(data)


@pytest.fixture
def make_modem() -> Iterator[Callable[..., tuple[V253Modem, Terminal]]]:
    started: list[tuple[V253Modem, Terminal]] = []

    def make(**options: object) -> tuple[V253Modem, Terminal]:
        modem = V253Modem(**{"speed": SPEED, **options})  # type: ignore[arg-type]
        modem.start()
        started.append((modem, Terminal(modem.control_path)))
        return started[-1]

    yield make
    for modem, terminal in started:
        terminal.serial.close()
        modem.stop()


def voice_mode(terminal: Terminal) -> None:
    for command in ("ATE0", "AT+FCLASS=8", "AT+VCID=1"):
        assert terminal.command(command)[-1] == "OK"


def unshield(data: bytes) -> tuple[bytes, list[str]]:
    voice, events, index = bytearray(), [], 0
    while index < len(data):
        if data[index] == 0x10:
            code = data[index + 1]
            if code == 0x10:
                voice.append(0x10)
            else:
                events.append(chr(code))
            index += 2
        else:
            voice.append(data[index])
            index += 1
    return bytes(voice), events


@pytest.mark.parametrize(("variant", "product"), [("usr", "5601"), ("conexant", "56000")])
def test_echo_until_ate0_and_the_product_code(make_modem, variant, product):
    _, terminal = make_modem(variant=variant)
    assert terminal.command("ATI0") == ["ATI0", product, "OK"]
    assert terminal.command("ATE0") == ["ATE0", "OK"]
    assert terminal.command("AT") == ["OK"]


def test_voice_commands_need_voice_mode(make_modem):
    _, terminal = make_modem()
    terminal.command("ATE0")
    assert terminal.command("AT+VSM=?") == ["ERROR"]
    assert terminal.command("AT+FCLASS=8") == ["OK"]
    assert terminal.command("AT+FCLASS?") == ["8", "OK"]


def test_the_usr_lists_its_formats_in_the_short_form(make_modem):
    _, terminal = make_modem(variant="usr")
    voice_mode(terminal)
    assert terminal.command("AT+VSM=?") == [
        '128,"8-BIT LINEAR",(7200,8000,11025)', '129,"16-BIT LINEAR",(7200,8000,11025)',
        '130,"8-BIT ALAW",(8000)', '131,"8-BIT ULAW",(8000)',
        '132,"IMA ADPCM",(7200,8000,11025)', "OK"]  # fmt: skip
    assert terminal.command("AT+VSM?") == ["128,8000,0,0", "OK"]
    assert terminal.command("AT+VSM=131,7200") == ["ERROR"]  # u-law is 8000 Hz only
    assert terminal.command("AT+VSM=131,8000") == ["OK"]


def test_the_conexant_lists_its_formats_in_the_v253_form(make_modem):
    modem, terminal = make_modem(variant="conexant")
    voice_mode(terminal)
    lines = terminal.command("AT+VSM=?")
    assert lines[0] == '0,"SIGNED PCM",8,0,8000,0,0'
    assert '131,"Mu-Law",8,0,8000,0,0' in lines
    assert terminal.command("AT+VSM?") == ["1,8000,0,0", "OK"]
    assert terminal.command("AT-SCID=1;+VCID=1;-STE=3") == ["OK"]
    assert modem.voice_format == "u8"


def test_atz_turns_caller_id_off_again(make_modem):
    modem, terminal = make_modem(variant="conexant")
    voice_mode(terminal)
    assert terminal.command("AT+VCID?") == ["1", "OK"]
    assert terminal.command("ATZ") == ["OK"]
    assert terminal.command("AT+VCID?") == ["AT+VCID?", "0", "OK"]  # echo is back on too
    modem.ring(CALLER, "Grandma")
    assert terminal.line() == "RING"
    assert terminal.line(timeout=2.0) == "RING"  # no caller ID between the rings


@pytest.mark.parametrize(("variant", "sep"), [("usr", "="), ("conexant", " = ")])
def test_caller_id_comes_between_the_first_and_second_ring(make_modem, variant, sep):
    modem, terminal = make_modem(variant=variant)
    voice_mode(terminal)
    modem.ring(CALLER, "Grandma")
    lines = [terminal.line() for _ in range(6)]
    assert lines[0] == "RING" and lines[5] == "RING"
    assert [line[:4] for line in lines[1:5]] == ["DATE", "TIME", "NMBR", "NAME"]
    assert lines[3:5] == [f"NMBR{sep}{CALLER}", f"NAME{sep}Grandma"]
    assert modem.state == "ringing" and modem.rings == 2


def test_a_uk_line_sends_caller_id_before_the_first_ring(make_modem):
    modem, terminal = make_modem(country="uk")
    voice_mode(terminal)
    modem.ring(CALLER)
    assert [terminal.line()[:4] for _ in range(4)] == ["DATE", "TIME", "NMBR", "RING"]


def test_a_withheld_number_is_p(make_modem):
    modem, terminal = make_modem()
    voice_mode(terminal)
    modem.ring("")
    assert [terminal.line() for _ in range(4)][-1] == "NMBR=P"


def test_vtr_needs_the_line_off_hook(make_modem):
    modem, terminal = make_modem()
    voice_mode(terminal)
    assert terminal.command("AT+VTR") == ["ERROR"]
    modem.ring(CALLER)
    assert terminal.line() == "RING"
    assert terminal.command("AT+VLS=1")[-1] == "OK"
    assert modem.state == "active" and modem.off_hook


def start_stream(modem: V253Modem, terminal: Terminal, vsm: str = "AT+VSM=131,8000") -> None:
    voice_mode(terminal)
    assert terminal.command(vsm) == ["OK"]
    modem.ring(CALLER)
    assert terminal.line() == "RING"
    assert terminal.command("AT+VLS=1")[-1] == "OK"
    assert terminal.command("AT+VTR") == ["CONNECT"]


@pytest.mark.parametrize("variant", ["usr", "conexant"])
def test_the_stream_runs_on_the_modems_clock_and_ends_on_dle_caret(make_modem, variant):
    modem, terminal = make_modem(variant=variant)
    start_stream(modem, terminal)
    voice, _ = unshield(terminal.read_bytes(50 * FRAME_SAMPLES))
    elapsed = time.monotonic() - modem.time_of_sample(0)
    assert len(voice) >= 49 * FRAME_SAMPLES
    assert elapsed >= (len(voice) // FRAME_SAMPLES - 1) * modem.period  # no frame comes early
    assert modem.sample_clock // FRAME_SAMPLES <= elapsed / modem.period + 1
    terminal.serial.write(b"\x10^")
    assert terminal.read_until(b"\x10\x03\r\nOK\r\n").endswith(b"\x10\x03\r\nOK\r\n")
    assert modem.last_stream_end == "^" and not modem.audio_active
    assert terminal.command("ATH0") == ["OK"]
    assert modem.state == "idle" and not modem.off_hook


def test_caller_audio_is_shielded_and_the_dtes_is_played(make_modem):
    modem, terminal = make_modem()
    start_stream(modem, terminal)
    dle_sample = decode("ulaw", b"\x10")[0]  # a sample whose u-law code is 0x10
    said = np.full(4 * FRAME_SAMPLES, dle_sample, np.int16)
    start = modem.play(said)
    wire = terminal.read_bytes(2 * (start + 6 * FRAME_SAMPLES))
    voice, _ = unshield(wire)
    assert b"\x10\x10" * 50 in wire
    assert decode("ulaw", voice[start : start + len(said)]).tolist() == said.tolist()
    pattern = decode("ulaw", encode("ulaw", np.array([dle_sample, 0, 1000, -1000])))
    sent = np.tile(pattern, 2 * FRAME_SAMPLES)
    terminal.serial.write(encode("ulaw", sent).replace(b"\x10", b"\x10\x10"))
    deadline = time.monotonic() + 5
    while np.count_nonzero(modem.heard() == dle_sample) < len(sent) // 4:
        assert time.monotonic() < deadline, "the DTE's audio was not played"
        terminal.read_bytes(FRAME_SAMPLES)
    heard = modem.heard()
    first = int(np.argmax(heard == dle_sample))
    assert heard[first : first + len(sent)].tolist() == sent.tolist()


@pytest.mark.parametrize(
    ("variant", "codes"),
    [("usr", ["5", "#"]), ("conexant", ["/", "5", "5", "~", "/", "#", "#", "~"])],
)
def test_keys_are_dle_codes_in_the_stream(make_modem, variant, codes):
    modem, terminal = make_modem(variant=variant)
    start_stream(modem, terminal)
    modem.press("5#", ms=80)
    events: list[str] = []
    deadline = time.monotonic() + 5
    while len(events) < len(codes):
        assert time.monotonic() < deadline, events
        events += unshield(terminal.read_bytes(FRAME_SAMPLES))[1]
    assert [e for e in events if e != "u"] == codes


@pytest.mark.parametrize(("variant", "first"), [("usr", "l"), ("conexant", "b")])
def test_the_caller_hanging_up_is_reported_in_the_stream(make_modem, variant, first):
    modem, terminal = make_modem(variant=variant)
    start_stream(modem, terminal)
    modem.hangup()
    assert modem.state == "idle" and modem.off_hook  # the modem stays off-hook until told
    data = terminal.read_until(b"\x10" + first.encode())
    assert unshield(data)[1][-1] == first
    terminal.serial.write(b"\x10!")  # a receive abort also ends the stream
    terminal.read_until(b"\x10\x03\r\nOK\r\n")
    assert modem.last_stream_end == "!"


def test_without_duplex_vtr_is_an_error(make_modem):
    modem, terminal = make_modem(duplex=False)
    voice_mode(terminal)
    modem.ring(CALLER)
    assert terminal.line() == "RING"
    assert terminal.command("AT+VLS=1")[-1] == "OK"
    assert terminal.command("AT+VTR") == ["ERROR"]
