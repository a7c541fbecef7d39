"""An analog (FXO) line through a V.253 voice modem: USRobotics 5637 and Conexant CX930xx modems.

One serial port carries both the AT commands and the voice. An incoming call, as the modem
shows it (ITU-T V.253; transcripts from NCID, callattendant and Home Assistant users)::

    RING                                  (the first ring burst)
    DATE=0117 / TIME=1452                 (caller ID between the 1st and 2nd ring, AT+VCID=1;
    NMBR=5551234567 / NAME=WIRELESS CALLER Conexant prints "NMBR = ...", UK lines send it
    RING                                   before the first RING)
    AT+VLS=1  ->  OK                      (off-hook, the line is the voice source and sink)
    AT+VTR    ->  CONNECT                 (full-duplex voice: <DLE>-shielded bytes both ways)
    <DLE>5 or <DLE>/<DLE>5<DLE>~          (a key pressed by the caller)
    <DLE>l, <DLE>b or <DLE>d              (loop current gone, busy or dial tone: they hung up)
    <DLE>^  ->  ... <DLE><ETX> OK         (we end the voice duplex state)
    ATH0    ->  OK                        (on-hook)

The voice format is chosen from ``AT+VSM=?`` at 8000 Hz: G.711 u-law first, then A-law (both
give about 38 dB SNR over the whole range of speech levels at 8 bits), then 8-bit linear
(fine near full scale, grainy at speech levels). ``VoiceLink`` sits between pyserial and the
``ATChannel``: the channel only ever sees command text; ``<DLE>`` events are taken out of it,
and after ``CONNECT`` every byte is voice until ``<DLE><ETX>``. The modem's own stream paces
the audio: each 20 ms period read is answered by one period written, on the reader's thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort
from appliance.lines.at import (
    DEVICE_ERRORS,
    ATChannel,
    ATChannelClosed,
    ATCommandError,
    ATError,
    ATResponse,
    open_serial,
)
from appliance.lines.base import (
    Connected,
    Disconnected,
    DtmfReceived,
    EventHandler,
    LineDriver,
    LineError,
    LineEvent,
    LineStatus,
    Ringing,
)

log = logging.getLogger(__name__)

DEVICE_RATE = 8000
DEVICE_FRAME_SAMPLES = 160  # 20 ms
DLE, ETX, SUB = 0x10, 0x03, 0x1A
DTMF_KEYS = "0123456789*#ABCD"

# <DLE> codes from the modem (V.253 Table 15, USR and Conexant voice command references).
REMOTE_END_CODES = frozenset("lbd")  # loop current interruption, busy, dial tone
EXTENSION_OFF_HOOK = frozenset("HP")  # a handset on the same line picked up (IS-101 codes)
DTMF_START, DTMF_END = "/", "~\x7f"  # tone shielding; Silicon Labs' AN93 gives 0x7F for "~"
END_DUPLEX = b"\x10^"  # <DLE><^>: leave the voice duplex state (Conexant and USR +VTR text)
END_HALF_DUPLEX = b"\x10\x03\x10!"  # <DLE><ETX> ends transmit, <DLE><!> aborts receive

# Lines the modem prints on its own between commands.
CID_TAGS = ("DATE", "TIME", "NMBR", "NAME", "DDN_NMBR", "MESG")
URC_PREFIXES = ("RING", *CID_TAGS)

FORMAT_PREFERENCE = ("ulaw", "alaw", "u8", "s8")


# --- G.711 and 8-bit linear codecs ----------------------------------------------------------


def _ulaw_tables() -> tuple[np.ndarray, np.ndarray]:
    """(decode[256] -> int16, encode[65536] indexed by the int16's bits), as Sun's g711.c."""
    codes = np.arange(256)
    inverted = ~codes & 0xFF
    magnitude = (((inverted & 0x0F) << 3) + 0x84) << ((inverted & 0x70) >> 4)
    decode = np.where(inverted & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.int16)

    value = np.arange(-32768, 32768) >> 2  # 14-bit
    mask = np.where(value < 0, 0x7F, 0xFF)
    biased = np.minimum(np.abs(value), 8159) + 0x21
    segment = np.searchsorted((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF), biased)
    code = np.where(segment > 7, 0x7F, (segment << 4) | ((biased >> (segment + 1)) & 0x0F))
    return decode, _by_bits((code ^ mask).astype(np.uint8))


def _alaw_tables() -> tuple[np.ndarray, np.ndarray]:
    """(decode, encode) for G.711 A-law, as Sun's g711.c."""
    codes = np.arange(256) ^ 0x55
    mantissa = (codes & 0x0F) << 4
    segment = (codes & 0x70) >> 4
    magnitude = np.where(
        segment == 0, mantissa + 8, (mantissa + 0x108) << np.maximum(segment - 1, 0)
    )
    decode = np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)

    value = np.arange(-32768, 32768) >> 3  # 13-bit
    mask = np.where(value >= 0, 0xD5, 0x55)
    magnitude_in = np.where(value >= 0, value, -value - 1)
    segment_in = np.searchsorted((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF), magnitude_in)
    shift = np.maximum(segment_in, 1)
    code = (segment_in << 4) | ((magnitude_in >> shift) & 0x0F)
    return decode, _by_bits((code ^ mask).astype(np.uint8))


