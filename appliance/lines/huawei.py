"""Huawei E1550/E173 dongle line driver: AT port plus the dongle's serial voice port.

An incoming call on an E1550 (Huawei's AT Command Interface Specification; chan_dongle, the
Asterisk driver these dongles were used with)::

    AT^CVOICE?  ->  ^CVOICE:0,8000,16,20   (voice-enabled firmware: 8 kHz, 16 bit, 20 ms)
    RING                                   (every few seconds while it rings)
    +CLIP: "+15551230000",145,,,,0
    ATA -> OK
    ^CONN:1,0                              (call 1, a voice call, is up)
    AT^DDSETEX=2                           (voice frames on the voice port from now on)
    ^CEND:1,42,104,16                      (call 1 ended after 42 s)

An outbound call::

    ATD+15551234567; -> OK
    ^ORIG:1,0                              (call 1, a voice call, is being set up)
    ^CONF:1                                (the far end rings)
    ^CONN:1,0                              (it answered: AT^DDSETEX=2 as above)
    ^CEND:1,0,104,17                       (or it never answered: cc cause 17, user busy)

Every call report (RING, ^ORIG, ^CONF, ^CONN, ^CEND) is followed by ``AT+CLCC``, as chan_dongle
does: the call list fills in what the reports leave out. A ^CEND ends the call only when it
names that call's id. The dongle does not report keys the caller presses; they reach the
appliance as tones and its in-band detector finds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from appliance.lines.at import DEFAULT_URC_PREFIXES, ATCommandError, csq_to_dbm
from appliance.lines.base import LineError
from appliance.lines.gsm import GsmCall, GsmDriver

log = logging.getLogger(__name__)

CALL_REPORTS = ("^ORIG:", "^CONF:", "^CONN:", "^CEND:")
# Status URCs a dongle prints on its own (chan_dongle's table): read or ignored.
STATUS_REPORTS = ("^RSSI:", "^BOOT:", "^MODE:", "^DSFLOWRPT:", "^SRVST:", "^SIMST:", "^SMMEMFULL:")
VOICE_FORMAT = (0, 8000, 16, 20)  # ^CVOICE: mode 0 (on), Hz, bits, ms per frame
# 3GPP TS 24.008 10.5.4.11 cc causes of a call that never connected (chan_dongle hands ^CEND's
# cause to Asterisk as the hangup cause): 17 user busy, 21 call rejected; 18 no user
# responding, 19 no answer from user (user alerted). Any other cause is a failure.
BUSY_CAUSES = frozenset({17, 21})
NO_ANSWER_CAUSES = frozenset({18, 19})


def parse_cvoice(line: str) -> tuple[int, ...]:
    """``^CVOICE:<mode>,<rate>,<bits>,<frame ms>`` as four integers."""
    value = line.partition(":")[2]
    parts = [p.strip() for p in value.split(",")]
    if not line.startswith("^CVOICE:") or len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"malformed ^CVOICE: {line!r}")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class CallEnd:
    """A ^CEND report: the call id, how long it was up, and why it ended."""

    index: int
    seconds: int
    end_status: int | None = None
    cause: int | None = None  # TS 24.008 cc cause; absent when the dongle ended it itself

    @property
    def outcome(self) -> str:
        """The ``Disconnected`` reason for a dialled call that ended with this report."""
        if self.cause in BUSY_CAUSES:
            return "busy"
        if self.cause in NO_ANSWER_CAUSES:
            return "no-answer"
        return "failed"


def parse_cend(line: str) -> CallEnd:
    """``^CEND:<id>,<duration>,<end_status>[,<cc_cause>]``."""
    parts = [p.strip() for p in line.partition(":")[2].split(",")]
    if not line.startswith("^CEND:") or len(parts) < 3 or not parts[0].isdigit():
        raise ValueError(f"malformed ^CEND: {line!r}")
    numbers = [int(p) if p.isdigit() else None for p in parts]
    return CallEnd(
        int(parts[0]), numbers[1] or 0, numbers[2], numbers[3] if len(parts) > 3 else None
    )


def report_index(line: str) -> int:
    """The call id a ``^ORIG:``, ``^CONF:`` or ``^CONN:`` report names."""
    first = line.partition(":")[2].split(",")[0].strip()
    if not line.startswith(CALL_REPORTS) or not first.isdigit():
        raise ValueError(f"malformed call report: {line!r}")
    return int(first)


class HuaweiDriver(GsmDriver):
    """A Huawei E1550/E173: AT commands on ``control``, voice on the ``serial:`` voice port."""

    MODEM = "Huawei dongle"
    INIT_COMMANDS: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("ATE0", True),
        ("AT+CMEE=1", False),
        ("AT+CLIP=1", False),  # the call list (AT+CLCC) names the caller when +CLIP is off
        ("AT^CURC=1", False),  # periodic status reports (^RSSI) on
    )
    URC_PREFIXES: ClassVar[tuple[str, ...]] = (
        *DEFAULT_URC_PREFIXES,
        *CALL_REPORTS,
        *STATUS_REPORTS,
    )
    AUDIO_SCHEMES: ClassVar[tuple[str, ...]] = ("serial",)
    DTMF_COMMAND = "AT^DTMF={index},{key}"  # chan_dongle; the dongle refuses A-D

    def _setup(self) -> None:
        try:
            response = self._at("AT^CVOICE?")
        except ATCommandError as exc:
            raise LineError(
                f"{self.name}: the dongle's firmware has voice disabled (AT^CVOICE?: "
                f"{exc.final}); see hardware/huawei-e1550.md"
            ) from exc
        line = next((x for x in response.lines if x.startswith("^CVOICE:")), "")
        try:
            voice = parse_cvoice(line)
        except ValueError as exc:
            raise LineError(f"{self.name}: AT^CVOICE? answered {line!r}: {exc}") from exc
        if voice != VOICE_FORMAT:
            raise LineError(
                f"{self.name}: the dongle's voice is {line} (off, or not 8000 Hz 16-bit 20 ms "
                "frames); voice-enabled firmware reports ^CVOICE:0,8000,16,20"
            )

    def _voice_on(self, call: GsmCall) -> None:
        self._at("AT^DDSETEX=2")

    def _on_dialect_urc(self, line: str) -> bool:
        if line == "RING" or line.startswith("+CRING:"):
            self._on_ring(line)
            self._resync(line)
        elif line.startswith("^CEND:"):
            self._on_cend(line)
        elif line.startswith(("^ORIG:", "^CONF:", "^CONN:")):
            self._on_call_report(line)
            self._resync(line)
        elif line.startswith("^RSSI:"):
            value = line.partition(":")[2].strip()
            if value.isdigit():
                with self._lock:
                    self._detail["csq"] = int(value)
                    self._detail["signal_dbm"] = csq_to_dbm(int(value))
        elif line.startswith(STATUS_REPORTS):
            log.debug("%s: %s", self.name, line)
        else:
            return False
        return True

    def _on_cend(self, line: str) -> None:
        try:
            end = parse_cend(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            end = None
        with self._lock:
            call = self._call
            if end is not None and call is not None and call.index not in (None, end.index):
                log.debug("%s: %s is about another call", self.name, line)
                return
        if end is not None:
            log.debug("%s: call %d ended after %d s", self.name, end.index, end.seconds)
        # A cause says why a dialled call never connected; without one, a result code may.
        reason = end.outcome if end is not None and end.cause is not None else None
        self._remote_end(line, answered_too=True, reason=reason)

    def _on_call_report(self, line: str) -> None:
        """^ORIG (dialling), ^CONF (the far end rings), ^CONN (a call is up)."""
        try:
            index = report_index(line)
        except ValueError as exc:
            log.warning("%s: %s", self.name, exc)
            return
        with self._lock:
            call = self._call
            if call is None or call.index not in (None, index):
                return
            if line.startswith("^CONN:"):
                call.began.set()
            if not call.outgoing:
                return
            call.index = index
        if line.startswith("^CONF:"):
            self._far_end_alerting(call)
        elif line.startswith("^CONN:"):
            self._far_end_answered(call)
