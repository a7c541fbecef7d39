"""Turns line events into calls and calls into line commands.

An incoming call's thread starts while the phone still rings: its rules decide whether the
call is answered (:meth:`CallManager.answer`) or refused (:meth:`CallManager.reject`), as
Twilio fetches the voice URL before it picks up. Outbound calls placed by ``<Dial><Number>``
(:meth:`CallManager.place_call`) are calls too, on another line, with no thread of their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.audio.engine import AudioEngine
from appliance.calls.call import Call, CallStatus
from appliance.events import EventBus
from appliance.lines.base import (
    Alerting,
    Connected,
    Disconnected,
    DtmfReceived,
    LineDriver,
    LineEvent,
    LineStatus,
    Ringing,
)

log = logging.getLogger(__name__)

CallRunner = Callable[[Call], None]  # runs the call's rules; returns when the call is done

INBOUND = "inbound"
OUTBOUND_DIAL = "outbound-dial"  # Twilio's Direction of a call placed by <Dial>
ANSWER_TIMEOUT = 30.0  # seconds from ATA to voice flowing before the answer counts as failed
POLL_SECONDS = 0.02

# How an outbound attempt that never connected ends (the driver's Disconnected reason).
_UNANSWERED_STATUS = {
    "busy": CallStatus.BUSY,
    "no-answer": CallStatus.NO_ANSWER,
    "local": CallStatus.CANCELED,
}


class NoFreeLine(Exception):
    """No line can place an outbound call right now (the message says why)."""


class CallManager:
    """Owns the live calls: one rules thread per incoming call, outbound legs beside them."""

    def __init__(self, engine: AudioEngine, bus: EventBus, run_call: CallRunner,
                 answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self._engine = engine
        self._bus = bus
        self._run_call = run_call
        self._answer_timeout = answer_timeout
        self._lock = threading.Lock()
        self._calls_by_line: dict[str, Call] = {}
        self._drivers: dict[str, LineDriver] = {}
        self._numbers: dict[str, str] = {}
        self._threads: dict[str, threading.Thread] = {}
        # How calls this side is ending will end, by CallSid: the driver's own Disconnected
        # (on its event thread) may well arrive before the command returns.
        self._endings: dict[str, tuple[str, CallStatus | None]] = {}
        self.line_status: dict[str, LineStatus] = {}
        self._ready_lines: set[str] = set()

    # --- lines ------------------------------------------------------------------------------

    def register_line(self, name: str, driver: LineDriver, number: str) -> None:
        with self._lock:
            self._drivers[name] = driver
            self._numbers[name] = number

    def handler_for(self, line: str) -> Callable[[LineEvent], None]:
        return lambda event: self.on_line_event(line, event)

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls_by_line.values())

    def driver(self, line: str) -> LineDriver | None:
        with self._lock:
            return self._drivers.get(line)

    def on_line_event(self, line: str, event: LineEvent) -> None:
        match event:
            case Ringing(caller_id=caller_id):
                self._on_ringing(line, caller_id)
            case Alerting():
                self._on_alerting(line)
            case Connected(port=port):
                self._on_connected(line, port)
            case Disconnected(reason=reason):
                call = self._call_on(line)
                if call is not None:
                    self._end(call, reason)
            case DtmfReceived(digit=digit):
                call = self._call_on(line)
                if call is not None and call.key_from_modem(digit):
                    self._bus.publish("call.dtmf", call_sid=call.sid, digit=digit,
                                      source="modem")
            case LineStatus():
                previous = self.line_status.get(line)
                self.line_status[line] = event
                if event.state == "idle" and line not in self._ready_lines:
                    self._ready_lines.add(line)
                    log.info("line %s: ready %s", line, event.detail)
                elif event.state in ("down", "error", "starting"):
                    self._ready_lines.discard(line)
                if previous is None or previous.state != event.state:
                    log.debug("line %s: %s", line, event.state)
                self._bus.publish("line.status", line=line, state=event.state, detail=event.detail)

    def _call_on(self, line: str) -> Call | None:
        with self._lock:
            return self._calls_by_line.get(line)

    def _on_ringing(self, line: str, caller_id: str) -> None:
        with self._lock:
            if line in self._calls_by_line:
                return
            call = Call(line=line, from_number=caller_id, to_number=self._numbers.get(line, ""))
            self._calls_by_line[line] = call
            thread = threading.Thread(target=self._run, args=(call,),
                                      name=f"call-{call.sid[:10]}", daemon=True)
            self._threads[call.sid] = thread
        self._bus.publish("call.ringing", call_sid=call.sid, line=line, caller=caller_id,
                          direction=call.direction)
        log.info("line %s: call %s from %s", line, call.sid, caller_id or "unknown")
        thread.start()  # the rules decide, while it rings, whether the call is answered

    def _on_alerting(self, line: str) -> None:
        call = self._call_on(line)
        if call is None or call.direction != OUTBOUND_DIAL or call.alerting.is_set():
            return
        call.status = CallStatus.RINGING
        call.alerting.set()
        self._bus.publish("call.ringing", call_sid=call.sid, line=line, caller=call.from_number,
                          to=call.to_number, direction=call.direction,
                          parent_call_sid=call.parent_sid)
        log.info("line %s: %s rings (call %s)", line, call.to_number, call.sid)

    def _on_connected(self, line: str, port) -> None:
        call = self._call_on(line)
        if call is None or call.connected.is_set():
            log.warning("line %s: audio connected with no call waiting for it; hanging up", line)
            port.close()
            self._hangup_driver(line)
            return
        call.port = port
        call.status = CallStatus.IN_PROGRESS
        call.answered_at = time.time()
        self._engine.attach(port)
        call.connected.set()
        self._bus.publish("call.answered", call_sid=call.sid, line=line,
                          direction=call.direction, parent_call_sid=call.parent_sid)
        log.info("line %s: call %s answered", line, call.sid)

    def _run(self, call: Call) -> None:
        try:
            self._run_call(call)
        except Exception:
            log.exception("call %s: rules failed", call.sid)
        finally:
            if not call.hung_up.is_set():
                self.hangup(call)
            with self._lock:
                self._threads.pop(call.sid, None)

    def _end(self, call: Call, reason: str, status: CallStatus | None = None) -> None:
        """The call is over (idempotent: the driver and a local hang-up may both report it):
        release its line and audio port, wake its thread, tell the bus."""
        with self._lock:
            if call.ended_at is not None:
                return
            call.ended_at = time.time()
            if self._calls_by_line.get(call.line) is call:
                del self._calls_by_line[call.line]
            reason, status = self._endings.pop(call.sid, (reason, status))
        if status is None:
            if call.answered_at is not None:
                status = CallStatus.COMPLETED
            elif call.direction == OUTBOUND_DIAL:
                status = _UNANSWERED_STATUS.get(reason, CallStatus.FAILED)
            else:
                status = CallStatus.FAILED
        call.status = status
        call.end_reason = reason
        call.end()
        if call.port is not None:
            self._engine.detach(call.port)
            call.port.close()
            log.info("call %s audio: %s", call.sid, call.port.stats())
        self._bus.publish("call.ended", call_sid=call.sid, line=call.line, reason=reason,
                          status=status.value, direction=call.direction,
                          parent_call_sid=call.parent_sid)
        log.info("line %s: call %s ended (%s); status %s", call.line, call.sid, reason,
                 status.value)

    # --- control (rules threads) --------------------------------------------------------------

    def answer(self, call: Call) -> bool:
        """Answer the ringing ``call`` and wait until its voice flows; False when it ended
        instead (the caller gave up while it rang, or the modem failed)."""
        if call.connected.is_set():
            return True
        if call.hung_up.is_set():
            return False
        driver = self.driver(call.line)
        try:
            if driver is None:
                raise RuntimeError("the line has no driver")
            driver.answer()
        except Exception as exc:
            log.warning("line %s: could not answer call %s: %s", call.line, call.sid, exc)
            # The driver reports the call's end (a caller who hung up first); make sure.
            if not call.hung_up.wait(1.0):
                self.hangup(call, status=CallStatus.FAILED)
            return False
        deadline = time.monotonic() + self._answer_timeout
        while not call.connected.wait(POLL_SECONDS):
            if call.hung_up.is_set():
                return False
            if time.monotonic() > deadline:
                log.error("line %s: call %s answered but no voice after %.0f s; hanging up",
                          call.line, call.sid, self._answer_timeout)
                self.hangup(call, status=CallStatus.FAILED)
                return False
        return not call.hung_up.is_set()

    def reject(self, call: Call, reason: str) -> None:
        """Refuse the ringing ``call`` without answering it (TwiML's <Reject>): it ends
        "busy" for ``reason`` "busy", else "no-answer" (Twilio's CallStatus)."""
        status = CallStatus.BUSY if reason == "busy" else CallStatus.NO_ANSWER
        self._ending(call, "rejected", status)
        driver = self.driver(call.line)
        try:
            if driver is not None:
                driver.reject(reason)
        except Exception as exc:
            # A GSM hang-up (AT+CHUP) of a ringing call refuses it too.
            log.warning("line %s: reject failed (%s); hanging up instead", call.line, exc)
            self._hangup_driver(call.line)
        log.info("line %s: call %s rejected (%s)", call.line, call.sid, reason)
        self._end(call, "rejected", status)

    def hangup(self, call: Call, status: CallStatus | None = None) -> None:
        """End ``call`` from this side (an outbound attempt is abandoned); ``status`` overrides
        the one its end would get (e.g. "no-answer" for a dial that timed out)."""
        if call.ended_at is None:
            self._ending(call, "local", status)
            self._hangup_driver(call.line)
        # The driver reports Disconnected; make sure the call ends even if it cannot.
        self._end(call, "local", status)

    def _ending(self, call: Call, reason: str, status: CallStatus | None) -> None:
        with self._lock:
            if call.ended_at is None:
                self._endings[call.sid] = (reason, status)

    def _hangup_driver(self, line: str) -> None:
        driver = self.driver(line)
        try:
            if driver is not None:
                driver.hangup()
        except Exception:
            log.exception("line %s: hang-up failed", line)

    def place_call(self, number: str, parent: Call) -> Call:
        """Dial ``number`` on a free line for ``parent``'s <Dial>; returns the outbound call
        (already ended, "failed", when the modem refused). Raises :class:`NoFreeLine`."""
        with self._lock:
            line, why = self._free_line(exclude=parent.line)
            if line is None:
                raise NoFreeLine(why)
            driver = self._drivers[line]
            call = Call(line=line, from_number=self._numbers.get(line, ""), to_number=number,
                        direction=OUTBOUND_DIAL, status=CallStatus.INITIATED,
                        parent_sid=parent.sid)
            self._calls_by_line[line] = call
        log.info("line %s: dialling %s for call %s (call %s)", line, number, parent.sid, call.sid)
        try:
            driver.dial(number)
        except Exception as exc:
            log.error("line %s: dialling %s failed: %s", line, number, exc)
            self._end(call, "failed", CallStatus.FAILED)
        return call

    def _free_line(self, exclude: str) -> tuple[str | None, str]:
        """A line that can dial now (lock held), or None and why not."""
        reasons = []
        for name, driver in self._drivers.items():
            if name == exclude:
                continue
            if not driver.can_dial:
                reasons.append(f"{name} cannot place calls")
            elif name in self._calls_by_line:
                reasons.append(f"{name} is in a call")
            elif name not in self._ready_lines:
                reasons.append(f"{name} is not ready")
            else:
                return name, ""
        return None, "; ".join(reasons) or "the caller's line is the only line"

    def hangup_all(self, timeout: float = 5.0) -> None:
        for call in self.calls():
            self.hangup(call)
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def active_threads(self) -> int:
        with self._lock:
            return len(self._threads)
