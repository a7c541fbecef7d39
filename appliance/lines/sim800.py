"""SIM800/SIM900 HAT line driver: AT on the UART, voice through a sound card (ALSA).

The SIM800's voice is analog: its SPK and MIC pins go to a sound card's line in and out (a
USB sound card or an I2S codec HAT), so ``audio`` is always ``alsa:...``. An incoming call
(SIM800 Series AT Command Manual V1.09)::

    RING
    +CLIP: "+15551230000",145,"",0,"",0
    ATA -> OK
    +CLCC: 1,1,0,0,0,"+15551230000",145       (after AT+CLCC=1: the call is active)
    +DTMF: 5                                  (after AT+DDET=1: the caller pressed 5)
    +CLCC: 1,1,6,0,0,"+15551230000",145       (disconnected)
    NO CARRIER

An outbound call: ``ATD+15551234567;`` -> OK, then ``+CLCC: 1,0,2,...`` (dialing),
``+CLCC: 1,0,3,...`` (alerting), ``+CLCC: 1,0,0,...`` (answered), or ``+CLCC: 1,0,6,...``
and ``BUSY`` / ``NO ANSWER`` / ``NO CARRIER`` when it never connects.
"""

from __future__ import annotations

from typing import ClassVar

from appliance.lines.at import DEFAULT_URC_PREFIXES
from appliance.lines.gsm import GsmDriver


class Sim800Driver(GsmDriver):
    """A SIM800/SIM900: AT commands on ``control`` (a UART), voice on an ALSA device."""

    MODEM = "SIM800"
    INIT_COMMANDS: ClassVar[tuple[tuple[str, bool], ...]] = (
        ("ATE0", True),
        ("AT+CMEE=2", False),
        ("AT+CLIP=1", True),  # caller id as +CLIP next to RING
        ("AT+CLCC=1", False),  # a +CLCC report at every change of call state
        ("AT+DDET=1", False),  # the caller's keys as +DTMF (else in-band only)
    )
    # Power-up and supply reports the SIM800 prints on its own (SIM800 manual, 19.3).
    URC_PREFIXES: ClassVar[tuple[str, ...]] = (
        *DEFAULT_URC_PREFIXES,
        "Call Ready",
        "SMS Ready",
        "+CFUN:",
        "UNDER-VOLTAGE",
        "OVER-VOLTAGE",
    )
    AUDIO_SCHEMES: ClassVar[tuple[str, ...]] = ("alsa",)
    HANGUP_COMMANDS: ClassVar[tuple[str, ...]] = ("ATH", "AT+CHUP")
    DTMF_PREFIXES: ClassVar[tuple[str, ...]] = ("+DTMF:",)
