"""AT line parsing, and the AT channel against a scripted modem on a real pty pair."""

from __future__ import annotations

import itertools
import os
import queue
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.lines.at import (
    ATChannel,
    ATChannelClosed,
    ATCommandError,
    ATTimeout,
    CallerId,
    FinalResult,
    LineSplitter,
    classify_line,
    csq_to_dbm,
    open_serial,
    parse_clcc,
    parse_clip,
    parse_cops,
    parse_cpin,
    parse_creg,
    parse_csq,
    response_prefix,
)

OK = b"\r\nOK\r\n"
Replies = Callable[[str], Iterable[bytes]]


class PtyModem:
    """The modem's side of a pty pair: answers each command line as ``replies`` says.

    ``replies(command)`` returns the byte strings to write back, in order; ``send()`` pushes
    unsolicited output; ``unplug()`` closes the master, as a USB modem that vanishes.
    """

    def __init__(self, replies: Replies | None = None, *, byte_by_byte: bool = False) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.replies: Replies = replies or (lambda command: [OK])
        self.byte_by_byte = byte_by_byte
        self.commands: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="pty-modem", daemon=True)
        self._thread.start()

    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        with self._write_lock:
            if self.byte_by_byte:
                for i in range(len(raw)):
                    os.write(self.master, raw[i : i + 1])
                    time.sleep(0.0005)  # pacing, so the reader sees one byte per read
            else:
                os.write(self.master, raw)

    def next_command(self, timeout: float = 5.0) -> str:
        return self.commands.get(timeout=timeout)

    def unplug(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        os.close(self.master)

    def close(self) -> None:
        if not self._stop.is_set():
            self.unplug()
        os.close(self._slave)

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            pending += data
            while b"\r" in pending:
                raw, pending = pending.split(b"\r", 1)
                command = raw.decode(errors="replace").strip()
                if command:
                    self.commands.put(command)
                    for chunk in self.replies(command):
                        self.send(chunk)


@pytest.fixture
def make_channel() -> Iterator[Callable[..., tuple[PtyModem, ATChannel, queue.Queue[str]]]]:
    made: list[tuple[PtyModem, ATChannel]] = []

    def make(
        replies: Replies | None = None,
        *,
        byte_by_byte: bool = False,
        on_urc: Callable[[str], None] | None = None,
        on_close: Callable[[BaseException], None] | None = None,
    ) -> tuple[PtyModem, ATChannel, queue.Queue[str]]:
        modem = PtyModem(replies, byte_by_byte=byte_by_byte)
        urcs: queue.Queue[str] = queue.Queue()
        channel = ATChannel(
            open_serial(modem.path), on_urc or urcs.put, on_close=on_close, name="test"
        )
        made.append((modem, channel))
        return modem, channel, urcs

    yield make
    for modem, channel in made:
        channel.close()
        modem.close()


def scripted(script: dict[str, bytes]) -> Replies:
    return lambda command: [script.get(command, b"\r\nERROR\r\n")]


# --- pure parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("OK", FinalResult("OK")),
        ("ERROR", FinalResult("ERROR")),
        ("+CME ERROR: 10", FinalResult("+CME ERROR", "10")),
        ("+CME ERROR: SIM not inserted", FinalResult("+CME ERROR", "SIM not inserted")),
        ("+CMS ERROR: 500", FinalResult("+CMS ERROR", "500")),
        ("NO CARRIER", FinalResult("NO CARRIER")),
        ("BUSY", FinalResult("BUSY")),
        ("NO ANSWER", FinalResult("NO ANSWER")),
        ("NO DIALTONE", FinalResult("NO DIALTONE")),
        ("CONNECT", FinalResult("CONNECT")),
        ("CONNECT 115200", FinalResult("CONNECT", "115200")),
        ("+CSQ: 20,99", None),
        ("RING", None),
        ("VOICE CALL: END: 000041", None),
        ("OKAY", None),
        ("", None),
    ],
)
def test_classify_line_recognises_final_result_codes(line: str, expected: FinalResult | None):
    assert classify_line(line) == expected