def _by_bits(table: np.ndarray) -> np.ndarray:
    """Reorder a table built for -32768..32767 so an int16's uint16 view indexes it."""
    return np.roll(table, -32768)


def _linear8_tables(offset: int) -> tuple[np.ndarray, np.ndarray]:
    """8-bit linear PCM: ``offset`` 128 for unsigned (offset binary), 0 for two's complement."""
    codes = np.arange(256)
    signed = (codes - offset) if offset else codes.astype(np.int8).astype(int)
    decode = (signed << 8).astype(np.int16)
    value = np.clip((np.arange(-32768, 32768) + 128) >> 8, -128, 127)
    return decode, _by_bits(((value + offset) & 0xFF).astype(np.uint8))


@dataclass(frozen=True, eq=False)
class VoiceCodec:
    """One 8-bit voice format: bytes from the modem to int16 samples and back."""

    name: str
    decode_table: np.ndarray
    encode_table: np.ndarray

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_table[np.frombuffer(data, dtype=np.uint8)]

    def encode(self, samples: np.ndarray) -> bytes:
        bits = np.asarray(samples, dtype=np.int16).view(np.uint16)
        return self.encode_table[bits].tobytes()


CODECS: dict[str, VoiceCodec] = {
    name: VoiceCodec(name, *tables)
    for name, tables in (
        ("ulaw", _ulaw_tables()),
        ("alaw", _alaw_tables()),
        ("u8", _linear8_tables(128)),
        ("s8", _linear8_tables(0)),
    )
}


# --- pure parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceFormat:
    """One line of ``AT+VSM=?``: a compression method, its name, bits and sampling rates."""

    cml: int
    description: str
    bits: int | None
    rates: tuple[tuple[int, int], ...]

    @property
    def codec(self) -> str | None:
        """The codec this appliance speaks for it (ulaw, alaw, u8, s8), None for the others."""
        name = self.description.upper().replace(" ", "").replace(".", "")
        if self.bits not in (None, 8):
            return None
        if "ULAW" in name or "MU-LAW" in name or "G711U" in name:
            return "ulaw"
        if "ALAW" in name or "A-LAW" in name or "G711A" in name:
            return "alaw"
        if "ADPCM" in name:
            return None
        # USR's "8-BIT LINEAR" is offset binary: silence is 0x80 (callattendant's recordings).
        if "UNSIGNEDPCM" in name or name == "8-BITLINEAR":
            return "u8"
        if "SIGNEDPCM" in name:
            return "s8"
        return None

    def supports(self, rate: int) -> bool:
        return any(low <= rate <= high for low, high in self.rates)


_VSM_LINE = re.compile(r'^(?:\+\s*VSM:\s*)?(\d+)\s*,\s*"([^"]*)"\s*(?:,(.*))?$')


def parse_vsm_line(line: str) -> VoiceFormat:
    """A format from ``AT+VSM=?``, in V.253's long form or USR's short one.

    ``0,"SIGNED PCM",8,0,8000,0,0`` (Conexant CX93001), ``131,"8-BIT ULAW",(8000)`` (USR 5637).
    Raises ``ValueError`` for anything else.
    """
    match = _VSM_LINE.match(line.strip())
    if match is None:
        raise ValueError(f"not a +VSM format line: {line!r}")
    fields = _top_level_fields(match.group(3) or "")
    if len(fields) >= 3:  # <bps>,<tm>,<vsr>,<sds>,<sel>
        bits_text, rates_text = fields[0], fields[2]
    elif len(fields) == 1:
        bits_text, rates_text = "", fields[0]
    else:
        raise ValueError(f"no sampling rates in {line!r}")
    bits = int(bits_text) if bits_text.isdigit() else None
    return VoiceFormat(int(match.group(1)), match.group(2).strip(), bits, _parse_range(rates_text))


def _top_level_fields(text: str) -> list[str]:
    fields, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current or fields:
        fields.append("".join(current).strip())
    return fields


def _parse_range(text: str) -> tuple[tuple[int, int], ...]:
    """``(7200,8000,11025)``, ``8000`` or ``(7200-11025)`` as (low, high) pairs."""
    ranges = []
    for part in text.strip().strip("()").split(","):
        low, _, high = part.strip().partition("-")
        if not low.strip().isdigit() or (high and not high.strip().isdigit()):
            raise ValueError(f"bad sampling rates {text!r}")
        ranges.append((int(low), int(high or low)))
    return tuple(ranges)


def choose_format(formats: Iterable[VoiceFormat], rate: int = DEVICE_RATE) -> VoiceFormat | None:
    """The best format the modem offers at ``rate``: u-law, A-law, unsigned or signed 8-bit."""
    usable = [f for f in formats if f.codec is not None and f.supports(rate)]
    usable.sort(key=lambda f: FORMAT_PREFERENCE.index(f.codec or ""))
    return usable[0] if usable else None


@dataclass(frozen=True)
class CallerIdField:
    """One formatted caller ID line (``AT+VCID=1``): ``NMBR=5551234567`` or ``NMBR = 0207...``."""

    tag: str
    value: str

    @property
    def caller_value(self) -> str:
        """The value, "" for P (private, withheld) and O (out of area, unavailable)."""
        return "" if self.value in ("P", "O") else self.value


_CID_LINE = re.compile(rf"^({'|'.join(CID_TAGS)})\s*=\s*(.*)$")


