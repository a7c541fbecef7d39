"""Outbound calls on an emulated GSM modem: ``ATD<number>;`` and the party it reaches.

TS 27.007 6.3 and V.250 6.3.1: ``ATD<number>;`` places a voice call and returns ``OK`` at once
(the ";" keeps the modem in command mode); the call then goes through the +CLCC states 2
dialing, 3 alerting and 0 active, and a call that never connects ends with a result code:
``BUSY`` (the far end is busy or declines: TS 24.008 cause 17), ``NO ANSWER`` (the network gave
up while it rang, cause 19) or ``NO CARRIER`` (it cannot be reached, e.g. cause 1 "unassigned
number"). Each dialect prints those states and ends in its own words (``_progress_urcs``,
``_dial_failed_urcs``).

What the far end does is set by the test or the control socket beforehand with
``set_far_end``; once it answers, the call is an ordinary active call: ``play``, ``heard``,
``press`` and ``hangup`` (the called party hangs up) work as for an incoming one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

FAR_END_BEHAVIOURS = ("answer", "busy", "no-answer", "unreachable")
NETWORK_NO_ANSWER_S = 60.0  # the network's alerting timer (TS 24.008 T301 is at least 3 min;
# operators give up after about a minute)
ALERT_DELAY_S = 0.5  # from dialing to the far end ringing
DIAL_CHARACTERS = frozenset("0123456789*#+ABCD")
# How a call that never connected ends, as a V.250 result code and a TS 24.008 cause.
FAILURE_RESULTS = {"busy": "BUSY", "no-answer": "NO ANSWER", "unreachable": "NO CARRIER"}
FAILURE_CAUSES = {"busy": 17, "no-answer": 19, "unreachable": 1}
# +CLCC <stat> of each emulated call state.
CLCC_STAT = {"active": 0, "dialing": 2, "alerting": 3, "ringing": 4}


@dataclass(frozen=True)
class FarEnd:
    """What the far end of the next outbound call does, ``after`` seconds of modem clock."""

    behaviour: str = "answer"
    after: float = 1.0


class Host(Protocol):
    """What a modem class offers the mixin (``EmulatedModem`` and ``SimcomModem`` do).

    Its call object has ``number``, ``state``, ``outgoing`` and ``answered_at``.
    """

    name: str
    _lock: threading.RLock
    _changed: threading.Condition
    _call: Any

    def _schedule(self, delay: float, action: Callable[[], None]) -> None: ...
    def _urc(self, *lines: str) -> None: ...
    def _end_call(self) -> None: ...
    def _voice_changed(self) -> None: ...
    def _new_call(self, number: str) -> Any: ...
    def _dial_refused(self) -> Exception: ...
    def _progress_urcs(self, call: Any, state: str) -> list[str]: ...
    def _dial_failed_urcs(self, call: Any, outcome: str) -> list[str]: ...


def parse_dial(command: str) -> str:
    """The number of ``D<number>;``; ``ValueError`` for a data call or a bad dial string."""
    body = command[1:].strip()
    if not body.endswith(";"):
        raise ValueError(f"not a voice call: {command!r}")
    number = body[:-1].replace(" ", "").upper().lstrip("T")  # V.250 T: tone dialling
    if not number or not set(number) <= DIAL_CHARACTERS or "+" in number[1:]:
        raise ValueError(f"bad dial string: {command!r}")
    return number


class OutboundCalls:
    """Mixin: the far end of outbound calls, for a modem class with the ``_Host`` hooks."""

    _far_end: FarEnd = FarEnd()
    _dialed: str = ""

    # --- the far end's side (public, thread-safe) ----------------------------------------------

    def set_far_end(self: Any, behaviour: str = "answer", after: float = 1.0) -> None:
        """What the far end of the next outbound calls does: "answer" after ``after`` s
        (alerting meanwhile), "busy" after ``after`` s, "no-answer" (alerts until the caller
        gives up or the network does, after 60 s) or "unreachable" (fails at once)."""
        if behaviour not in FAR_END_BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {', '.join(FAR_END_BEHAVIOURS)}")
        if not isinstance(after, (int, float)) or isinstance(after, bool) or after < 0:
            raise ValueError("after must be a number of seconds, 0 or more")
        with self._lock:
            self._far_end = FarEnd(behaviour, float(after))

    def answer_far_end(self: Any) -> None:
        """The far end of the outbound call in progress answers now."""
        with self._lock:
            call = self._call
            if call is None or not call.outgoing or call.state not in ("dialing", "alerting"):
                raise RuntimeError(f"{self.name} has no outbound call waiting to be answered")
            self._far_end_answers(call)

    @property
    def dialed(self: Any) -> str:
        """The number of the current or last outbound call ("" if none)."""
        with self._lock:
            return self._dialed

    # --- the modem's side (the lock is held) ---------------------------------------------------

    def _dial(self: Any, command: str, after: list[str]) -> list[str]:
        """``ATD<number>;``: OK at once, then the far end's progress on the modem's clock."""
        number = parse_dial(command)
        if self._call is not None:
            raise self._dial_refused()
        call = self._new_call(number)
        call.outgoing = True
        call.state = "dialing"
        self._call = call
        self._dialed = number
        self._changed.notify_all()
        after.extend(self._progress_urcs(call, "dialing"))
        far = self._far_end
        if far.behaviour == "unreachable":
            self._schedule(0.0, lambda: self._far_end_fails(call, "unreachable"))
        elif far.behaviour == "busy":
            self._schedule(far.after, lambda: self._far_end_fails(call, "busy"))
        else:
            alert = ALERT_DELAY_S
            if far.behaviour == "answer":
                alert = min(ALERT_DELAY_S, far.after / 2)
            self._schedule(alert, lambda: self._far_end_alerts(call))
            if far.behaviour == "answer":
                self._schedule(far.after, lambda: self._far_end_answers(call))
            else:
                self._schedule(NETWORK_NO_ANSWER_S, lambda: self._far_end_fails(call, "no-answer"))
        return []

    def _far_end_alerts(self: Any, call: Any) -> None:
        if self._call is call and call.state == "dialing":
            call.state = "alerting"
            self._changed.notify_all()
            self._urc(*self._progress_urcs(call, "alerting"))

    def _far_end_answers(self: Any, call: Any) -> None:
        if self._call is call and call.state in ("dialing", "alerting"):
            call.state = "active"
            call.answered_at = time.monotonic()
            self._changed.notify_all()
            self._urc(*self._progress_urcs(call, "active"))
            self._voice_changed()

    def _far_end_declines(self: Any, call: Any) -> bool:
        """The called party refuses a call still ringing it (as ``hangup()`` before answering)."""
        if call is None or not call.outgoing or call.state not in ("dialing", "alerting"):
            return False
        self._far_end_fails(call, "busy")
        return True

    def _far_end_fails(self: Any, call: Any, outcome: str) -> None:
        if self._call is call and call.state in ("dialing", "alerting"):
            self._urc(*self._dial_failed_urcs(call, outcome))
            self._end_call()
