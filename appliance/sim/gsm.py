"""What the Quectel, Huawei and SIM800 emulators share: a GSM modem and its far-end caller.

``EmulatedModem`` is the machinery under each dialect: the control pty with V.250 framing (echo
until ``ATE0``, command lines split at ``;``, ``+CME ERROR`` after ``AT+CMEE``), the common
TS 27.007 commands, one incoming call at a time, and a voice clock of its own (speed and drift
in ppm). A dialect subclass says what its manual says: the URCs of a ringing, answered and
ended call, how a key pressed by the caller is reported, and where the voice goes.

Voice goes to one of two places, as on the real modules:

- a serial voice port (``audio_path``, a pty): raw 8 kHz s16le, 320 bytes every 20 ms, as on
  the Quectel's USB NMEA port after ``AT+QPCMV=1,0`` or a Huawei's voice port after
  ``AT^DDSETEX=2``;
- an emulated sound card (``alsa_device``, see ``appliance.sim.soundcard``): the driver's ALSA
  transport goes through the real libasound, and the capture FIFO the emulator writes paces
  its reads, so the emulator's clock is the sound card's clock. Like a real card it runs from
  ``start()`` to ``stop()`` (silence between calls).

The caller API (``ring``, ``cancel_ring``, ``press``, ``play``, ``hangup``, ``heard``,
``sample_clock``, ``time_of_sample``, ``wait_state``, ``wait_audio``, ``stats``, ``commands``)
is the one of ``appliance.sim.simcom.SimcomModem``, and so is the far end of outbound calls
(``set_far_end``, ``answer_far_end``, ``dialed``; see ``appliance.sim.far_end``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import itertools
import logging
import os
import select
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from appliance.audio.tones import DTMF_FREQS, dtmf
from appliance.sim.far_end import CLCC_STAT, FAILURE_RESULTS, OutboundCalls
from appliance.sim.simcom import (
    CME_TEXT,
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    RATE,
    RING_INTERVAL_S,
    RX_CAP_BYTES,
    STATES,
    TX_CAP_BYTES,
    AtError,
    load_audio,
    number_type,
    parse_extended,
    split_command_line,
)
from appliance.sim.soundcard import SoundCard, drain

__all__ = [
    "FRAME_SAMPLES",
    "RATE",
    "AtError",
    "Call",
    "EmulatedModem",
    "Handler",
    "number_type",
]

log = logging.getLogger(__name__)

# --- helpers ------------------------------------------------------------------------------------


def _open_pty() -> tuple[int, int, str]:
    """A raw pty: (master fd, slave fd, slave path); the master is non-blocking."""
    master, slave = os.openpty()
    for fd in (master, slave):
        tty.setraw(fd, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


def _digits(seed: str, count: int) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return "".join(str(int(c, 16) % 10) for c in digest)[:count]


def _luhn_digit(digits: str) -> str:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


@dataclass
class Call:
    """The one call of an emulated line: incoming (``ring``) or outgoing (``ATD``)."""

    number: str  # the caller's, or the number dialled
    name: str
    index: int = 1
    state: str = "ringing"  # ringing | dialing | alerting | active
    outgoing: bool = False
    answered_at: float = 0.0
    rings: int = 0


# handler(modem, op, args, after) -> information lines; ``after`` collects URCs for after OK.
Handler = Callable[..., list[str]]


# --- the modem ----------------------------------------------------------------------------------


class EmulatedModem(OutboundCalls):
    """One emulated GSM line and its far-end party; every public method is thread-safe.

    ``speed`` runs every clock faster (ringing cadence, voice frames, call durations) for tests;
    ``drift_ppm`` makes the voice clock run fast (positive) or slow against ``time.monotonic``.
    ``serial_voice`` gives the modem a voice pty (``audio_path``), ``sound_card`` an ALSA device
    (``alsa_device``). ``silent`` makes it a modem that never answers (a wrong port, no power);
    ``garbage`` one that answers every command line with noise.
    """

    MANUFACTURER: ClassVar[str] = ""
    MODEL: ClassVar[str] = ""
    REVISION: ClassVar[str] = ""
    OPERATOR: ClassVar[str] = "Simulated"
    #: (delay in seconds, URC lines) printed after power-up.
    BOOT: ClassVar[tuple[tuple[float, tuple[str, ...]], ...]] = ()
    #: name: (highest value, read answer, default) for numeric settings (AT+X=<n>, AT+X?).
    SETTINGS: ClassVar[dict[str, tuple[int, str, int]]] = {
        "+CMEE": (2, "{}: {}", 0),
        "+CRC": (1, "{}: {}", 0),
        "+CLIP": (1, "{}: {},1", 0),
        "+CREG": (2, "{}: {},1", 0),
        "+CLCC": (1, "{}: {}", 0),
    }
    #: extended commands: name -> handler(self, op, args, after) returning information lines.
    EXTENDED: ClassVar[dict[str, Handler]] = {}

    def __init__(
        self,
        *,
        name: str = "sim0",
        number: str = "+15550000001",
        speed: float = 1.0,
        drift_ppm: float = 0.0,
        serial_voice: bool = True,
        sound_card: bool = False,
        silent: bool = False,
        garbage: bool = False,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.name = name
        self.number = number
        self.speed = speed
        self.drift_ppm = drift_ppm
        self.silent = silent
        self.garbage = garbage
        self.period = FRAME_MS / 1000.0 / (1.0 + drift_ppm * 1e-6) / speed
        imei = "86" + _digits(name + "imei", 12)
        self.imei = imei + _luhn_digit(imei)
        self.imsi = "00101" + _digits(name + "imsi", 10)
        self.iccid = "8901" + _digits(name + "iccid", 15)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._ctl_master, self._ctl_slave, self.control_path = _open_pty()
        self._audio_master: int | None = None
        self._audio_slave: int | None = None
        self.audio_path = ""
        if serial_voice:
            self._audio_master, self._audio_slave, self.audio_path = _open_pty()
        self._card = SoundCard(name) if sound_card else None
        self._ctl_wake = os.pipe()
        self._audio_wake = os.pipe()
        for fd in (*self._ctl_wake, *self._audio_wake):
            os.set_blocking(fd, False)
        self._threads: list[threading.Thread] = []
        self._started = False
        self._stopping = False
        self._closed = False

        self._echo = True
        self._settings: dict[str, int] = {}
        self._reset_settings()
        self._sregs: dict[int, int] = {0: 0, 3: 13, 4: 10, 5: 8}
        self._linebuf = bytearray()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()

        self._call: Call | None = None
        self._route: str | None = None  # where the current voice stream goes: serial | alsa
        self._t0: float | None = None
        self._frames = 0
        self._underruns = 0
        self._overruns = 0
        self._dropped = 0
        self._rx = bytearray()
        self._tx_pending = bytearray()
        self._heard = bytearray()
        self._playback: deque[np.ndarray] = deque()
        self._play_end = 0
        self._commands: list[str] = []
        self._dtmf_sent: list[str] = []

    @property
    def alsa_device(self) -> str:
        """The ALSA device name of the emulated sound card ("" without one)."""
        return self._card.device if self._card is not None else ""

    # --- dialect hooks (called with the lock held) ---------------------------------------------

    def _reset_settings(self) -> None:
        self._echo = True
        self._settings = {name: spec[2] for name, spec in self.SETTINGS.items()}

    def _info_lines(self) -> list[str]:
        """ATI."""
        return [self.MANUFACTURER, self.MODEL, f"Revision: {self.REVISION}"]

    def _ring_lines(self, call: Call) -> list[str]:
        """What one ring prints: RING (or +CRING) and, after AT+CLIP=1, the caller id."""
        lines = ["+CRING: VOICE" if self._settings.get("+CRC") else "RING"]
        if self._settings.get("+CLIP"):
            lines.append(self._clip_line(call))
        return lines

    def _clip_line(self, call: Call) -> str:
        if not call.number:
            return '+CLIP: "",128,,,,1'
        alpha = f'"{call.name}"' if call.name else ""
        return f'+CLIP: "{call.number}",{number_type(call.number)},,,{alpha},0'

    def _state_urcs(self, call: Call, stat: int) -> list[str]:
        """Call state reports at each change: 4 ringing, 0 active, 6 ended (+CLCC: after
        AT+CLCC=1 by default)."""
        return [self._clcc_line(call, stat)] if self._settings.get("+CLCC") else []

    def _answer_urcs(self, call: Call) -> list[str]:
        """Printed after ATA's OK."""
        return self._state_urcs(call, 0)

    def _remote_end_urcs(self, call: Call) -> list[str]:
        """The caller hung up an answered call."""
        return [*self._state_urcs(call, 6), "NO CARRIER"]

    def _missed_urcs(self, call: Call) -> list[str]:
        """The caller gave up while it rang."""
        return self._state_urcs(call, 6)

    def _local_end_urcs(self, call: Call) -> list[str]:
        """Printed after a hang-up command's OK."""
        return self._state_urcs(call, 6)

    def _progress_urcs(self, call: Call, state: str) -> list[str]:
        """An outbound call reaches ``state``: dialing, alerting or active."""
        return self._state_urcs(call, CLCC_STAT[state])

    def _dial_failed_urcs(self, call: Call, outcome: str) -> list[str]:
        """An outbound call ends unconnected: busy, no-answer or unreachable."""
        return [*self._state_urcs(call, 6), FAILURE_RESULTS[outcome]]

    def _new_call(self, number: str) -> Call:
        return Call(number, "")

    def _dial_refused(self) -> Exception:
        return AtError(3)  # one call at a time: operation not allowed

    def _dtmf_urcs(self, key: str) -> list[str] | None:
        """The modem's report of a key pressed by the caller; None when it has no detector."""
        return None

    def _voice_route(self) -> str | None:
        """Where the active call's voice goes now: "serial", "alsa" or nowhere (None)."""
        return None

    def _call_ended(self) -> None:
        """Per-call settings go back to their defaults."""

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the control and voice threads; the boot URCs follow."""
        with self._lock:
            if self._started:
                raise RuntimeError("modem already started")
            self._started = True
            if not (self.silent or self.garbage):
                for delay, lines in self.BOOT:
                    self._schedule(delay, functools.partial(self._urc, *lines))
        for role, target in (("control", self._control_loop), ("audio", self._audio_loop)):
            thread = threading.Thread(target=target, name=f"sim-{self.name}-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close every descriptor (the ptys and FIFOs vanish)."""
        with self._lock:
            self._stopping = True
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
            fds = [self._ctl_master, self._ctl_slave, *self._ctl_wake, *self._audio_wake]
            if self._audio_master is not None and self._audio_slave is not None:
                fds += [self._audio_master, self._audio_slave]
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._card is not None:
                self._card.close()

    def unplug_sound_card(self) -> None:
        """The sound card vanishes (a USB audio device pulled out); the modem stays."""
        with self._lock:
            if self._card is not None:
                self._card.close()

    def __enter__(self) -> EmulatedModem:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the caller's side ---------------------------------------------------------------------

    def ring(self, caller_id: str, name: str = "") -> None:
        """A call from ``caller_id`` starts ringing (a ring every 3 s until answered)."""
        with self._lock:
            if self._call is not None:
                raise RuntimeError(f"{self.name} is busy ({self.state})")
            call = Call(caller_id, name)
            self._call = call
            self._changed.notify_all()
            self._schedule(0.0, lambda: self._ring_tick(call))

    def cancel_ring(self) -> None:
        """The caller gives up before the call is answered."""
        with self._lock:
            call = self._call
            if call is None or call.state != "ringing":
                return
            self._urc(*self._missed_urcs(call))
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
            self._urc(*self._remote_end_urcs(call))
            self._end_call()

    def press(self, key: str, *, inband: bool = False, ms: int = 100) -> None:
        """The caller presses ``key`` (one or more of 0-9 * # A-D).

        Out of band the modem's detector reports each key (when the dialect has one and it is
        enabled); in band, or on a modem without a detector, the tones (``ms`` on, ``ms`` off)
        are queued into the caller's audio.
        """
        keys = key.upper()
        if not keys or any(k not in DTMF_FREQS for k in keys):
            raise ValueError(f"not DTMF keys: {key!r}")
        with self._lock:
            if self.state != "active":
                raise RuntimeError(f"{self.name} has no call in progress")
            reports = [] if inband else [self._dtmf_urcs(k) for k in keys]
            if inband or any(r is None for r in reports):
                gap = np.zeros(round(RATE * ms / 1000), dtype=np.int16)
                self._enqueue(
                    np.concatenate([part for k in keys for part in (dtmf(k, ms, RATE), gap)])
                )
            else:
                self._urc(*(line for r in reports for line in r or ()))

    def play(self, audio: np.ndarray | str | Path) -> int:
        """Queue what the caller says; returns the sample index where it will start."""
        samples = load_audio(audio)
        with self._lock:
            return self._enqueue(samples)

    def heard(self) -> np.ndarray:
        """Everything the appliance sent since the voice stream started, one sample per tick."""
        with self._lock:
            return np.frombuffer(bytes(self._heard), dtype="<i2").astype(np.int16)

    # --- observation ---------------------------------------------------------------------------

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
            return self._route is not None

    @property
    def sample_clock(self) -> int:
        """Samples elapsed on this modem's clock since the voice stream started."""
        with self._lock:
            return self._frames * FRAME_SAMPLES

    @property
    def commands(self) -> list[str]:
        """Every AT command line received, as sent (without the trailing CR)."""
        with self._lock:
            return list(self._commands)

    @property
    def dtmf_sent(self) -> list[str]:
        """Keys the appliance sent to the caller."""
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
        """Block until the voice stream runs; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._route is not None, timeout)

    def stats(self) -> dict[str, int]:
        """Voice counters since the stream started (``dropped``: frames the appliance missed)."""
        with self._lock:
            return {
                "frames": self._frames,
                "underruns": self._underruns,
                "overruns": self._overruns,
                "dropped": self._dropped,
            }

    # --- call state (the lock is held) ---------------------------------------------------------

    def _duration(self, call: Call) -> float:
        return (time.monotonic() - call.answered_at) * self.speed

    def _end_call(self) -> None:
        self._call = None
        self._playback.clear()
        self._play_end = 0
        self._call_ended()
        self._changed.notify_all()
        self._wake(self._audio_wake)

    def _ring_tick(self, call: Call) -> None:
        if self._call is not call or call.state != "ringing":
            return
        call.rings += 1
        lines = self._ring_lines(call)
        if call.rings == 1:
            lines = self._state_urcs(call, 4) + lines
        self._urc(*lines)
        self._schedule(RING_INTERVAL_S, lambda: self._ring_tick(call))

    def _clcc_line(self, call: Call, stat: int, prefix: str = "+CLCC: ") -> str:
        line = f"{prefix}{call.index},{0 if call.outgoing else 1},{stat},0,0"
        if call.number:
            line += f',"{call.number}",{number_type(call.number)}'
        return line

    def _enqueue(self, samples: np.ndarray) -> int:
        start = max(self._play_end, self._frames * FRAME_SAMPLES if self._route else 0)
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

    def _voice_changed(self) -> None:
        """Voice routing may have changed: let the voice thread look again."""
        self._wake(self._audio_wake)

    # --- control port --------------------------------------------------------------------------

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
                drain(wake)
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
        if self.silent:
            return
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
        if self.garbage:
            self._write(b"\r\n\xff\xfe" + line[::-1].encode() + b"\x00#@!\r\n")
            return
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
        cmee = self._settings.get("+CMEE", 0)
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

    # --- AT commands ---------------------------------------------------------------------------

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
        value = int(digits) if digits.isdigit() else 0
        return self._basic(letter, value, after)

    def _basic(self, letter: str, value: int, after: list[str]) -> list[str]:
        if letter == "E":
            if value not in (0, 1):
                raise AtError()
            self._echo = value == 1
            return []
        if (letter, value) in (("V", 1), ("Q", 0)) or letter == "&W":
            return []
        if letter in ("Z", "&F"):
            self._reset_settings()
            return []
        if letter == "I":
            return self._info_lines()
        if letter == "A":
            return self._answer(after)
        if letter == "H":
            return self._hang_up(after)
        raise AtError()

    def _sreg(self, command: str) -> list[str]:
        number, _, value = command[1:].partition("=")
        query = number.endswith("?")
        number = number.rstrip("?")
        if not number.isdigit():
            raise AtError()
        if query:
            return [f"{self._sregs.get(int(number), 0):03d}"]
        if not value.isdigit() or int(value) > 255:
            raise AtError()
        self._sregs[int(number)] = int(value)
        return []

    def _answer(self, after: list[str]) -> list[str]:
        call = self._call
        if call is None or call.state != "ringing":
            raise AtError(result="NO CARRIER")
        call.state = "active"
        call.answered_at = time.monotonic()
        self._changed.notify_all()
        after.extend(self._answer_urcs(call))
        self._voice_changed()
        return []

    def _hang_up(self, after: list[str]) -> list[str]:
        call = self._call
        if call is not None:
            after.extend(self._local_end_urcs(call))
            self._end_call()
        return []

    def _extended(self, name: str, op: str, args: list[str], after: list[str]) -> list[str]:
        handler = self.EXTENDED.get(name) or _COMMON.get(name)
        if handler is not None and not (name == "+CLCC" and op != ""):
            return handler(self, op, args, after)
        if name in self.SETTINGS:
            return self._setting(name, op, args)
        raise AtError()

    def _setting(self, name: str, op: str, args: list[str]) -> list[str]:
        """``AT+X=<n>``, ``AT+X?`` and ``AT+X=?`` for a numeric setting."""
        top, read_format, _ = self.SETTINGS[name]
        if op == "=?":
            return [f"{name}: (0-{top})"]
        if op == "?":
            return [read_format.format(name, self._settings[name])]
        if op != "=" or not args or not args[0].isdigit() or int(args[0]) > top:
            raise AtError(50)
        self._settings[name] = int(args[0])
        return []

    # --- voice ---------------------------------------------------------------------------------

    def _audio_loop(self) -> None:
        """The modem's voice clock: one frame every period at absolute deadlines."""
        wake = self._audio_wake[0]
        base, n = time.monotonic(), 0
        while True:
            with self._lock:
                if self._stopping:
                    return
                idle = self._card is None and self._voice_route() is None
            if idle:
                # No sound card to clock and no stream: the port takes bytes and drops them.
                watched = [wake] + ([self._audio_master] if self._audio_master is not None else [])
                readable, _, _ = select.select(watched, [], [])
                if wake in readable:
                    drain(wake)
                if self._audio_master is not None and self._audio_master in readable:
                    with self._lock:
                        drain(self._audio_master)
                base, n = time.monotonic(), 0
                continue
            deadline = base + n * self.period
            delay = deadline - time.monotonic()
            if delay > 0:
                readable, _, _ = select.select([wake], [], [], delay)
                if readable:
                    drain(wake)
                    continue
            self._tick(deadline)
            n += 1

    def _tick(self, deadline: float) -> None:
        """Take one frame of the appliance's audio, then give one frame of the caller's.

        Taking first means a frame the appliance writes in answer to frame n is heard at index
        n + 1 at the earliest, never in the same tick.
        """
        with self._lock:
            route = self._voice_route()
            if route != self._route:
                self._start_stream(route, deadline)
            serial_in = drain(self._audio_master) if self._audio_master is not None else b""
            card = self._card if self._card is not None and not self._card.closed else None
            card_in = card.read_playback() if card is not None else b""
            outgoing = bytes(FRAME_BYTES)
            if route is not None:
                self._rx += serial_in if route == "serial" else card_in
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
            if route == "serial":
                if len(self._tx_pending) + FRAME_BYTES > TX_CAP_BYTES:
                    self._dropped += 1
                else:
                    self._tx_pending += outgoing
                self._flush_tx()
            if card is not None:
                card.write_capture(outgoing if route == "alsa" else bytes(FRAME_BYTES))

    def _start_stream(self, route: str | None, deadline: float) -> None:
        self._route = route
        if route is not None:
            # A fresh stream: sample 0 is now; stale bytes in either direction are gone.
            self._t0 = deadline
            self._frames = self._underruns = self._overruns = self._dropped = 0
            self._heard.clear()
            self._rx.clear()
            self._tx_pending.clear()
            self._play_end = sum(len(chunk) for chunk in self._playback)
            if route == "serial" and self._audio_slave is not None:
                termios.tcflush(self._audio_slave, termios.TCIFLUSH)
        self._changed.notify_all()

    def _flush_tx(self) -> None:
        assert self._audio_master is not None
        while self._tx_pending:
            try:
                written = os.write(self._audio_master, self._tx_pending)
            except BlockingIOError:
                return
            del self._tx_pending[:written]

    def _wake(self, pipe: tuple[int, int]) -> None:
        if self._closed:
            return
        with contextlib.suppress(OSError):
            os.write(pipe[1], b"\0")