def test_final_result_text_round_trips_the_line():
    for line in ("OK", "+CME ERROR: 10", "+CMS ERROR: 500", "NO CARRIER", "CONNECT 115200"):
        result = classify_line(line)
        assert result is not None and result.text == line


def test_final_result_knows_success_call_results_and_error_numbers():
    assert FinalResult("OK").success and FinalResult("CONNECT", "9600").success
    assert not FinalResult("NO CARRIER").success
    assert FinalResult("BUSY").is_call_result and not FinalResult("ERROR").is_call_result
    assert FinalResult("+CME ERROR", "10").error_number == 10
    assert FinalResult("+CME ERROR", "SIM not inserted").error_number is None


def test_response_prefix_is_derived_from_extended_commands():
    assert response_prefix("AT+CPIN?") == "+CPIN:"
    assert response_prefix("at+csq") == "+CSQ:"
    assert response_prefix("AT+CPCMREG=1") == "+CPCMREG:"
    assert response_prefix("ATI") is None
    assert response_prefix("ATD+15551230000;") is None


def test_parse_clip_reads_number_and_name():
    assert parse_clip('+CLIP: "+15551234567",145,,,,0') == CallerId("+15551234567")
    assert parse_clip('+CLIP: "0771234",129,"",0,"Grandma",0') == CallerId("0771234", "Grandma")
    assert parse_clip('+CLIP: "02079460000",129') == CallerId("02079460000")


def test_parse_clip_gives_no_number_when_withheld():
    assert parse_clip('+CLIP: "",128,,,,1') == CallerId("")
    assert parse_clip('+CLIP: "123",128,,,,2') == CallerId("")


def test_parsers_reject_lines_of_another_command():
    with pytest.raises(ValueError, match=r"expected '\+CLIP:'"):
        parse_clip("+CSQ: 20,99")
    with pytest.raises(ValueError, match="malformed"):
        parse_csq("+CSQ: ,")


def test_signal_and_network_parsers():
    assert parse_csq("+CSQ: 20,99") == (20, 99)
    assert [csq_to_dbm(n) for n in (0, 1, 20, 31, 99, 100, 191)] == [
        -113,
        -111,
        -73,
        -51,
        None,
        -116,
        -25,
    ]
    assert parse_cops('+COPS: 0,0,"Test Mobile",7') == "Test Mobile"
    assert parse_cops("+COPS: 0") == ""
    assert parse_creg("+CREG: 0,1") == "home"
    assert parse_creg('+CREG: 2,5,"1877","0002"') == "roaming"
    assert parse_cpin("+CPIN: SIM PIN") == "SIM PIN"
    entry = parse_clcc('+CLCC: 1,1,4,0,0,"+15551234567",145')
    assert (entry.index, entry.incoming, entry.stat, entry.number) == (1, True, 4, "+15551234567")


def test_line_splitter_accepts_every_line_end_and_drops_empty_lines():
    splitter = LineSplitter()
    assert splitter.feed(b"\r\r\n+RXDTMF: 8\r\r\nA\rB\nC\r\n\r\nD") == ["+RXDTMF: 8", "A", "B", "C"]
    assert splitter.feed(b"\r\n") == ["D"]


def test_line_splitter_turns_garbage_into_text_without_raising():
    assert LineSplitter().feed(b"\x00\xff\xfeboot\x1b\r\nRDY\r\n") == ["\ufffd\ufffdboot", "RDY"]


TRANSCRIPT = (
    b"\xff\x00\xfe boot banner \r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n"
    b'AT\r\r\nOK\r\n\r\n+COPS: 0,0,"Caf\xc3\xa9 Mobile",7\r\n\r\nOK\r\n'
    b'\r\nRING\r\n\r\n+CLIP: "+15551234567",145,,,,0\r\n'
    b"\r\r\nVOICE CALL: BEGIN\r\r\n\rOK\r+RXDTMF: 5\n\n"
    b"\r\nVOICE CALL: END: 000041\r\n\r\nNO CARRIER\r\n"
)


