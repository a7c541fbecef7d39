"""A room's events as Twilio's statusCallback, recordingStatusCallback and eventCallbackUrl
requests: which are sent, and with which parameters (seed 002's tables)."""

from __future__ import annotations

import threading
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource
from appliance.audio.tones import tone
from appliance.calls.conference import (
    Conference,
    ParticipantOptions,
    RecordingOptions,
    RoomOptions,
)
from appliance.calls.recording import RecordingStore
from appliance.calls.twilio_callbacks import CallbackUrl, TwilioConferenceCallbacks
from appliance.webhooks import WebhookSender

FMT = AudioFormat(16000, 20)
ACCOUNT = "AC" + "1" * 32
A, B = "CA" + "a" * 32, "CA" + "b" * 32
EVENTS_URL = "https://app.example.com/events"
ALL_EVENTS = ("start", "end", "join", "leave", "mute", "hold", "modify", "speaker",
              "announcement")


class FakeSender(WebhookSender):
    """Keeps what would be sent."""

    def __init__(self) -> None:
        super().__init__("token")
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.changed = threading.Event()

    def send(self, url, method, params) -> None:
        self.sent.append((url, method, dict(params)))
        self.changed.set()

    def events(self) -> list[str]:
        return [params.get("StatusCallbackEvent", "") for _url, _method, params in self.sent]


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


def callbacks(sender: FakeSender, events=ALL_EVENTS, **kwargs) -> TwilioConferenceCallbacks:
    return TwilioConferenceCallbacks(sender, ACCOUNT, CallbackUrl(EVENTS_URL), events, **kwargs)


def room_with(observer: TwilioConferenceCallbacks, **options) -> Conference:
    room = Conference("MyConf", FMT)
    room.join(A, ParticipantOptions(beep="false", label="agent",
                                    room=RoomOptions(observer=observer, **options)))
    return room


def test_join_start_leave_and_end_carry_twilios_parameters(sender):
    room = room_with(callbacks(sender))
    room.join(B, ParticipantOptions(beep="false", end_on_exit=True))
    room.leave(B)
    assert sender.events() == ["participant-join", "participant-join", "conference-start",
                               "participant-leave", "participant-leave", "conference-end"]
    for number, (url, method, params) in enumerate(sender.sent, start=1):
        assert (url, method) == (EVENTS_URL, "POST")
        assert params["ConferenceSid"] == room.sid and params["ConferenceSid"].startswith("CF")
        assert params["FriendlyName"] == "MyConf"
        assert params["AccountSid"] == ACCOUNT
        assert params["SequenceNumber"] == str(number)
        assert parsedate_to_datetime(params["Timestamp"]).utcoffset().total_seconds() == 0
    join = sender.sent[0][2]
    assert join["CallSid"] == A and join["ParticipantLabel"] == "agent"
    assert {key: join[key] for key in ("Muted", "Hold", "Coaching", "EndConferenceOnExit",
                                       "StartConferenceOnEnter")} == {
        "Muted": "false", "Hold": "false", "Coaching": "false", "EndConferenceOnExit": "false",
        "StartConferenceOnEnter": "true"}
    assert "CallSid" not in sender.sent[2][2], "conference-start is about the room"
    moderator_left, evicted, end = (sender.sent[i][2] for i in (3, 4, 5))
    assert moderator_left["CallSid"] == B
    assert moderator_left["ReasonParticipantLeft"] == "participant_hung_up"
    assert moderator_left["ParticipantCallStatus"] == "completed"
    assert evicted["CallSid"] == A
    assert evicted["ReasonParticipantLeft"] == "moderator_ended_conference"
    assert evicted["ParticipantCallStatus"] == "in-progress"
    assert end["ReasonConferenceEnded"] == "participant-with-end-conference-on-exit-left"
    assert end["CallSidEndingConference"] == B
    assert "ParticipantLabelEndingConference" not in end
    assert end["Reason"]


def test_only_the_chosen_events_are_sent(sender):
    room = room_with(callbacks(sender, events=("start", "end")))
    room.join(B, ParticipantOptions(beep="false"))
    room.set_muted(B, True)
    room.leave(B)
    room.leave(A)
    assert sender.events() == ["conference-start", "conference-end"]
    assert [params["SequenceNumber"] for _u, _m, params in sender.sent] == ["1", "2"]
    end = sender.sent[1][2]
    assert end["ReasonConferenceEnded"] == "last-participant-left"
    assert end["CallSidEndingConference"] == A
    assert end["ParticipantLabelEndingConference"] == "agent"


