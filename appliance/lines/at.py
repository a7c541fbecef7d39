"""The AT command channel: pure line parsing, and one serial port shared by commands and URCs.

Parsing (``LineSplitter``, ``classify_line``, the ``parse_*`` helpers) does no I/O. ``ATChannel``
owns the port: one reader thread assembles lines and routes each either to the pending command
or to the URC queue, one dispatcher thread hands URCs to the driver, and a lock lets one command
at a time be on the wire (pySerial's ``threaded.ReaderThread`` and ``examples/at_protocol.py``).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import queue
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import serial

log = logging.getLogger(__name__)

# Errors a serial device raises when it vanishes or misbehaves; translated at the boundary.
DEVICE_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError)

# Unsolicited result codes seen on SIMCom, Quectel, Huawei and SIM800 modems (3GPP TS 27.007
# plus vendor codes). A line starting with one of these is a URC even while a command is pending.
DEFAULT_URC_PREFIXES: tuple[str, ...] = (
    "RING",
    "+CRING:",
    "+CLIP:",
    "+CCWA:",
    "+CLCC:",
    "VOICE CALL:",
    "MISSED_CALL:",
    "+RXDTMF:",
    "+DTMF:",
    "+CPIN:",
    "RDY",
    "SMS DONE",
    "PB DONE",
    "+CMTI:",
    "+CMT:",
    "+CDS:",
    "+CREG:",
    "+CGREG:",
    "+CEREG:",
    "+CUSD:",
    "+CTZV:",
    "*PSUTTZ:",
    "DST:",
    "+QIND:",
    "^RSSI:",
    "^BOOT:",
    "^MODE:",
    "NORMAL POWER DOWN",
    "POWERED DOWN",
)

# Results that end a dial or answer; anywhere else they report a call that went away.
CALL_RESULTS = frozenset({"NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "NO DIAL TONE"})
_PLAIN_FINALS = frozenset({"OK", "ERROR"}) | CALL_RESULTS
_ERROR_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")

_EOL = re.compile(rb"[\r\n]+")
_COMMAND_NAME = re.compile(r"AT([+^$*#%!][A-Z0-9]+)")
# Control characters (boot noise, NULs) are dropped from lines; tab survives.
_CONTROL = {c: None for c in range(32) if c != 9} | {127: None}


# --- pure parsing ---------------------------------------------------------------------------


class LineSplitter:
    """Cuts a byte stream into text lines, whatever the chunking.

    Any run of CR and LF ends a line (``\\r\\n``, SIMCom's ``\\r\\r\\n``, a lone ``\\r``);
    empty lines are dropped; bytes are decoded as UTF-8 per whole line, with replacement, so
    garbage never raises. A line longer than ``max_line`` without an end is cut there.
    """

    def __init__(self, max_line: int = 4096) -> None:
        self._buf = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        *complete, rest = _EOL.split(bytes(self._buf))
        if len(rest) > self._max_line:
            complete.append(rest)
            rest = b""
        self._buf = bytearray(rest)
        return [line for raw in complete if (line := decode_line(raw))]


def decode_line(raw: bytes) -> str:
    """One line of modem output as text: control characters dropped, whitespace trimmed."""
    return raw.decode("utf-8", errors="replace").translate(_CONTROL).strip()


@dataclass(frozen=True)
class FinalResult:
    """A final result code: OK, ERROR, +CME ERROR, +CMS ERROR, CONNECT or a call result."""

    code: str
    detail: str = ""

    @property
    def text(self) -> str:
        """The line as the modem sends it."""
        if self.code in ("+CME ERROR", "+CMS ERROR"):
            return f"{self.code}: {self.detail}"
        return f"{self.code} {self.detail}" if self.detail else self.code

    @property
    def success(self) -> bool:
        return self.code in ("OK", "CONNECT")

    @property
    def is_call_result(self) -> bool:
        return self.code in CALL_RESULTS

    @property
    def error_number(self) -> int | None:
        """The numeric +CME/+CMS error (``AT+CMEE=1``), else None."""
        return int(self.detail) if self.detail.isdigit() else None


def classify_line(line: str) -> FinalResult | None:
    """The final result code ``line`` carries, or None for an information line or URC."""
    text = line.strip()
    if text in _PLAIN_FINALS:
        return FinalResult(text)
    for prefix in _ERROR_PREFIXES:
        if text.startswith(prefix):
            return FinalResult(prefix[:-1], text[len(prefix) :].strip())
    if text == "CONNECT" or text.startswith("CONNECT "):
        return FinalResult("CONNECT", text[len("CONNECT") :].strip())
    return None


def is_urc(line: str, prefixes: Collection[str] = DEFAULT_URC_PREFIXES) -> bool:
    """Whether ``line`` starts with one of the unsolicited result code prefixes."""
    return line.startswith(tuple(prefixes))


def is_call_command(command: str) -> bool:
    """ATD (dial) and ATA (answer): the commands that end in NO CARRIER, BUSY or NO ANSWER."""
    return command.strip().upper().startswith(("ATD", "ATA"))


def response_prefix(command: str) -> str | None:
    """The prefix of the information lines ``command`` answers with (``AT+CPIN?`` → ``+CPIN:``)."""
    match = _COMMAND_NAME.match(command.strip().upper())
    return f"{match.group(1)}:" if match else None


def split_fields(value: str) -> list[str]:
    """Comma-separated parameters, quotes removed: ``"+1555",145,`` → ``["+1555", "145", ""]``."""
    return next(csv.reader([value], skipinitialspace=True), [])


def field_value(line: str, prefix: str) -> str:
    """What follows ``prefix`` on ``line``; ``ValueError`` when the prefix is missing."""
    if not line.startswith(prefix):
        raise ValueError(f"expected {prefix!r} at the start of {line!r}")
    return line[len(prefix) :].strip()


@dataclass(frozen=True)
class CallerId:
    """+CLIP: the caller's number and name, "" when withheld or unknown."""

    number: str = ""
    name: str = ""


def parse_clip(line: str) -> CallerId:
    """``+CLIP: <number>,<type>[,<subaddr>,<satype>[,<alpha>[,<CLI validity>]]]`` (27.007 7.18)."""
    fields = split_fields(field_value(line, "+CLIP:"))
    if not fields:
        raise ValueError(f"+CLIP without a number: {line!r}")
    number = fields[0].strip()
    name = fields[4].strip() if len(fields) > 4 else ""
    validity = fields[5].strip() if len(fields) > 5 else "0"
    if validity not in ("", "0"):  # 1 withheld by the caller, 2 not available
        number = ""
    return CallerId(number, name)


def parse_csq(line: str) -> tuple[int, int]:
    """``+CSQ: <rssi>,<ber>`` as two integers."""
    fields = split_fields(field_value(line, "+CSQ:"))
    if len(fields) < 2 or not all(f.strip().isdigit() for f in fields[:2]):
        raise ValueError(f"malformed +CSQ: {line!r}")
    return int(fields[0]), int(fields[1])


def csq_to_dbm(rssi: int) -> int | None:
    """Signal in dBm for a +CSQ rssi (TS 27.007 8.5; 100-191 is SIMCom's TD-SCDMA range)."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    if 100 <= rssi <= 191:
        return -116 + (rssi - 100)
    return None  # 99 / 199: not known or not detectable


def parse_cops(line: str) -> str:
    """The operator name from ``+COPS: <mode>[,<format>,<oper>[,<AcT>]]``, "" when unregistered."""
    fields = split_fields(field_value(line, "+COPS:"))
    return fields[2].strip() if len(fields) > 2 else ""


REGISTRATION_STATES = {
    0: "not-registered",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home-sms-only",
    7: "roaming-sms-only",
    8: "emergency-only",
}


def parse_creg(line: str, prefix: str = "+CREG:") -> str:
    """Registration from a +CREG/+CGREG/+CEREG read response (``<n>,<stat>[,...]``)."""
    fields = split_fields(field_value(line, prefix))
    if len(fields) < 2 or not fields[1].strip().isdigit():
        raise ValueError(f"malformed {prefix} read response: {line!r}")
    return REGISTRATION_STATES.get(int(fields[1]), "unknown")


def parse_cpin(line: str) -> str:
    """The SIM state from ``+CPIN: <code>`` (READY, SIM PIN, SIM PUK, NOT INSERTED...)."""
    return field_value(line, "+CPIN:")


@dataclass(frozen=True)
class CallEntry:
    """One line of +CLCC (TS 27.007 7.18): ``stat`` 0 active … 4 incoming, 5 waiting."""

    index: int
    incoming: bool
    stat: int
    number: str = ""


def parse_clcc(line: str) -> CallEntry:
    """``+CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>[,<alpha>]]``."""
    fields = split_fields(field_value(line, "+CLCC:"))
    if len(fields) < 5 or not all(f.strip().isdigit() for f in fields[:3]):
        raise ValueError(f"malformed +CLCC: {line!r}")
    number = fields[5].strip() if len(fields) > 5 else ""
    return CallEntry(int(fields[0]), fields[1].strip() == "1", int(fields[2]), number)


# --- responses and errors -------------------------------------------------------------------


@dataclass(frozen=True)
class ATResponse:
    """A completed command: its information lines and the final result code."""

    command: str
    lines: tuple[str, ...]
    final: str

    def value(self, prefix: str) -> str | None:
        """What follows ``prefix`` on the first line that starts with it."""
        for line in self.lines:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        return None


class ATError(Exception):
    """An AT command did not succeed."""


class ATTimeout(ATError):
    """No final result code arrived in time."""

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(f"{command}: no final result within {timeout:g} s")
        self.command = command
        self.timeout = timeout


class ATCommandError(ATError):
    """The modem answered with an error final (ERROR, +CME ERROR, NO CARRIER...)."""

    def __init__(self, command: str, result: FinalResult, lines: tuple[str, ...] = ()) -> None:
        super().__init__(f"{command}: {result.text}")
        self.command = command
        self.result = result
        self.final = result.text
        self.lines = lines


class ATChannelClosed(ATError):
    """The channel is closed or its device has gone."""


# --- the channel ----------------------------------------------------------------------------


@dataclass
class _Pending:
    command: str
    expect: str | None
    call: bool
    lines: list[str] = field(default_factory=list)
    echo_seen: bool = False
    final: FinalResult | None = None
    error: ATError | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Closed:
    exc: BaseException


class ATChannel:
    """Commands and URCs over one serial port (pyserial ``Serial`` or anything alike).

    ``on_urc(line)`` runs on the channel's dispatcher thread, never on the reader, so it may send
    commands itself. When the device fails, pending commands fail with ``ATChannelClosed`` and
    ``on_close(exc)`` runs on the dispatcher thread after the last URC.
    """

    def __init__(
        self,
        port: serial.SerialBase,
        on_urc: Callable[[str], None],
        urc_prefixes: Collection[str] = DEFAULT_URC_PREFIXES,
        *,
        on_close: Callable[[BaseException], None] | None = None,
        name: str = "at",
    ) -> None:
        self.name = name
        self._port = port
        self._on_urc = on_urc
        self._on_close = on_close
        self._urc_prefixes = tuple(urc_prefixes)
        self._splitter = LineSplitter()
        self._command_lock = threading.Lock()
        self._state = threading.Lock()
        self._pending: _Pending | None = None
        self._last_command = ""
        self._closing = threading.Event()
        self._dead: BaseException | None = None
        self._urcs: queue.Queue[str | _Closed | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"{name}-urc", daemon=True
        )
        self._dispatcher.start()
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._dead is None and not self._closing.is_set()

    def command(self, cmd: str, timeout: float = 5.0, expect: str | None = None) -> ATResponse:
        """Send ``cmd`` and wait for its final result code.

        ``expect`` is the prefix of the information lines that answer it (default: derived from
        the command, ``AT+CPIN?`` → ``+CPIN:``); such lines belong to the response even when the
        same prefix is also a URC.
        """
        if "\r" in cmd or "\n" in cmd:
            raise ValueError(f"AT command contains a line end: {cmd!r}")
        data = cmd.encode("ascii") + b"\r"
        with self._command_lock:
            pending = _Pending(cmd, expect or response_prefix(cmd), is_call_command(cmd))
            with self._state:
                self._check_open()
                self._pending = pending
                self._last_command = cmd
            log.debug("%s > %s", self.name, cmd)
            try:
                self._port.write(data)
            except DEVICE_ERRORS as exc:
                self._die(exc)
                raise ATChannelClosed(f"{self.name}: cannot write {cmd!r}: {exc}") from exc
            pending.done.wait(timeout)
            with self._state:
                if self._pending is pending:
                    self._pending = None
                finished = pending.done.is_set()  # the final may land as the wait times out
        if not finished:
            log.debug("%s ! %s timed out after %g s", self.name, cmd, timeout)
            raise ATTimeout(cmd, timeout)
        if pending.error is not None:
            raise pending.error
        assert pending.final is not None
        lines = tuple(pending.lines)
        if not pending.final.success:
            raise ATCommandError(cmd, pending.final, lines)
        return ATResponse(cmd, lines, pending.final.text)

    def close(self) -> None:
        """Stop both threads and close the port; pending commands fail with ``ATChannelClosed``."""
        with self._state:
            if self._closing.is_set():
                return
            self._closing.set()
            self._fail_pending(ATChannelClosed(f"{self.name}: channel closed"))
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(DEVICE_ERRORS):
                cancel()
        self._join(self._reader)
        self._urcs.put(None)
        self._join(self._dispatcher)
        self._close_port()

    def __enter__(self) -> ATChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- reader thread ---

    def _read_loop(self) -> None:
        try:
            while not self._closing.is_set():
                data = self._port.read(self._port.in_waiting or 1)
                if data:
                    for line in self._splitter.feed(data):
                        self._route(line)
        except Exception as exc:
            if self._closing.is_set() or self._dead is not None:
                # Our own close() pulled the port away, or a failed write already reported
                # the device lost and closed it (pyserial then fails in odd ways mid-read).
                return
            if not isinstance(exc, DEVICE_ERRORS):
                log.exception("%s: reader failed", self.name)
            self._die(exc)

    def _route(self, line: str) -> None:
        log.debug("%s < %s", self.name, line)
        final = classify_line(line)
        with self._state:
            pending = self._pending
            if pending is not None and not pending.done.is_set():
                if self._is_echo(pending, line):
                    pending.echo_seen = True
                    return
                if final is not None and (pending.call or not final.is_call_result):
                    pending.final = final
                    pending.done.set()
                    return
                answers = pending.expect is not None and line.startswith(pending.expect)
                if final is None and (answers or not is_urc(line, self._urc_prefixes)):
                    pending.lines.append(line)
                    return
            elif final is not None and not final.is_call_result:
                log.debug("%s: dropping stray %s", self.name, line)
                return
            elif line.upper() == self._last_command.upper():
                return  # the echo of a command that already timed out
        self._urcs.put(line)

    @staticmethod
    def _is_echo(pending: _Pending, line: str) -> bool:
        # Before ATE0 takes effect the modem echoes each command line back first.
        return (
            not pending.echo_seen
            and not pending.lines
            and line.upper() == pending.command.strip().upper()
        )

    def _die(self, exc: BaseException) -> None:
        with self._state:
            if self._dead is not None or self._closing.is_set():
                return
            self._dead = exc
            self._fail_pending(ATChannelClosed(f"{self.name}: device lost: {exc}"))
        log.warning("%s: device lost: %s", self.name, exc)
        self._close_port()
        self._urcs.put(_Closed(exc))
        self._urcs.put(None)

    def _fail_pending(self, error: ATError) -> None:
        pending = self._pending
        if pending is not None and not pending.done.is_set():
            pending.error = error
            pending.done.set()

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise ATChannelClosed(f"{self.name}: channel closed")
        if self._dead is not None:
            raise ATChannelClosed(f"{self.name}: device lost: {self._dead}")

    # --- dispatcher thread ---

    def _dispatch_loop(self) -> None:
        while (item := self._urcs.get()) is not None:
            try:
                if isinstance(item, _Closed):
                    if self._on_close is not None:
                        self._on_close(item.exc)
                else:
                    self._on_urc(item)
            except Exception:
                log.exception("%s: URC handler failed on %r", self.name, item)

    # --- helpers ---

    def _close_port(self) -> None:
        try:
            self._port.close()
        except DEVICE_ERRORS as exc:
            log.debug("%s: closing port: %s", self.name, exc)

    @staticmethod
    def _join(thread: threading.Thread) -> None:
        if thread is not threading.current_thread() and thread.is_alive():
            thread.join(timeout=5.0)


def open_serial(
    path: str, baudrate: int = 115200, *, timeout: float = 0.1, write_timeout: float = 2.0
) -> serial.SerialBase:
    """Open a modem port (a device path or any pyserial URL) for exclusive use."""
    options = {"baudrate": baudrate, "timeout": timeout, "write_timeout": write_timeout}
    try:
        return serial.serial_for_url(path, exclusive=True, **options)
    except ValueError:  # a backend without exclusive access
        return serial.serial_for_url(path, **options)