def parse_cid_line(line: str) -> CallerIdField:
    """A ``TAG=value`` caller ID line; ``ValueError`` for anything else."""
    match = _CID_LINE.match(line.strip())
    if match is None:
        raise ValueError(f"not a caller ID line: {line!r}")
    return CallerIdField(match.group(1), match.group(2).strip())


def shield(data: bytes) -> bytes:
    """Voice bytes as the DTE sends them: every <DLE> doubled (V.253 §9.1)."""
    return data.replace(b"\x10", b"\x10\x10")


@dataclass(frozen=True)
class DleChunk:
    """What one read of a voice stream held: voice bytes, <DLE> events, and ``rest`` when
    <DLE><ETX> ended the stream (the bytes after it are command text again)."""

    voice: bytes
    events: tuple[str, ...] = ()
    rest: bytes | None = None


class DleDecoder:
    """Un-shields a modem's voice stream, whatever the chunking (a <DLE> may end one read)."""

    def __init__(self) -> None:
        self._dle = False

    def feed(self, data: bytes) -> DleChunk:
        if self._dle and data:
            data = b"\x10" + data
            self._dle = False
        voice, events, position = bytearray(), [], 0
        while True:
            index = data.find(b"\x10", position)
            if index < 0:
                voice += data[position:]
                return DleChunk(bytes(voice), tuple(events))
            voice += data[position:index]
            if index + 1 == len(data):
                self._dle = True
                return DleChunk(bytes(voice), tuple(events))
            code, position = data[index + 1], index + 2
            if code == DLE:
                voice.append(DLE)
            elif code == SUB:  # <DLE><SUB>: two <DLE> bytes in the data
                voice += b"\x10\x10"
            elif code == ETX:
                return DleChunk(bytes(voice), tuple(events), data[position:])
            else:
                events.append(chr(code))


# --- the shared serial port -----------------------------------------------------------------

_COMMAND, _ARMED, _STREAM, _CLOSING = "command", "armed", "stream", "closing"
_FINALS = (b"OK", b"ERROR", b"NO CARRIER")


class VoiceLink:
    """The modem's one port: command text to the ``ATChannel``, voice to the call's stream.

    The channel reads through this object and sees only text. ``<DLE>`` events go to
    ``on_event(code)`` (on the reader's thread) in every state. ``arm(on_voice)`` before
    ``AT+VTR``: once its ``CONNECT`` line is through, the bytes are voice for ``on_voice``
    until ``<DLE><ETX>``; the ``OK`` that follows closes the stream here and never reaches
    the channel, where it could be taken for the answer to the next command.
    """

    def __init__(self, port: Any, on_event: Callable[[str], None]) -> None:
        self._port = port
        self._on_event = on_event
        self._on_voice: Callable[[bytes], None] | None = None
        self._mode = _COMMAND
        self._mode_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._decoder = DleDecoder()
        self._text_dle = False
        self._line = bytearray()
        self._connect_cr = False  # "CONNECT\r" seen, its "\n" may follow
        self.stream_ended = threading.Event()  # <DLE><ETX>
        self.stream_closed = threading.Event()  # and the final result after it

    # pyserial's interface, as ATChannel uses it

    @property
    def in_waiting(self) -> int:
        return int(self._port.in_waiting)

    def read(self, size: int = 1) -> bytes:
        data = self._port.read(max(size, 1))
        if not data:
            return b""
        with self._mode_lock:
            return self._route(data)

    def write(self, data: bytes) -> int:
        with self._write_lock:
            return int(self._port.write(data) or 0)

    def cancel_read(self) -> None:
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            cancel()

    def close(self) -> None:
        self._port.close()

    # the voice stream

    @property
    def streaming(self) -> bool:
        return self._mode in (_STREAM, _CLOSING)

    def arm(self, on_voice: Callable[[bytes], None]) -> None:
        """Expect ``CONNECT`` (the answer to ``AT+VTR``); voice follows it."""
        with self._mode_lock:
            self._on_voice = on_voice
            self._mode = _ARMED
            self._line.clear()
            self._connect_cr = False
            self._decoder = DleDecoder()
            self.stream_ended.clear()
            self.stream_closed.clear()

    def disarm(self) -> None:
        """Back to command text at once (no CONNECT came, or the stream's end was lost)."""
        with self._mode_lock:
            self._mode = _COMMAND
            self._on_voice = None
            self._line.clear()

    def wait_closed(self, timeout: float) -> bool:
        """Wait for the stream's end; True once <DLE><ETX> came (its OK is waited for too)."""
        if self.stream_closed.wait(timeout):
            return True
        if self.stream_ended.is_set():
            self.disarm()  # <DLE><ETX> without OK: command state all the same
            return True
        return False

    def drop_dtr(self, seconds: float = 0.2) -> None:
        """Pulse DTR off: with &D2 (the factory default) the modem hangs up (V.250 §6.2.9)."""
        with contextlib.suppress(*DEVICE_ERRORS, AttributeError):
            self._port.dtr = False
            threading.Event().wait(seconds)
            self._port.dtr = True

    # reader thread

    def _route(self, data: bytes) -> bytes:
        text = bytearray()
        while data:
            if self._mode == _STREAM:
                chunk = self._decoder.feed(data)
                if chunk.voice and self._on_voice is not None:
                    self._on_voice(chunk.voice)
                for code in chunk.events:
                    self._on_event(code)
                if chunk.rest is None:
                    break
                self._mode, data = _CLOSING, chunk.rest
                self._on_voice = None
                self.stream_ended.set()
                continue
            data = self._text(data, text)
        return bytes(text)

    def _text(self, data: bytes, text: bytearray) -> bytes:
        """Route command text; returns what is left when the stream starts inside ``data``."""
        for index, byte in enumerate(data):
            if self._text_dle:
                self._text_dle = False
                self._on_event(chr(byte))
                continue
            if byte == DLE:
                self._text_dle = True
                continue
            if self._mode == _COMMAND:
                text.append(byte)
            elif self._mode == _ARMED:
                if self._connect_cr:  # the voice starts after CONNECT's CR LF (or lone CR)
                    self._connect_cr = False
                    self._mode = _STREAM
                    if byte == 0x0A:
                        text.append(byte)
                        return data[index + 1 :]
                    return data[index:]
                text.append(byte)
                if byte in (0x0D, 0x0A):
                    connect = bytes(self._line).strip().startswith(b"CONNECT")
                    self._line.clear()
                    if connect and byte == 0x0A:
                        self._mode = _STREAM
                        return data[index + 1 :]
                    self._connect_cr = connect
                else:
                    self._line.append(byte)
            elif byte in (0x0D, 0x0A):  # closing: hold each line until it proves no final
                line = bytes(self._line).strip()
                self._line.clear()
                if line in _FINALS:
                    self._mode = _COMMAND
                    self.stream_closed.set()
                else:
                    text += line + bytes([byte])
            else:
                self._line.append(byte)
        return b""