def test_mute_hold_modify_speaker_and_announcement_events(sender):
    room = room_with(callbacks(sender, events=("mute", "hold", "modify", "speaker",
                                                "announcement")))
    room.join(B, ParticipantOptions(beep="false"))
    room.set_muted(B, True)
    room.set_muted(B, False)
    room.set_held(B, True)
    room.set_held(B, False)
    room.modify(B, end_on_exit=True)
    loud = tone(440, 20, FMT.rate, amplitude=0.5)
    for _ in range(3):
        room.mix({B: loud})
    for _ in range(25):
        room.mix({})
    room.announce(BufferSource(tone(500, 20, FMT.rate), FMT), "https://example.com/a.mp3")
    room.mix({})
    assert sender.events() == [
        "participant-mute", "participant-unmute", "participant-hold", "participant-unhold",
        "participant-modify", "participant-speech-start", "participant-speech-stop",
        "announcement-end"]
    assert sender.sent[0][2]["Muted"] == "true" and sender.sent[1][2]["Muted"] == "false"
    assert sender.sent[2][2]["Hold"] == "true"
    assert sender.sent[4][2]["EndConferenceOnExit"] == "true"
    assert sender.sent[5][2]["CallSid"] == B
    assert sender.sent[7][2]["AnnounceUrl"] == "https://example.com/a.mp3"


def test_a_coachs_join_says_whom_it_coaches(sender):
    room = room_with(callbacks(sender, events=("join",)))
    room.join(B, ParticipantOptions(beep="false", coach=A))
    coach = sender.sent[1][2]
    assert coach["Coaching"] == "true" and coach["CallSidToCoach"] == A


def recorded(sender: FakeSender, tmp_path: Path, **kwargs) -> Conference:
    store = RecordingStore(tmp_path, "http://10.0.0.2:8080")
    room = room_with(callbacks(sender, events=(), **kwargs),
                     record=RecordingOptions(store, trim=False))
    room.join(B, ParticipantOptions(beep="false"))
    loud = tone(440, 20, FMT.rate)
    for _ in range(50):
        room.mix({A: loud})
    room.leave(A)
    room.leave(B)
    return room


def wait_for_sent(sender: FakeSender, count: int) -> None:
    for _ in range(100):
        if len(sender.sent) >= count:
            return
        sender.changed.wait(0.05)
        sender.changed.clear()
    raise AssertionError(f"only {len(sender.sent)} callbacks: {sender.sent}")


def test_recording_status_callbacks_report_in_progress_and_completed(sender, tmp_path):
    target = "https://app.example.com/recording"
    room = recorded(sender, tmp_path, recording_callback=CallbackUrl(target, "GET"),
                    recording_events=("in-progress", "completed"))
    wait_for_sent(sender, 2)
    (url, method, started), (_url, _method, done) = sender.sent
    assert (url, method) == (target, "GET")
    assert started["RecordingStatus"] == "in-progress"
    assert done["RecordingStatus"] == "completed"
    sid = done["RecordingSid"]
    assert sid.startswith("RE") and len(sid) == 34 and started["RecordingSid"] == sid
    assert done["RecordingUrl"] == f"http://10.0.0.2:8080/recordings/{sid}"
    assert done["ConferenceSid"] == room.sid and done["AccountSid"] == ACCOUNT
    assert done["RecordingDuration"] == "1"
    assert done["RecordingChannels"] == "1"
    assert done["RecordingSource"] == "DialVerb"
    assert done["ErrorCode"] == "0"
    parsedate_to_datetime(done["RecordingStartTime"])
    assert (tmp_path / f"{sid}.wav").is_file()


def test_event_callback_url_gets_conference_record_end_without_a_recording_callback(
    sender, tmp_path
):
    room = recorded(sender, tmp_path, event_callback_url="https://app.example.com/ended")
    wait_for_sent(sender, 1)
    ((url, method, params),) = sender.sent
    assert (url, method) == ("https://app.example.com/ended", "POST")
    assert params["EventName"] == "conference-record-end"
    assert params["ConferenceSid"] == room.sid
    assert params["Duration"] == "1"
    assert int(params["RecordingFileSize"]) > 16000 * 2
    assert params["RecordingUrl"].endswith(params["RecordingSid"])


def test_event_callback_url_is_silent_when_a_recording_callback_is_set(sender, tmp_path):
    recorded(sender, tmp_path, recording_callback=CallbackUrl("https://app.example.com/r"),
             event_callback_url="https://app.example.com/ended")
    wait_for_sent(sender, 1)
    sender.changed.wait(0.3)
    assert [url for url, _m, _p in sender.sent] == ["https://app.example.com/r"]
