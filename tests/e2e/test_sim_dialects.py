"""``driver = "sim"`` lines of other families (``model = …``): the daemon builds the emulator and
runs the real driver against it, and `appliance sim`'s control socket places the calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import SpeechSynth, load_audio
from appliance.sim.client import SimClient
from tests.audio_checks import fraction_heard
from tests.e2e.callers import wait_for
from tests.harness import SPEED, free_port, spawn

pytestmark = pytest.mark.e2e
RATE = 8000
PROMPT = "Welcome to the family line."
MODELS = {"q": "quectel", "pots": "v253-usr"}


def test_sim_lines_of_other_models_answer_calls_placed_through_the_control_socket(
    tmp_path: Path,
) -> None:
    response = VoiceResponse()
    response.say(PROMPT)
    dial = Dial()
    dial.conference("family", wait_url="")
    response.append(dial)
    (tmp_path / "rules.xml").write_text(str(response))
    lines = "".join(
        f'\n[[line]]\nname = "{name}"\ndriver = "sim"\nmodel = "{model}"\n'
        f'number = "+1555123000{index}"\nvoice_url = "rules.xml"\n'
        for index, (name, model) in enumerate(MODELS.items()))
    config = tmp_path / "config.toml"
    config.write_text('[appliance]\nname = "sim models"\ndata_dir = "var"\n\n'
                      f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                      f"[sim]\nspeed = {SPEED}\n" + lines)
    daemon = spawn(config, ready_lines=tuple(MODELS))
    try:
        daemon.wait_log(r"line q: simulated quectel modem on /dev/pts/\d+ \(control\), "
                        r"voice on serial:/dev/pts/\d+")
        daemon.wait_log(r"line pots: simulated v253-usr modem on /dev/pts/\d+ \(control\), "
                        r"voice on the control port")
        client = SimClient(tmp_path / "var" / "sim.sock")
        prompt = SpeechSynth(tmp_path / "tts").synthesize(PROMPT, "", "en-US", RATE)
        for index, name in enumerate(MODELS):
            client.ring(name, f"+1555000900{index}", name="Caller")
            sid = daemon.wait_log(rf"line {name}: call (CA\w+) from \+1555000900{index}",
                                  timeout=30).group(1)
            daemon.wait_log(rf"line {name}: call {sid} answered", timeout=30)
            wait_for(lambda n=name: client.status()[n]["audio"], 20, f"{name}'s audio")
            daemon.wait_log(rf"{sid} joined conference family", timeout=30)  # prompt played
        status = client.status()
        for index, name in enumerate(MODELS):
            assert status[name]["state"] == "active"
            assert status[name]["caller_id"] == f"+1555000900{index}"
            heard = tmp_path / f"{name}.wav"
            assert client.record(name, heard) > 0
            share = fraction_heard(load_audio(heard, RATE), prompt, RATE)
            assert share > 0.7, f"the {MODELS[name]} caller heard {share:.0%} of the prompt"
        # The V.253 line has no outbound side: the socket says so and stays up.
        with pytest.raises(Exception, match="cannot take outbound calls"):
            client.far_end("pots", "answer")
        for name in MODELS:
            client.hangup(name)
            daemon.wait_log(rf"line {name}: call CA\w+ ended \(remote\)", timeout=20)
        assert daemon.stop() == 0
    finally:
        daemon.close()