# --- one call's audio -----------------------------------------------------------------------


class _VoiceStream:
    """Frames the voice bytes into 20 ms periods for the port and answers each with one period."""

    def __init__(
        self,
        port: DeviceAudioPort,
        codec: VoiceCodec,
        link: VoiceLink,
        *,
        on_error: Callable[[BaseException], None],
        prime_frames: int = 1,
    ) -> None:
        self.port = port
        self.codec = codec
        self._link = link
        self._on_error = on_error
        self._unprimed = prime_frames
        self._frame_bytes = DEVICE_FRAME_SAMPLES  # one byte per sample in every 8-bit format
        self._pending = bytearray()
        self._sending = True
        self._failed = False
        self.frames_in = 0
        self.frames_out = 0
        self.underruns = 0  # <DLE>u: the modem ran out of our audio

    def stop_sending(self) -> None:
        self._sending = False

    def on_voice(self, data: bytes) -> None:
        """Voice bytes from the modem (reader thread): each whole period in, one period out."""
        if self._failed:
            return
        self._pending += data
        try:
            while len(self._pending) >= self._frame_bytes:
                frame = bytes(self._pending[: self._frame_bytes])
                del self._pending[: self._frame_bytes]
                self.port.device_frame_in(self.codec.decode(frame))
                self.frames_in += 1
                outgoing = self.port.device_frame_out()
                if self._sending:
                    if self._unprimed:  # a cushion in the modem's buffer for one late answer
                        silence = self.codec.encode(np.zeros(DEVICE_FRAME_SAMPLES, np.int16))
                        self._link.write(shield(silence) * self._unprimed)
                        self._unprimed = 0
                    self._link.write(shield(self.codec.encode(outgoing)))
                    self.frames_out += 1
        except DEVICE_ERRORS:
            raise  # the port is gone: the channel's reader reports it
        except Exception as exc:
            self._failed = True
            log.exception("%s: call audio failed", self.port.name)
            self._on_error(exc)

    def stats(self) -> dict[str, int]:
        return {"frames_in": self.frames_in, "frames_out": self.frames_out,
                "modem_underruns": self.underruns}  # fmt: skip


# --- the driver -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    """One incoming call, from its first RING or caller ID line to its one Disconnected."""

    caller_id: str = ""
    caller_name: str = ""
    rings: int = 0
    cid_seen: bool = False
    announced: bool = False  # Ringing emitted
    answering: bool = False
    answered: bool = False  # Connected emitted
    ending: bool = False
    ended: bool = False
    off_hook: bool = False
    port: DeviceAudioPort | None = None
    stream: _VoiceStream | None = None
    dtmf_burst: str | None = None  # inside <DLE>/ ... <DLE>~: the key already reported
    extension: bool = False  # a handset on the same line is off-hook
    lock: threading.Lock = field(default_factory=threading.Lock)  # answer vs. teardown
    cid_timer: threading.Timer | None = None
    ring_timer: threading.Timer | None = None

    @property
    def state(self) -> str:
        return "in-call" if self.answered else "ringing"


class _StopRequested(Exception):
    """stop() was called while run() was still starting."""


