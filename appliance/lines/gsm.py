"""What every GSM modem driver shares: one AT port, one call at a time, voice on a second device.

``GsmDriver`` owns the call's life (first RING or +CLIP to its one ``Disconnected``), the
initialisation and status queries of TS 27.007, the event thread and the voice transport. Each
dialect (``simcom``, ``quectel``, ``huawei``, ``sim800``) subclasses it and says only what differs:
its set-up commands, its unsolicited codes, how voice is routed once a call is up, and how a key
pressed by the caller is reported.

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
# +CLCC <stat> (TS 27.007 7.18): 0 active, 4 incoming, 5 waiting; 6 "disconnect" is SIMCom's and
# SIM800's extension, 7 "released" the one chan_quectel maps Quectel's -1 to.
CLCC_ACTIVE = 0
CLCC_RINGING = (4, 5)
CLCC_RELEASED = (6, 7)


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


def parse_dtmf_key(key: str, line: str) -> str:
    """One DTMF key, upper-cased; ``ValueError`` quoting ``line`` otherwise."""
    key = key.strip().upper()
    if len(key) == 1 and key in DTMF_KEYS:
        return key
    raise ValueError(f"not a DTMF key: {line!r}")


@dataclass(eq=False)
class GsmCall:
    """One incoming call, from its first RING or +CLIP to its one Disconnected."""

    caller_id: str = ""
    caller_name: str = ""
    index: int | None = None  # the modem's call id, once a call list or report named it
    announced: bool = False  # Ringing emitted
    answering: bool = False
    answered: bool = False  # Connected emitted
    hanging_up: bool = False
    ended: bool = False
    port: DeviceAudioPort | None = None
    transport: VoiceTransport | None = None
    began: threading.Event = field(default_factory=threading.Event)  # the modem reports it up
    clip_timer: threading.Timer | None = None
    ring_timer: threading.Timer | None = None

    @property
    def state(self) -> str:
        return "in-call" if self.answered else "ringing"


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
            if call is None or call.ended or call.answering or call.hanging_up:
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
        """End (or reject) the current call; ``Disconnected("local")`` follows."""
        with self._lock:
            call = self._call
        if call is not None:
            self._end_locally(call, "local")

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
            if self._call is not None and not self._call.ended:
                detail["caller_id"] = self._call.caller_id
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
            self._remote_end(line, answered_too=True)
        elif self.DTMF_PREFIXES and line.startswith(self.DTMF_PREFIXES):
            self._on_dtmf(line)
        elif line.startswith("+CLCC:"):
            try:
                self._on_call_entry(parse_clcc(line))
            except ValueError as exc:
                log.warning("%s: %s", self.name, exc)
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
            if call.ended or call.answering or call.answered or call.hanging_up:
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
            if call.ended or call.answered:
                return
            self._caller_known(call, caller.number, caller.name)
            if not (call.answering or call.hanging_up):
                self._arm_ring_watchdog(call)

    def _on_call_entry(self, entry: CallEntry) -> None:
        """A call state report (+CLCC, Quectel's ccinfo): the one source all dialects share."""
        if not entry.incoming:
            log.debug("%s: outgoing call %d in state %d", self.name, entry.index, entry.stat)
            return
        with self._lock:
            call = self._call
            if call is not None and call.index not in (None, entry.index):
                log.info("%s: ignoring call %d (state %d)", self.name, entry.index, entry.stat)
                return
            if entry.stat in CLCC_RELEASED:
                if call is None:
                    return
                call.index = entry.index
            elif entry.stat in CLCC_RINGING:
                call = self._incoming_call()
                call.index = entry.index
                if not (call.ended or call.answered or call.answering or call.hanging_up):
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

    def _incoming_call(self) -> GsmCall:
        """The call in progress, or a new one (the caller holds the lock)."""
        call = self._call
        if call is None:
            log.info("%s: incoming call", self.name)
            call = self._call = GsmCall()
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

    def _remote_end(self, line: str, *, answered_too: bool) -> None:
        """The modem reports the call over; ``answered_too`` False ends only a ringing one."""
        with self._lock:
            call = self._call
            if call is None or call.ended or call.hanging_up:
                log.debug("%s: %s (no call to end)", self.name, line)
                return
            if call.answered and not answered_too:
                return  # a report about a second caller while we talk
        log.info("%s: remote hang-up (%s)", self.name, line)
        self._finish_call(call, "remote")

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
        """Reconcile the call with the modem's call list (chan_dongle does this on every report)."""
        entries = self._list_calls()
        if entries is None:
            return
        incoming = [e for e in entries if e.incoming]
        with self._lock:
            call = self._call
            if call is not None and call.index is not None:
                incoming = [e for e in incoming if e.index == call.index]
            busy = call is not None and (call.answering or call.hanging_up or call.ended)
        if incoming:
            self._on_call_entry(incoming[0])
        elif call is not None and not busy:
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
            if not call.ended:
                call.answered = True
                self._post(Connected(port))
                self._post(LineStatus("in-call", self.status()))

    def _on_audio_error(self, call: GsmCall, exc: BaseException) -> None:
        log.error("%s: call audio failed: %s", self.name, exc)
        threading.Thread(
            target=self._end_quietly, args=(call, "failed"), name=f"{self.name}-abort", daemon=True
        ).start()

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
        for timer in (call.clip_timer, call.ring_timer):
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
