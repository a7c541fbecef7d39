"""Quectel EC25/EG25-G line driver: AT port plus voice on the USB NMEA port or through UAC.

An incoming call on an EC25 (Quectel EC25&EC21 AT Commands Manual; chan_quectel's
transcripts)::

    AT+QPCMV=1,0                                  (once: voice on the USB NMEA port; 1,2: UAC)
    RING
    +CLIP: "+15551230000",145,,,,0
    +QIND: "ccinfo",1,1,4,0,0,"+15551230000",145  (after AT+QINDCFG="ccinfo",1: incoming)
    ATA -> OK
    +QIND: "ccinfo",1,1,0,0,0,"+15551230000",145  (active: PCM frames flow)
    +QTONEDET: 53                                 (after AT+QTONEDET=1: the caller pressed 5)
    NO CARRIER
    +QIND: "ccinfo",1,1,-1,0,0,"+15551230000",145 (released)

An outbound call: ``ATD+15551234567;`` answers OK at once, then ccinfo reports ``<dir>`` 0
with ``<stat>`` 2 (dialing), 3 (alerting), 0 (active: voice as above) or -1 (released),
followed by ``BUSY``, ``NO ANSWER`` or ``NO CARRIER`` when it never connected.

With ``audio = "serial:/dev/ttyUSB1"`` voice is raw 8 kHz s16le on the NMEA port (turn the GNSS
sentences off with ``AT+QGPSCFG="outport","none"``, chan_quectel's advice); with
``audio = "alsa:plughw:CARD=Android,DEV=0"`` it is the module's USB audio class device.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from appliance.lines.at import DEFAULT_URC_PREFIXES, ATCommandError, CallEntry, split_fields
from appliance.lines.base import LineError
from appliance.lines.gsm import GsmDriver, parse_dtmf_key

log = logging.getLogger(__name__)

CCINFO_PREFIX = '+QIND: "ccinfo"'
RELEASED = 7  # chan_quectel's reading of the -1 that ccinfo reports for a released call


def parse_ccinfo(line: str) -> CallEntry:
    """``+QIND: "ccinfo",<id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>]`` as a call entry."""
    if not line.startswith("+QIND:"):
        raise ValueError(f"not a +QIND report: {line!r}")
    fields = [f.strip() for f in split_fields(line[len("+QIND:") :].strip())]
    if len(fields) < 6 or fields[0] != "ccinfo":
        raise ValueError(f"malformed ccinfo report: {line!r}")
    try:
        index, direction, stat = int(fields[1]), int(fields[2]), int(fields[3])
    except ValueError:
        raise ValueError(f"malformed ccinfo report: {line!r}") from None
    number = fields[6] if len(fields) > 6 else ""
    return CallEntry(index, direction == 1, RELEASED if stat < 0 else stat, number)


def parse_qtonedet(line: str) -> str:
    """The key of ``+QTONEDET: <ASCII code>`` (``+QTONEDET: 53`` is "5")."""
    value = line.partition(":")[2].split(",")[0].strip()
    if not line.startswith("+QTONEDET:") or not value.isdigit():
        raise ValueError(f"malformed +QTONEDET report: {line!r}")
    code = int(value)
    return parse_dtmf_key(chr(code) if 32 < code < 127 else "?", line)


class QuectelDriver(GsmDriver):
    """A Quectel EC25/EG25-G: AT commands on ``control``, voice on ``audio``."""

    MODEM = "EC25"
    INIT_COMMANDS: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("ATE0", True),
        ("AT+CMEE=2", False),
        ("AT+CLIP=1", True),  # caller id as +CLIP next to RING (TS 27.007 7.18)
        ('AT+QINDCFG="ccinfo",1,0', False),  # call state reports; older firmware lacks it
        ("AT+QTONEDET=1", False),  # the caller's keys as +QTONEDET (else in-band only)
    )
    URC_PREFIXES: ClassVar[tuple[str, ...]] = (*DEFAULT_URC_PREFIXES, "+QTONEDET:", "+QUSIM:")
    DTMF_PREFIXES: ClassVar[tuple[str, ...]] = ("+QTONEDET:",)

    def _setup(self) -> None:
        port = 2 if self.audio.scheme == "alsa" else 0
        command = f"AT+QPCMV=1,{port}"
        try:
            self._at(command)
        except ATCommandError as exc:
            where = "its USB audio class device" if port else "the USB serial port"
            raise LineError(
                f"{self.name}: the {self.MODEM} refused {command} ({exc.final}): its firmware "
                f"cannot carry voice on {where} (see hardware/quectel-ec25.md)"
            ) from exc

    def _on_dialect_urc(self, line: str) -> bool:
        if line.startswith(CCINFO_PREFIX):
            try:
                self._on_call_entry(parse_ccinfo(line))
            except ValueError as exc:
                log.warning("%s: %s", self.name, exc)
            return True
        if line.startswith(("+QIND:", "+QUSIM:")):
            log.debug("%s: %s", self.name, line)
            return True
        return False

    def _parse_dtmf(self, line: str) -> str:
        return parse_qtonedet(line)
