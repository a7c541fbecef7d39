"""<Reject> on a live line: the emulated modem is told to release the ringing call (AT+CHUP)
and never to answer it (no ATA); the next caller is answered as usual."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.media import SpeechSynth
from tests.e2e.callers import Voices, dial_in, hears, wait_for

pytestmark = pytest.mark.e2e
WELCOME = "Welcome to the family line."


def test_reject_busy_refuses_the_call_unanswered_and_the_next_call_is_answered(
    start_daemon, tmp_path
):
    refuse = VoiceResponse()
    refuse.reject(reason="busy")
    refuse.say("Never heard")
    daemon = start_daemon(str(refuse), lines=1)
    modem = daemon.modems["gsm0"]

    modem.ring("+15550001111")
    ended = daemon.wait_log(r"call (CA\w+) ended \(rejected\); status busy")
    assert modem.wait_state("idle", 10), "the modem still has the call"
    commands = modem.commands
    assert "AT+CHUP" in commands, commands
    assert "ATA" not in commands, "the rejected call was answered"
    assert not modem.audio_active and modem.sample_clock == 0, "the call never went to audio"
    assert daemon.wait_log(rf"line gsm0: call {ended.group(1)} from")

    welcome = VoiceResponse()
    welcome.say(WELCOME)
    (daemon.workdir / "rules.xml").write_text(str(welcome))
    dial_in(modem, "+15550002222")
    assert modem.commands.count("ATA") == 1
    assert modem.wait_state("idle", 20), "the call should end after the welcome"
    voices = Voices(SpeechSynth(tmp_path / "tts"))
    heard = modem.heard()
    assert (peak := hears(heard, voices(WELCOME))), f"the second caller heard {peak}"

    def clean() -> bool:
        state = daemon.state()
        return not state["calls"] and state["call_threads"] == 0 and not state["attached_ports"]

    wait_for(clean, 10, "the daemon to release both calls", every=0.5)
    assert daemon.stop() == 0
