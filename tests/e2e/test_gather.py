"""<Gather> on a live line: the caller keys a PIN on the emulated modem during the prompt."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.media import load_audio
from tests.audio_checks import fraction_heard, rms_dbfs

pytestmark = pytest.mark.e2e
RATE = 8000  # what the modem carries
ACCEPTED = "Your PIN is accepted. Welcome to the family line."


def espeak(text: str, wav: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    return load_audio(wav, RATE)


def test_a_pin_keyed_during_the_prompt_is_posted_to_the_gather_action(start_daemon, tmp_path):
    (tmp_path / "pin.xml").write_text(f"<Response><Say>{ACCEPTED}</Say></Response>")
    rules = ('<Response><Gather numDigits="4" action="pin.xml"><Say>Enter your PIN</Say>'
             "</Gather><Say>No PIN</Say></Response>")
    daemon = start_daemon(rules, lines=1)
    modem = daemon.modems["gsm0"]
    modem.ring("+15550001111")
    assert modem.wait_audio(20)
    deadline = time.monotonic() + 20
    while rms_dbfs(modem.heard()[-RATE // 10:]) < -40:  # the prompt has started
        assert time.monotonic() < deadline, "the prompt was never heard"
        time.sleep(0.02)
    mark = modem.sample_clock
    modem.press("1234")  # reported by the modem (+RXDTMF), as a keypad's presses are
    assert modem.wait_state("idle", 30), "the call should end after pin.xml"
    heard = modem.heard()[mark:]
    accepted = fraction_heard(heard, espeak(ACCEPTED, tmp_path / "accepted.wav"), RATE)
    assert accepted > 0.9, f"the caller heard {accepted:.0%} of pin.xml's speech"
    no_pin = fraction_heard(heard, espeak("No PIN", tmp_path / "no-pin.wav"), RATE)
    assert no_pin < 0.3, "the Gather fell through to the next verb"
    assert daemon.stop() == 0