@given(st.lists(st.integers(min_value=0, max_value=len(TRANSCRIPT)), max_size=40))
def test_any_chunking_of_a_transcript_gives_the_same_lines(cuts: list[int]):
    whole = LineSplitter().feed(TRANSCRIPT)
    splitter = LineSplitter()
    bounds = [0, *sorted(cuts), len(TRANSCRIPT)]
    pieces = [TRANSCRIPT[a:b] for a, b in itertools.pairwise(bounds)]
    assert [line for piece in pieces for line in splitter.feed(piece)] == whole
    assert '+COPS: 0,0,"Café Mobile",7' in whole


# --- the channel on a pty -------------------------------------------------------------------


def test_command_returns_information_lines_and_final(make_channel):
    modem, channel, _ = make_channel(scripted({"AT+CSQ": b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"}))
    response = channel.command("AT+CSQ")
    assert (response.command, response.lines, response.final) == ("AT+CSQ", ("+CSQ: 20,99",), "OK")
    assert response.value("+CSQ:") == "20,99"
    assert modem.next_command() == "AT+CSQ"


def test_urc_in_the_middle_of_a_response_goes_to_the_urc_handler(make_channel):
    ati = (
        b"\r\nManufacturer: SIMCOM INCORPORATED\r\n"
        b'\r\n+CLIP: "+15551234567",145,,,,0\r\n'
        b"\r\nModel: SIMCOM_SIM7600G-H\r\n\r\nRING\r\n\r\nOK\r\n"
    )
    _, channel, urcs = make_channel(scripted({"ATI": ati}))
    response = channel.command("ATI")
    assert response.lines == ("Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600G-H")
    assert urcs.get(timeout=5) == '+CLIP: "+15551234567",145,,,,0'
    assert urcs.get(timeout=5) == "RING"


def test_a_response_line_with_a_urc_prefix_belongs_to_its_command(make_channel):
    _, channel, urcs = make_channel(scripted({"AT+CPIN?": b"\r\n+CPIN: READY\r\n\r\nOK\r\n"}))
    assert channel.command("AT+CPIN?").lines == ("+CPIN: READY",)
    assert urcs.empty()


def test_echo_before_ate0_is_dropped(make_channel):
    def echoing(command: str) -> list[bytes]:
        return [command.encode() + b"\r", b"\r\nSIMCOM_SIM7600G-H\r\n\r\nOK\r\n"]

    _, channel, urcs = make_channel(echoing)
    assert channel.command("AT+CGMM").lines == ("SIMCOM_SIM7600G-H",)
    assert channel.command("ATE0").lines == ("SIMCOM_SIM7600G-H",)
    assert urcs.empty()


def test_simcom_double_cr_line_ends(make_channel):
    _, channel, urcs = make_channel(
        scripted({"AT+CSQ": b"\r\r\n+CSQ: 31,99\r\r\n\r\r\nOK\r\r\n\r\r\n+RXDTMF: #\r\r\n"})
    )
    assert channel.command("AT+CSQ").lines == ("+CSQ: 31,99",)
    assert urcs.get(timeout=5) == "+RXDTMF: #"


def test_a_response_split_into_single_bytes(make_channel):
    cops = b'\r\n+COPS: 0,0,"Test Mobile",7\r\n\r\nOK\r\n'
    _, channel, _ = make_channel(scripted({"AT+COPS?": cops}), byte_by_byte=True)
    response = channel.command("AT+COPS?")
    assert response.lines == ('+COPS: 0,0,"Test Mobile",7',)


def test_boot_banner_garbage_is_tolerated(make_channel):
    modem, channel, urcs = make_channel()
    modem.send(b"\x00\xff\xfe\x1b[0m\xc3 SIMCOM boot\r\nRDY\r\n\r\n+CPIN: READY\r\n")
    assert urcs.get(timeout=5) == "\ufffd\ufffd[0m\ufffd SIMCOM boot"
    assert urcs.get(timeout=5) == "RDY"
    assert urcs.get(timeout=5) == "+CPIN: READY"
    assert channel.command("AT").final == "OK"


def test_no_answer_raises_at_timeout(make_channel):
    _, channel, _ = make_channel(lambda command: [])
    with pytest.raises(ATTimeout, match=r"AT\+CSQ: no final result within 0.2 s"):
        channel.command("AT+CSQ", timeout=0.2)


def test_cme_error_raises_at_command_error_with_its_code(make_channel):
    _, channel, _ = make_channel(scripted({"AT+CPIN?": b"\r\n+CME ERROR: 10\r\n"}))
    with pytest.raises(ATCommandError) as caught:
        channel.command("AT+CPIN?")
    assert caught.value.final == "+CME ERROR: 10"
    assert caught.value.result.error_number == 10
    assert caught.value.command == "AT+CPIN?"


def test_no_carrier_when_idle_is_a_urc(make_channel):
    modem, channel, urcs = make_channel()
    modem.send(b"\r\nVOICE CALL: END: 000041\r\n\r\nNO CARRIER\r\n")
    assert urcs.get(timeout=5) == "VOICE CALL: END: 000041"
    assert urcs.get(timeout=5) == "NO CARRIER"
    assert channel.command("AT").final == "OK"


def test_no_carrier_ends_a_dial(make_channel):
    _, channel, urcs = make_channel(scripted({"ATD+15551234567;": b"\r\nNO CARRIER\r\n"}))
    with pytest.raises(ATCommandError) as caught:
        channel.command("ATD+15551234567;")
    assert caught.value.final == "NO CARRIER"
    assert urcs.empty()


def test_no_carrier_during_another_command_is_a_urc(make_channel):
    _, channel, urcs = make_channel(
        scripted({"AT+CSQ": b"\r\nNO CARRIER\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n"})
    )
    assert channel.command("AT+CSQ").lines == ("+CSQ: 20,99",)
    assert urcs.get(timeout=5) == "NO CARRIER"


def test_voice_call_begin_during_ata_is_a_urc(make_channel):
    _, channel, urcs = make_channel(scripted({"ATA": b"\r\nVOICE CALL: BEGIN\r\n\r\nOK\r\n"}))
    assert channel.command("ATA").lines == ()
    assert urcs.get(timeout=5) == "VOICE CALL: BEGIN"


def test_device_vanishing_mid_command_fails_it_and_reports_the_loss(make_channel):
    lost: queue.Queue[BaseException] = queue.Queue()
    modem, channel, _ = make_channel(lambda command: [], on_close=lost.put)
    unplug = threading.Thread(target=lambda: (modem.next_command(), modem.unplug()))
    unplug.start()
    with pytest.raises(ATChannelClosed, match="device lost"):
        channel.command("AT+CSQ", timeout=5.0)
    unplug.join()
    assert isinstance(lost.get(timeout=5), OSError)
    assert not channel.alive
    with pytest.raises(ATChannelClosed):
        channel.command("AT")


def test_a_urc_handler_may_send_a_command(make_channel):
    answers: queue.Queue[tuple[str, ...]] = queue.Queue()
    holder: list[ATChannel] = []

    def on_urc(line: str) -> None:
        if line == "RING":
            answers.put(holder[0].command("AT+CLCC").lines)

    clcc = b'\r\n+CLCC: 1,1,4,0,0,"+15551234567",145\r\n\r\nOK\r\n'
    modem, channel, _ = make_channel(scripted({"AT+CLCC": clcc}), on_urc=on_urc)
    holder.append(channel)
    modem.send(b"\r\nRING\r\n")
    assert answers.get(timeout=5) == ('+CLCC: 1,1,4,0,0,"+15551234567",145',)


def test_close_fails_a_pending_command(make_channel):
    modem, channel, _ = make_channel(lambda command: [])
    closer = threading.Thread(target=lambda: (modem.next_command(), channel.close()))
    closer.start()
    with pytest.raises(ATChannelClosed, match="closed"):
        channel.command("AT+CSQ", timeout=5.0)
    closer.join()


def test_a_command_with_a_line_end_is_refused(make_channel):
    _, channel, _ = make_channel()
    with pytest.raises(ValueError, match="line end"):
        channel.command("AT\rATZ")
