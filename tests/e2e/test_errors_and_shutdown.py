"""What a live appliance survives: broken call rules, SIGTERM mid-conference, a modem that
vanishes; and the `appliance sim` command line driving the daemon's own simulated lines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import SpeechSynth, load_audio
from appliance.sim.simcom import SimcomModem
from appliance.twiml.interpreter import APOLOGY
from tests.audio_checks import fraction_heard
from tests.harness import SPEED, Daemon, free_port, spawn

pytestmark = pytest.mark.e2e
RATE = 8000  # what the modem carries
PROMPT = "Welcome to the family line."
MALFORMED = "<Response>\n  <Say>Welcome</Say>\n  <Dial><Conference>family</Dial>\n</Response>\n"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], np.ndarray]:
    """``speech(text)``: the appliance's own espeak-ng speech at the modem's rate."""
    synth = SpeechSynth(tmp_path_factory.mktemp("tts"))
    return lambda text: synth.synthesize(text, "", "en-US", RATE)


def conference_rules() -> str:
    response = VoiceResponse()
    response.say(PROMPT)
    dial = Dial()
    dial.conference("family")
    response.append(dial)
    return str(response)


def test_malformed_rules_are_apologised_for_and_the_line_keeps_answering(start_daemon, speech):
    daemon = start_daemon(MALFORMED, lines=1)
    modem = daemon.modems["gsm0"]
    apology = speech(APOLOGY)
    for caller in ("+15550001111", "+15550002222"):
        mark, sent = len(daemon.log_lines), len(modem.commands)
        modem.ring(caller)
        assert modem.wait_state("active", 20)
        assert modem.wait_state("idle", 20), "the appliance did not hang up after its apology"
        heard = fraction_heard(modem.heard(), apology, RATE)
        assert heard > 0.7, f"{caller} heard {heard:.0%} of the apology"
        daemon.wait_log(r"call CA\w+: error 12100: .*rules\.xml.*not well-formed", start=mark)
        daemon.wait_log(r"line gsm0: call CA\w+ ended \(local\)", start=mark)
        assert "AT+CHUP" in modem.commands[sent:]
        assert daemon.process.poll() is None, "the daemon died"
    assert daemon.stop() == 0


def test_sigterm_hangs_up_every_call_and_exits_cleanly(start_daemon):
    daemon = start_daemon(conference_rules(), lines=2)
    for index, modem in enumerate(daemon.modems.values()):
        modem.ring(f"+1555000111{index}")
        assert modem.wait_state("active", 20)
    daemon.wait_log(r"conference family started")

    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert time.monotonic() - started < 5.0, "shutdown took too long"
    for name, modem in daemon.modems.items():
        assert modem.wait_state("idle", 1), f"{name} is still in a call"
        assert "AT+CHUP" in modem.commands, f"{name} was not hung up by the appliance"
    daemon.wait_log(r"signal SIGTERM received")
    daemon.wait_log(r"stopping: hanging up 2 call\(s\)")
    daemon.wait_log(r"\bstopped$")
    assert not [line for line in daemon.log_lines if "Traceback" in line]


def test_vanished_modem_is_retried_with_backoff_while_the_other_line_keeps_working(
    start_daemon, speech
):
    daemon = start_daemon(conference_rules(), lines=2, by_id=True)
    working = daemon.modems["gsm1"]
    daemon.unplug("gsm0")
    daemon.wait_log(r"line gsm0: gsm0: modem lost: .*; retrying in 1 s")
    daemon.wait_log(r"line gsm0: gsm0: cannot open .*gsm0-control: .*; retrying in 2 s")

    working.ring("+15550002222")
    assert working.wait_state("active", 20)
    daemon.wait_log(r"joined conference family")
    heard = fraction_heard(working.heard(), speech(PROMPT), RATE)
    assert heard > 0.7, f"the working line played {heard:.0%} of the prompt"
    assert daemon.process.poll() is None
    assert len(daemon.state()["calls"]) == 1

    # Plugged back in (a new device behind the same by-id names): the next retry takes it.
    mark = len(daemon.log_lines)
    replugged = SimcomModem(name="gsm0", number="+15551230000", speed=SPEED)
    replugged.start()
    daemon.modems["gsm0"] = replugged
    links = daemon.workdir / "serial"
    (links / "gsm0-control").symlink_to(replugged.control_path)
    (links / "gsm0-audio").symlink_to(replugged.audio_path)
    daemon.wait_log(r"line gsm0: ready", start=mark, timeout=10)
    replugged.ring("+15550003333")
    assert replugged.wait_state("active", 20)
    daemon.wait_log(r"conference family started", start=mark)
    assert daemon.stop() == 0


# --- driver = "sim" and `appliance sim` ------------------------------------------------------


def sim_config(workdir: Path) -> Path:
    (workdir / "rules.xml").write_text(conference_rules())
    lines = "".join(
        f'\n[[line]]\nname = "gsm{index}"\ndriver = "sim"\nnumber = "+1555123000{index}"\n'
        'voice_url = "rules.xml"\n'
        for index in range(2)
    )
    config = workdir / "config.toml"
    config.write_text(
        '[appliance]\nname = "sim line"\ndata_dir = "var"\n\n'
        f'[web]\nlisten = "127.0.0.1:{free_port()}"\n\n'
        f"[sim]\nspeed = {SPEED}\n" + lines
    )
    return config


def appliance(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def sim_daemon(tmp_path: Path) -> Iterator[Daemon]:
    daemon = spawn(sim_config(tmp_path), ready_lines=("gsm0", "gsm1"))
    try:
        yield daemon
    finally:
        daemon.close()


def test_sim_cli_rings_records_and_hangs_up_a_simulated_line(sim_daemon, speech, tmp_path):
    config = tmp_path / "config.toml"
    sim_daemon.wait_log(r"sim control listening on")

    ring = appliance("sim", "--config", config, "ring", "gsm0", "+15550001111", cwd=tmp_path)
    assert ring.returncode == 0, ring.stderr
    assert "gsm0: ringing from +15550001111" in ring.stdout
    sim_daemon.wait_log(r"line gsm0: call CA\w+ from \+15550001111")
    sim_daemon.wait_log(r"joined conference family")  # the prompt has been played

    status = appliance("sim", "--config", config, "status", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert rows["gsm0"][1:4] == ["active", "+15551230000", "+15550001111"]
    assert rows["gsm1"][1] == "idle"

    heard = tmp_path / "out.wav"
    record = appliance("sim", "--config", config, "record", "gsm0", heard, cwd=tmp_path)
    assert record.returncode == 0, record.stderr
    share = fraction_heard(load_audio(heard, RATE), speech(PROMPT), RATE)
    assert share > 0.7, f"the recording holds {share:.0%} of the prompt"

    hangup = appliance("sim", "--config", config, "hangup", "gsm0", cwd=tmp_path)
    assert hangup.returncode == 0, hangup.stderr
    sim_daemon.wait_log(r"line gsm0: call CA\w+ ended \(remote\)")
    assert sim_daemon.stop() == 0


def test_sim_cli_without_a_running_daemon_says_so_and_fails(tmp_path):
    config = sim_config(tmp_path)
    status = appliance("sim", "--config", config, "status", cwd=tmp_path)
    assert status.returncode != 0
    socket = tmp_path / "var" / "sim.sock"
    assert f"no simulator control socket at {socket}" in status.stderr
    assert "is `appliance run` running" in status.stderr
    assert status.stdout == ""


def test_a_star_pressed_in_band_leaves_the_conference_with_hangup_on_star(start_daemon,
                                                                         tmp_path) -> None:
    goodbye = "You have left the room."
    response = VoiceResponse()
    dial = Dial(hangup_on_star=True)
    dial.conference("room", wait_url="")
    response.append(dial)
    response.say(goodbye)
    daemon = start_daemon(str(response), lines=1)
    modem = daemon.modems["gsm0"]
    modem.ring("+15550001111")
    assert modem.wait_audio(20)
    daemon.wait_log(r"joined conference room")
    mark = modem.sample_clock
    modem.press("*", inband=True)  # a tone in the audio only: no +RXDTMF report
    wav = tmp_path / "goodbye.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), goodbye], check=True)
    reference = load_audio(wav, 8000)
    assert modem.wait_state("idle", 30), "the call should end after the goodbye"
    heard = fraction_heard(modem.heard()[mark:], reference, 8000)
    assert heard > 0.9, f"the caller heard {heard:.0%} of the goodbye"
