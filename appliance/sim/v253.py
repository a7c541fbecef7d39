"""A V.253 voice modem on an analog line, and the caller at its far end, on one real pty.

The pty speaks what a USRobotics 5637 or a Conexant CX93001 modem speaks on its USB serial
port: V.250 commands with echo until ``ATE0``, voice mode ``AT+FCLASS=8``, formatted caller
ID after ``AT+VCID=1``, ``AT+VSM`` formats, ``AT+VLS=1`` (off-hook) and ``AT+VTR`` full-duplex
voice: after ``CONNECT``, 8-bit samples at 8000 Hz both ways with every 0x10 doubled and
``<DLE>`` event codes in between, one 20 ms period per tick of the modem's own clock, until the
DTE sends ``<DLE><^>`` (or ``<DLE><ETX>``, ``<DLE><!>``) and the modem answers
``<DLE><ETX>`` and ``OK``.

Sources for the dialect, per variant (``usr`` or ``conexant``):

- ITU-T V.253 as Conexant's "AT Commands for CX930xx Modems" (102752B) and USR's "56K
  Softmodem Command Reference" print it: ``+VTR`` answers CONNECT and ends on ``<DLE><^>``
  with ``<DLE><ETX>`` then OK; the ``<DLE>`` codes each way (digits, ``l`` loop current
  interruption, ``b`` busy, ``d`` dial tone, ``u`` transmit underrun...); busy is reported
  again every 4 s and dial tone every 3 s while they last (Rockwell's RCV144 reference).
- ``AT+VSM=?``: the USR 5637 with firmware 1.2.23 answers in a short form
  ``128,"8-BIT LINEAR",(7200,8000,11025)`` ... ``131,"8-BIT ULAW",(8000)``; a CX93001
  (``CX93001-EIS_V0.2013-V92``) in V.253's long form ``131,"Mu-Law",8,0,8000,0,0`` (NCID's
  hangup documentation, both logs). 8-bit linear is offset binary: silence is 0x80
  (callattendant's recordings with ``AT+VSM=128,8000``).
- ``ATI0`` is ``5601`` on the USR 5637 and ``56000`` on Conexant modems (callattendant's
  modem detection, mgetty's ``detect.c``).
- Caller ID: ``NMBR=5551234567`` on the USR (callattendant issue 11 log), ``NMBR = 04...``
  with spaces on Conexant (Home Assistant issue 57765 log); ``AT+VCID?`` answers a bare
  ``0``; ATZ turns caller ID off again. A North American line sends it between the first and
  second ring (Bell 202 FSK, rings every 6 s); a UK line (BT SIN 227) before the first ring,
  which comes every 3 s (Home Assistant issue 108786).
- DTMF: the USR reports ``<DLE>5`` once per key (USR's code table lists the digits and no tone
  shielding; Rockwell's reference: "only one <DLE> code per DTMF button pushed"); the Conexant
  variant brackets the key with V.253's tone shielding ``<DLE>/ <DLE>5 ... <DLE>~`` and repeats
  the digit while the tone lasts (V.253 §6.5 as Intel's 536EX manual describes it).
- The far end hanging up shows as the exchange signals it, which is the line's doing more than
  the modem's: the ``usr`` variant plays a North American line (a loop current break ``<DLE>l``,
  then dial tone), the ``conexant`` one an exchange that plays busy tone. That pairing is a
  choice so that both paths are exercised, not something seen in a transcript.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from appliance.audio.tones import DTMF_FREQS, dtmf
from appliance.sim.simcom import load_audio, parse_extended

log = logging.getLogger(__name__)

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
RX_CAP_BYTES = 10 * FRAME_SAMPLES  # 200 ms of the appliance's audio waiting to be played
TX_CAP_BYTES = 100 * FRAME_SAMPLES  # 2 s of output the DTE has not read
LINE_TONE_REPEAT_S = {"b": 4.0, "d": 3.0}  # seconds between repeated reports
DLE, ETX, SUB = 0x10, 0x03, 0x1A
STATES = ("idle", "ringing", "active")


# --- G.711 from the spec's segment tables (ITU-T G.711 Tables 1a and 2a) --------------------


def _g711_tables() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per law: (decoded value of each code, the codes ordered by the magnitude they start at).

    Encoding finds a magnitude's segment and step with a binary search over where each step
    begins, in the 14-bit (u-law) or 13-bit (A-law) domain the law is defined in.
    """
    step = np.arange(16)
    # u-law: step m of segment e spans biased magnitudes (16 + m) << (e + 1), bias 33.
    u_start = np.concatenate([((16 + step) << (e + 1)) - 33 for e in range(8)])
    codes = np.arange(256)
    inverted = codes ^ 0xFF
    exponent, mantissa = (inverted >> 4) & 7, inverted & 15
    u_value = 4 * (((2 * mantissa + 33) << exponent) - 33)
    u_decode = np.where(inverted & 0x80, -u_value, u_value).astype(np.int16)
    # A-law: segment 0 has steps of 2 from 0, segment e >= 1 starts at 16 << e, steps 1 << e.
    a_start = np.concatenate([2 * step] + [(16 + step) << e for e in range(1, 8)])
    toggled = codes ^ 0x55
    exponent, mantissa = (toggled >> 4) & 7, toggled & 15
    a_value = np.where(
        exponent == 0, 8 * (2 * mantissa + 1), 8 * ((2 * mantissa + 33) << (exponent - 1))
    )
    a_decode = np.where(toggled & 0x80, a_value, -a_value).astype(np.int16)
    return {"ulaw": (u_decode, u_start), "alaw": (a_decode, a_start)}


