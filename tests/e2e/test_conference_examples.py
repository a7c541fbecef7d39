"""The <Conference> examples of the Twilio and SignalWire references (seeds 000-003), each
played by simulated callers; the documents come from twilio's TwiML builder."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

import pytest
from twilio.twiml.voice_response import VoiceResponse

from appliance.audio.media import load_audio
from tests.audio_checks import beep_times, normalised_xcorr, rms_dbfs
from tests.e2e.callers import (
    RATE,
    conference,
    dial_in,
    heard_while,
    hears,
    hears_hold_music,
    joins_beeped,
    leaves_beeped,
    listen,
    quiet,
    talk,
    until_hung_up,
)
from tests.receiver import ACCOUNT_SID, API_CONFIG

pytestmark = pytest.mark.e2e
ENDED = "The conference has ended."




def test_moderated_room_waits_with_music_until_the_moderator_and_ends_with_them(
    start_daemon, voices
):
    attendee = conference("moderated-conference-room", lambda r: r.say(ENDED),
                          start_conference_on_enter=False)
    moderator = conference("moderated-conference-room", start_conference_on_enter=True,
                           end_conference_on_exit=True)
    daemon = start_daemon([attendee, attendee, moderator], lines=3)
    a, b, c = (daemon.modems[f"gsm{i}"] for i in range(3))

    dial_in(a, "+15550000001")
    assert hears_hold_music(listen(a, 2.0)), "the first attendee waits with hold music"
    dial_in(b, "+15550000002")
    waiting = listen(a, 2.0)
    assert hears_hold_music(waiting) and hears_hold_music(listen(b, 2.0))
    assert joins_beeped(waiting) == 0, "a second attendee does not start the room"

    dial_in(c, "+15550000003")
    daemon.wait_log(r"conference moderated-conference-room started")
    started = listen(a, 1.5)
    assert joins_beeped(started) == 1, "the moderator's arrival beeps"
    assert quiet(listen(a, 1.0)), "the music stopped"
    words = voices("Good morning everyone, shall we begin?")
    at_c, at_a = heard_while(b, words, c, a)
    assert hears(at_c, words) and hears(at_a, words)

    marks = [a.sample_clock, b.sample_clock]
    c.hangup()
    ended = voices(ENDED)
    for attendee_modem, mark in zip((a, b), marks, strict=True):
        assert attendee_modem.wait_state("idle", 20)
        assert hears(attendee_modem.heard()[mark:], ended), "each Dial goes on to <Say>"


def test_muted_monitor_hears_the_room_but_no_one_hears_it(start_daemon, voices):
    daemon = start_daemon([conference("SimpleRoom"), conference("SimpleRoom", muted=True)])
    talker, monitor = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(talker, "+15550000001")
    dial_in(monitor, "+15550000002")
    daemon.wait_log(r"conference SimpleRoom started")
    listen(talker, 1.0)  # the join beep
    words = voices("Can everyone hear me?")
    (at_monitor,) = heard_while(talker, words, monitor)
    assert hears(at_monitor, words)
    (at_talker,) = heard_while(monitor, voices("This is the monitor speaking."), talker)
    assert quiet(at_talker)


def test_bridged_calls_have_no_music_no_beep_and_end_together(start_daemon, voices):
    bridge = conference("NoMusicNoBeepRoom", lambda r: r.say(ENDED), beep=False, wait_url="",
                        start_conference_on_enter=True, end_conference_on_exit=True)
    daemon = start_daemon(bridge)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    assert quiet(listen(a, 1.5)), 'waitUrl="" waits in silence'
    mark = a.sample_clock
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference NoMusicNoBeepRoom started")
    assert quiet(listen(b, 1.0)) and quiet(a.heard()[mark:]), "no beep"
    words = voices("Hello, you are connected.")
    (at_b,) = heard_while(a, words, b)
    assert hears(at_b, words)
    mark = b.sample_clock
    a.hangup()
    assert b.wait_state("idle", 20)
    assert hears(b.heard()[mark:], voices(ENDED)), "the other leg goes on with its TwiML"


def test_call_on_hold_hears_music_until_the_agent_joins_without_a_beep(start_daemon, voices):
    thanks = "Thank you for calling."
    customer = conference("Customer Waiting Room", lambda r: r.say(thanks), beep=False)
    agent = conference("Customer Waiting Room", beep=False, end_conference_on_exit=True)
    daemon = start_daemon([customer, agent])
    waiting, operator = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(waiting, "+15550000001")
    assert hears_hold_music(listen(waiting, 2.0))
    mark = waiting.sample_clock
    dial_in(operator, "+15550000002")
    daemon.wait_log(r"conference Customer Waiting Room started")
    bridged = listen(waiting, 1.0)
    assert joins_beeped(waiting.heard()[mark:]) == 0, "no ding"
    assert quiet(bridged[RATE // 2 :]), "the music stopped"
    words = voices("Hi, this is the agent, how can I help?")
    (at_customer,) = heard_while(operator, words, waiting)
    assert hears(at_customer, words)
    end = waiting.sample_clock
    operator.hangup()
    assert waiting.wait_state("idle", 20)
    assert hears(waiting.heard()[end:], voices(thanks))
    assert leaves_beeped(waiting.heard()[mark:]) == 0


def test_dial_action_hangup_on_star_and_time_limit_around_a_conference(
    start_daemon, receiver, voices
):
    goodbye = "Goodbye from the action URL."
    response = VoiceResponse()
    response.say(goodbye)
    receiver.routes["/after"] = lambda params: str(response)
    after = receiver.url("/after")
    # callerId and timeout have no effect on a conference (seed 002, example 7).
    starred = conference("LoveTwilio", dial={"action": after, "method": "POST",
                                             "hangup_on_star": True, "time_limit": 30,
                                             "caller_id": "+15559999999", "timeout": 2})
    limited = conference("LoveTwilio", dial={"action": after, "time_limit": 3})
    daemon = start_daemon([starred, limited], extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    dial_in(b, "+15550000002")
    daemon.wait_log(r"conference LoveTwilio started")

    (limit,) = receiver.wait("/after")
    assert b.wait_state("idle", 20)
    heard_b = b.heard()
    joined = beep_times(heard_b, RATE, 660, 880)[0]
    _peak, said = normalised_xcorr(heard_b, voices(goodbye))
    assert 3.0 <= said / RATE - joined <= 4.0, "timeLimit: 3 s in the conference, audio time"
    assert limit.params["DialCallStatus"] == "completed"
    assert limit.method == "POST" and limit.signed

    mark = a.sample_clock
    a.press("*")
    (_limit, star) = receiver.wait("/after", 2)
    assert star.params["CallSid"] != limit.params["CallSid"]
    assert star.params["DialCallStatus"] == "completed" and star.signed
    assert hears(until_hung_up(a), voices(goodbye))
    assert (a.sample_clock - mark) / RATE < 10, "* left the conference"
    assert (mark / RATE) > 2, "the Dial's timeout did not cut the conference short"


def test_evented_conference_sends_signed_events_to_the_first_participants_url(
    start_daemon, receiver, voices
):
    events = receiver.url("/events")
    first = conference("EventedConf", status_callback=events,
                       status_callback_event="start end join leave mute hold speaker")
    later = conference("EventedConf", status_callback=receiver.url("/ignored"),
                       status_callback_event="start end join leave mute hold speaker modify")
    daemon = start_daemon([first, later], extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    receiver.wait("/events", 1)
    dial_in(b, "+15550000002")
    receiver.wait("/events", 3)
    listen(a, 1.0)
    talk(a, voices("Testing one two three"), tail=1.5)
    b.hangup()
    receiver.wait("/events", where=lambda r: r.params["StatusCallbackEvent"]
                  == "participant-leave")
    a.hangup()
    receiver.wait("/events", where=lambda r: r.params["StatusCallbackEvent"] == "conference-end")
    sent = receiver.at("/events")
    names = [r.params["StatusCallbackEvent"] for r in sent]
    speech = [name for name in names if "speech" in name]
    assert speech and speech[::2] == ["participant-speech-start"] * len(speech[::2])
    assert speech[1::2] == ["participant-speech-stop"] * len(speech[1::2])
    assert [name for name in names if "speech" not in name] == [
        "participant-join", "participant-join", "conference-start", "participant-leave",
        "participant-leave", "conference-end"]
    a_sid, b_sid = sent[0].params["CallSid"], sent[1].params["CallSid"]
    assert {r.params["CallSid"] for r in sent if "speech" in r.params["StatusCallbackEvent"]} \
        == {a_sid}
    assert all(r.signed and r.method == "POST" for r in sent)
    assert [int(r.params["SequenceNumber"]) for r in sent] == list(range(1, len(sent) + 1))
    assert {r.params["ConferenceSid"] for r in sent} == {sent[0].params["ConferenceSid"]}
    assert {r.params["FriendlyName"] for r in sent} == {"EventedConf"}
    assert {r.params["AccountSid"] for r in sent} == {ACCOUNT_SID}
    for r in sent:
        parsedate_to_datetime(r.params["Timestamp"])
    b_left = sent[names.index("participant-leave")].params
    assert b_left["CallSid"] == b_sid
    assert b_left["ReasonParticipantLeft"] == "participant_hung_up"
    assert b_left["ParticipantCallStatus"] == "completed"
    end = sent[-1].params
    assert end["ReasonConferenceEnded"] == "last-participant-left"
    assert end["CallSidEndingConference"] == a_sid
    assert receiver.at("/ignored") == [], "the first participant's statusCallback wins"


def test_recorded_conference_keeps_the_talk_not_the_hold_music(start_daemon, receiver, voices):
    rules = conference("LoveTwilio", record="record-from-start",
                       recording_status_callback=receiver.url("/recording"),
                       recording_status_callback_event="in-progress completed")
    daemon = start_daemon(rules, extra_config=API_CONFIG)
    a, b = daemon.modems["gsm0"], daemon.modems["gsm1"]
    dial_in(a, "+15550000001")
    music = listen(a, 2.0)
    dial_in(b, "+15550000002")
    (started,) = receiver.wait("/recording")
    listen(a, 1.0)
    words = voices("Minutes of the meeting: all agreed.")
    talk(a, words, tail=1.0)
    b.hangup()
    a.hangup()
    started, done = receiver.wait("/recording", 2)
    assert [started.params["RecordingStatus"], done.params["RecordingStatus"]] == [
        "in-progress", "completed"]
    assert started.signed and done.signed
    sid = done.params["RecordingSid"]
    assert re.fullmatch(r"RE[0-9a-f]{32}", sid) and started.params["RecordingSid"] == sid
    assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/recordings/{sid}", done.params["RecordingUrl"])
    assert done.params["AccountSid"] == ACCOUNT_SID
    assert done.params["ConferenceSid"].startswith("CF")
    assert done.params["RecordingChannels"] == "1"
    assert done.params["RecordingSource"] == "DialVerb"
    parsedate_to_datetime(done.params["RecordingStartTime"])
    recording = load_audio(daemon.workdir / "var" / "recordings" / f"{sid}.wav", RATE)
    assert int(done.params["RecordingDuration"]) == round(len(recording) / RATE)
    assert hears(recording, words), "the talk is recorded"
    music_peak, _lag = normalised_xcorr(recording, music[RATE // 2 :])
    assert music_peak < 0.3, "the hold music is not"
    edges = rms_dbfs(recording[:160]), rms_dbfs(recording[-160:])
    assert min(edges) > -65, f"leading and trailing silence are trimmed: {edges} dBFS"


def test_coach_is_heard_by_the_agent_only_and_an_unknown_coach_fails_the_dial(
    start_daemon, receiver, voices
):
    agent_line, _customer_line, coach_line = (f"+1555123000{i}" for i in range(3))
    calls: dict[str, list[str]] = {}

    def rules(params: dict[str, str]) -> str:
        calls.setdefault(params["To"], []).append(params["CallSid"])
        if params["To"] != coach_line:
            return conference("Example-Room", beep=False)
        first_time = len(calls[coach_line]) == 1
        coached = calls[agent_line][0] if first_time else "CA" + "0" * 32
        return conference("Example-Room", beep=False, coach=coached,
                          dial={"action": receiver.url("/coached")})

    receiver.routes["/voice"] = rules
    receiver.routes["/coached"] = lambda params: "<Response><Hangup/></Response>"
    redirect = VoiceResponse()
    redirect.redirect(receiver.url("/voice"))
    daemon = start_daemon(str(redirect), lines=3, extra_config=API_CONFIG)
    agent, customer, coach = (daemon.modems[f"gsm{i}"] for i in range(3))
    for index, modem in enumerate((agent, customer, coach)):
        dial_in(modem, f"+1555000000{index}")
        receiver.wait("/voice", index + 1)
        daemon.wait_log(rf"{calls[f'+1555123000{index}'][-1]} joined conference Example-Room")

    whisper = voices("Offer them the discount.")
    at_agent, at_customer = heard_while(coach, whisper, agent, customer)
    assert hears(at_agent, whisper), "the agent hears the coach"
    assert quiet(at_customer), "the customer does not"
    question = voices("Is there a cheaper plan?")
    at_agent, at_coach = heard_while(customer, question, agent, coach)
    assert hears(at_agent, question) and hears(at_coach, question), "the coach hears the room"

    coach.hangup()
    assert coach.wait_state("idle", 10)
    mark = len(daemon.log_lines)
    dial_in(coach, "+15550000002")
    (failed,) = receiver.wait("/coached")
    assert failed.params["DialCallStatus"] == "failed" and failed.signed
    daemon.wait_log(r"error 13240: coach: CA0{32} is not in conference Example-Room",
                    start=mark)
    assert coach.wait_state("idle", 10)