# --- commands every dialect shares (TS 27.007) --------------------------------------------------


def _fixed(*lines: str) -> Handler:
    def handler(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return []
        if op:
            raise AtError()
        return [line.format(m=modem) for line in lines]

    return handler


def _read_only(*lines: str) -> Handler:
    def handler(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=" or op == "=?":
            return []
        if op != "?":
            raise AtError(4)
        return [line.format(m=modem) for line in lines]

    return handler


def _clcc_list(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
    call = modem._call
    if call is None:
        return []
    return [modem._clcc_line(call, CLCC_STAT[call.state])]


def _chup(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
    if op == "=?":
        return []
    if op:
        raise AtError()
    return modem._hang_up(after)


def _vts(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
    if op == "=?":
        return []
    keys = args[0].upper() if op == "=" and args else ""
    if not keys or any(k not in DTMF_FREQS for k in keys):
        raise AtError(50)
    if modem._call is None or modem._call.state != "active":
        raise AtError(3)
    modem._dtmf_sent.extend(keys)
    return []


def _accept(modem: EmulatedModem, op: str, args: list[str], after: list[str]) -> list[str]:
    return []


_COMMON: dict[str, Handler] = {
    "+CGMI": _fixed("{m.MANUFACTURER}"),
    "+CGMM": _fixed("{m.MODEL}"),
    "+CGMR": _fixed("{m.REVISION}"),
    "+CGSN": _fixed("{m.imei}"),
    "+CIMI": _fixed("{m.imsi}"),
    "+CSQ": _fixed("+CSQ: 21,0"),
    "+CNUM": _fixed('+CNUM: "","{m.number}",145'),
    "+CPIN": _read_only("+CPIN: READY"),
    "+COPS": _read_only('+COPS: 0,0,"{m.OPERATOR}",2'),
    "+CFUN": _read_only("+CFUN: 1"),
    "+CLCC": _clcc_list,
    "+CHUP": _chup,
    "+VTS": _vts,
    "+CLVL": _accept,
    "+CMUT": _accept,
    "+CSCS": _accept,
    "+CMGF": _accept,
    "+CNMI": _accept,
}
