"""TwiML's <Record> on a live line: the caller hears the beep, speaks, and the appliance keeps
what was said under data_dir/recordings, tells the action and the recordingStatusCallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from twilio.twiml.voice_response import Hangup, VoiceResponse

from appliance.audio.media import load_audio
from appliance.audio.tones import tone_segments
from tests.audio_checks import normalised_xcorr
from tests.e2e.callers import RATE, dial_in, hears, talk, wait_for
from tests.receiver import API_CONFIG

pytestmark = pytest.mark.e2e
SENTENCE = "Please call me back about the picnic."
HANGUP = str(VoiceResponse().append(Hangup()))




def beep_span(heard: np.ndarray) -> float:
    """From the start to the end of the 1 kHz beep (a busy machine's underrun may split it)."""
    segments = tone_segments(heard, 1000, RATE, min_ms=60)
    return segments[-1][1] - segments[0][0] if segments else 0.0


def recording_file(workdir: Path, sid: str) -> np.ndarray:
    path = workdir / "var" / "recordings" / f"{sid}.wav"
    wait_for(path.exists, 10, f"{path}")
    return load_audio(path, RATE)


def test_record_keeps_the_callers_words_after_the_beep_until_the_key(
    start_daemon, receiver, voices
):
    receiver.routes["/done"] = lambda params: HANGUP
    response = VoiceResponse()
    response.record(action=receiver.url("/done"), finish_on_key="#", timeout=3,
                    recording_status_callback=receiver.url("/status"))
    daemon = start_daemon(str(response), lines=1, extra_config=API_CONFIG)
    caller = daemon.modems["gsm0"]
    answered = dial_in(caller, "+15550001111")
    wait_for(lambda: beep_span(caller.heard()[answered:]) > 0.4, 10, "the beep")
    words = voices(SENTENCE)
    talk(caller, words, tail=0.6)
    span = beep_span(caller.heard()[answered:])
    assert 0.45 < span < 0.65, f"the beep lasts half a second ({span:.2f} s)"
    caller.press("#")

    (action,) = receiver.wait("/done")
    assert action.signed
    assert action.params["Digits"] == "#"
    sid = action.params["RecordingSid"]
    assert sid.startswith("RE") and action.params["RecordingUrl"].endswith(f"/recordings/{sid}")
    duration = int(action.params["RecordingDuration"])
    assert abs(duration - len(words) / RATE) <= 1, "trimmed to the words"
    recorded = recording_file(daemon.workdir, sid)
    # Cross-correlated piece by piece: a busy machine's drift-buffer slips warp a whole
    # sentence's alignment, not its quarter seconds.
    assert hears(recorded, words, 0.8), "the file holds the sentence"
    assert not tone_segments(recorded, 1000, RATE, min_ms=100), "the beep is not recorded"
    assert len(recorded) < len(words) + RATE // 2, "silence trimmed, nothing after the key"

    (status,) = receiver.wait("/status")
    assert status.signed, "X-Twilio-Signature validates with the auth token"
    assert status.params["RecordingSid"] == sid
    assert status.params["RecordingStatus"] == "completed"
    assert status.params["RecordingSource"] == "RecordVerb"
    assert status.params["RecordingChannels"] == "1"
    assert status.params["CallSid"] == action.params["CallSid"]
    assert status.params["AccountSid"] == action.params["AccountSid"]
    assert status.params["RecordingDuration"] == str(duration)
    assert caller.wait_state("idle", 20), "the action's <Hangup> ran"
    assert daemon.stop() == 0


def test_record_ends_after_the_silence_timeout(start_daemon, receiver, voices):
    receiver.routes["/done"] = lambda params: HANGUP
    response = VoiceResponse()
    response.record(action=receiver.url("/done"), timeout=1, play_beep=False, trim="do-not-trim")
    daemon = start_daemon(str(response), lines=1, extra_config=API_CONFIG)
    caller = daemon.modems["gsm0"]
    dial_in(caller, "+15550001111")
    words = voices("Short message.")
    started = talk(caller, words, tail=0.0)

    (action,) = receiver.wait("/done", timeout=20)
    assert action.params.get("Digits", "") == "", "no key ended it"  # blanks are not kept
    recorded = recording_file(daemon.workdir, action.params["RecordingSid"])
    assert hears(recorded, words, 0.8), "the words are in the file"
    _, lag = normalised_xcorr(recorded, words)
    silence_after = (len(recorded) - lag - len(words)) / RATE
    assert 0.9 <= silence_after <= 1.3, f"one second of silence ended it ({silence_after:.2f} s)"
    assert caller.sample_clock - started < 3 * RATE + len(words), "it did not wait for more"
    assert caller.wait_state("idle", 20)
