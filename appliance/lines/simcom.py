"""SIMCom SIM7500/SIM7600 line driver: AT control port plus the serial PCM voice port.

An incoming call on a SIM7600 (SIM7500_SIM7600 Series AT Command Manual; transcripts from
ModemManager's simtech plugin and chan_quectel)::

    RING                                  (+CRING: VOICE after AT+CRC=1)
    +CLIP: "+15551230000",145,,,,0        (after AT+CLIP=1; may also come first)
    ATA  ->  VOICE CALL: BEGIN / OK
    AT+CPCMREG=1                          (PCM frames start on the audio port)
    +RXDTMF: 5                            (a key pressed by the caller)
    VOICE CALL: END: 000041 / NO CARRIER  (the caller hung up)
    MISSED_CALL: 11:01AM 07712345678      (the caller gave up while it rang)
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.audio.frames import AudioFormat
from appliance.audio.port import DeviceAudioPort
from appliance.lines.at import (
    DEVICE_ERRORS,
    ATChannel,
    ATChannelClosed,
    ATCommandError,
    ATError,
    ATResponse,
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

DEVICE_RATE = 8000  # AT+CPCMFRM=0: 8 kHz linear PCM on the audio port
DEVICE_FRAME_SAMPLES = 160  # 20 ms, 320 bytes on the tty
DTMF_KEYS = "0123456789*#ABCD"

# (command, required): the optional ones are missing from some firmware and only logged.
INIT_COMMANDS: tuple[tuple[str, bool], ...] = (
    ("ATE0", True),  # no command echo (V.25ter)
    ("AT+CMEE=2", False),  # +CME ERROR: <text> rather than a bare ERROR
    ("AT+CLIP=1", True),  # caller id as +CLIP next to RING (TS 27.007 7.18)
    ("AT+CRC=1", False),  # +CRING: VOICE instead of RING (TS 27.007 6.11)
    ("AT+CPCMFRM=0", False),  # 8 kHz PCM on the audio port (SIM7600 manual, chan_quectel)
    ("AT+DDET=1", False),  # DTMF detection, reported as +RXDTMF (chan_quectel on SIM7600G-H)
)


def parse_audio_spec(audio: str) -> str:
    """The PCM tty path from a line's ``audio`` setting (``serial:/dev/...``)."""
    scheme, _, path = audio.partition(":")
    if scheme == "serial" and path:
        return path
    if scheme == "alsa":
        raise LineError(
            f"audio = {audio!r}: the simcom driver does not support ALSA audio yet; "
            'use the modem\'s PCM port, e.g. audio = "serial:/dev/ttyUSB4"'
        )
    raise LineError(f"audio = {audio!r}: must be serial:/dev/... (the modem's PCM port)")


def parse_rxdtmf(line: str) -> str:
    """The key from ``+RXDTMF: <key>`` (SIM7600) or ``+DTMF: <key>[,<ms>]`` (AT+DDET firmware)."""
    for prefix in ("+RXDTMF:", "+DTMF:"):
        if line.startswith(prefix):
            key = line[len(prefix) :].split(",")[0].strip().upper()
            if len(key) == 1 and key in DTMF_KEYS:
                return key
            raise ValueError(f"not a DTMF key: {line!r}")
    raise ValueError(f"not a DTMF report: {line!r}")


@dataclass(eq=False)
class _Call:
    """One incoming call, from its first RING or +CLIP to its one Disconnected."""

    caller_id: str = ""
    caller_name: str = ""
    announced: bool = False  # Ringing emitted
    answering: bool = False
    answered: bool = False  # Connected emitted
    hanging_up: bool = False
    ended: bool = False
    port: DeviceAudioPort | None = None
    transport: SerialAudioTransport | None = None
    began: threading.Event = field(default_factory=threading.Event)  # VOICE CALL: BEGIN
    clip_timer: threading.Timer | None = None
    ring_timer: threading.Timer | None = None

    @property
    def state(self) -> str:
        return "in-call" if self.answered else "ringing"


class _StopRequested(Exception):
    """stop() was called while run() was still starting."""


