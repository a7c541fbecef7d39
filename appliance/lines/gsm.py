"""What every GSM modem driver shares: one AT port, one call at a time, voice on a second device.

``GsmDriver`` owns the call's life (first RING or +CLIP, or ``ATD``, to its one ``Disconnected``),
the initialisation and status queries of TS 27.007, the event thread and the voice transport. Each
dialect (``simcom``, ``quectel``, ``huawei``, ``sim800``) subclasses it and says only what differs:
its set-up commands, its unsolicited codes, how voice is routed once a call is up, and how a key
pressed by the caller is reported.

An outbound call (TS 27.007 6.3, ``ATD<number>;``) is followed through the call state reports
every dialect shares (+CLCC ``<stat>`` 2 dialing, 3 alerting, 0 active, 6/7 released) or its
own (``^ORIG``/``^CONF``/``^CONN``/``^CEND``, ``VOICE CALL: BEGIN``), and ends with a V.250
result code: ``BUSY``, ``NO ANSWER``, ``NO CARRIER``, ``NO DIALTONE``. A call that is reported
released before its result code waits ``result_wait`` seconds for it, then counts as failed.

Reports are tied to the call they name: a call list (``AT+CLCC``) read after a report can be
newer than the reports still queued behind it (it may list a call whose RING, and an older
call's ``^CEND`` for the same reused id, are still waiting), so a call list never starts a
call, and a report naming another call id never ends this one.

Voice travels either on a serial tty (``audio = "serial:/dev/ttyUSB4"``: raw 8 kHz PCM, see
``serial_audio``) or through ALSA (``audio = "alsa:plughw:CARD=Android,DEV=0"``: a USB-audio-class
modem or a sound card, see ``alsa_audio``).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort
from appliance.lines.alsa_audio import AlsaAudioTransport
from appliance.lines.at import (
    DEFAULT_URC_PREFIXES,
    DEVICE_ERRORS,
    ATChannel,
    ATChannelClosed,
    ATCommandError,
    ATError,
    ATResponse,
    CallEntry,
    csq_to_dbm,
    open_serial,
    parse_clcc,
    parse_clip,
    parse_cops,
    parse_cpin,
    parse_creg,
    parse_csq,
)
from appliance.lines.base import (
    Alerting,
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
from appliance.lines.serial_audio import SerialAudioTransport

log = logging.getLogger(__name__)

DTMF_KEYS = "0123456789*#ABCD"
# +CLCC <stat> (TS 27.007 7.18): 0 active, 2 dialing, 3 alerting, 4 incoming, 5 waiting; 6
# "disconnect" is SIMCom's and SIM800's extension, 7 "released" the one chan_quectel maps
# Quectel's -1 to.
CLCC_ACTIVE = 0
CLCC_DIALING = 2
CLCC_ALERTING = 3
CLCC_RINGING = (4, 5)
CLCC_RELEASED = (6, 7)
# A call ended after an audio failure sends at most a hang-up (10 s timeout) before it reports.
ABORT_JOIN_SECONDS = 12.0
# V.250 6.3.1 result codes that end a dial attempt, and what they mean for the caller.
DIAL_RESULTS = {
    "BUSY": "busy",
    "NO ANSWER": "no-answer",
    "NO CARRIER": "failed",
    "NO DIALTONE": "failed",
    "NO DIAL TONE": "failed",
}
DIAL_CHARACTERS = frozenset("0123456789*#+")
REJECT_REASONS = ("rejected", "busy")


class VoiceTransport(Protocol):
    """A thread moving frames between a voice device and a ``DeviceAudioPort``."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class AudioSpec:
    """A line's ``audio`` setting: ``serial:<tty>`` or ``alsa:<ALSA device name>``."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_audio_spec(audio: str, schemes: tuple[str, ...] = ("serial", "alsa")) -> AudioSpec:
    """Split ``audio`` into scheme and target; ``LineError`` names the accepted forms."""
    scheme, sep, target = audio.partition(":")
    if sep and scheme in schemes and target:
        return AudioSpec(scheme, target)
    examples = {"serial": '"serial:/dev/ttyUSB4"', "alsa": '"alsa:plughw:CARD=Device,DEV=0"'}
    forms = " or ".join(examples[s] for s in schemes)
    raise LineError(f"audio = {audio!r}: must be {forms}")


def dial_string(number: str) -> str:
    """``number`` as an ATD dial string: spaces, dashes, dots and brackets dropped.

    Raises ``ValueError`` unless what is left is digits, ``*`` and ``#``, with at most a
    leading ``+``.
    """
    digits = "".join(c for c in number if c not in " -.()/")
    if (
        not digits
        or not set(digits) <= DIAL_CHARACTERS
        or "+" in digits[1:]
        or not digits.lstrip("+")
    ):
        raise ValueError(f"not a dialable number: {number!r}")
    return digits


def dial_outcome(final: str) -> str:
    """The ``Disconnected`` reason for the result code that ended a dial attempt."""
    return DIAL_RESULTS.get(final.strip().upper(), "failed")


def parse_dtmf_key(key: str, line: str) -> str:
    """One DTMF key, upper-cased; ``ValueError`` quoting ``line`` otherwise."""
    key = key.strip().upper()
    if len(key) == 1 and key in DTMF_KEYS:
        return key
    raise ValueError(f"not a DTMF key: {line!r}")


@dataclass(eq=False)
class GsmCall:
    """One call: incoming from its first RING or +CLIP, outgoing from ATD, to its Disconnected."""

    caller_id: str = ""  # an outgoing call's: the number dialled
    caller_name: str = ""
    outgoing: bool = False
    index: int | None = None  # the modem's call id, once a call list or report named it
    announced: bool = False  # Ringing emitted (incoming) or Alerting emitted (outgoing)
    answering: bool = False  # ATA sent, or the far end of an outgoing call answered
    answered: bool = False  # Connected emitted
    hanging_up: bool = False
    released: bool = False  # outgoing: reported gone, its result code is awaited
    ended: bool = False
    port: DeviceAudioPort | None = None
    transport: VoiceTransport | None = None
    began: threading.Event = field(default_factory=threading.Event)  # the modem reports it up
    clip_timer: threading.Timer | None = None
    ring_timer: threading.Timer | None = None
    result_timer: threading.Timer | None = None

    @property
    def state(self) -> str:
        if self.answered:
            return "in-call"
        return "dialing" if self.outgoing else "ringing"

    @property
    def ringing(self) -> bool:
        """An incoming call nobody has answered, rejected or hung up yet."""
        return not (
            self.outgoing or self.ended or self.answering or self.answered or self.hanging_up
        )

    @property
    def progressing(self) -> bool:
        """An outgoing call the far end has not answered yet, still in progress."""
        return self.outgoing and not (
            self.ended or self.answering or self.answered or self.hanging_up
        )


class _StopRequested(Exception):
    """stop() was called while run() was still starting."""


class GsmDriver(LineDriver):
    """A GSM modem: AT commands on ``control``, voice on ``audio`` (serial PCM or ALSA)."""

    #: Shown in messages: "the SIM800", "the EC25"...
    MODEM: ClassVar[str] = "modem"
    #: (command, required) sent after ``ATE0``; optional ones are only logged when refused.
    INIT_COMMANDS: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("ATE0", True),
        ("AT+CMEE=2", False),
        ("AT+CLIP=1", True),
    )
    URC_PREFIXES: ClassVar[tuple[str, ...]] = DEFAULT_URC_PREFIXES
    AUDIO_SCHEMES: ClassVar[tuple[str, ...]] = ("serial", "alsa")
    DEVICE_RATE: ClassVar[int] = 8000
    DEVICE_FRAME_SAMPLES: ClassVar[int] = 160  # 20 ms, 320 bytes on a serial voice port
    HANGUP_COMMANDS: ClassVar[tuple[str, ...]] = ("AT+CHUP", "ATH")
    DTMF_PREFIXES: ClassVar[tuple[str, ...]] = ()
    DTMF_COMMAND: ClassVar[str] = "AT+VTS={key}"
    #: TS 27.007 6.3: the ";" makes it a voice call and returns to command mode at once.
    DIAL_COMMAND: ClassVar[str] = "ATD{number};"

    def __init__(
        self,
        name: str,
        on_event: EventHandler,
        *,
        control: str,
        audio: str,
        fmt: AudioFormat,
        number: str = "",
        baudrate: int = 115200,
        port_factory: Callable[..., DeviceAudioPort] = DeviceAudioPort,
        clip_wait: float = 1.0,
        ring_timeout: float = 10.0,
        answer_timeout: float = 20.0,
        dial_timeout: float = 30.0,
        result_wait: float = 2.0,
        sync_attempts: int = 10,
    ) -> None:
        super().__init__(name, on_event)
        self.control = control
        self.audio = parse_audio_spec(audio, self.AUDIO_SCHEMES)
        self.fmt = fmt
        self.number = number
        self._baudrate = baudrate
        self._port_factory = port_factory
        self._clip_wait = clip_wait
        self._ring_timeout = ring_timeout
        self._answer_timeout = answer_timeout
        self._dial_timeout = dial_timeout
        self._result_wait = result_wait
        self._sync_attempts = sync_attempts
        self._lock = threading.RLock()
        self._channel: ATChannel | None = None
        self._call: GsmCall | None = None
        self._detail: dict[str, Any] = {"number": number}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lost: BaseException | None = None
        self._phase = "down"  # starting | idle | down, when no call is in progress
        self._events: queue.Queue[LineEvent | None] = queue.Queue()
        self._emitter: threading.Thread | None = None
        self._aborts: list[threading.Thread] = []  # calls being ended after an audio failure

    @property
    def audio_path(self) -> str:
        """The voice device: a tty path or an ALSA device name."""
        return self.audio.target

    # --- LineDriver ---

    def run(self) -> None:
        """Open and initialise the modem, then serve calls until stop() or the device fails."""
        self._wake.clear()
        self._lost = None
        self._phase = "starting"
        self._start_emitter()
        self._post(LineStatus("starting", self.status()))
        try:
            self._open()
            self._initialise()
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
        """Hang up a call in progress, then let run() close everything and return."""
        self._stopping.set()
        try:
            self.hangup()
        except LineError as exc:
            log.warning("%s: %s", self.name, exc)
        self._wake.set()

    def answer(self) -> None:
        """Answer the ringing call; ``Connected`` follows once the voice device carries it."""
        with self._lock:
            call = self._call
            if call is None or not call.ringing:
                raise LineError(f"{self.name}: no call is ringing")
            call.answering = call.announced = True
            self._cancel_timers(call)
        try:
            self._at("ATA", timeout=self._answer_timeout)
        except ATCommandError as exc:
            if exc.result.is_call_result:  # NO CARRIER: the caller hung up first (V.25ter ATA)
                self._finish_call(call, "remote")
            else:
                self._end_quietly(call, "failed")
            raise LineError(f"{self.name}: answer failed: {exc}") from exc
        except ATError as exc:
            self._end_quietly(call, "failed")
            raise LineError(f"{self.name}: answer failed: {exc}") from exc
        try:
            self._start_audio(call)
        except (ATError, *DEVICE_ERRORS) as exc:
            self._end_quietly(call, "failed")
            raise LineError(f"{self.name}: cannot start call audio: {exc}") from exc

    def hangup(self) -> None:
        """End the current call, ringing, dialling or up; ``Disconnected("local")`` follows."""
        with self._lock:
            call = self._call
        if call is not None:
            self._end_locally(call, "local")

    def reject(self, reason: str = "rejected") -> None:
        """Release the ringing call without answering it (``HANGUP_COMMANDS``, AT+CHUP first).

        GSM offers one way to refuse a call: the network clears it as "user busy" (TS 24.008
        cause 17, User Determined User Busy in TS 22.030), so whatever ``reason`` says the
        caller hears a busy tone, or reaches voicemail when the line forwards calls on busy.
        ``Disconnected("local")`` follows.
        """
        if reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {REJECT_REASONS}, not {reason!r}")
        with self._lock:
            call = self._call
            if call is None or not call.ringing:
                raise LineError(f"{self.name}: no call is ringing")
        log.info("%s: rejecting the call from %s", self.name, call.caller_id or "a withheld number")
        self._end_locally(call, "local")

    @property
    def can_dial(self) -> bool:
        return True

    def dial(self, number: str) -> None:
        """Place a voice call with ``ATD<number>;``; returns once the modem took the request.

        From then on every outcome arrives as an event: ``Alerting`` when the far end rings,
        ``Connected`` when it answers (voice is routed as for an answered incoming call), or
        ``Disconnected`` "busy", "no-answer" or "failed" (also when the modem refuses the
        number at once with ERROR or +CME ERROR). ``LineError`` only when no call can be
        attempted: the line is not up, a call is in progress, or ``number`` is not dialable.
        """
        try:
            digits = dial_string(number)
        except ValueError as exc:
            raise LineError(f"{self.name}: {exc}") from None
        with self._lock:
            if self._call is not None and not self._call.ended:
                raise LineError(f"{self.name}: a call is in progress ({self._call.state})")
            if self._phase != "idle" or self._channel is None or not self._channel.alive:
                raise LineError(f"{self.name}: the modem is not ready ({self._state_name()})")
            call = self._call = GsmCall(caller_id=digits, outgoing=True)
            log.info("%s: dialling %s", self.name, digits)
            self._post(LineStatus("dialing", self.status()))
        try:
            self._at(self.DIAL_COMMAND.format(number=digits), timeout=self._dial_timeout)
        except ATCommandError as exc:
            # BUSY, NO ANSWER or NO CARRIER as ATD's own final (firmware that holds ATD
            # until the call is set up), or ERROR / +CME ERROR: no network, barred, no SIM.
            log.info("%s: %s", self.name, exc)
            self._finish_call(call, dial_outcome(exc.result.code))
        except ATChannelClosed as exc:
            log.warning("%s: dialling %s: %s", self.name, digits, exc)
            self._finish_call(call, "failed")
        except ATError as exc:
            log.warning("%s: dialling %s: %s", self.name, digits, exc)
            self._end_quietly(call, "failed")

    # --- more than the base contract ---

    def send_dtmf(self, digits: str) -> None:
        """Play keys to the remote party, one command per key."""
        bad = sorted(set(digits.upper()) - set(DTMF_KEYS))
        if bad:
            raise ValueError(f"not DTMF keys: {''.join(bad)!r}")
        with self._lock:
            call = self._call
            if call is None or not call.answered or call.ended:
                raise LineError(f"{self.name}: no call in progress")
            index = call.index or 1
        for key in digits.upper():
            try:
                self._at(self.DTMF_COMMAND.format(key=key, index=index), timeout=10.0)
            except ATError as exc:
                raise LineError(f"{self.name}: sending DTMF {key!r} failed: {exc}") from exc

    def status(self) -> dict[str, Any]:
        """What is known about the modem and its call, for the web page."""
        with self._lock:
            detail = dict(self._detail)
            detail["state"] = self._state_name()
            call = self._call
            if call is not None and not call.ended:
                detail["dialed" if call.outgoing else "caller_id"] = call.caller_id
            return detail

    def refresh_status(self) -> dict[str, Any]:
        """Re-read SIM, signal, operator and registration; emits and returns the new status."""
        try:
            fresh = self._read_status()
        except ATError as exc:
            raise LineError(f"{self.name}: status query failed: {exc}") from exc
        with self._lock:
            self._detail.update(fresh)
            status = self.status()
        self._post(LineStatus(status["state"], status))
        return status

    # --- dialect hooks ---

    def _setup(self) -> None:
        """After INIT_COMMANDS: the dialect's own checks (voice support...); may raise LineError."""

    def _on_dialect_urc(self, line: str) -> bool:
        """Handle a dialect's own unsolicited code; False leaves it to the common handling."""
        return False

    def _parse_dtmf(self, line: str) -> str:
        """The key of a DTMF report (a line starting with one of DTMF_PREFIXES)."""
        prefix = next(p for p in self.DTMF_PREFIXES if line.startswith(p))
        return parse_dtmf_key(line[len(prefix) :].split(",")[0], line)

    def _make_transport(
        self, port: DeviceAudioPort, on_error: Callable[[BaseException], None]
    ) -> VoiceTransport:
        if self.audio.scheme == "alsa":
            return AlsaAudioTransport(
                self.audio.target,
                port,
                rate=self.DEVICE_RATE,
                period=self.DEVICE_FRAME_SAMPLES,
                on_error=on_error,
            )
        return SerialAudioTransport(
            self.audio.target, port, self.DEVICE_FRAME_SAMPLES * 2, on_error=on_error
        )

    def _voice_on(self, call: GsmCall) -> None:
        """Route the call's voice to the transport, once it runs (SIMCom: AT+CPCMREG=1)."""

    def _voice_off(self) -> None:
        """Undo ``_voice_on`` as the call ends."""

    # --- start-up and shut-down ---

    def _open(self) -> None:
        try:
            port = open_serial(self.control, self._baudrate)
        except (*DEVICE_ERRORS, ValueError) as exc:
            raise LineError(f"{self.name}: cannot open {self.control}: {exc}") from exc
        self._channel = ATChannel(
            port,
            self._on_urc,
            self.URC_PREFIXES,
            on_close=self._on_channel_lost,
            name=self.name,
        )

    def _initialise(self) -> None:
        try:
            self._sync()
            for command, required in self.INIT_COMMANDS:
                self._check_stopping()
                try:
                    self._at(command)
                except ATCommandError as exc:
                    if required:
                        raise LineError(f"{self.name}: {exc}") from exc
                    log.info("%s: %s not supported: %s", self.name, command, exc.final)
            self._check_stopping()
            self._setup()
            self._check_stopping()
            identity = self._identify()
            fresh = self._read_status()
        except ATError as exc:
            self._check_stopping()
            raise LineError(f"{self.name}: initialisation failed: {exc}") from exc
        with self._lock:
            self._detail.update(identity)
            self._detail.update(fresh)

    def _sync(self) -> None:
        """Send AT until the modem answers OK; a booting modem prints banners and URCs first."""
        for _ in range(self._sync_attempts):
            self._check_stopping()
            try:
                self._at("AT", timeout=1.0)
                return
            except ATChannelClosed:
                raise
            except ATError as exc:
                log.debug("%s: sync: %s", self.name, exc)
        raise LineError(
            f"{self.name}: no OK to AT after {self._sync_attempts} attempts; is {self.control} "
            f"the {self.MODEM}'s AT port, and is it powered?"
        )

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise _StopRequested

    def _shutdown(self) -> None:
        # A call whose audio failed is being ended on its own thread: its Disconnected must
        # reach the emitter before the emitter stops, or the call would never end above.
        with self._lock:
            aborts, self._aborts = self._aborts, []
        for thread in aborts:
            thread.join(timeout=ABORT_JOIN_SECONDS)
        with self._lock:
            call = self._call
        if call is not None:
            if self._lost is not None:
                self._finish_call(call, "device-lost")
            else:
                self._end_quietly(call, "local")
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def _on_channel_lost(self, exc: BaseException) -> None:
        self._lost = exc
        self._wake.set()

    # --- status queries ---

    def _identify(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        try:
            for line in self._at("ATI").lines:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("manufacturer", "model", "revision", "imei"):
                    found[key.strip().lower()] = value.strip()
        except ATCommandError as exc:
            log.info("%s: ATI: %s", self.name, exc.final)
        try:
            response = self._at("AT+CGMM")
            model = response.value("+CGMM:") or next(iter(response.lines), "")
            if model:
                found["model"] = model
        except ATCommandError as exc:
            log.info("%s: AT+CGMM: %s", self.name, exc.final)
        return found

    def _read_status(self) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        try:
            detail["sim"] = self._query("AT+CPIN?", "+CPIN:", parse_cpin) or ""
        except ATCommandError as exc:  # +CME ERROR: SIM not inserted / 10
            detail["sim"] = exc.result.detail or exc.final
        csq = self._query("AT+CSQ", "+CSQ:", parse_csq, optional=True)
        if csq is not None:
            detail["csq"] = csq[0]
            detail["signal_dbm"] = csq_to_dbm(csq[0])
        operator = self._query("AT+COPS?", "+COPS:", parse_cops, optional=True)
        if operator is not None:
            detail["operator"] = operator
        registration = self._query("AT+CREG?", "+CREG:", parse_creg, optional=True)
        if registration is not None:
            detail["registration"] = registration
        return detail

    def _query(
        self, command: str, prefix: str, parse: Callable[[str], Any], *, optional: bool = False
    ) -> Any:
        """Send a read command and parse its ``prefix`` line; None when absent or malformed."""
        try:
            response = self._at(command)
        except ATCommandError as exc:
            if not optional:
                raise
            log.info("%s: %s: %s", self.name, command, exc.final)
            return None
        line = next((x for x in response.lines if x.startswith(prefix)), None)
        if line is None:
            log.warning("%s: %s answered without %s", self.name, command, prefix)
            return None
        try:
            return parse(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return None

    # --- URCs (on the channel's dispatcher thread) ---

    def _on_urc(self, line: str) -> None:
        if self._on_dialect_urc(line):
            return
        if line == "RING" or line.startswith("+CRING:"):
            self._on_ring(line)
        elif line.startswith("+CLIP:"):
            self._on_clip(line)
        elif line == "NO CARRIER":
            if not self._dial_result(line):
                self._remote_end(line, answered_too=True)
        elif line in DIAL_RESULTS:
            if not self._dial_result(line):
                log.debug("%s: %s with no call dialling", self.name, line)
        elif self.DTMF_PREFIXES and line.startswith(self.DTMF_PREFIXES):
            self._on_dtmf(line)
        elif line.startswith("+CLCC:"):
            try:
                entry = parse_clcc(line)
            except ValueError as exc:
                log.warning("%s: %s", self.name, exc)
            else:
                self._on_call_entry(entry)
        elif line.startswith("+CPIN:"):
            with self._lock:
                self._detail["sim"] = parse_cpin(line)
        else:
            log.debug("%s: unhandled URC %r", self.name, line)

    def _on_ring(self, line: str) -> None:
        if line.startswith("+CRING:") and "VOICE" not in line.upper():
            log.info("%s: ignoring a non-voice call (%s)", self.name, line)
            return
        with self._lock:
            call = self._incoming_call()
            if call is None or not call.ringing:
                return
            if call.clip_timer is None and not call.announced:
                # +CLIP normally follows RING at once; announce without it after a moment.
                call.clip_timer = self._timer(self._clip_wait, self._announce, call)
            self._arm_ring_watchdog(call)

    def _on_clip(self, line: str) -> None:
        try:
            caller = parse_clip(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return
        with self._lock:
            call = self._incoming_call()
            if call is None or call.ended or call.answered:
                return
            self._caller_known(call, caller.number, caller.name)
            if not (call.answering or call.hanging_up):
                self._arm_ring_watchdog(call)

    def _on_call_entry(self, entry: CallEntry, *, listed: bool = False) -> None:
        """A call state report (+CLCC, Quectel's ccinfo): the one source all dialects share.

        ``listed`` marks an entry of a call list read on demand: it updates the call it names
        but never starts one (see the module docstring).
        """
        if not entry.incoming:
            self._on_outgoing_entry(entry, listed=listed)
            return
        with self._lock:
            call = self._call
            if call is not None and (call.outgoing or call.index not in (None, entry.index)):
                log.info("%s: ignoring call %d (state %d)", self.name, entry.index, entry.stat)
                return
            if entry.stat in CLCC_RELEASED:
                if call is None:
                    return
                call.index = entry.index
            elif entry.stat in CLCC_RINGING:
                if call is None and listed:
                    return
                call = self._incoming_call()
                if call is None:
                    return
                call.index = entry.index
                if call.ringing:
                    # The number is kept; +CLIP, which may carry a name too, still announces.
                    call.caller_id = call.caller_id or entry.number
                    if call.clip_timer is None and not call.announced:
                        call.clip_timer = self._timer(self._clip_wait, self._announce, call)
                    self._arm_ring_watchdog(call)
                return
            else:
                if call is not None and entry.stat == CLCC_ACTIVE:
                    call.index = entry.index
                    call.began.set()
                return
        self._remote_end(f"call {entry.index} released", answered_too=True)

    def _on_outgoing_entry(self, entry: CallEntry, *, listed: bool) -> None:
        """Progress of the call we dialled: 2 dialing, 3 alerting, 0 active, 6/7 released."""
        with self._lock:
            call = self._call
            if call is None or not call.outgoing or call.index not in (None, entry.index):
                log.debug("%s: outgoing call %d in state %d", self.name, entry.index, entry.stat)
                return
            call.index = entry.index
        if entry.stat == CLCC_ALERTING:
            self._far_end_alerting(call)
        elif entry.stat == CLCC_ACTIVE:
            self._far_end_answered(call)
        elif entry.stat in CLCC_RELEASED and not listed:
            self._remote_end(f"call {entry.index} released", answered_too=True)

    def _incoming_call(self) -> GsmCall | None:
        """The incoming call in progress, or a new one; None while we dial (the caller holds
        the lock): a second call waiting meanwhile is left to the network."""
        call = self._call
        if call is None:
            log.info("%s: incoming call", self.name)
            call = self._call = GsmCall()
        elif call.outgoing:
            log.info("%s: a call waits while we dial; not taken", self.name)
            return None
        return call

    def _caller_known(self, call: GsmCall, number: str, name: str) -> None:
        """The caller id is in: announce the call now (the caller holds the lock)."""
        if call.announced:
            call.caller_id = call.caller_id or number
            return
        call.caller_id = number or call.caller_id
        call.caller_name = name or call.caller_name
        if call.clip_timer is not None:
            call.clip_timer.cancel()
        call.announced = True
        self._post(Ringing(call.caller_id, call.caller_name))

    def _announce(self, call: GsmCall) -> None:
        with self._lock:
            if call is self._call and not (call.ended or call.announced):
                call.announced = True
                self._post(Ringing(call.caller_id, call.caller_name))

    def _remote_end(self, line: str, *, answered_too: bool, reason: str | None = None) -> None:
        """The modem reports the call over; ``answered_too`` False ends only a ringing one.

        An outgoing call that never connected ends with ``reason`` when the report carries
        one (Huawei's cc cause); otherwise its result code (BUSY...) is awaited.
        """
        with self._lock:
            call = self._call
            if call is None or call.ended or call.hanging_up:
                log.debug("%s: %s (no call to end)", self.name, line)
                return
            if not answered_too and (call.outgoing or call.answered):
                return  # a report about a second caller while we talk or dial
            dialling = call.outgoing and not (call.answering or call.answered)
            if dialling and reason is None:
                self._await_result(call, line)
                return
            if not dialling:
                reason = "remote"
        log.info("%s: %s (%s)", self.name, "remote hang-up" if reason == "remote" else reason, line)
        self._finish_call(call, reason or "remote")

    # --- outbound call progress ---

    def _dial_result(self, line: str) -> bool:
        """A V.250 result code ends the call we dial; False when no dialled call is pending."""
        with self._lock:
            call = self._call
            if call is None or not call.outgoing or call.answered or call.ended:
                return False
            if call.hanging_up:
                return True  # our own hang-up's echo of the end
            # NO CARRIER once the far end answered: it hung up before voice was up.
            reason = "remote" if call.answering and line == "NO CARRIER" else dial_outcome(line)
        log.info("%s: dialling %s: %s", self.name, call.caller_id, line)
        self._finish_call(call, reason)
        return True

    def _await_result(self, call: GsmCall, line: str) -> None:
        """The dialled call is gone before it connected: wait a moment for its result code
        (the lock is held)."""
        if call.released:
            return
        call.released = True
        log.debug("%s: %s; awaiting the result code", self.name, line)
        call.result_timer = self._timer(self._result_wait, self._no_result, call)

    def _no_result(self, call: GsmCall) -> None:
        log.info("%s: the dialled call ended with no result code", self.name)
        self._finish_call(call, "failed")

    def _far_end_alerting(self, call: GsmCall) -> None:
        """The far end rings: ``Alerting``, once."""
        with self._lock:
            if call is not self._call or not call.progressing or call.announced:
                return
            call.announced = True
            self._post(Alerting())

    def _far_end_answered(self, call: GsmCall) -> None:
        """The far end answered: voice is routed on a thread of its own (it sends commands,
        and may wait for a report this dispatcher thread has yet to deliver)."""
        with self._lock:
            call.began.set()
            if call is not self._call or not call.progressing:
                return
            call.answering = True
            self._cancel_timers(call)
        log.info("%s: %s answered", self.name, call.caller_id)
        threading.Thread(
            target=self._connect_outgoing, args=(call,), name=f"{self.name}-connect", daemon=True
        ).start()

    def _connect_outgoing(self, call: GsmCall) -> None:
        try:
            self._start_audio(call)
        except (ATError, *DEVICE_ERRORS) as exc:
            log.error("%s: cannot start call audio: %s", self.name, exc)
            self._end_quietly(call, "failed")

    def _on_dtmf(self, line: str) -> None:
        try:
            key = self._parse_dtmf(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return
        with self._lock:
            call = self._call
            if call is not None and call.answered and not call.ended:
                self._post(DtmfReceived(key))
            else:
                log.debug("%s: DTMF %s outside a call", self.name, key)

    def _arm_ring_watchdog(self, call: GsmCall) -> None:
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.ring_timer = self._timer(self._ring_timeout, self._check_still_ringing, call)

    def _check_still_ringing(self, call: GsmCall) -> None:
        """RINGs stopped with no report of the call's end: ask the modem (AT+CLCC)."""
        with self._lock:
            if call is not self._call or call.ended or call.answering or call.answered:
                return
        entries = self._list_calls()
        if entries is not None and not any(e.incoming and e.stat in CLCC_RINGING for e in entries):
            log.info("%s: the caller went away while ringing", self.name)
            self._finish_call(call, "remote", only_if_ringing=True)
            return
        with self._lock:
            if call is self._call and not (call.ended or call.answering or call.answered):
                self._arm_ring_watchdog(call)

    def _list_calls(self) -> list[CallEntry] | None:
        """The modem's call list (AT+CLCC), or None when it cannot be read."""
        try:
            lines = self._at("AT+CLCC").lines
        except ATError as exc:
            log.debug("%s: AT+CLCC: %s", self.name, exc)
            return None
        entries = []
        for line in lines:
            try:
                entries.append(parse_clcc(line))
            except ValueError as exc:
                log.debug("%s: %s", self.name, exc)
        return entries

    def _resync(self, reason: str) -> None:
        """Reconcile the call with the modem's call list (chan_dongle does this on every report).

        The list updates the call in progress only: it never starts a call (a RING still
        queued announces it), and never ends an outgoing one (its end report says why).
        """
        with self._lock:
            if self._call is None:
                return
        entries = self._list_calls()
        if entries is None:
            return
        with self._lock:
            call = self._call
            if call is None:
                return
            mine = [e for e in entries if e.incoming != call.outgoing]
            if call.index is not None:
                mine = [e for e in mine if e.index == call.index]
            busy = call.answering or call.hanging_up or call.ended or call.outgoing
        if mine:
            self._on_call_entry(mine[0], listed=True)
        elif not busy:
            log.info("%s: the modem lists no call after %s", self.name, reason)
            self._finish_call(call, "remote")

    # --- call audio and teardown ---

    def _start_audio(self, call: GsmCall) -> None:
        port = self._port_factory(
            self.name,
            self.fmt,
            device_rate=self.DEVICE_RATE,
            device_frame_samples=self.DEVICE_FRAME_SAMPLES,
        )
        transport = self._make_transport(port, functools.partial(self._on_audio_error, call))
        with self._lock:
            if call.ended:
                port.close()
                return
            # Open the voice device before voice is routed to it: the start drops stale audio.
            try:
                transport.start()
            except BaseException:
                port.close()
                raise
            call.port, call.transport = port, transport
        self._voice_on(call)
        with self._lock:
            if not (call.ended or call.hanging_up):
                call.answered = True
                self._post(Connected(port))
                self._post(LineStatus("in-call", self.status()))

    def _on_audio_error(self, call: GsmCall, exc: BaseException) -> None:
        log.error("%s: call audio failed: %s", self.name, exc)
        thread = threading.Thread(
            target=self._end_quietly, args=(call, "failed"), name=f"{self.name}-abort", daemon=True
        )
        with self._lock:  # started and listed at once, so _shutdown never joins it unstarted
            thread.start()
            self._aborts = [*(t for t in self._aborts if t.is_alive()), thread]

    def _end_locally(self, call: GsmCall, reason: str) -> None:
        """Hang up with the first of HANGUP_COMMANDS the modem accepts, then finish the call."""
        with self._lock:
            if call.ended or call.hanging_up:
                return
            call.hanging_up = True
            self._cancel_timers(call)
        failure: ATError | None = None
        for command in self.HANGUP_COMMANDS:
            try:
                self._at(command, timeout=10.0)
                failure = None
                break
            except ATCommandError as exc:
                failure = exc
            except ATError as exc:
                failure = exc
                break
        self._finish_call(call, reason)
        if failure is not None:
            raise LineError(f"{self.name}: hang-up not confirmed: {failure}") from failure

    def _end_quietly(self, call: GsmCall, reason: str) -> None:
        try:
            self._end_locally(call, reason)
        except LineError as exc:
            log.warning("%s", exc)

    def _finish_call(self, call: GsmCall, reason: str, *, only_if_ringing: bool = False) -> None:
        """Release the call's audio and report its one ``Disconnected``."""
        with self._lock:
            if call.ended:
                return
            if only_if_ringing and (call.answering or call.answered or call.hanging_up):
                return
            call.ended = True
            self._cancel_timers(call)
            port, transport = call.port, call.transport
            call.port = call.transport = None
        if transport is not None:
            try:
                self._voice_off()
            except ATError as exc:
                log.debug("%s: switching voice off: %s", self.name, exc)
            transport.stop()
        if port is not None:
            port.close()
        with self._lock:
            if self._call is call:
                self._call = None
            log.info("%s: call ended (%s)", self.name, reason)
            self._post(Disconnected(reason))
            self._post(LineStatus(self._state_name(), self.status()))

    # --- helpers ---

    def _at(self, command: str, timeout: float = 5.0, expect: str | None = None) -> ATResponse:
        channel = self._channel
        if channel is None:
            raise ATChannelClosed(f"{self.name}: modem not open")
        return channel.command(command, timeout, expect)

    def _state_name(self) -> str:
        if self._call is not None and not self._call.ended:
            return self._call.state
        if self._channel is not None and not self._channel.alive:
            return "down"
        return self._phase

    def _timer(
        self, delay: float, action: Callable[[GsmCall], None], call: GsmCall
    ) -> threading.Timer:
        timer = threading.Timer(delay, action, args=(call,))
        timer.name = f"{self.name}-timer"
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def _cancel_timers(call: GsmCall) -> None:
        for timer in (call.clip_timer, call.ring_timer, call.result_timer):
            if timer is not None:
                timer.cancel()

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
