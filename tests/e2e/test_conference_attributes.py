"""<Conference> attributes beyond the seeds' examples, as simulated callers live them: beep
values, muted, waitUrl and waitMethod, maxParticipants, participantLabel, region,
jitterBufferSize, trim and eventCallbackUrl."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.media import load_audio
from appliance.audio.tones import tone, tone_segments
from tests.audio_checks import normalised_xcorr
from tests.e2e.callers import (
    RATE,
    conference,
    dial_in,
    heard_while,
    hears,
    joins_beeped,
    leaves_beeped,
    listen,
    quiet,
    talk,
    until_hung_up,
)
from tests.receiver import API_CONFIG

pytestmark = pytest.mark.e2e




def test_beep_on_enter_on_exit_and_a_muted_participant(start_daemon, voices):
    daemon = start_daemon([conference("room"), conference("room", beep="onEnter"),
                           conference("room", beep="onExit", muted=True)], lines=3)
    host, entering, leaving = (daemon.modems[f"gsm{i}"] for i in range(3))
    dial_in(host, "+15550000001")

    mark = host.sample_clock
    dial_in(entering, "+15550000002")
    daemon.wait_log(r"conference room started")
    listen(host, 2.5)
    assert joins_beeped(host.heard()[mark:]) == 1, "onEnter: a beep on joining"
    mark = host.sample_clock
    entering.hangup()
    listen(host, 2.5)
    assert leaves_beeped(host.heard()[mark:]) == 0, "onEnter: no beep on leaving"

    mark = host.sample_clock
    dial_in(leaving, "+15550000003")
    daemon.wait_log(r"joined conference room \(started\)", start=len(daemon.log_lines) - 5)
    listen(host, 2.5)
    assert joins_beeped(host.heard()[mark:]) == 0, "onExit: no beep on joining"
    (at_host,) = heard_while(leaving, voices("I am muted, nobody hears me."), host)
    assert quiet(at_host), "muted: not heard"
    words = voices("The muted caller still hears me.")
    (at_muted,) = heard_while(host, words, leaving)
    assert hears(at_muted, words), "muted: still hears the room"
    mark = host.sample_clock
    leaving.hangup()
    listen(host, 2.5)
    assert leaves_beeped(host.heard()[mark:]) == 1, "onExit: a beep on leaving"


def test_wait_url_audio_loops_twiml_is_requested_again_and_other_verbs_wait_in_silence(
    start_daemon, receiver, voices, tmp_path
):
    beeps = np.concatenate([tone(1000, 250, RATE), np.zeros(RATE // 4, np.int16)])
    soundfile.write(tmp_path / "wait.wav", beeps, RATE, subtype="PCM_16")  # next to the rules
    hold = VoiceResponse()
    hold.say("Please hold.")
    receiver.routes["/wait"] = lambda params: str(hold)
    broken = VoiceResponse()
    broken.say("Press a key.")
    broken.gather()
    receiver.routes["/wait-get"] = lambda params: str(broken)
    daemon = start_daemon([
        conference("music", wait_url="wait.wav", wait_method="GET"),
        conference("spoken", wait_url=receiver.url("/wait")),
        conference("broken", wait_url=receiver.url("/wait-get"), wait_method="GET"),
    ], lines=3, extra_config=API_CONFIG)
    music, spoken, broken_line = (daemon.modems[f"gsm{i}"] for i in range(3))
    for index, modem in enumerate((music, spoken, broken_line)):
        dial_in(modem, f"+1555000000{index}")

    tones = tone_segments(listen(music, 2.5), 1000, RATE, min_ms=150)
    assert len(tones) >= 4, "an audio waitUrl loops"

    requests = receiver.wait("/wait", 2, timeout=30)
    assert hears(listen(spoken, 2.0), voices("Please hold.")), "a TwiML waitUrl is rendered"
    for request in requests:
        assert request.method == "POST" and request.signed
        assert request.params["CallSid"].startswith("CA")
        assert request.params["From"] == "+15550000001"
        assert request.params["To"] == "+15551230001"

    (get,) = receiver.wait("/wait-get")
    assert get.method == "GET" and get.signed and get.params["From"] == "+15550000002"
    daemon.wait_log(r"error 13238: waitUrl .*/wait-get: <Gather> is not allowed")
    assert quiet(listen(broken_line, 1.5)), "the caller still waits, in silence"
    assert broken_line.state == "active"


def test_max_participants_and_a_taken_label_send_the_caller_to_the_next_verb(
    start_daemon, voices
):
    sorry = "Sorry, you cannot join this conference."
    daemon = start_daemon([
        conference("team", participant_label="alice", region="ie1"),
        conference("team", lambda r: r.say(sorry), participant_label="alice",
                   max_participants=2),
        conference("team", participant_label="carol", region="ie1"),
    ], lines=3)
    alice, late, carol = (daemon.modems[f"gsm{i}"] for i in range(3))
    dial_in(alice, "+15550000001")
    daemon.wait_log(r"joined conference team")

    dial_in(late, "+15550000002")
    assert hears(until_hung_up(late), voices(sorry)), "a taken label goes on to <Say>"
    daemon.wait_log(r'error 16025: label "alice" is taken in conference team')

    dial_in(carol, "+15550000003")
    daemon.wait_log(r"joined conference team \(started\)")
    mark = len(daemon.log_lines)
    dial_in(late, "+15550000002")
    assert hears(until_hung_up(late), voices(sorry)), "a full room goes on to <Say>"
    daemon.wait_log(r"not joining: conference team has 2 participants", start=mark)
    assert alice.state == carol.state == "active"
    region = [line for line in daemon.log_lines if 'region="ie1"' in line]
    assert len(region) == 1, "region is ignored, and said so once"


def one_way_delay(daemon, speaker: str, listener: str, words: np.ndarray) -> float:
    """Seconds of audio between the speaker saying ``words`` and the listener hearing them,
    on the two modems' own sample clocks."""
    talker, hearer = daemon.modems[speaker], daemon.modems[listener]
    mark = hearer.sample_clock
    start = talker.play(words)
    end = start + len(words) + RATE // 2
    while talker.sample_clock < end:
        listen(talker, 0.1)
    heard = hearer.heard()
    _peak, lag = normalised_xcorr(heard[mark:], words)
    said_at = talker.time_of_sample(start)
    heard_at = hearer.time_of_sample(mark + lag)
    return (heard_at - said_at) * talker.speed