class SimcomDriver(LineDriver):
    """A SIM7500/SIM7600 modem: AT commands on ``control``, voice on ``audio`` (serial PCM)."""

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
        self.audio_path = parse_audio_spec(audio)
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
        self._call: _Call | None = None
        self._detail: dict[str, Any] = {"number": number}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lost: BaseException | None = None
        self._phase = "down"  # starting | idle | down, when no call is in progress
        self._events: queue.Queue[LineEvent | None] = queue.Queue()
        self._emitter: threading.Thread | None = None

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
        """Answer the ringing call; ``Connected`` follows once the PCM port carries voice."""
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
        """Play keys to the remote party (AT+VTS, one key per command)."""
        bad = sorted(set(digits.upper()) - set(DTMF_KEYS))
        if bad:
            raise ValueError(f"not DTMF keys: {''.join(bad)!r}")
        with self._lock:
            call = self._call
            if call is None or not call.answered or call.ended:
                raise LineError(f"{self.name}: no call in progress")
        for key in digits.upper():
            try:
                self._at(f"AT+VTS={key}", timeout=10.0)
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

    # --- start-up and shut-down ---

    def _open(self) -> None:
        try:
            port = open_serial(self.control, self._baudrate)
        except (*DEVICE_ERRORS, ValueError) as exc:
            raise LineError(f"{self.name}: cannot open {self.control}: {exc}") from exc
        self._channel = ATChannel(
            port, self._on_urc, on_close=self._on_channel_lost, name=self.name
        )

    def _initialise(self) -> None:
        try:
            self._sync()
            for command, required in INIT_COMMANDS:
                self._check_stopping()
                try:
                    self._at(command)
                except ATCommandError as exc:
                    if required:
                        raise LineError(f"{self.name}: {exc}") from exc
                    log.info("%s: %s not supported: %s", self.name, command, exc.final)
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
        raise LineError(f"{self.name}: no OK to AT after {self._sync_attempts} attempts")

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
        if line == "RING" or line.startswith("+CRING:"):
            self._on_ring(line)
        elif line.startswith("+CLIP:"):
            self._on_clip(line)
        elif line.startswith("VOICE CALL: BEGIN"):
            with self._lock:
                if self._call is not None:
                    self._call.began.set()
        elif line.startswith("VOICE CALL: END") or line == "NO CARRIER":
            # SIM7600 sends VOICE CALL: END before NO CARRIER; the second finds no call.
            self._on_remote_end(line, answered_too=True)
        elif line.startswith("MISSED_CALL:"):
            self._on_remote_end(line, answered_too=False)
        elif line.startswith(("+RXDTMF:", "+DTMF:")):
            self._on_dtmf(line)
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
            call = self._call
            if call is None:
                log.info("%s: incoming call", self.name)
                call = self._call = _Call()
                # +CLIP normally follows RING at once; announce without it after a moment.
                call.clip_timer = self._timer(self._clip_wait, self._announce, call)
            if call.ended or call.answering or call.answered or call.hanging_up:
                return
            self._arm_ring_watchdog(call)

    def _on_clip(self, line: str) -> None:
        try:
            caller = parse_clip(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return
        with self._lock:
            call = self._call
            if call is None:
                log.info("%s: incoming call", self.name)
                call = self._call = _Call()
            if call.ended or call.answered:
                return
            call.caller_id, call.caller_name = caller.number, caller.name
            if call.clip_timer is not None:
                call.clip_timer.cancel()
            if not call.announced:
                call.announced = True
                self._post(Ringing(call.caller_id, call.caller_name))
            if not (call.answering or call.hanging_up):
                self._arm_ring_watchdog(call)

    def _announce(self, call: _Call) -> None:
        with self._lock:
            if call is self._call and not (call.ended or call.announced):
                call.announced = True
                self._post(Ringing(call.caller_id, call.caller_name))

    def _on_remote_end(self, line: str, *, answered_too: bool) -> None:
        with self._lock:
            call = self._call
            if call is None or call.ended or call.hanging_up:
                log.debug("%s: %s (no call to end)", self.name, line)
                return
            if call.answered and not answered_too:
                return  # MISSED_CALL of a second caller while we talk
        log.info("%s: remote hang-up (%s)", self.name, line)
        self._finish_call(call, "remote")

    def _on_dtmf(self, line: str) -> None:
        try:
            key = parse_rxdtmf(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return
        with self._lock:
            call = self._call
            if call is not None and call.answered and not call.ended:
                self._post(DtmfReceived(key))
            else:
                log.debug("%s: DTMF %s outside a call", self.name, key)

    def _arm_ring_watchdog(self, call: _Call) -> None:
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.ring_timer = self._timer(self._ring_timeout, self._check_still_ringing, call)

    def _check_still_ringing(self, call: _Call) -> None:
        """RINGs stopped with no MISSED_CALL or NO CARRIER: ask the modem (AT+CLCC)."""
        with self._lock:
            if call is not self._call or call.ended or call.answering or call.answered:
                return
        try:
            lines = self._at("AT+CLCC").lines
        except ATError as exc:
            log.debug("%s: AT+CLCC: %s", self.name, exc)
            lines = None
        if lines is not None and not any(self._is_incoming(line) for line in lines):
            log.info("%s: the caller went away while ringing", self.name)
            self._finish_call(call, "remote", only_if_ringing=True)
            return
        with self._lock:
            if call is self._call and not (call.ended or call.answering or call.answered):
                self._arm_ring_watchdog(call)

    @staticmethod
    def _is_incoming(line: str) -> bool:
        try:
            entry = parse_clcc(line)
        except ValueError:
            return False
        return entry.incoming and entry.stat in (4, 5)  # incoming, waiting

    # --- call audio and teardown ---

    def _start_audio(self, call: _Call) -> None:
        port = self._port_factory(
            self.name, self.fmt, device_rate=DEVICE_RATE, device_frame_samples=DEVICE_FRAME_SAMPLES
        )
        transport = SerialAudioTransport(
            self.audio_path, port, on_error=functools.partial(self._on_audio_error, call)
        )
        with self._lock:
            if call.ended:
                port.close()
                return
            # Open the PCM tty before AT+CPCMREG=1 so the flush at start drops only stale bytes.
            try:
                transport.start()
            except BaseException:
                port.close()
                raise
            call.port, call.transport = port, transport
        self._enable_pcm(call)
        with self._lock:
            if not call.ended:
                call.answered = True
                self._post(Connected(port))
                self._post(LineStatus("in-call", self.status()))

    def _enable_pcm(self, call: _Call) -> None:
        try:
            self._at("AT+CPCMREG=1")
        except ATCommandError as exc:
            # chan_quectel retries AT+CPCMREG=1 when the voice channel was not up yet.
            log.info("%s: %s; retrying after VOICE CALL: BEGIN", self.name, exc)
            call.began.wait(2.0)
            self._at("AT+CPCMREG=1")

    def _on_audio_error(self, call: _Call, exc: BaseException) -> None:
        log.error("%s: call audio failed: %s", self.name, exc)
        threading.Thread(
            target=self._end_quietly, args=(call, "failed"), name=f"{self.name}-abort", daemon=True
        ).start()

    def _end_locally(self, call: _Call, reason: str) -> None:
        """Hang up with AT+CHUP (ATH when refused), then finish the call."""
        with self._lock:
            if call.ended or call.hanging_up:
                return
            call.hanging_up = True
            self._cancel_timers(call)
        failure: ATError | None = None
        try:
            self._at("AT+CHUP", timeout=10.0)
        except ATCommandError:
            try:
                self._at("ATH", timeout=10.0)
            except ATError as exc:
                failure = exc
        except ATError as exc:
            failure = exc
        self._finish_call(call, reason)
        if failure is not None:
            raise LineError(f"{self.name}: hang-up not confirmed: {failure}") from failure

    def _end_quietly(self, call: _Call, reason: str) -> None:
        try:
            self._end_locally(call, reason)
        except LineError as exc:
            log.warning("%s", exc)

    def _finish_call(self, call: _Call, reason: str, *, only_if_ringing: bool = False) -> None:
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
                self._at("AT+CPCMREG=0")
            except ATError as exc:
                log.debug("%s: AT+CPCMREG=0: %s", self.name, exc)
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

    def _timer(self, delay: float, action: Callable[[_Call], None], call: _Call) -> threading.Timer:
        timer = threading.Timer(delay, action, args=(call,))
        timer.name = f"{self.name}-timer"
        timer.daemon = True
        timer.start()
        return timer

    @staticmethod
    def _cancel_timers(call: _Call) -> None:
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
