"""A Huawei E1550/E173 USB dongle and the caller at its far end, on real ptys.

Dialect facts (Huawei's AT Command Interface Specifications for its UMTS modules; chan_dongle,
the Asterisk driver written for these dongles, and its wiki):

- unsolicited call reports without a space after the colon: ``^ORIG:<id>,<type>`` (a call is
  being dialled), ``^CONF:<id>`` (the far end rings), ``^CONN:<id>,<type>`` (a call is up, in
  either direction), ``^CEND:<id>,<duration>,<end_status>[,<cc_cause>]`` (a call is over);
  chan_dongle re-reads ``AT+CLCC`` on each of them and on every ``RING``;
- outbound call: ``ATD<number>;`` -> OK, ``^ORIG:<id>,0``, ``^CONF:<id>`` when the far end
  rings, ``^CONN:<id>,0`` when it answers, or ``^CEND:<id>,0,<end_status>,<cc_cause>`` with
  the network's TS 24.008 cause when it never connects (17 user busy, 19 no answer, 1
  unassigned number), the report chan_dongle takes the hang-up cause from;
- incoming call: ``RING`` and, after ``AT+CLIP=1``, ``+CLIP: "<number>",<type>,,,,0``;
- ``AT^CVOICE?`` answers ``^CVOICE:0,8000,16,20`` (voice on: 8000 Hz, 16 bits, 20 ms frames)
  on voice-enabled firmware; voice-disabled firmware answers ``ERROR``;
- ``AT^DDSETEX=2`` (sent after ``ATA``) streams the call's voice on the dongle's voice port:
  raw 8 kHz s16le, 320-byte frames;
- ``AT^DTMF=<id>,<key>`` sends a key to the far end. The dongle reports no key pressed by the
  caller: they arrive only as tones in the voice, so ``press()`` always plays tones;
- ``^RSSI:<rssi>`` reports the signal now and then, ``^BOOT:`` and ``^MODE:`` other state.
"""

from __future__ import annotations

from typing import Any, ClassVar

from appliance.audio.tones import DTMF_FREQS
from appliance.sim.far_end import FAILURE_CAUSES
from appliance.sim.gsm import AtError, Call, EmulatedModem, Handler

CVOICE = "^CVOICE:0,8000,16,20"
END_STATUS = 104  # <end_status> as E1550 firmware prints it; chan_dongle reads but ignores it
CC_CAUSE_NORMAL = 16  # 3GPP TS 24.008 cause 16, normal call clearing


class HuaweiModem(EmulatedModem):
    """An emulated E1550: ``audio_path`` is its voice port; ``voice=False`` is a dongle whose
    firmware has voice disabled."""

    MANUFACTURER = "huawei"
    MODEL = "E1550"
    REVISION = "11.608.12.02.143"
    BOOT = ((0.3, ("^RSSI:18",)), (1.0, ("^MODE:5,4",)))

    def __init__(self, *, voice: bool = True, **options: Any) -> None:
        super().__init__(serial_voice=True, sound_card=False, **options)
        self.voice = voice
        self._voice_port = False  # AT^DDSETEX=2 during this call

    def _info_lines(self) -> list[str]:
        return [
            f"Manufacturer: {self.MANUFACTURER}",
            f"Model: {self.MODEL}",
            f"Revision: {self.REVISION}",
            f"IMEI: {self.imei}",
            "+GCAP: +CGSM,+DS,+ES",
        ]

    def _cend(self, call: Call, *, answered: bool) -> str:
        duration = int(self._duration(call)) if answered else 0
        return f"^CEND:{call.index},{duration},{END_STATUS},{CC_CAUSE_NORMAL}"

    def _progress_urcs(self, call: Call, state: str) -> list[str]:
        report = {
            "dialing": f"^ORIG:{call.index},0",
            "alerting": f"^CONF:{call.index}",
            "active": f"^CONN:{call.index},0",
        }[state]
        return [*super()._progress_urcs(call, state), report]

    def _dial_failed_urcs(self, call: Call, outcome: str) -> list[str]:
        cend = f"^CEND:{call.index},0,{END_STATUS},{FAILURE_CAUSES[outcome]}"
        return [*self._state_urcs(call, 6), cend]

    def _answer_urcs(self, call: Call) -> list[str]:
        return [*super()._answer_urcs(call), f"^CONN:{call.index},0"]

    def _remote_end_urcs(self, call: Call) -> list[str]:
        return [*self._state_urcs(call, 6), self._cend(call, answered=True)]

    def _missed_urcs(self, call: Call) -> list[str]:
        return [*self._state_urcs(call, 6), self._cend(call, answered=False)]

    def _local_end_urcs(self, call: Call) -> list[str]:
        return [*self._state_urcs(call, 6), self._cend(call, answered=call.state == "active")]

    def _voice_route(self) -> str | None:
        call = self._call
        if call is not None and call.state == "active" and self._voice_port:
            return "serial"
        return None

    def _call_ended(self) -> None:
        self._voice_port = False

    # --- Huawei commands ---

    def _cmd_cvoice(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if not self.voice:
            raise AtError()
        if op == "=?":
            return ["^CVOICE:(0)"]
        if op == "?":
            return [CVOICE]
        if op == "=" and args[:1] == ["0"]:
            return []
        raise AtError()

    def _cmd_ddsetex(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return ["^DDSETEX:(2)"]
        if not self.voice or op != "=" or args[:1] != ["2"]:
            raise AtError()
        if self._call is None or self._call.state != "active":
            raise AtError()  # no voice to stream outside a call
        self._voice_port = True
        self._voice_changed()
        return []

    def _cmd_dtmf(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return []
        if op != "=" or len(args) != 2 or args[1].upper() not in DTMF_FREQS:
            raise AtError()
        call = self._call
        if call is None or call.state != "active" or args[0] != str(call.index):
            raise AtError()
        self._dtmf_sent.append(args[1].upper())
        return []

    def _cmd_accept(self, op: str, args: list[str], after: list[str]) -> list[str]:
        return []

    EXTENDED: ClassVar[dict[str, Handler]] = {
        "^CVOICE": _cmd_cvoice,
        "^DDSETEX": _cmd_ddsetex,
        "^DTMF": _cmd_dtmf,
        "^CURC": _cmd_accept,
        "^U2DIAG": _cmd_accept,
        "+CSSN": _cmd_accept,
    }