def test_small_jitter_buffer_hears_sooner_than_large(start_daemon, voices):
    rules = [conference("small", beep=False, jitter_buffer_size="small")] * 2 + [
        conference("large", beep=False, jitter_buffer_size="large")] * 2
    daemon = start_daemon(rules, lines=4)
    for index in range(4):
        dial_in(daemon.modems[f"gsm{index}"], f"+1555000000{index}")
    daemon.wait_log(r"conference small started")
    daemon.wait_log(r"conference large started")
    words = voices("One, two, three.")
    # A busy machine only ever adds delay: the least of a few measurements, taken in turns so
    # both rooms see the same load, is the buffers' own.
    small, large = [], []
    for _ in range(3):
        small.append(one_way_delay(daemon, "gsm0", "gsm1", words))
        large.append(one_way_delay(daemon, "gsm2", "gsm3", words))
    targets = {port["jitter_target_ms"] for port in daemon.state()["ports"].values()}
    assert targets == {20, 60}
    assert 0 < min(small) < min(large), (small, large)
    assert min(large) - min(small) >= 0.025, f"large holds about 40 ms more: {small, large}"


def test_untrimmed_recording_keeps_the_silence_and_is_reported_on_event_callback_url(
    start_daemon, receiver, voices
):
    rules = conference("minutes", beep=False, wait_url="", record="record-from-start",
                       trim="do-not-trim", event_callback_url=receiver.url("/record-end"))
    daemon = start_daemon(rules, extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference minutes started")
    listen(a, 1.0)
    talk(a, voices("Short and sweet."), tail=1.0)
    b.hangup()
    a.hangup()
    (ended,) = receiver.wait("/record-end")
    assert ended.params["EventName"] == "conference-record-end" and ended.signed
    sid = ended.params["RecordingSid"]
    recording = load_audio(daemon.workdir / "var" / "recordings" / f"{sid}.wav", RATE)
    assert quiet(recording[: RATE // 2]), "do-not-trim keeps the leading silence"
    assert int(ended.params["Duration"]) == round(len(recording) / RATE) >= 2
    assert int(ended.params["RecordingFileSize"]) > len(recording) * 2