_G711 = _g711_tables()


def encode(law: str, samples: np.ndarray) -> bytes:
    """int16 samples as ``law`` bytes: ulaw, alaw, u8 (offset binary) or s8."""
    x = np.asarray(samples, dtype=np.int64)
    if law in ("u8", "s8"):
        value = np.clip((x + 128) >> 8, -128, 127)
        return ((value + (128 if law == "u8" else 0)) & 0xFF).astype(np.uint8).tobytes()
    _, starts = _G711[law]
    if law == "ulaw":
        x14 = x >> 2
        magnitude = np.minimum(np.abs(x14), 8159)
        index = np.searchsorted(starts, magnitude, side="right") - 1
        code = np.where(x14 < 0, 0x7F, 0xFF) ^ index
    else:
        x13 = x >> 3
        magnitude = np.where(x13 < 0, -x13 - 1, x13)
        index = np.searchsorted(starts, magnitude, side="right") - 1
        code = np.where(x13 < 0, 0x55, 0xD5) ^ index
    return code.astype(np.uint8).tobytes()


def decode(law: str, data: bytes) -> np.ndarray:
    """``law`` bytes as int16 samples."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if law == "u8":
        return ((raw.astype(np.int16) - 128) << 8).astype(np.int16)
    if law == "s8":
        return (raw.view(np.int8).astype(np.int16) << 8).astype(np.int16)
    return _G711[law][0][raw]


# --- the two dialects ---------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceFormat:
    """One +VSM compression method; ``law`` is None for those not emulated (ADPCM, 16-bit)."""

    cml: int
    name: str
    bits: int
    rates: tuple[int, ...]
    law: str | None


@dataclass(frozen=True)
class Variant:
    product: str  # ATI0
    identity: str  # ATI3
    formats: tuple[VoiceFormat, ...]
    long_vsm: bool  # V.253's 7-field AT+VSM=? lines, or USR's 3-field ones
    default_vsm: tuple[int, int]
    cid_separator: str
    dtmf_shielding: bool
    hangup_codes: str  # reported when the far end hangs up: first, then repeated
    extension_codes: str  # a handset on the line picked up, put down
    vendor_commands: frozenset[str]


VARIANTS: dict[str, Variant] = {
    "usr": Variant(
        product="5601",
        identity="U.S. Robotics 56K FAX USB V1.2.23",
        formats=(
            VoiceFormat(128, "8-BIT LINEAR", 8, (7200, 8000, 11025), "u8"),
            VoiceFormat(129, "16-BIT LINEAR", 16, (7200, 8000, 11025), None),
            VoiceFormat(130, "8-BIT ALAW", 8, (8000,), "alaw"),
            VoiceFormat(131, "8-BIT ULAW", 8, (8000,), "ulaw"),
            VoiceFormat(132, "IMA ADPCM", 4, (7200, 8000, 11025), None),
        ),
        long_vsm=False,
        default_vsm=(128, 8000),
        cid_separator="=",
        dtmf_shielding=False,
        hangup_codes="ld",  # loop current interruption, then the exchange's dial tone
        extension_codes="Hh",  # "line current detected / break (local phone)": USR's table
        vendor_commands=frozenset(),
    ),
    "conexant": Variant(
        product="56000",
        identity="CX93001-EIS_V0.2013-V92",
        formats=(
            VoiceFormat(0, "SIGNED PCM", 8, (8000,), "s8"),
            VoiceFormat(1, "UNSIGNED PCM", 8, (8000,), "u8"),
            VoiceFormat(129, "IMA ADPCM", 4, (8000,), None),
            VoiceFormat(130, "UNSIGNED PCM", 8, (8000,), "u8"),
            VoiceFormat(131, "Mu-Law", 8, (8000,), "ulaw"),
            VoiceFormat(132, "A-Law", 8, (8000,), "alaw"),
            VoiceFormat(133, "14 bit PCM", 14, (8000,), None),
        ),
        long_vsm=True,
        default_vsm=(1, 8000),
        cid_separator=" = ",
        dtmf_shielding=True,
        hangup_codes="bb",  # the exchange's busy (reorder) tone, repeated
        extension_codes="Pp",  # callattendant watches P/p for the handset on Conexant modems
        # callattendant sets Conexant caller ID with AT-SCID=1;+VCID=1;-STE=3; AT-PV: patch.
        vendor_commands=frozenset({"-SCID", "-STE", "-PV"}),
    ),
}

# ring cadence (period s, seconds from the RING to caller ID; negative: before the first RING)
COUNTRIES = {"us": (6.0, 2.5), "uk": (3.0, -1.0)}

# One V.250 command inside a command line: extended ones (+ or Conexant's -) run to the
# next ";" outside quotes, S-registers, basic ones are a letter (or &letter) and a number.
_COMMAND = re.compile(
    r"""[\s;]*(?:
      (?P<extended>[+\-](?:[^";]|"[^"]*")*)
    | (?P<sreg>[Ss]\d+(?:\?|=\d*)?)
    | (?P<basic>&?[A-Za-z]\d*)
    )""",
    re.VERBOSE,
)


def split_commands(body: str) -> list[str]:
    """What follows ``AT``, one command each: ``"E0V1+VCID=1"`` → ``["E0", "V1", "+VCID=1"]``."""
    commands: list[str] = []
    position = 0
    while position < len(body.rstrip(" ;")):
        match = _COMMAND.match(body, position)
        if match is None or match.end() == position:
            raise ValueError(f"unexpected {body[position:]!r} in {body!r}")
        commands.append(match.group(match.lastgroup or "basic"))
        position = match.end()
    return commands


class AtError(Exception):
    """A command failed with ``result`` (ERROR, NO CARRIER)."""

    def __init__(self, result: str = "ERROR") -> None:
        super().__init__(result)
        self.result = result


def _open_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    for fd in (master, slave):
        tty.setraw(fd, termios.TCSANOW)
    os.set_blocking(master, False)
    return master, slave, os.ttyname(slave)


@dataclass(eq=False)
class _Call:
    number: str
    name: str
    state: str = "ringing"
    rings: int = 0


class V253Modem:
    """One emulated voice modem on an analog line, and its caller; every method is thread-safe.

    ``speed`` runs every clock faster (ring cadence, audio frames) for tests; ``drift_ppm``
    makes the audio clock fast (positive) or slow against ``time.monotonic``. ``country``
    picks the line's ring cadence and caller ID position (``us`` or ``uk``);
    ``cid_service=False`` is a line without caller ID; ``duplex=False`` takes ``AT+VTR`` away;
    ``formats`` keeps only those ``AT+VSM`` methods.
    """

    def __init__(
        self,
        *,
        variant: str = "usr",
        name: str = "pots0",
        number: str = "+15550000001",
        speed: float = 1.0,
        drift_ppm: float = 0.0,
        country: str = "us",
        cid_service: bool = True,
        duplex: bool = True,
        formats: Sequence[int] | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}")
        if country not in COUNTRIES:
            raise ValueError(f"country must be one of {sorted(COUNTRIES)}")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.variant = variant
        self.dialect = VARIANTS[variant]
        if formats is not None:
            kept = tuple(f for f in self.dialect.formats if f.cml in formats)
            self.dialect = _replace_formats(self.dialect, kept)
        self.name = name
        self.number = number
        self.speed = speed
        self.drift_ppm = drift_ppm
        self.country = country
        self.cid_service = cid_service
        self.duplex = duplex
        self.period = FRAME_MS / 1000.0 / (1.0 + drift_ppm * 1e-6) / speed

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._master, self._slave, self.control_path = _open_pty()
        self._wake_pipe = os.pipe()
        self._audio_pipe = os.pipe()
        for fd in (*self._wake_pipe, *self._audio_pipe):
            os.set_blocking(fd, False)
        self._threads: list[threading.Thread] = []
        self._started = self._stopping = self._closed = False
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()

        self._reset()
        self._linebuf = bytearray()
        self._out = bytearray()
        self._call: _Call | None = None
        self._off_hook = False
        self._line_generation = 0  # bumps when the line's far end changes: stops repeats
        self._commands: list[str] = []
        self._dtmf_sent: list[str] = []
        self._keys_free_at = 0.0

        # the voice stream
        self._stream = False
        self._stream_gen = 0
        self._t0: float | None = None
        self._law = "u8"
        self._dle_in = False
        self._rx = bytearray()
        self._events_out = bytearray()
        self._heard = bytearray()  # int16 little-endian, one sample per tick
        self._playback: deque[np.ndarray] = deque()
        self._play_end = 0
        self._frames = self._underruns = self._overruns = self._dropped = 0
        self._fed = False
        self.last_stream_end: str | None = None  # the DTE's code that ended the last stream

    def _reset(self) -> None:
        """ATZ / AT&F: factory voice settings; caller ID off, data mode, echo on."""
        self._echo = True
        self._fclass = "0"
        self._vcid = 0
        self._vsm = self.dialect.default_vsm
        self._vls = 0

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise RuntimeError("modem already started")
            self._started = True
        for role, target in (("control", self._control_loop), ("audio", self._audio_loop)):
            thread = threading.Thread(target=target, name=f"sim-{self.name}-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close every descriptor (the pty vanishes)."""
        with self._lock:
            self._stopping = True
            self._stream = False
            self._changed.notify_all()
        self._wake(self._wake_pipe)
        self._wake(self._audio_pipe)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._master, self._slave, *self._wake_pipe, *self._audio_pipe):
                os.close(fd)

    def __enter__(self) -> V253Modem:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the caller's side ----------------------------------------------------------------

    def ring(self, caller_id: str, name: str = "") -> None:
        """A call from ``caller_id`` ("" withheld) rings until answered or given up."""
        with self._lock:
            if self._call is not None:
                raise RuntimeError(f"{self.name} is busy ({self.state})")
            call = self._call = _Call(caller_id, name)
            self._changed.notify_all()
            period, cid_at = COUNTRIES[self.country]
            if cid_at < 0:
                self._schedule(0.0, lambda: self._caller_id(call))
                self._schedule(-cid_at, lambda: self._ring_tick(call, period))
            else:
                self._schedule(0.0, lambda: self._ring_tick(call, period))
                self._schedule(cid_at, lambda: self._caller_id(call))

    def cancel_ring(self) -> None:
        """The caller gives up while it rings: the RINGs just stop (an analog line says no more)."""
        with self._lock:
            if self._call is not None and self._call.state == "ringing":
                self._end_call()

    def hangup(self) -> None:
        """The caller hangs up; a ringing call is given up. No-op when idle."""
        with self._lock:
            call = self._call
            if call is None:
                return
            self._end_call()
            if call.state == "active":
                self._line_gone()

    def press(self, key: str, *, inband: bool = False, ms: int = 100) -> None:
        """The caller presses ``key`` (one or more of 0-9 * # A-D), ``ms`` on and ``ms`` off.

        Out of band the modem reports ``<DLE>`` codes; in band the tones join the caller's audio.
        """
        keys = key.upper()
        if not keys or any(k not in DTMF_FREQS for k in keys):
            raise ValueError(f"not DTMF keys: {key!r}")
        with self._lock:
            if self.state != "active":
                raise RuntimeError(f"{self.name} has no call in progress")
            if inband:
                gap = np.zeros(round(RATE * ms / 1000), dtype=np.int16)
                self._enqueue(np.concatenate([p for k in keys for p in (dtmf(k, ms, RATE), gap)]))
                return
            now = time.monotonic()
            first = max(0.0, (self._keys_free_at - now) * self.speed)
            self._keys_free_at = now + (first + 2 * len(keys) * ms / 1000) / self.speed
            for index, k in enumerate(keys):  # after the keys already pressed
                start = first + 2 * index * ms / 1000
                if self.dialect.dtmf_shielding:
                    self._schedule(start, lambda k=k: self._report("/" + k))
                    self._schedule(start + ms / 1000, lambda k=k: self._report(k + "~"))
                else:
                    self._schedule(start, lambda k=k: self._report(k))

    def extension(self, off_hook: bool) -> None:
        """A handset on the same line is picked up (True) or put down; the call goes on."""
        with self._lock:
            self._report(self.dialect.extension_codes[0 if off_hook else 1])

    def play(self, audio: np.ndarray | str | Path) -> int:
        """Queue what the caller says (8 kHz); returns the sample index where it will start."""
        samples = load_audio(audio)
        with self._lock:
            return self._enqueue(samples)

    def heard(self) -> np.ndarray:
        """Everything the appliance sent since the stream started, one sample per tick."""
        with self._lock:
            return np.frombuffer(bytes(self._heard), dtype="<i2").astype(np.int16)

    # --- observation ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._lock:
            return "idle" if self._call is None else self._call.state

    @property
    def caller_id(self) -> str:
        with self._lock:
            return "" if self._call is None else self._call.number

    @property
    def off_hook(self) -> bool:
        with self._lock:
            return self._off_hook

    @property
    def rings(self) -> int:
        with self._lock:
            return 0 if self._call is None else self._call.rings

    @property
    def audio_active(self) -> bool:
        with self._lock:
            return self._stream

    @property
    def voice_format(self) -> str | None:
        """The law of the selected +VSM method (ulaw, alaw, u8, s8), None if not emulated."""
        with self._lock:
            return self._format().law

    @property
    def sample_clock(self) -> int:
        with self._lock:
            return self._frames * FRAME_SAMPLES

    @property
    def commands(self) -> list[str]:
        """Every AT command line received, as sent (without its CR)."""
        with self._lock:
            return list(self._commands)

    @property
    def dtmf_sent(self) -> list[str]:
        """Keys the appliance sent with ``AT+VTS``."""
        with self._lock:
            return list(self._dtmf_sent)

    def time_of_sample(self, index: int) -> float:
        with self._lock:
            if self._t0 is None:
                raise RuntimeError(f"{self.name} has not streamed audio yet")
            return self._t0 + index * self.period / FRAME_SAMPLES

    def wait_state(self, state: str, timeout: float | None = None) -> bool:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        with self._changed:
            return self._changed.wait_for(lambda: self.state == state, timeout)

    def wait_audio(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._stream, timeout)

    def wait_rings(self, count: int, timeout: float | None = None) -> bool:
        """Block until the current call has rung ``count`` times; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.rings >= count, timeout)

    def wait_on_hook(self, timeout: float | None = None) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._off_hook, timeout)

    def stats(self) -> dict[str, int]:
        """Audio counters since the stream started (``dropped``: output the DTE never read)."""
        with self._lock:
            return {"frames": self._frames, "underruns": self._underruns,
                    "overruns": self._overruns, "dropped": self._dropped}  # fmt: skip

    # --- the line (lock held) ------------------------------------------------------------

    def _ring_tick(self, call: _Call, period: float) -> None:
        if self._call is not call or call.state != "ringing":
            return
        call.rings += 1
        self._changed.notify_all()
        self._urc("RING")
        self._schedule(period, lambda: self._ring_tick(call, period))

    def _caller_id(self, call: _Call) -> None:
        if self._call is not call or call.state != "ringing":
            return
        if self._vcid == 0 or not self.cid_service:
            return
        now = time.localtime()
        fields = [("DATE", time.strftime("%m%d", now)), ("TIME", time.strftime("%H%M", now)),
                  ("NMBR", call.number or "P")]  # fmt: skip
        if call.name:
            fields.append(("NAME", call.name))
        self._urc(*(f"{tag}{self.dialect.cid_separator}{value}" for tag, value in fields))

    def _go_off_hook(self) -> None:
        self._off_hook = True
        self._vls = 1
        call = self._call
        if call is not None and call.state == "ringing":
            call.state = "active"
        elif call is None:
            self._line_tone("d")  # nobody there: the exchange's dial tone
        self._changed.notify_all()

    def _go_on_hook(self) -> None:
        if self._stream:
            self._stop_stream()
        self._off_hook = False
        self._vls = 0
        self._line_generation += 1
        if self._call is not None and self._call.state == "active":
            self._end_call()  # the caller hears the line go dead
        self._changed.notify_all()

    def _end_call(self) -> None:
        self._call = None
        self._playback.clear()
        self._play_end = 0
        self._changed.notify_all()

    def _line_gone(self) -> None:
        """The far end hung up while we are off-hook: report it, then keep reporting the tone."""
        if not self._off_hook:
            return
        first, repeated = self.dialect.hangup_codes
        self._report(first)
        self._line_tone(repeated, delay=LINE_TONE_REPEAT_S[repeated])

    def _line_tone(self, code: str, delay: float = 0.0) -> None:
        generation = self._line_generation = self._line_generation + 1

        def tick() -> None:
            if self._off_hook and self._call is None and self._line_generation == generation:
                self._report(code)
                self._schedule(LINE_TONE_REPEAT_S[code], tick)

        self._schedule(delay, tick)

    def _report(self, codes: str) -> None:
        """``<DLE>`` event codes: inside the voice stream, or on their own in command state."""
        data = b"".join(bytes([DLE, ord(c)]) for c in codes)
        if self._stream:
            self._events_out += data
        elif self._off_hook:
            self._write(data)

    # --- the control side ----------------------------------------------------------------

    def _control_loop(self) -> None:
        wake = self._wake_pipe[0]
        while True:
            with self._lock:
                if self._stopping:
                    return
                timeout = None
                if self._timers:
                    timeout = max(0.0, self._timers[0][0] - time.monotonic())
            with self._write_lock:
                writable = [self._master] if self._out else []
            readable, _, _ = select.select([self._master, wake], writable, [], timeout)
            if wake in readable:
                self._drain(wake)
            if self._master in readable:
                try:
                    data = os.read(self._master, 4096)
                except (BlockingIOError, InterruptedError):
                    data = b""
                except OSError:  # no slave open: EIO
                    data = b""
                if data:
                    with self._lock:
                        self._receive(data)
            with self._lock:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now and not self._stopping:
                    _, _, action = heapq.heappop(self._timers)
                    action()
                self._flush()

    def _schedule(self, delay: float, action: Callable[[], None]) -> None:
        when = time.monotonic() + delay / self.speed
        heapq.heappush(self._timers, (when, next(self._timer_seq), action))
        self._wake(self._wake_pipe)

    def _receive(self, data: bytes) -> None:
        """Bytes from the DTE: voice while streaming, else command text echoed (ATE1) and
        run at each CR. A <DLE> code in command state (the end of a stream the modem had
        already left) is dropped, and so is anything before "AT" on a line (V.250 §5.2.1)."""
        if self._stream:
            data = self._receive_voice(data)
        echo = bytearray()
        for index, byte in enumerate(data):
            if self._stream:  # AT+VTR started a stream: the rest is voice
                self._write(bytes(echo))
                self._receive(data[index:])
                return
            if self._dle_in:
                self._dle_in = False
                continue
            if byte == DLE:
                self._dle_in = True
                continue
            if self._echo:
                echo.append(byte)
            if byte == 0x0D:
                self._write(bytes(echo))
                echo.clear()
                line = self._linebuf.decode("ascii", "replace")
                self._linebuf.clear()
                start = line.upper().find("AT")
                if start >= 0:
                    self._execute(line[start:].strip())
            elif byte == 0x08:
                del self._linebuf[-1:]
            elif byte != 0x0A:
                self._linebuf.append(byte)
        self._write(bytes(echo))

    def _receive_voice(self, data: bytes) -> bytes:
        """Un-shield the DTE's voice; returns the bytes after a code that ended the stream."""
        for index, byte in enumerate(data):
            if not self._dle_in:
                if byte == DLE:
                    self._dle_in = True
                else:
                    self._rx.append(byte)
                continue
            self._dle_in = False
            if byte == DLE:
                self._rx.append(DLE)
            elif byte == SUB:
                self._rx += b"\x10\x10"
            elif byte in (ord("^"), ord("!"), ETX):  # end duplex / receive abort / end transmit
                self.last_stream_end = "ETX" if byte == ETX else chr(byte)
                self._stop_stream()
                return data[index + 1 :]
            elif byte == 0x18:  # <CAN>: clear the transmit buffer
                self._rx.clear()
            else:
                log.debug("%s: <DLE>%r from the DTE ignored", self.name, chr(byte))
        if len(self._rx) > RX_CAP_BYTES:
            del self._rx[: len(self._rx) - RX_CAP_BYTES]
            self._overruns += 1
        return b""

    def _execute(self, line: str) -> None:
        log.debug("%s <- %s", self.name, line)
        self._commands.append(line)
        info: list[str] = []
        final = "OK"
        try:
            for command in split_commands(line[2:]):
                result = self._dispatch(command, info)
                if result is not None:  # CONNECT: the rest of the line is not run
                    final = result
                    break
        except AtError as err:
            final = err.result
        except ValueError:
            final = "ERROR"
        self._urc(*info, final)
        if final == "CONNECT":
            self._start_stream()

    def _dispatch(self, command: str, info: list[str]) -> str | None:
        head = command[:1].upper()
        if head in "+-":
            name, op, args = parse_extended(command)
            return self._extended(name, op, args, info)
        if head == "S":
            if "?" in command:
                info.append("000")
            return None
        letter = command[:2].upper() if head == "&" else head
        digits = command[len(letter) :]
        value = int(digits) if digits else 0
        if letter == "E":
            self._echo = value == 1
        elif letter in ("Z", "&F"):
            self._go_on_hook()
            self._reset()
        elif letter == "I":
            info.append(self.dialect.identity if value == 3 else self.dialect.product)
        elif letter == "H":
            if value != 0:
                raise AtError()
            self._go_on_hook()
        elif letter == "A":  # voice mode answers like AT+VLS=1; data calls are not emulated
            if self._fclass != "8":
                raise AtError("NO CARRIER")
            self._go_off_hook()
        elif letter not in ("V", "Q", "X", "M", "L", "&W", "&C", "&D", "&K", "&V"):
            raise AtError()
        return None

    def _extended(self, name: str, op: str, args: list[str], info: list[str]) -> str | None:
        if name.startswith("-"):
            if name not in self.dialect.vendor_commands:
                raise AtError()
            return None
        if name == "+FCLASS":
            if op == "=?":
                info.append("0,1,8")
            elif op == "?":
                info.append(self._fclass)
            elif op == "=" and args[:1] and args[0] in ("0", "1", "8"):
                self._fclass = args[0]
            else:
                raise AtError()
            return None
        if name == "+VCID":  # works in data mode too (Home Assistant sets it there)
            return self._setting_vcid(op, args, info)
        if name.startswith("+V") and self._fclass != "8":
            raise AtError()  # V.253: voice commands only in voice mode
        handler = {
            "+VSM": self._vsm_command, "+VLS": self._vls_command, "+VTR": self._vtr_command,
            "+VTS": self._vts_command,
        }.get(name)  # fmt: skip
        if handler is not None:
            return handler(op, args, info)
        if name in ("+VSD", "+VGT", "+VGR", "+VIT", "+VNH", "+VRA", "+VRN", "+VDR", "+VEM",
                    "+VIP", "+IFC", "+GCI"):  # fmt: skip
            if op == "?":
                info.append("0")
            return None
        raise AtError()  # +VRX, +VTX and the rest are not emulated

    def _setting_vcid(self, op: str, args: list[str], info: list[str]) -> None:
        if op == "=?":
            info.append("(0-2)")
        elif op == "?":
            info.append(str(self._vcid))
        elif op == "=" and args[:1] and args[0] in ("0", "1", "2"):
            self._vcid = int(args[0])  # 2 (unformatted) prints nothing here
        else:
            raise AtError()

    def _vsm_command(self, op: str, args: list[str], info: list[str]) -> None:
        if op == "=?":
            for f in self.dialect.formats:
                rates = ",".join(str(r) for r in f.rates)
                if self.dialect.long_vsm:
                    rates = rates if len(f.rates) == 1 else f"({rates})"
                    info.append(f'{f.cml},"{f.name}",{f.bits},0,{rates},0,0')
                else:
                    info.append(f'{f.cml},"{f.name}",({rates})')
        elif op == "?":
            info.append(f"{self._vsm[0]},{self._vsm[1]},0,0")
        elif op == "=" and args[:1] and args[0].isdigit():
            chosen = next((f for f in self.dialect.formats if f.cml == int(args[0])), None)
            if chosen is None:
                raise AtError()
            rate = chosen.rates[0]
            if len(args) > 1 and args[1]:
                if not args[1].isdigit() or int(args[1]) not in chosen.rates:
                    raise AtError()
                rate = int(args[1])
            self._vsm = (chosen.cml, rate)
        else:
            raise AtError()

    def _vls_command(self, op: str, args: list[str], info: list[str]) -> None:
        if op == "=?":
            info.append("0,1")
        elif op == "?":
            info.append(str(self._vls))
        elif op == "=" and args[:1] == ["1"]:
            self._go_off_hook()
        elif op == "=" and args[:1] == ["0"]:
            self._go_on_hook()
        else:
            raise AtError()  # handset, speaker and microphone are not emulated

    def _vtr_command(self, op: str, args: list[str], info: list[str]) -> str:
        if op or not self.duplex:
            raise AtError()
        if not self._off_hook:
            raise AtError()  # "not connected to the line" (Conexant +VTR result codes)
        voice = self._format()
        if voice.law is None or self._vsm[1] != RATE:
            log.warning("%s: AT+VTR with +VSM=%s,%s is not emulated", self.name, *self._vsm)
            raise AtError()
        return "CONNECT"

    def _vts_command(self, op: str, args: list[str], info: list[str]) -> None:
        if op != "=" or not self._off_hook:
            raise AtError()
        for arg in args:
            keys = arg.strip("[]{}").upper()
            if keys and all(k in DTMF_FREQS for k in keys):
                self._dtmf_sent.extend(keys)

    def _format(self) -> VoiceFormat:
        return next(f for f in self.dialect.formats if f.cml == self._vsm[0])

    # --- the voice stream ----------------------------------------------------------------

    def _start_stream(self) -> None:
        """After CONNECT: sample 0 is now; stale bytes either way are gone."""
        self._law = self._format().law or "u8"
        self._stream = True
        self._stream_gen += 1
        self._t0 = time.monotonic()
        self._frames = self._underruns = self._overruns = self._dropped = 0
        self._fed = False
        self._dle_in = False
        self._heard.clear()
        self._rx.clear()
        self._events_out.clear()
        self._play_end = sum(len(chunk) for chunk in self._playback)
        self._changed.notify_all()
        self._wake(self._audio_pipe)

    def _stop_stream(self) -> None:
        """End the voice duplex state: <DLE><ETX>, then OK."""
        self._stream = False
        self._stream_gen += 1
        self._write(bytes(self._events_out) + b"\x10\x03")
        self._events_out.clear()
        self._urc("OK")
        self._changed.notify_all()
        self._wake(self._audio_pipe)

    def _audio_loop(self) -> None:
        wake = self._audio_pipe[0]
        while True:
            with self._lock:
                if self._stopping:
                    return
                streaming, generation, t0 = self._stream, self._stream_gen, self._t0
            if not streaming or t0 is None:
                select.select([wake], [], [])
                self._drain(wake)
                continue
            n = 0
            while True:  # one frame every period at absolute deadlines t0 + n·period
                with self._lock:
                    if self._stopping or self._stream_gen != generation:
                        break
                delay = t0 + n * self.period - time.monotonic()
                if delay > 0:
                    readable, _, _ = select.select([wake], [], [], delay)
                    if readable:
                        self._drain(wake)
                        continue
                with self._lock:
                    if self._stream_gen == generation:
                        self._tick()
                n += 1

    def _tick(self) -> None:
        """Play one period of the DTE's audio, then send one period of the caller's."""
        if len(self._rx) >= FRAME_SAMPLES:
            played = decode(self._law, bytes(self._rx[:FRAME_SAMPLES]))
            self._heard += played.astype("<i2").tobytes()
            del self._rx[:FRAME_SAMPLES]
            self._fed = True
        else:
            self._heard += bytes(2 * FRAME_SAMPLES)  # silence
            self._underruns += 1
            if self._fed:  # V.253 <DLE>u: the buffer ran dry without <DLE><ETX>
                self._events_out += b"\x10u"
                self._fed = False
        self._frames += 1
        frame = encode(self._law, self._pull(FRAME_SAMPLES)).replace(b"\x10", b"\x10\x10")
        if len(self._out) + len(frame) > TX_CAP_BYTES:
            self._dropped += 1
        else:
            self._out += frame
        self._out += self._events_out
        self._events_out.clear()
        self._flush()

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

    # --- output --------------------------------------------------------------------------

    def _urc(self, *lines: str) -> None:
        if lines:
            log.debug("%s -> %s", self.name, " | ".join(lines))
            self._write(b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines))

    def _write(self, data: bytes) -> None:
        if data:
            self._out += data
            self._flush()

    def _flush(self) -> None:
        """Write what the pty takes now; the control loop retries the rest."""
        with self._write_lock:
            while self._out and not self._closed:
                try:
                    written = os.write(self._master, self._out)
                except BlockingIOError:
                    return  # the control loop waits for the pty to take more
                except OSError:
                    self._out.clear()
                    return
                del self._out[:written]

    @staticmethod
    def _drain(fd: int) -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass

    def _wake(self, pipe: tuple[int, int]) -> None:
        if not self._closed:
            with contextlib.suppress(OSError):
                os.write(pipe[1], b"\0")


def _replace_formats(variant: Variant, formats: tuple[VoiceFormat, ...]) -> Variant:
    default = variant.default_vsm
    if formats and all(f.cml != default[0] for f in formats):
        default = (formats[0].cml, formats[0].rates[0])
    return replace(variant, formats=formats, default_vsm=default)
