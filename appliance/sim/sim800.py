"""A SIM800/SIM900 HAT and the caller at its far end: AT port on a pty, voice on a sound card.

The SIM800's voice is analog (SPK/MIC pins) and reaches the Pi through a sound card, so this
emulator has the control pty and an emulated sound card (``alsa_device``, see
``appliance.sim.soundcard``): the driver's ALSA transport goes through the real libasound to
two FIFOs this emulator clocks. Outside a call the card carries silence, as a line-in would.

Dialect facts (SIM800 Series AT Command Manual V1.09):

- power-up: ``RDY``, ``+CFUN: 1``, ``+CPIN: READY``, ``Call Ready``, ``SMS Ready``;
- incoming call: ``RING`` and, after ``AT+CLIP=1``,
  ``+CLIP: "<number>",<type>,"",0,"<alphaId>",<CLI validity>``;
- after ``AT+CLCC=1`` every change of call state is reported as a ``+CLCC:`` line, with
  ``<stat>`` 6 for a disconnected call;
- ``ATA`` answers, ``ATH`` hangs up; a remote hang-up prints ``NO CARRIER``;
- ``AT+DDET=<mode>[,<interval>][,<reportMode>][,<ssdet>]`` turns DTMF detection on; each key
  is reported as ``+DTMF: <key>``, or ``+DTMF: <key>,<last time>`` (ms) with reportMode 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

from appliance.sim.gsm import AtError, Call, EmulatedModem, Handler, number_type

KEY_MS = 100  # how long the emulated caller holds a key (the <last time> of a +DTMF report)


class Sim800Modem(EmulatedModem):
    """An emulated SIM800 HAT wired to a sound card."""

    MANUFACTURER = "SIMCOM_Ltd"
    MODEL = "SIMCOM_SIM800L"
    REVISION = "1418B04SIM800L24"
    BOOT = (
        (0.2, ("RDY",)),
        (0.4, ("+CFUN: 1", "+CPIN: READY")),
        (1.0, ("Call Ready", "SMS Ready")),
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(serial_voice=False, sound_card=True, **options)
        self._ddet = (0, 0, 0)  # mode, interval, reportMode

    def _info_lines(self) -> list[str]:
        return ["SIM800 R14.18"]

    def _clip_line(self, call: Call) -> str:
        if not call.number:
            return '+CLIP: "",128,"",0,"",1'
        return f'+CLIP: "{call.number}",{number_type(call.number)},"",0,"{call.name}",0'

    def _dtmf_urcs(self, key: str) -> list[str] | None:
        mode, _, report_mode = self._ddet
        if not mode:
            return None
        return [f"+DTMF: {key},{KEY_MS}" if report_mode else f"+DTMF: {key}"]

    def _voice_route(self) -> str | None:
        call = self._call
        return "alsa" if call is not None and call.state == "active" else None

    def _reset_settings(self) -> None:
        super()._reset_settings()
        self._ddet = (0, 0, 0)

    # --- SIM800 commands ---

    def _cmd_ddet(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            return ["+DDET: (0,1),(0-10000),(0,1),(0,1)"]
        if op == "?":
            mode, interval, report_mode = self._ddet
            return [f"+DDET: {mode},{interval},{report_mode},0"]
        values = [a for a in args if a]
        if op != "=" or not values or not all(v.isdigit() for v in values):
            raise AtError(50)
        numbers = [int(v) for v in values] + [0, 0, 0]
        mode, interval, report_mode = numbers[0], numbers[1], numbers[2]
        if mode > 1 or interval > 10000 or report_mode > 1:
            raise AtError(50)
        self._ddet = (mode, interval, report_mode)
        return []

    EXTENDED: ClassVar[dict[str, Handler]] = {"+DDET": _cmd_ddet}
