"""The same conference, on every line driver, against that modem family's emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import load_audio
from appliance.sim.huawei import HuaweiModem
from appliance.sim.quectel import QuectelModem
from appliance.sim.sim800 import Sim800Modem
from appliance.sim.simcom import SimcomModem
from appliance.sim.soundcard import install_alsa_config
from appliance.sim.v253 import V253Modem
from tests.audio_checks import fraction_heard, normalised_xcorr, rms_dbfs
from tests.e2e.callers import wait_clock
from tests.harness import SPEED, free_port, spawn

pytestmark = pytest.mark.e2e
RATE = 8000


def simcom(name: str):
    modem = SimcomModem(name=name, speed=SPEED)
    return modem, f'driver = "simcom"\ncontrol = "{modem.control_path}"\n' \
                  f'audio = "serial:{modem.audio_path}"'


def quectel(name: str):
    modem = QuectelModem(name=name, speed=SPEED)
    return modem, f'driver = "quectel"\ncontrol = "{modem.control_path}"\n' \
                  f'audio = "serial:{modem.audio_path}"'


def huawei(name: str):
    modem = HuaweiModem(name=name, speed=SPEED)
    return modem, f'driver = "huawei"\ncontrol = "{modem.control_path}"\n' \
                  f'audio = "serial:{modem.audio_path}"'


def sim800(name: str):
    modem = Sim800Modem(name=name, speed=SPEED)
    audio = json.dumps(f"alsa:{modem.alsa_device}")  # a TOML basic string
    return modem, f'driver = "sim800"\ncontrol = "{modem.control_path}"\naudio = {audio}'


def v253_usr(name: str):
    modem = V253Modem(variant="usr", name=name, speed=SPEED)
    return modem, f'driver = "v253"\ncontrol = "{modem.control_path}"'


def v253_conexant(name: str):
    modem = V253Modem(variant="conexant", name=name, speed=SPEED)
    return modem, f'driver = "v253"\ncontrol = "{modem.control_path}"'


DRIVERS = [simcom, quectel, huawei, sim800, v253_usr, v253_conexant]


@pytest.mark.parametrize("make_modem", DRIVERS, ids=lambda make: make.__name__)
def test_two_callers_talk_in_a_conference_on_every_driver(make_modem, tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("ALSA_CONFIG_PATH", install_alsa_config(tmp_path))
    response = VoiceResponse()
    dial = Dial()
    dial.conference("room", beep="false", wait_url="", jitter_buffer_size="small")
    response.append(dial)
    (tmp_path / "rules.xml").write_text(str(response))
    modems, tables = {}, []
    for index in range(2):
        name = f"line{index}"
        modem, keys = make_modem(name)
        modem.start()
        modems[name] = modem
        tables.append(f'[[line]]\nname = "{name}"\n{keys}\nnumber = "+1555123000{index}"\n'
                      'voice_url = "rules.xml"\n')
    config = tmp_path / "config.toml"
    config.write_text(
        '[appliance]\nname = "test"\ndata_dir = "var"\n\n'
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n[sim]\nspeed = {SPEED}\n\n'
        + "\n".join(tables))
    daemon = spawn(config, modems, list(modems))
    try:
        a, b = modems["line0"], modems["line1"]
        a.ring("+15550001111", "Grandma")
        b.ring("+15550002222")
        assert a.wait_audio(30) and b.wait_audio(30), daemon.log_lines[-20:]
        wait_clock(a, RATE)
        wait_clock(b, RATE)
        wav = tmp_path / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav),
                        "Can everybody hear me on this line?"], check=True)
        speech = load_audio(wav, RATE)
        start = a.play(speech)
        wait_clock(a, start + len(speech) + RATE)
        wait_clock(b, b.sample_clock + RATE // 2)
        # Piece by piece: a bursty sound card may make a buffer slip samples, which warps a
        # long sentence's time scale by a few tenths of a percent but not what is heard.
        heard = fraction_heard(b.heard(), speech, RATE)
        assert heard > 0.9, f"B heard {heard:.0%} of A: {daemon.state()['ports']}"
        own = a.heard()[start: start + len(speech)]
        assert normalised_xcorr(own, speech)[0] < 0.3
        assert rms_dbfs(own) < -45, "A hears itself"
        a.hangup()
        b.hangup()
        assert a.wait_state("idle", 15) and b.wait_state("idle", 15)
        daemon.wait_log(r"conference room ended")
    finally:
        daemon.close()
