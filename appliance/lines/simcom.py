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

An outbound call, with the call state reports of ``AT+CLCC=1``::

    ATD+15551234567; -> OK
    +CLCC: 1,0,2,0,0,"+15551234567",145   (dialing)
    +CLCC: 1,0,3,0,0,"+15551234567",145   (alerting: the far end rings)
    +CLCC: 1,0,0,0,0,"+15551234567",145   (active)
    VOICE CALL: BEGIN                     (AT+CPCMREG=1 as for an answered call)
    ...or it never connects:
    +CLCC: 1,0,6,0,0,"+15551234567",145
    VOICE CALL: END: 000000
    BUSY                                  (or NO ANSWER, NO CARRIER)

With ``audio = "alsa:..."`` the modem's USB audio class device carries the voice instead of
the PCM tty: the call's audio then needs no AT+CPCMREG, only the sound card (``alsa_audio``).
The call handling itself is shared with the other GSM dialects in ``appliance.lines.gsm``.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from appliance.lines.at import ATCommandError
from appliance.lines.gsm import (
    DTMF_KEYS,
    AudioSpec,
    GsmCall,
    GsmDriver,
    parse_audio_spec,
    parse_dtmf_key,
)

__all__ = ["DTMF_KEYS", "AudioSpec", "SimcomDriver", "parse_audio_spec", "parse_rxdtmf"]

log = logging.getLogger(__name__)

DEVICE_RATE = 8000  # AT+CPCMFRM=0: 8 kHz linear PCM on the audio port
DEVICE_FRAME_SAMPLES = 160  # 20 ms, 320 bytes on the tty

# (command, required): the optional ones are missing from some firmware and only logged.
INIT_COMMANDS: tuple[tuple[str, bool], ...] = (
    ("ATE0", True),  # no command echo (V.25ter)
    ("AT+CMEE=2", False),  # +CME ERROR: <text> rather than a bare ERROR
    ("AT+CLIP=1", True),  # caller id as +CLIP next to RING (TS 27.007 7.18)
    ("AT+CRC=1", False),  # +CRING: VOICE instead of RING (TS 27.007 6.11)
    ("AT+CPCMFRM=0", False),  # 8 kHz PCM on the audio port (SIM7600 manual, chan_quectel)
    ("AT+DDET=1", False),  # DTMF detection, reported as +RXDTMF (chan_quectel on SIM7600G-H)
    ("AT+CLCC=1", False),  # a +CLCC report at each change: an outbound call's alerting
)


def parse_rxdtmf(line: str) -> str:
    """The key from ``+RXDTMF: <key>`` (SIM7600) or ``+DTMF: <key>[,<ms>]`` (AT+DDET firmware)."""
    for prefix in SimcomDriver.DTMF_PREFIXES:
        if line.startswith(prefix):
            return parse_dtmf_key(line[len(prefix) :].split(",")[0], line)
    raise ValueError(f"not a DTMF report: {line!r}")


class SimcomDriver(GsmDriver):
    """A SIM7500/SIM7600 modem: AT commands on ``control``, voice on ``audio``."""

    MODEM = "SIM7600"
    INIT_COMMANDS = INIT_COMMANDS
    DEVICE_RATE = DEVICE_RATE
    DEVICE_FRAME_SAMPLES = DEVICE_FRAME_SAMPLES
    DTMF_PREFIXES: ClassVar[tuple[str, ...]] = ("+RXDTMF:", "+DTMF:")

    def _on_dialect_urc(self, line: str) -> bool:
        if line.startswith("VOICE CALL: BEGIN"):
            with self._lock:
                call = self._call
                if call is not None:
                    call.began.set()
            if call is not None and call.outgoing:
                self._far_end_answered(call)
        elif line.startswith("VOICE CALL: END"):
            # SIM7600 sends VOICE CALL: END before NO CARRIER (or BUSY, NO ANSWER for a
            # dialled call); the remote hang-up ends the call here, a dial awaits its result.
            self._remote_end(line, answered_too=True)
        elif line.startswith("MISSED_CALL:"):
            self._remote_end(line, answered_too=False)
        else:
            return False
        return True

    def _parse_dtmf(self, line: str) -> str:
        return parse_rxdtmf(line)

    def _voice_on(self, call: GsmCall) -> None:
        if self.audio.scheme != "serial":
            return  # the USB audio class device carries every call
        try:
            self._at("AT+CPCMREG=1")
        except ATCommandError as exc:
            # chan_quectel retries AT+CPCMREG=1 when the voice channel was not up yet.
            log.info("%s: %s; retrying after VOICE CALL: BEGIN", self.name, exc)
            call.began.wait(2.0)
            self._at("AT+CPCMREG=1")

    def _voice_off(self) -> None:
        if self.audio.scheme == "serial":
            self._at("AT+CPCMREG=0")
