"""A SIMCom SIM7600 modem and the caller at its far end, on two real ptys.

The control pty speaks the SIM7600's AT dialect (V.250 framing, echo until ``ATE0``,
``+CME ERROR`` after ``AT+CMEE=1``); the audio pty carries what the SIM7600's USB audio port
carries once ``AT+CPCMREG=1`` is set during a call: 8000 Hz signed 16-bit little-endian mono,
320 bytes every 20 ms of the modem's own clock. A line driver opens both with pyserial exactly
as it opens the real ``/dev/ttyUSB2`` and ``/dev/ttyUSB4``.

Formats taken from SIMCom's SIM7500/SIM7600 AT Command Manual and from transcripts of real
modems (ModemManager's SIMTech plugin tests, chan_quectel's SIM7600 support):

- incoming call: ``RING`` (``+CRING: VOICE`` after ``AT+CRC=1``), then with ``AT+CLIP=1``
  ``+CLIP: "<number>",<type>,,,"<alpha>",<CLI validity>``, repeated every 3 s;
- answer and hang-up: ``VOICE CALL: BEGIN`` / ``VOICE CALL: END: HHMMSS`` (the SIM7600 sends
  them as part of ``ATA``/``AT+CHUP``'s response, before ``OK``); a remote hang-up adds
  ``NO CARRIER``; a caller who gives up while ringing leaves ``MISSED_CALL: hh:mmAM <number>``;
- DTMF from the caller: ``+RXDTMF: <key>``;
- ``AT+CPCMREG=1`` outside a call answers ``ERROR`` (observed on firmware LE20B04SIM7600G22);
- outbound call: ``ATD<number>;`` -> OK, then with ``AT+CLCC=1`` ``+CLCC: 1,0,2,...``
  (dialing), ``+CLCC: 1,0,3,...`` (alerting), ``+CLCC: 1,0,0,...`` and ``VOICE CALL: BEGIN``
  (answered); a call that never connects ends with ``+CLCC: 1,0,6,...``,
  ``VOICE CALL: END: 000000`` and ``BUSY``, ``NO ANSWER`` or ``NO CARRIER``. The far end is
  set with ``set_far_end`` (see ``appliance.sim.far_end``).
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
import logging
import os
import re
import select
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.audio.tones import DTMF_FREQS, dtmf
from appliance.sim.far_end import CLCC_STAT, FAILURE_RESULTS, OutboundCalls

log = logging.getLogger(__name__)

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
RX_CAP_BYTES = 10 * FRAME_BYTES  # 200 ms of the appliance's audio waiting to be consumed
TX_CAP_BYTES = 50 * FRAME_BYTES  # 1 s of caller audio the appliance has not read yet
RING_INTERVAL_S = 3.0

MANUFACTURER = "SIMCOM INCORPORATED"
MODEL = "SIMCOM_SIM7600G-H"
REVISION = "LE20B04SIM7600G22"
OPERATOR = "Simulated"

# 3GPP TS 27.007 §9.2 numbers, as the SIM7600 reports them after AT+CMEE.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    50: "incorrect parameters",
}
STATES = ("idle", "ringing", "dialing", "alerting", "active")


class AtError(Exception):
    """A command failed: ``cme`` is a +CME ERROR code, or None for a plain final result."""

    def __init__(self, cme: int | None = None, result: str = "ERROR") -> None:
        super().__init__(result if cme is None else f"+CME ERROR: {cme}")
        self.cme = cme
        self.result = result


# One V.250 command inside a command line (§5.3): extended commands run to the next ";"
# outside quotes, a dial string to the end of the line, basic ones are a letter and a number.
_COMMAND = re.compile(
    r"""[\s;]*(?:
      (?P<extended>[+^$#*](?:[^";]|"[^"]*")*)
    | (?P<dial>[Dd].*)
    | (?P<sreg>[Ss]\d+(?:\?|=\d*)?)
    | (?P<basic>&?[A-Za-z]\d*)
    )""",
    re.VERBOSE,
)


def split_command_line(body: str) -> list[str]:
    """Split what follows ``AT`` into single commands.

    ``"E0V1+CLIP=1;+CRC=1"`` → ``["E0", "V1", "+CLIP=1", "+CRC=1"]``. Raises ``ValueError``.
    """
    commands: list[str] = []
    position = 0
    while position < len(body.rstrip(" ;")):
        match = _COMMAND.match(body, position)
        if match is None or match.end() == position:
            raise ValueError(f"unexpected {body[position:]!r} in {body!r}")
        commands.append(match.group(match.lastgroup or "basic"))
        position = match.end()
    return commands


def parse_extended(command: str) -> tuple[str, str, list[str]]:
    """``"+CLIP=1"`` → ``("+CLIP", "=", ["1"])``; the operation is "", "?", "=?" or "="."""
    end = len(command)
    for index, char in enumerate(command):
        if char in "=?":
            end = index
            break
    name, rest = command[:end].upper(), command[end:]
    if rest in ("", "?", "=?"):
        return name, rest, []
    if not rest.startswith("="):
        raise ValueError(f"bad command {command!r}")
    return name, "=", split_arguments(rest[1:])


def split_arguments(text: str) -> list[str]:
    """Comma-separated values, quotes removed (commas inside quotes are kept)."""
    values, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    values.append("".join(current).strip())
    return values


def number_type(number: str) -> int:
    """TON/NPI octet: 145 for an international "+..." number, 129 otherwise."""
    return 145 if number.startswith("+") else 129


def clip_line(number: str, name: str = "") -> str:
    """The ``+CLIP`` URC for a caller (an empty number is a withheld one)."""
    if not number:
        return '+CLIP: "",128,,,,1'
    alpha = f'"{name}"' if name else ""
    return f'+CLIP: "{number}",{number_type(number)},,,{alpha},0'


def hhmmss(seconds: float) -> str:
    """``VOICE CALL: END`` duration, HHMMSS."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    return f"{min(hours, 99):02d}{rest // 60:02d}{rest % 60:02d}"


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def _digits(seed: str, count: int) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return "".join(str(int(c, 16) % 10) for c in digest)[:count]


def load_audio(audio: np.ndarray | str | Path) -> np.ndarray:
    """Caller audio as 8 kHz int16: an int16 (or float ±1.0) array at 8 kHz, or any file."""
    if isinstance(audio, (str, Path)):
        import soundfile
        import soxr

        data, rate = soundfile.read(str(audio), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if rate != RATE:
            mono = soxr.resample(mono, rate, RATE)
        audio = mono
    samples = np.asarray(audio)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise ValueError("caller audio must be mono")
    if samples.dtype == np.int16:
        return samples.copy()
    if np.issubdtype(samples.dtype, np.floating):
        return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)
    raise ValueError(f"caller audio must be int16 or float, not {samples.dtype}")


def _open_pty() -> tuple[int, int, str]:
    """A raw pty: (master fd, slave fd, slave path); the master is non-blocking."""
    master, slave = os.openpty()
    for fd in (master, slave):
        tty.setraw(fd, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


@dataclass
class _Call:
    number: str  # the caller's, or the number dialled
    name: str
    state: str = "ringing"  # ringing | dialing | alerting | active
    answered_at: float = 0.0
    rings: int = 0
    outgoing: bool = False
    index: int = 1


class SimcomModem(OutboundCalls):
    """One emulated SIM7600 line and its far-end party; every method is thread-safe.

    ``speed`` runs every clock faster (ringing cadence, audio frames, call durations) for tests;
    ``drift_ppm`` makes the audio clock run fast (positive) or slow against ``time.monotonic``.
    ``events_before_ok`` sends ``VOICE CALL: BEGIN/END`` inside ``ATA``/``AT+CHUP``'s response,
    as the SIM7600 does; False sends them as URCs after ``OK``.
    """

    def __init__(
        self,
        *,
        name: str = "sim0",
        number: str = "+15550000001",
        speed: float = 1.0,
        drift_ppm: float = 0.0,
        events_before_ok: bool = True,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.name = name
        self.number = number
        self.speed = speed
        self.drift_ppm = drift_ppm
        self.events_before_ok = events_before_ok
        self.period = FRAME_MS / 1000.0 / (1.0 + drift_ppm * 1e-6) / speed
        imei = "86" + _digits(name + "imei", 12)
        self.imei = imei + _luhn_digit(imei)
        self.imsi = "00101" + _digits(name + "imsi", 10)
        self.iccid = "8901" + _digits(name + "iccid", 15)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._ctl_master, self._ctl_slave, self.control_path = _open_pty()
        self._audio_master, self._audio_slave, self.audio_path = _open_pty()
        self._ctl_wake = os.pipe()
        self._audio_wake = os.pipe()
        for fd in (*self._ctl_wake, *self._audio_wake):
            os.set_blocking(fd, False)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False
        self._closed = False

        # modem settings (AT&F defaults)
        self._reset_settings()
        self._sregs: dict[int, int] = {0: 0, 3: 13, 4: 10, 5: 8}
        self._linebuf = bytearray()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()

        # call and audio stream
        self._call: _Call | None = None
        self._pcm = False
        self._stream = False
        self._stream_gen = 0
        self._t0: float | None = None
        self._frames = 0
        self._underruns = 0
        self._overruns = 0
        self._dropped = 0
        self._rx = bytearray()
        self._tx_pending = bytearray()
        self._heard = bytearray()  # int16 little-endian, one sample per tick
        self._playback: deque[np.ndarray] = deque()
        self._play_end = 0
        self._commands: list[str] = []
        self._dtmf_sent: list[str] = []

    def _reset_settings(self) -> None:
        self._echo = True
        self._settings = {name: 0 for name in self._SETTINGS}
        self._settings["+DDET"] = 1  # the SIM7600 reports +RXDTMF without being asked

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the control and audio threads; the boot banner follows shortly."""
        with self._lock:
            if self._started:
                raise RuntimeError("modem already started")
            self._started = True
            # SIM7600 power-up: RDY, SIM ready, then SMS and phonebook ready a little later.
            self._schedule(0.2, lambda: self._urc("RDY", "+CPIN: READY"))
            self._schedule(1.0, lambda: self._urc("SMS DONE", "PB DONE"))
        for role, target in (("control", self._control_loop), ("audio", self._audio_loop)):
            thread = threading.Thread(target=target, name=f"sim-{self.name}-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close every descriptor (the ptys vanish)."""
        with self._lock:
            self._stopping = True
            self._stream = False
            self._changed.notify_all()
        self._wake(self._ctl_wake)
        self._wake(self._audio_wake)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (
                self._ctl_master,
                self._ctl_slave,
                self._audio_master,
                self._audio_slave,
                *self._ctl_wake,
                *self._audio_wake,
            ):
                os.close(fd)

    def __enter__(self) -> SimcomModem:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the caller's side -------------------------------------------------------------------

    def ring(self, caller_id: str, name: str = "") -> None:
        """A call from ``caller_id`` starts ringing (RING/+CLIP every 3 s until answered)."""
        with self._lock:
            if self._call is not None:
                raise RuntimeError(f"{self.name} is busy ({self.state})")
            call = _Call(caller_id, name)
            self._call = call
            self._changed.notify_all()
            self._schedule(0.0, lambda: self._ring_tick(call))

    def cancel_ring(self) -> None:
        """The caller gives up before the call is answered."""
        with self._lock:
            call = self._call
            if call is None or call.state != "ringing":
                return
            self._clcc_urc(call, 6)
            stamp = time.strftime("%I:%M%p")
            self._urc(f"MISSED_CALL: {stamp} {call.number}")
            self._end_call()

    def hangup(self) -> None:
        """The far end hangs up: a ringing call becomes a missed one, an outbound call not yet
        answered is declined (busy); no-op when idle."""
        with self._lock:
            call = self._call
            if call is None or self._far_end_declines(call):
                return
            if call.state == "ringing":
                self.cancel_ring()
                return
            # SIM7600: the call's end and its duration, then the V.250 result code.
            self._clcc_urc(call, 6)
            self._urc(f"VOICE CALL: END: {self._duration(call)}", "NO CARRIER")
            self._end_call()

    def press(self, key: str, *, inband: bool = False, ms: int = 100) -> None:
        """The caller presses ``key`` (one or more of 0-9 * # A-D).

        Out of band the modem reports ``+RXDTMF: <key>``; in band the tones (``ms`` on, ``ms``
        off) are queued into the caller's audio.
        """
        keys = key.upper()
        if not keys or any(k not in DTMF_FREQS for k in keys):
            raise ValueError(f"not DTMF keys: {key!r}")
        with self._lock:
            if self.state != "active":
                raise RuntimeError(f"{self.name} has no call in progress")
            if inband:
                gap = np.zeros(round(RATE * ms / 1000), dtype=np.int16)
                self._enqueue(
                    np.concatenate([part for k in keys for part in (dtmf(k, ms, RATE), gap)])
                )
            elif self._settings["+DDET"]:
                self._urc(*(f"+RXDTMF: {k}" for k in keys))

    def play(self, audio: np.ndarray | str | Path) -> int:
        """Queue what the caller says; returns the sample index where it will start."""
        samples = load_audio(audio)
        with self._lock:
            return self._enqueue(samples)

    def heard(self) -> np.ndarray:
        """Everything the appliance sent since the audio stream started, one sample per tick."""
        with self._lock:
            return np.frombuffer(bytes(self._heard), dtype="<i2").astype(np.int16)

    # --- observation -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            return "idle" if self._call is None else self._call.state

    @property
    def caller_id(self) -> str:
        with self._lock:
            return "" if self._call is None else self._call.number

    @property
    def audio_active(self) -> bool:
        with self._lock:
            return self._stream

    @property
    def sample_clock(self) -> int:
        """Samples elapsed on this modem's clock since the audio stream started."""
        with self._lock:
            return self._frames * FRAME_SAMPLES

    @property
    def commands(self) -> list[str]:
        """Every AT command line received, as sent (without the trailing CR)."""
        with self._lock:
            return list(self._commands)

    @property
    def dtmf_sent(self) -> list[str]:
        """Keys the appliance sent with ``AT+VTS``."""
        with self._lock:
            return list(self._dtmf_sent)

    def time_of_sample(self, index: int) -> float:
        """``time.monotonic()`` at which sample ``index`` of the stream is due."""
        with self._lock:
            if self._t0 is None:
                raise RuntimeError(f"{self.name} has not streamed audio yet")
            return self._t0 + index * self.period / FRAME_SAMPLES

    def wait_state(self, state: str, timeout: float | None = None) -> bool:
        """Block until the call state is ``state``; False on timeout."""
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        with self._changed:
            return self._changed.wait_for(lambda: self.state == state, timeout)

    def wait_audio(self, timeout: float | None = None) -> bool:
        """Block until the audio stream runs; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._stream, timeout)

    def stats(self) -> dict[str, int]:
        """Audio counters since the stream started (``dropped``: frames the appliance missed)."""
        with self._lock:
            return {
                "frames": self._frames,
                "underruns": self._underruns,
                "overruns": self._overruns,
                "dropped": self._dropped,
            }

    # --- call state (caller holds the lock) --------------------------------------------------

    def _duration(self, call: _Call) -> str:
        return hhmmss((time.monotonic() - call.answered_at) * self.speed)

    def _end_call(self) -> None:
        self._call = None
        self._pcm = False
        self._playback.clear()
        self._play_end = 0
        self._update_stream()
        self._changed.notify_all()

    def _ring_tick(self, call: _Call) -> None:
        if self._call is not call or call.state != "ringing":
            return
        call.rings += 1
        lines = ["+CRING: VOICE" if self._settings["+CRC"] else "RING"]
        if self._settings["+CLIP"]:
            lines.append(clip_line(call.number, call.name))
        self._urc(*lines)
        if call.rings == 1:
            self._clcc_urc(call, 4)
        self._schedule(RING_INTERVAL_S, lambda: self._ring_tick(call))

    def _clcc_line(self, call: _Call, stat: int) -> str:
        line = f"+CLCC: {call.index},{0 if call.outgoing else 1},{stat},0,0"
        if call.number:
            line += f',"{call.number}",{number_type(call.number)}'
            if call.name:
                line += f',"{call.name}"'
        return line

    def _clcc_urc(self, call: _Call, stat: int) -> None:
        if self._settings["+CLCC"]:
            self._urc(self._clcc_line(call, stat))

    # --- outbound calls (the hooks of OutboundCalls) ---

    def _new_call(self, number: str) -> _Call:
        return _Call(number, "")

    def _dial_refused(self) -> Exception:
        return AtError(3)  # one call at a time: operation not allowed

    def _progress_urcs(self, call: _Call, state: str) -> list[str]:
        lines = [self._clcc_line(call, CLCC_STAT[state])] if self._settings["+CLCC"] else []
        if state == "active":
            lines.append("VOICE CALL: BEGIN")
        return lines

    def _dial_failed_urcs(self, call: _Call, outcome: str) -> list[str]:
        lines = [self._clcc_line(call, 6)] if self._settings["+CLCC"] else []
        return [*lines, "VOICE CALL: END: 000000", FAILURE_RESULTS[outcome]]

    def _voice_changed(self) -> None:
        self._update_stream()

    def _enqueue(self, samples: np.ndarray) -> int:
        start = max(self._play_end, self._frames * FRAME_SAMPLES if self._stream else 0)
        if len(samples):
            self._playback.append(samples)
        self._play_end = start + len(samples)
        return start

    def _pull(self, count: int) -> np.ndarray:
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and self._playback:
            head = self._playback[0]
            take = min(count - filled, len(head))
            out[filled : filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._playback.popleft()
            else:
                self._playback[0] = head[take:]
        return out

    def _update_stream(self) -> None:
        """Start or stop the audio stream to match call state and ``AT+CPCMREG``."""
        wanted = self._pcm and self._call is not None and self._call.state == "active"
        if wanted == self._stream or self._stopping:
            return
        self._stream = wanted
        self._stream_gen += 1
        if wanted:
            # A fresh stream: sample 0 is now; stale bytes in either direction are gone.
            self._t0 = time.monotonic()
            self._frames = self._underruns = self._overruns = self._dropped = 0
            self._heard.clear()
            self._rx.clear()
            self._tx_pending.clear()
            self._play_end = sum(len(chunk) for chunk in self._playback)
            termios.tcflush(self._audio_slave, termios.TCIFLUSH)
            self._drain(self._audio_master)
        self._changed.notify_all()
        self._wake(self._audio_wake)

    # --- control port ------------------------------------------------------------------------

    def _control_loop(self) -> None:
        wake = self._ctl_wake[0]
        while True:
            with self._lock:
                if self._stopping:
                    return
                timeout = None
                if self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
            readable, _, _ = select.select([self._ctl_master, wake], [], [], timeout)
            if wake in readable:
                self._drain(wake)
            if self._ctl_master in readable:
                try:
                    data = os.read(self._ctl_master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                if data:
                    with self._lock:
                        self._receive(data)
            self._run_timers()

    def _run_timers(self) -> None:
        with self._lock:
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now and not self._stopping:
                _, _, action = heapq.heappop(self._timers)
                action()

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        when = time.monotonic() + delay / self.speed
        heapq.heappush(self._timers, (when, next(self._timer_seq), action))
        self._wake(self._ctl_wake)

    def _receive(self, data: bytes) -> None:
        """Bytes from the driver: echo them (V.250 ATE1), run each line at its CR (S3)."""
        echo = bytearray()
        for byte in data:
            if self._echo:
                echo.append(byte)
            if byte == self._sregs[3]:
                if echo:
                    self._write(bytes(echo))
                    echo.clear()
                line = self._linebuf.decode("ascii", "replace").strip()
                self._linebuf.clear()
                if line[:2].upper() == "AT":
                    self._execute(line)
            elif byte == self._sregs[5]:
                del self._linebuf[-1:]
            elif byte != 10:
                self._linebuf.append(byte)
        if echo:
            self._write(bytes(echo))

    def _execute(self, line: str) -> None:
        log.debug("%s <- %s", self.name, line)
        self._commands.append(line)
        info: list[str] = []
        after: list[str] = []
        try:
            for command in split_command_line(line[2:]):
                info.extend(self._dispatch(command, after))
        except AtError as err:
            self._urc(*info, self._error_text(err))
        except ValueError:
            self._urc(*info, "ERROR")
        except Exception:
            log.exception("%s: %s failed", self.name, line)
            self._urc(*info, "ERROR")
        else:
            self._urc(*info, "OK")
        if after:
            self._urc(*after)

    def _error_text(self, err: AtError) -> str:
        cmee = self._settings["+CMEE"]
        if err.cme is None or cmee == 0:
            return err.result
        if cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(err.cme, 'unknown')}"
        return f"+CME ERROR: {err.cme}"

    def _urc(self, *lines: str) -> None:
        if lines:
            log.debug("%s -> %s", self.name, " | ".join(lines))
            self._write(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def _write(self, data: bytes) -> None:
        """Write to the control pty; a driver that stops reading loses output, as on USB."""
        with self._write_lock:
            view = memoryview(data)
            deadline = time.monotonic() + 0.5
            while view and not self._closed:
                try:
                    written = os.write(self._ctl_master, view)
                    view = view[written:]
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        log.warning("%s: control output dropped (nobody reading)", self.name)
                        return
                    select.select([], [self._ctl_master], [], remaining)

    # --- AT commands -------------------------------------------------------------------------

    def _dispatch(self, command: str, after: list[str]) -> list[str]:
        head = command[:1].upper()
        if head in "+^$#*":
            name, op, args = parse_extended(command)
            return self._extended(name, op, args, after)
        if head == "S":
            return self._sreg(command)
        if head == "D":
            return self._dial(command, after)
        letter = command[:2].upper() if head == "&" else head
        digits = command[len(letter) :]
        value = int(digits) if digits else 0
        handler = self._BASIC.get(letter)
        if handler is None:
            raise AtError()
        return handler(self, value, after)

    def _sreg(self, command: str) -> list[str]:
        body = command[1:]
        number, _, value = body.partition("=")
        query = number.endswith("?")
        number = number.rstrip("?")
        if not number.isdigit():
            raise AtError()
        register = int(number)
        if query:
            return [f"{self._sregs.get(register, 0):03d}"]
        if not value.isdigit() or int(value) > 255:
            raise AtError()
        self._sregs[register] = int(value)
        return []

    def _echo_cmd(self, value: int, after: list[str]) -> list[str]:
        if value not in (0, 1):
            raise AtError()
        self._echo = value == 1
        return []

    def _verbose(self, value: int, after: list[str]) -> list[str]:
        if value != 1:  # numeric result codes (ATV0) are not emulated
            raise AtError()
        return []

    def _quiet(self, value: int, after: list[str]) -> list[str]:
        if value != 0:
            raise AtError()
        return []

    def _defaults(self, value: int, after: list[str]) -> list[str]:
        self._reset_settings()
        return []

    def _saved(self, value: int, after: list[str]) -> list[str]:
        return []

    def _info(self, value: int, after: list[str]) -> list[str]:
        return [f"Manufacturer: {MANUFACTURER}", f"Model: {MODEL}", f"Revision: {REVISION}",
                f"IMEI: {self.imei}", "+GCAP: +CGSM"]  # fmt: skip

    def _answer(self, value: int, after: list[str]) -> list[str]:
        call = self._call
        if call is None or call.state != "ringing":
            raise AtError(result="NO CARRIER")
        call.state = "active"
        call.answered_at = time.monotonic()
        self._changed.notify_all()
        events = [self._clcc_line(call, 0)] if self._settings["+CLCC"] else []
        events.append("VOICE CALL: BEGIN")
        return self._call_events(events, after)

    def _hang_up(self, value: int, after: list[str]) -> list[str]:
        call = self._call
        if call is None:
            return []
        events = [self._clcc_line(call, 6)] if self._settings["+CLCC"] else []
        if call.state == "active":
            events.append(f"VOICE CALL: END: {self._duration(call)}")
        self._end_call()
        return self._call_events(events, after)

    def _call_events(self, events: list[str], after: list[str]) -> list[str]:
        """SIM7600 prints call events inside the command's response, before its OK."""
        if self.events_before_ok:
            return events
        after.extend(events)
        return []

    def _extended(self, name: str, op: str, args: list[str], after: list[str]) -> list[str]:
        if name in self._FIXED:  # action commands with a fixed answer
            if op == "=?":
                return []
            if op:
                raise AtError()
            return self._FIXED[name](self)
        if name in self._SETTINGS and not (name == "+CLCC" and op == ""):
            return self._setting(name, op, args)
        handler = self._EXTENDED.get(name)
        if handler is None:
            raise AtError()
        return handler(self, op, args, after)

    def _setting(self, name: str, op: str, args: list[str]) -> list[str]:
        """``AT+X=<n>``, ``AT+X?`` and ``AT+X=?`` for a numeric setting."""
        top, read_format = self._SETTINGS[name]
        if op == "=?":
            return [f"{name}: (0-{top})"]
        if op == "?":
            return [read_format.format(name, self._settings[name])]
        if op != "=" or not args or not args[0].isdigit() or int(args[0]) > top:
            raise AtError(50)
        self._settings[name] = int(args[0])
        return []

    def _chup(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return []
        if op:
            raise AtError()
        return self._hang_up(0, after)

    def _clcc_list(self, op: str, args: list[str], after: list[str]) -> list[str]:
        call = self._call
        if call is None:
            return []
        return [self._clcc_line(call, CLCC_STAT[call.state])]

    def _cpcmreg(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return ["+CPCMREG: (0-1)"]
        if op == "?":
            return [f"+CPCMREG: {int(self._pcm)}"]
        if op != "=" or not args or args[0] not in ("0", "1"):
            raise AtError(50)
        if args[0] == "1":
            if self._call is None or self._call.state != "active":
                raise AtError()  # no voice path to carry outside a call
            self._pcm = True
        else:
            self._pcm = False
        self._update_stream()
        return []

    def _cpcmfrm(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return ["+CPCMFRM: (0-1)"]
        if op == "?":
            return ["+CPCMFRM: 0"]
        if op != "=" or args[:1] != ["0"]:
            raise AtError(4)  # only 8 kHz PCM (format 0) is emulated
        return []

    def _vts(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return []
        keys = args[0].upper() if op == "=" and args else ""
        if not keys or any(k not in DTMF_FREQS for k in keys):
            raise AtError(50)
        if self._call is None or self._call.state != "active":
            raise AtError(3)
        self._dtmf_sent.extend(keys)
        return []

    def _query(self, op: str, args: list[str], after: list[str], lines: list[str]) -> list[str]:
        if op != "?":
            raise AtError(4)
        return lines

    def _cpin(self, op: str, args: list[str], after: list[str]) -> list[str]:
        return self._query(op, args, after, ["+CPIN: READY"])

    def _cops(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=":
            return []
        return self._query(op, args, after, [f'+COPS: 0,0,"{OPERATOR}",7'])

    def _cfun(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=" and args[:1] == ["1"]:
            return []
        return self._query(op, args, after, ["+CFUN: 1"])

    def _accept(self, op: str, args: list[str], after: list[str]) -> list[str]:
        return []

    _BASIC: dict[str, Callable[[SimcomModem, int, list[str]], list[str]]] = {
        "E": _echo_cmd, "V": _verbose, "Q": _quiet, "Z": _defaults, "&F": _defaults,
        "&W": _saved, "I": _info, "A": _answer, "H": _hang_up,
    }  # fmt: skip
    _FIXED: dict[str, Callable[[SimcomModem], list[str]]] = {
        "+CGMI": lambda m: [MANUFACTURER],
        "+CGMM": lambda m: [MODEL],
        "+CGMR": lambda m: [f"+CGMR: {REVISION}"],
        "+CGSN": lambda m: [m.imei],
        "+CIMI": lambda m: [m.imsi],
        "+CICCID": lambda m: [f"+ICCID: {m.iccid}"],
        "+CSQ": lambda m: ["+CSQ: 23,99"],
        "+CNUM": lambda m: [f'+CNUM: "","{m.number}",{number_type(m.number)}'],
    }
    # name: (highest value, read answer); +CLIP's second value is "provisioned", +CREG's
    # and +CEREG's "registered, home network".
    _SETTINGS: dict[str, tuple[int, str]] = {
        "+CMEE": (2, "{}: {}"),
        "+CRC": (1, "{}: {}"),
        "+CLCC": (1, "{}: {}"),
        "+DDET": (1, "{}: {}"),
        "+CLIP": (1, "{}: {},1"),
        "+CREG": (2, "{}: {},1"),
        "+CEREG": (2, "{}: {},1"),
    }
    _EXTENDED: dict[str, Callable[[SimcomModem, str, list[str], list[str]], list[str]]] = {
        "+CPIN": _cpin, "+COPS": _cops, "+CFUN": _cfun, "+CLCC": _clcc_list, "+CHUP": _chup,
        "+CPCMREG": _cpcmreg, "+CPCMFRM": _cpcmfrm, "+VTS": _vts,
        "+VTD": _accept, "+CVHU": _accept, "+CLVL": _accept,
    }  # fmt: skip

    # --- audio port --------------------------------------------------------------------------

    def _audio_loop(self) -> None:
        wake = self._audio_wake[0]
        while True:
            with self._lock:
                if self._stopping:
                    return
                streaming, generation, t0 = self._stream, self._stream_gen, self._t0
            if not streaming:
                # Between calls the port still takes bytes and throws them away.
                readable, _, _ = select.select([self._audio_master, wake], [], [])
                if wake in readable:
                    self._drain(wake)
                with self._lock:
                    if not self._stream and self._audio_master in readable:
                        self._drain(self._audio_master)
                continue
            assert t0 is not None
            self._stream_frames(generation, t0)

    def _stream_frames(self, generation: int, t0: float) -> None:
        """One frame every period at absolute deadlines t0 + n·period, until the stream ends."""
        wake = self._audio_wake[0]
        n = 0
        while True:
            with self._lock:
                if self._stopping or self._stream_gen != generation:
                    return
            delay = t0 + n * self.period - time.monotonic()
            if delay > 0:
                readable, _, _ = select.select([wake], [], [], delay)
                if readable:
                    self._drain(wake)
                    continue
            self._tick(generation)
            n += 1

    def _tick(self, generation: int) -> None:
        """Consume one frame of the appliance's audio, then send one frame of the caller's.

        Consuming first means a frame the appliance writes in answer to frame n is heard at
        index n + 1 at the earliest, never in the same tick.
        """
        with self._lock:
            if self._stream_gen != generation:
                return
            self._rx += self._drain(self._audio_master)
            if len(self._rx) > RX_CAP_BYTES:
                excess = len(self._rx) - RX_CAP_BYTES
                del self._rx[: excess + excess % 2]
                self._overruns += 1
            if len(self._rx) >= FRAME_BYTES:
                self._heard += self._rx[:FRAME_BYTES]
                del self._rx[:FRAME_BYTES]
            else:
                self._heard += bytes(FRAME_BYTES)  # silence
                self._underruns += 1
            self._frames += 1
            outgoing = self._pull(FRAME_SAMPLES).astype("<i2").tobytes()
            if len(self._tx_pending) + FRAME_BYTES > TX_CAP_BYTES:
                self._dropped += 1
            else:
                self._tx_pending += outgoing
            self._flush_tx()

    def _flush_tx(self) -> None:
        while self._tx_pending:
            try:
                written = os.write(self._audio_master, self._tx_pending)
            except BlockingIOError:
                return
            del self._tx_pending[:written]

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _drain(fd: int) -> bytes:
        """Everything readable now from a non-blocking descriptor."""
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # nothing more now (EAGAIN), or the other end is gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def _wake(self, pipe: tuple[int, int]) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError):
            os.write(pipe[1], b"\0")