class V253Driver(LineDriver):
    """A V.253 voice modem on an analog line: AT commands and voice on ``control``.

    ``init`` holds extra commands sent after every reset (``AT+GCI=B4`` for a UK line, a
    Conexant ``AT!4886=00`` caller ID fix...). Timeouts are seconds of real time.

    It does not place calls (``can_dial`` is False). V.253 gives an outbound voice call no
    answer signal: after ``ATD`` the modem reports dial tone (``<DLE>d``), busy (``<DLE>b``)
    and, on some chipsets only, ringback (``<DLE>r``), but the moment the far end picks up
    passes unreported on an analog loop (no answer supervision reaches an FXO port), so it
    could only be guessed from ringback stopping or from speech energy: an answering
    machine, a ringback pause or a silent party would all be misread, and a "no-answer"
    could not be told from a lost ringback. Calls placed on guesses are not offered.
    """

    def __init__(
        self,
        name: str,
        on_event: EventHandler,
        *,
        control: str,
        fmt: AudioFormat,
        number: str = "",
        init: Sequence[str] = (),
        baudrate: int = 115200,
        port_factory: Callable[..., DeviceAudioPort] = DeviceAudioPort,
        cid_wait: float = 5.0,
        cid_settle: float = 0.5,
        ring_timeout: float = 8.0,
        answer_timeout: float = 10.0,
        stream_end_timeout: float = 2.0,
        prime_frames: int = 1,
        sync_attempts: int = 10,
    ) -> None:
        super().__init__(name, on_event)
        self.control = control
        self.fmt = fmt
        self.number = number
        self.init = tuple(init)
        self._baudrate = baudrate
        self._port_factory = port_factory
        self._cid_wait = cid_wait
        self._cid_settle = cid_settle
        self._ring_timeout = ring_timeout
        self._answer_timeout = answer_timeout
        self._stream_end_timeout = stream_end_timeout
        self._prime_frames = prime_frames
        self._sync_attempts = sync_attempts
        self._lock = threading.RLock()
        self._link: VoiceLink | None = None
        self._channel: ATChannel | None = None
        self._codec: VoiceCodec | None = None
        self._call: _Call | None = None
        self._rejected: _Call | None = None  # refused, still ringing: its RINGs are ignored
        self._detail: dict[str, Any] = {"number": number}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lost: BaseException | None = None
        self._phase = "down"
        self._events: queue.Queue[LineEvent | None] = queue.Queue()
        self._emitter: threading.Thread | None = None

    # --- LineDriver ---

    def run(self) -> None:
        """Open and set up the modem, then serve calls until stop() or the device fails."""
        self._wake.clear()
        self._lost = None
        self._phase = "starting"
        self._start_emitter()
        self._post(LineStatus("starting", self.status()))
        try:
            self._open()
            self._configure()
            self._phase = "idle"
            self._post(LineStatus("idle", self.status()))
            while not self._stopping.is_set() and self._lost is None:
                self._wake.wait()
            if self._lost is not None and not self._stopping.is_set():
                raise LineError(f"{self.name}: modem lost: {self._lost}") from self._lost
        except _StopRequested:
            pass
        except LineError as exc:
            self._phase = "down"
            self._post(LineStatus("down", {**self.status(), "error": str(exc)}))
            raise
        finally:
            self._phase = "down"
            self._shutdown()
            self._stop_emitter()

    def stop(self) -> None:
        """End a call in progress (a ringing one is left to ring), then let run() return."""
        self._stopping.set()
        with self._lock:
            call = self._call
        if call is not None:
            self._end_call(call, "local", reject=False)
        self._wake.set()

    def answer(self) -> None:
        """Go off-hook and start full-duplex voice; ``Connected`` follows."""
        with self._lock:
            call = self._call
            if call is None or call.ended or call.ending or call.answering:
                raise LineError(f"{self.name}: no call is ringing")
            call.answering = call.announced = True
            self._cancel_timers(call)
        with call.lock:
            failure = self._answer(call)
        if failure is not None:
            self._end_call(call, "failed")
            raise failure

    def hangup(self) -> None:
        """End the call (a ringing one is picked up and dropped); ``Disconnected("local")``."""
        with self._lock:
            call = self._call
        if call is not None:
            self._end_call(call, "local")

    def reject(self, reason: str = "rejected") -> None:
        """Refuse the ringing call by never going off-hook; ``Disconnected("local")`` at once.

        An analog line cannot refuse a call without answering it (which would start the
        caller's charge), so whatever ``reason`` says the caller keeps hearing ringback until
        they give up or the exchange diverts the call. The driver stops treating this call:
        its remaining RINGs and caller ID are ignored until the ring cadence stops, which a
        ``LineStatus`` reports.
        """
        if reason not in ("rejected", "busy"):
            raise ValueError(f"reason must be one of ('rejected', 'busy'), not {reason!r}")
        with self._lock:
            call = self._call
            if call is None or call.ended or call.ending or call.answering or call.answered:
                raise LineError(f"{self.name}: no call is ringing")
            call.ending = True
            log.info("%s: rejecting the call from %s; it rings on unanswered", self.name,
                     call.caller_id or "an unknown number")  # fmt: skip
        self._finish(call, "local")
        with self._lock:
            if self._call is None:
                self._rejected = call
                call.ring_timer = self._timer(self._ring_timeout, self._rejected_gone, call)

    # --- more than the base contract ---

    def status(self) -> dict[str, Any]:
        """What is known about the modem and its call, for the web page."""
        with self._lock:
            detail = dict(self._detail)
            detail["state"] = self._state_name()
            if self._call is not None and not self._call.ended:
                detail["caller_id"] = self._call.caller_id
            return detail

    # --- start-up and shut-down ---

    def _open(self) -> None:
        try:
            port = open_serial(self.control, self._baudrate)
        except (*DEVICE_ERRORS, ValueError) as exc:
            raise LineError(f"{self.name}: cannot open {self.control}: {exc}") from exc
        self._link = VoiceLink(port, self._on_dle)
        self._channel = ATChannel(
            self._link, self._on_urc, URC_PREFIXES, on_close=self._on_channel_lost, name=self.name
        )

    def _configure(self) -> None:
        """Reset the modem and set it up for voice; run again after every reset.

        ATZ clears caller ID (AT+VCID=0) on the USR 5637 and on Conexant modems even when it
        was saved with AT&W (Home Assistant issue 57765), so it is set again each time.
        """
        try:
            self._sync()
            self._command_or_fallback("ATZ", "AT&F")
            for command, required in (("ATE0", True), ("ATV1", False)):
                self._optional(command, required=required)
            for command in self.init:
                self._optional(command)
            self._optional("AT+FCLASS=8", required=True)
            caller_id = self._optional("AT+VCID=1")
            identity = self._identify()
            codec, setting = self._choose_voice_format()
        except ATError as exc:
            self._check_stopping()
            raise LineError(f"{self.name}: initialisation failed: {exc}") from exc
        if not caller_id:
            log.warning("%s: the modem refused AT+VCID=1: calls will ring without caller ID",
                        self.name)  # fmt: skip
        with self._lock:
            self._codec = codec
            self._detail.update(identity)
            self._detail.update({"voice_format": setting, "caller_id_service": caller_id})

    def _sync(self) -> None:
        """Send AT until the modem answers OK (a modem left streaming voice needs a moment)."""
        for _ in range(self._sync_attempts):
            self._check_stopping()
            try:
                self._at("AT", timeout=1.0)
                return
            except ATChannelClosed:
                raise
            except ATError as exc:
                log.debug("%s: sync: %s", self.name, exc)
                if self._link is not None:
                    self._link.write(END_DUPLEX + END_HALF_DUPLEX)  # in case a stream was left
        raise LineError(f"{self.name}: no OK to AT after {self._sync_attempts} attempts")

    def _command_or_fallback(self, command: str, fallback: str) -> None:
        try:
            self._at(command, timeout=10.0)
        except ATCommandError as exc:
            log.info("%s: %s: %s; trying %s", self.name, command, exc.final, fallback)
            self._at(fallback, timeout=10.0)

    def _optional(self, command: str, *, required: bool = False) -> bool:
        self._check_stopping()
        try:
            self._at(command)
            return True
        except ATCommandError as exc:
            if required:
                raise LineError(f"{self.name}: {exc}") from exc
            log.info("%s: %s not supported: %s", self.name, command, exc.final)
            return False

    def _identify(self) -> dict[str, Any]:
        """ATI0 (product code: 5601 on the USR 5637, 56000 on Conexant) and ATI3 (firmware)."""
        found: dict[str, Any] = {}
        for command, key in (("ATI0", "product"), ("ATI3", "model")):
            try:
                lines = self._at(command).lines
            except ATCommandError as exc:
                log.info("%s: %s: %s", self.name, command, exc.final)
                continue
            if lines:
                found[key] = lines[0]
        return found

    def _choose_voice_format(self) -> tuple[VoiceCodec, str]:
        response = self._at("AT+VSM=?")
        formats = []
        for line in response.lines:
            try:
                formats.append(parse_vsm_line(line))
            except ValueError:
                log.debug("%s: AT+VSM=?: skipping %r", self.name, line)
        chosen = choose_format(formats)
        if chosen is None or chosen.codec is None:
            offered = "; ".join(response.lines) or "nothing"
            raise LineError(
                f"{self.name}: the modem offers no 8-bit voice format at 8000 Hz "
                f"(AT+VSM=? answered {offered})"
            )
        setting = f"AT+VSM={chosen.cml},{DEVICE_RATE}"
        self._at(setting)
        with contextlib.suppress(ATCommandError):
            log.info("%s: voice format %s (%s), AT+VSM? %s", self.name, chosen.codec,
                     chosen.description, " ".join(self._at("AT+VSM?").lines))  # fmt: skip
        return CODECS[chosen.codec], f"{chosen.codec} ({setting})"

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise _StopRequested

    def _shutdown(self) -> None:
        with self._lock:
            call = self._call
        if call is not None:
            if self._lost is not None:
                self._finish(call, "device-lost")
            else:
                self._end_call(call, "local", reject=False)
        channel, self._channel = self._channel, None
        self._link = None
        if channel is not None:
            channel.close()

    def _on_channel_lost(self, exc: BaseException) -> None:
        self._lost = exc
        with self._lock:
            call = self._call
        if call is not None:
            self._finish(call, "device-lost")
        self._wake.set()

    # --- unsolicited lines (the channel's dispatcher thread) ---

    def _on_urc(self, line: str) -> None:
        if line == "RING":
            self._on_ring()
            return
        try:
            cid = parse_cid_line(line)
        except ValueError:
            log.debug("%s: unhandled line %r", self.name, line)
            return
        self._on_cid(cid)

    def _ringing_rejected(self) -> bool:
        """A RING or caller ID of the call we refused: it keeps the call ignored (lock held)."""
        call = self._rejected
        if call is None or self._call is not None:
            return False
        self._arm_ring_watchdog(call, self._rejected_gone)
        return True

    def _rejected_gone(self, call: _Call) -> None:
        with self._lock:
            if self._rejected is call:
                self._rejected = None
                log.info("%s: the refused call stopped ringing", self.name)
                self._post(LineStatus(self._state_name(), self.status()))

    def _on_ring(self) -> None:
        with self._lock:
            if self._ringing_rejected():
                return
            call = self._call
            if call is None:
                log.info("%s: incoming call", self.name)
                call = self._call = _Call()
                self._post(LineStatus("ringing", self.status()))
            if call.ending or call.answering or call.answered:
                return
            call.rings += 1
            if not call.announced:
                if call.cid_seen or call.rings > 1:  # caller ID came first, or never will
                    self._announce(call)
                elif call.cid_timer is None:
                    call.cid_timer = self._timer(self._cid_wait, self._announce, call)
            self._arm_ring_watchdog(call)

    def _on_cid(self, cid: CallerIdField) -> None:
        with self._lock:
            if self._ringing_rejected():
                return
            call = self._call
            if call is None:  # UK (BT SIN 227): caller ID comes before the first RING
                log.info("%s: incoming call (caller ID first)", self.name)
                call = self._call = _Call()
                self._post(LineStatus("ringing", self.status()))
            if call.ending or call.answering or call.answered:
                return
            call.cid_seen = True
            if cid.tag in ("NMBR", "DDN_NMBR") and (cid.tag == "NMBR" or not call.caller_id):
                call.caller_id = cid.caller_value
            elif cid.tag == "NAME":
                call.caller_name = cid.caller_value
            if call.announced:
                log.info("%s: caller ID %s=%s came after the call was announced",
                         self.name, cid.tag, cid.value)  # fmt: skip
            elif cid.tag == "NAME":  # the last field of a Bell 202 MDMF message
                self._announce(call)
            else:
                if call.cid_timer is not None:
                    call.cid_timer.cancel()
                call.cid_timer = self._timer(self._cid_settle, self._announce, call)
            self._arm_ring_watchdog(call)

    def _announce(self, call: _Call) -> None:
        with self._lock:
            if call is not self._call or call.announced or call.ending or call.ended:
                return
            call.announced = True
            if call.cid_timer is not None:
                call.cid_timer.cancel()
            self._post(Ringing(call.caller_id, call.caller_name))

    def _arm_ring_watchdog(
        self, call: _Call, action: Callable[[_Call], None] | None = None
    ) -> None:
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.ring_timer = self._timer(self._ring_timeout, action or self._rings_stopped, call)

    def _rings_stopped(self, call: _Call) -> None:
        """An analog line says nothing when the caller gives up: the RINGs just stop."""
        with self._lock:
            if call is not self._call or call.ending or call.answering or call.answered:
                return
            log.info("%s: the caller gave up while it rang", self.name)
        self._finish(call, "remote")

    # --- <DLE> events (the reader thread: never block here) ---

    def _on_dle(self, code: str) -> None:
        with self._lock:
            call = self._call
        if call is None or call.ended:
            log.debug("%s: <DLE>%r with no call", self.name, code)
            return
        if code in DTMF_KEYS:
            self._on_key(call, code)
        elif code == DTMF_START:
            call.dtmf_burst = ""
        elif code in DTMF_END:
            call.dtmf_burst = None
        elif code in EXTENSION_OFF_HOOK:
            call.extension = True
            log.info("%s: a handset on the line was picked up", self.name)
        elif code == "p" or (code == "h" and call.extension):
            call.extension = False  # the handset was put down; the call goes on
            log.info("%s: a handset on the line was put down", self.name)
        elif code in REMOTE_END_CODES or code == "h":
            # "h" is "line current break": with no handset picked up, the exchange let go.
            if call.off_hook and not call.ending:
                log.info("%s: remote hang-up (<DLE>%s)", self.name, code)
                self._in_background(self._end_call, call, "remote")
        elif code == "u":
            if call.stream is not None:
                call.stream.underruns += 1
        elif code in "sq":
            log.debug("%s: the modem reports %s", self.name, "silence" if code == "s" else "quiet")
        else:
            log.debug("%s: <DLE>%r", self.name, code)

    def _on_key(self, call: _Call, key: str) -> None:
        """One report per key press: inside tone shielding a key repeats while it sounds."""
        if call.dtmf_burst is not None:
            if call.dtmf_burst == key:
                return
            call.dtmf_burst = key
        if call.answered and not call.ending:
            self._post(DtmfReceived(key))
        else:
            log.debug("%s: DTMF %s outside a connected call", self.name, key)

    # --- answering and teardown ---

    def _answer(self, call: _Call) -> LineError | None:
        """Off-hook and AT+VTR (holding ``call.lock``); a LineError to raise, or None."""
        if call.ending or call.ended:
            return LineError(f"{self.name}: the call ended before it was answered")
        link, codec = self._link, self._codec
        if link is None or codec is None:
            return LineError(f"{self.name}: modem not open")
        try:
            call.off_hook = True
            self._at("AT+VLS=1", timeout=self._answer_timeout)
        except ATError as exc:
            return LineError(f"{self.name}: going off-hook failed: {exc}")
        # No silence detection, so a quiet caller is not reported gone: <sdi> 0 turns it off;
        # USR takes <sds> 128, Conexant 0 (callattendant's settings for each).
        if not self._optional_quiet("AT+VSD=128,0"):
            self._optional_quiet("AT+VSD=0,0")
        port = self._port_factory(
            self.name, self.fmt, device_rate=DEVICE_RATE, device_frame_samples=DEVICE_FRAME_SAMPLES
        )
        stream = _VoiceStream(port, codec, link, prime_frames=self._prime_frames,
                              on_error=lambda exc: self._in_background(
                                  self._end_call, call, "failed"))  # fmt: skip
        call.port, call.stream = port, stream
        link.arm(stream.on_voice)
        try:
            self._at("AT+VTR", timeout=self._answer_timeout)
        except ATCommandError as exc:
            link.disarm()
            return LineError(
                f"{self.name}: the modem has no full-duplex voice (AT+VTR answered "
                f"{exc.final}); a conference line needs it"
            )
        except ATError as exc:
            link.disarm()
            return LineError(f"{self.name}: starting voice failed: {exc}")
        with self._lock:
            if call.ending or call.ended:
                return None
            call.answered = True
            self._post(Connected(port))
            self._post(LineStatus("in-call", self.status()))
        return None

    def _optional_quiet(self, command: str) -> bool:
        try:
            self._at(command)
        except ATCommandError as exc:
            log.debug("%s: %s: %s", self.name, command, exc.final)
            return False
        return True

    def _end_call(self, call: _Call, reason: str, *, reject: bool = True) -> None:
        """End the stream (<DLE>^), go on-hook (ATH0) and report the one Disconnected.

        A call still ringing is rejected the only way an analog line allows, by picking it up
        and putting it down again; ``reject=False`` leaves it to ring.
        """
        with self._lock:
            if call.ended or call.ending:
                return
            call.ending = True
            self._cancel_timers(call)
        with call.lock:
            clean = True
            if call.stream is not None:
                call.stream.stop_sending()
                clean = self._close_stream()
            if reject and not call.off_hook and self._channel is not None:
                call.off_hook = self._try("AT+VLS=1") is None
            if call.off_hook:
                failure = self._try("ATH0")
                if failure is not None:
                    log.warning("%s: ATH0: %s", self.name, failure)
                    clean = False
        self._finish(call, reason)
        if not clean and not self._stopping.is_set() and self._lost is None:
            self._in_background(self._recover)

    def _try(self, command: str) -> ATError | None:
        try:
            self._at(command, timeout=10.0)
        except ATError as exc:
            return exc
        return None

    def _close_stream(self) -> bool:
        """Leave the voice duplex state; False when the modem had to be forced out of it."""
        link = self._link
        if link is None:
            return False
        if not link.streaming:
            link.disarm()
            return True
        try:
            for code in (END_DUPLEX, END_HALF_DUPLEX):
                link.write(code)
                if link.wait_closed(self._stream_end_timeout):
                    return True
                log.info("%s: no <DLE><ETX> after %r", self.name, code)
        except DEVICE_ERRORS as exc:
            log.warning("%s: ending the voice stream: %s", self.name, exc)
            return False
        log.warning("%s: the modem would not leave voice mode; dropping DTR", self.name)
        link.disarm()
        link.drop_dtr()
        return False

    def _recover(self) -> None:
        """After a teardown that went wrong: reset and set the modem up again."""
        try:
            self._configure()
        except (LineError, ATError, _StopRequested) as exc:
            log.error("%s: modem reset after a failed hang-up: %s", self.name, exc)

    def _finish(self, call: _Call, reason: str) -> None:
        """Release the call's port and report its one ``Disconnected``."""
        with self._lock:
            if call.ended:
                return
            call.ended = True
            self._cancel_timers(call)
            port, stream = call.port, call.stream
            call.port = call.stream = None
            if self._call is call:
                self._call = None
            if stream is not None:
                log.info("%s: call audio %s", self.name, stream.stats())
            log.info("%s: call ended (%s)", self.name, reason)
            self._post(Disconnected(reason))
            self._post(LineStatus(self._state_name(), self.status()))
        if port is not None:
            port.close()

    # --- helpers ---

    def _at(self, command: str, timeout: float = 5.0) -> ATResponse:
        channel = self._channel
        if channel is None:
            raise ATChannelClosed(f"{self.name}: modem not open")
        return channel.command(command, timeout)

    def _state_name(self) -> str:
        if self._call is not None and not self._call.ended:
            return self._call.state
        if self._channel is not None and not self._channel.alive:
            return "down"
        return self._phase

    def _timer(self, delay: float, action: Callable[[_Call], None], call: _Call) -> threading.Timer:
        timer = threading.Timer(delay, action, args=(call,))
        timer.name = f"{self.name}-timer"
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def _cancel_timers(call: _Call) -> None:
        for timer in (call.cid_timer, call.ring_timer):
            if timer is not None:
                timer.cancel()

    def _in_background(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, name=f"{self.name}-hangup", daemon=True).start()

    def _post(self, event: LineEvent) -> None:
        self._events.put(event)

    def _start_emitter(self) -> None:
        self._emitter = threading.Thread(
            target=self._emit_loop, name=f"{self.name}-events", daemon=True
        )
        self._emitter.start()

    def _stop_emitter(self) -> None:
        emitter, self._emitter = self._emitter, None
        self._events.put(None)
        if emitter is not None and emitter is not threading.current_thread():
            emitter.join(timeout=10.0)

    def _emit_loop(self) -> None:
        """Events reach the handler in order, on this thread, so it may call answer()/hangup()."""
        while (event := self._events.get()) is not None:
            try:
                self.emit(event)
            except Exception:
                log.exception("%s: event handler failed on %r", self.name, event)
