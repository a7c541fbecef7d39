"""Turns line events into calls: answer, attach audio, run the call's rules, clean up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.audio.engine import AudioEngine
from appliance.calls.call import Call, CallStatus
from appliance.events import EventBus
from appliance.lines.base import (
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


class CallManager:
    """Owns the live calls; one interpreter thread per answered call."""

    def __init__(self, engine: AudioEngine, bus: EventBus, run_call: CallRunner) -> None:
        self._engine = engine
        self._bus = bus
        self._run_call = run_call
        self._lock = threading.Lock()
        self._calls_by_line: dict[str, Call] = {}
        self._drivers: dict[str, LineDriver] = {}
        self._numbers: dict[str, str] = {}
        self._threads: dict[str, threading.Thread] = {}
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

    def on_line_event(self, line: str, event: LineEvent) -> None:
        match event:
            case Ringing(caller_id=caller_id):
                self._on_ringing(line, caller_id)
            case Connected(port=port):
                self._on_connected(line, port)
            case Disconnected(reason=reason):
                self._on_disconnected(line, reason)
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
            driver = self._drivers[line]
            call = Call(line=line, from_number=caller_id, to_number=self._numbers.get(line, ""))
            self._calls_by_line[line] = call
        self._bus.publish("call.ringing", call_sid=call.sid, line=line, caller=caller_id)
        log.info("line %s: call %s from %s", line, call.sid, caller_id or "unknown")
        try:
            driver.answer()
        except Exception:
            log.exception("line %s: could not answer", line)
            self._on_disconnected(line, "failed")

    def _on_connected(self, line: str, port) -> None:
        call = self._call_on(line)
        if call is None:
            log.warning("line %s: audio connected with no call; hanging up", line)
            self._drivers[line].hangup()
            return
        call.port = port
        call.status = CallStatus.IN_PROGRESS
        call.answered_at = time.time()
        self._engine.attach(port)
        self._bus.publish("call.answered", call_sid=call.sid, line=line)
        thread = threading.Thread(target=self._run, args=(call,), name=f"call-{call.sid[:10]}",
                                  daemon=True)
        with self._lock:
            self._threads[call.sid] = thread
        thread.start()

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

    def _on_disconnected(self, line: str, reason: str) -> None:
        with self._lock:
            call = self._calls_by_line.pop(line, None)
        if call is None:
            return
        call.status = CallStatus.COMPLETED if call.answered_at else CallStatus.FAILED
        call.ended_at = time.time()
        call.end()
        if call.port is not None:
            self._engine.detach(call.port)
            call.port.close()
            log.info("call %s audio: %s", call.sid, call.port.stats())
        self._bus.publish("call.ended", call_sid=call.sid, line=line, reason=reason)
        log.info("line %s: call %s ended (%s)", line, call.sid, reason)

    # --- control -----------------------------------------------------------------------------

    def hangup(self, call: Call) -> None:
        driver = self._drivers.get(call.line)
        try:
            if driver is not None:
                driver.hangup()
        except Exception:
            log.exception("line %s: hang-up failed", call.line)
        # The driver reports Disconnected; make sure the call ends even if it cannot.
        self._on_disconnected(call.line, "local")

    def hangup_all(self, timeout: float = 5.0) -> None:
        for call in self.calls():
            self.hangup(call)
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def active_threads(self) -> int:
        with self._lock:
            return len(self._threads)
