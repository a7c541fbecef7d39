"""Two callers on emulated SIMCom modems meet in a conference; assertions on what each hears."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from appliance.audio.media import hold_music, load_audio
from tests.audio_checks import beep_times, normalised_xcorr, rms_dbfs
from tests.e2e.callers import wait_clock, wait_for

pytestmark = pytest.mark.e2e
RATE = 8000  # what the modem carries
PROMPT = "Welcome to the family line."


def speak(tmp_path: Path, text: str, name: str) -> np.ndarray:
    """An espeak-ng WAV of ``text`` at the modem's rate (what a caller 'says')."""
    wav = tmp_path / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), text], check=True)
    return load_audio(wav, RATE)


def conference_rules() -> str:
    response = VoiceResponse()
    response.say(PROMPT)
    dial = Dial()
    dial.conference("family")
    response.append(dial)
    return str(response)


def test_two_callers_meet_hear_beeps_and_each_other_but_not_themselves(start_daemon, tmp_path):
    daemon = start_daemon(conference_rules(), lines=2)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    prompt_reference = speak(tmp_path, PROMPT, "prompt")
    speech = speak(tmp_path, "The quick brown fox jumps over the lazy dog, twice.", "speech")

    # A calls: hears the spoken prompt, then the hold music, alone.
    a.ring("+15550001111")
    assert a.wait_state("active", 20)
    assert a.wait_audio(20)
    wait_clock(a, len(prompt_reference) + 4 * RATE)
    heard_a = a.heard()
    peak, prompt_at = normalised_xcorr(heard_a, prompt_reference)
    assert peak > 0.8, f"A did not hear the prompt (ncc {peak:.2f})"
    music = load_audio_from_hold_music()
    after_prompt = heard_a[prompt_at + len(prompt_reference):]
    music_peak, _ = normalised_xcorr(after_prompt, music[: RATE * 2])
    assert music_peak > 0.8, f"A did not hear the hold music (ncc {music_peak:.2f})"

    # B calls: once B is in, both hear the join beep.
    b_joined_at_a = a.sample_clock
    b.ring("+15550002222")
    assert b.wait_state("active", 20)
    wait_clock(b, len(prompt_reference) + int(2.5 * RATE))
    wait_for(lambda: beep_times(a.heard()[b_joined_at_a:], RATE, 660, 880),
             timeout=30, what="join beep at A", every=0.5)
    assert beep_times(b.heard(), RATE, 660, 880), "B did not hear the join beep"

    # A speaks: B hears it; A hears no copy of itself.
    a_start = a.play(speech)
    wait_clock(a, a_start + len(speech) + RATE)
    b_end = b.sample_clock
    heard_b = b.heard()[: b_end]
    peak_b, _ = normalised_xcorr(heard_b, speech)
    assert peak_b > 0.8, (f"B did not hear A clearly (ncc {peak_b:.2f}); "
                          f"modems: {a.stats()} {b.stats()}; daemon: {daemon.state()}; "
                          + "\n".join(line for line in daemon.log_lines if "WARN" in line))
    own = a.heard()[a_start: a_start + len(speech) + RATE]
    peak_own, _ = normalised_xcorr(own, speech)
    assert peak_own < 0.3, f"A hears itself (ncc {peak_own:.2f})"
    assert rms_dbfs(own) < -50, "the room is silent while A alone talks, as A hears it"

    # B hangs up: A hears the leave beep.
    leave_mark = a.sample_clock
    b.hangup()
    assert b.wait_state("idle", 10)
    wait_for(lambda: beep_times(a.heard()[leave_mark:], RATE, 880, 660),
             timeout=30, what="leave beep at A", every=0.5)

    # A hangs up: nothing is left behind in the daemon.
    a.hangup()
    assert a.wait_state("idle", 10)
    daemon.wait_log(r"call CA\w+ ended")

    def clean() -> bool:
        state = daemon.state()
        return (not state["calls"] and state["call_threads"] == 0
                and state["attached_ports"] == 0 and not state["conferences"]
                and not [t for t in state["threads"] if t.startswith(("call-", "serial-audio"))])

    wait_for(clean, 10, "daemon to release calls, threads and ports", every=0.5)
    assert daemon.stop() == 0


def load_audio_from_hold_music() -> np.ndarray:
    return hold_music(RATE)
