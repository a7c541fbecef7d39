"""A Quectel EC25/EG25-G and the caller at its far end: AT port and voice on real ptys.

Dialect facts (Quectel EC25&EC21 AT Commands Manual; transcripts in chan_quectel, which drives
these modules in Asterisk):

- power-up: ``RDY``, ``+CPIN: READY``, ``+QUSIM: 1``, ``+QIND: SMS DONE``, ``+QIND: PB DONE``;
- incoming call: ``RING`` and, after ``AT+CLIP=1``, ``+CLIP: "<number>",<type>,,,,0``;
- ``AT+QINDCFG="ccinfo",1[,<save>]`` adds a call state report at every change,
  ``+QIND: "ccinfo",<id>,<dir>,<stat>,<mode>,<mpty>,"<number>",<type>`` with the +CLCC states,
  and ``-1`` for a released call (as chan_quectel records it);
- ``ATA`` answers, ``AT+CHUP`` or ``ATH`` hang up; a remote hang-up prints ``NO CARRIER``;
- ``AT+QPCMV=<enable>[,<port>]`` routes voice: port 0 the USB NMEA port (raw 8 kHz s16le PCM,
  320-byte frames), 2 the USB audio class device (UAC, an ALSA sound card on the host);
  ``AT+QPCMV?`` answers ``+QPCMV: <enable>,<port>``; firmware built without PCM voice answers
  ``ERROR``;
- ``ATD<number>;`` answers OK at once; ccinfo then reports ``<dir>`` 0 with 2 (dialing),
  3 (alerting), 0 (active) or -1 (released), followed by ``BUSY``, ``NO ANSWER`` or
  ``NO CARRIER`` when the call never connects;
- ``AT+QTONEDET=1`` reports each key the caller presses as ``+QTONEDET: <ASCII code>``
  (``+QTONEDET: 53`` for "5").
"""

from __future__ import annotations

from typing import Any, ClassVar

from appliance.sim.gsm import AtError, Call, EmulatedModem, Handler

# +QPCMV <port>: where voice goes once enabled.
PCM_PORT_USB_SERIAL = 0
PCM_PORT_UART = 1
PCM_PORT_UAC = 2
QIND_TYPES = ("all", "csq", "smsfull", "ring", "smsincoming", "act", "ccinfo")


class QuectelModem(EmulatedModem):
    """An emulated EC25: ``audio_path`` is its USB NMEA (voice) port, ``alsa_device`` its UAC
    sound card when made with ``uac=True``; ``pcm_voice=False`` is firmware without PCM voice."""

    MANUFACTURER = "Quectel"
    MODEL = "EC25"
    REVISION = "EC25EFAR06A06M4G"
    BOOT = (
        (0.2, ("RDY",)),
        (0.4, ("+CPIN: READY", "+QUSIM: 1")),
        (1.0, ("+QIND: SMS DONE", "+QIND: PB DONE")),
    )
    SETTINGS: ClassVar[dict[str, tuple[int, str, int]]] = {
        **EmulatedModem.SETTINGS,
        "+QTONEDET": (1, "{}: {}", 0),
    }

    def __init__(self, *, uac: bool = False, pcm_voice: bool = True, **options: Any) -> None:
        super().__init__(serial_voice=True, sound_card=uac, **options)
        self.pcm_voice = pcm_voice
        self._qpcmv = (0, PCM_PORT_USB_SERIAL)
        self._ccinfo = False

    def _info_lines(self) -> list[str]:
        return [self.MANUFACTURER, self.MODEL, f"Revision: {self.REVISION}"]

    def _state_urcs(self, call: Call, stat: int) -> list[str]:
        lines = super()._state_urcs(call, stat)
        if self._ccinfo:
            code = -1 if stat == 6 else stat
            report = f'+QIND: "ccinfo",{call.index},{0 if call.outgoing else 1},{code},0,0'
            if call.number:
                report += f',"{call.number}",{145 if call.number.startswith("+") else 129}'
            lines.append(report)
        return lines

    def _dtmf_urcs(self, key: str) -> list[str] | None:
        if not self._settings["+QTONEDET"]:
            return None  # no detector running: the keys only travel as tones
        return [f"+QTONEDET: {ord(key)}"]

    def _voice_route(self) -> str | None:
        call = self._call
        enabled, port = self._qpcmv
        if call is None or call.state != "active" or not enabled:
            return None
        if port == PCM_PORT_USB_SERIAL:
            return "serial"
        if port == PCM_PORT_UAC and self._card is not None:
            return "alsa"
        return None

    # --- Quectel commands ---

    def _cmd_qpcmv(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if not self.pcm_voice:
            raise AtError()  # firmware built without voice over USB
        if op == "=?":
            return ["+QPCMV: (0,1),(0-2)"]
        if op == "?":
            return [f"+QPCMV: {self._qpcmv[0]},{self._qpcmv[1]}"]
        if op != "=" or not args or args[0] not in ("0", "1"):
            raise AtError(50)
        port = args[1] if len(args) > 1 and args[1] else "0"
        if port not in ("0", "1", "2"):
            raise AtError(50)
        if port == str(PCM_PORT_UAC) and self._card is None:
            raise AtError(4)  # the UAC function is not in this USB configuration
        self._qpcmv = (int(args[0]), int(port))
        self._voice_changed()
        return []

    def _cmd_qindcfg(self, op: str, args: list[str], after: list[str]) -> list[str]:
        if op == "=?":
            kinds = ",".join(f'"{kind}"' for kind in QIND_TYPES)
            return [f"+QINDCFG: ({kinds}),(0,1),(0,1)"]
        if op != "=" or not args or args[0].lower() not in QIND_TYPES:
            raise AtError(50)
        kind = args[0].lower()
        if len(args) == 1:
            value = int(self._ccinfo) if kind == "ccinfo" else 1
            return [f'+QINDCFG: "{kind}",{value}']
        if args[1] not in ("0", "1"):
            raise AtError(50)
        if kind in ("ccinfo", "all"):
            self._ccinfo = args[1] == "1"
        return []

    EXTENDED: ClassVar[dict[str, Handler]] = {
        "+QPCMV": _cmd_qpcmv,
        "+QINDCFG": _cmd_qindcfg,
    }
