"""The conference state machine, driven tick by tick: who hears whom, the events it reports,
its refusals and its recording."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource
from appliance.audio.tones import tone
from appliance.calls.conference import (
    Conference,
    ConferenceEvent,
    ConferenceRegistry,
    ConferenceState,
    EndReason,
    EventKind,
    JoinRefused,
    LeaveReason,
    ParticipantOptions,
    RecordingOptions,
    Refusal,
    RoomOptions,
)
from appliance.calls.recording import RecordingResult, RecordingStore

FMT = AudioFormat(16000, 20)
A, B, C = "CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32


class Observer:
    """Keeps every event the room reports; ``recorded`` is set once a recording ends."""

    def __init__(self) -> None:
        self.events: list[ConferenceEvent] = []
        self.recorded = threading.Event()

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        self.events.append(event)
        if event.kind is EventKind.RECORDING_END:
            self.recorded.set()

    def kinds(self) -> list[str]:
        return [event.kind.value for event in self.events]


def voice(seed: int, level: float = 3000.0) -> np.ndarray:
    """A frame of noise at a talker's level, different per ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, level, FMT.samples).clip(-32768, 32767).astype(np.int16)


def music() -> BufferSource:
    return BufferSource(tone(440, 1000, FMT.rate), FMT, loop=0)


@pytest.fixture
def bus() -> list[tuple[str, dict]]:
    return []


@pytest.fixture
def room(bus) -> Conference:
    return Conference("room", FMT, on_event=lambda kind, **data: bus.append((kind, data)))


def test_first_caller_waits_with_music_until_a_second_caller_starts_the_room(room):
    room.join(A, ParticipantOptions(wait_audio=music))
    heard = room.mix({A: voice(1)})
    assert room.state is ConferenceState.WAITING
    assert np.array_equal(heard[A], tone(440, 1000, FMT.rate)[: FMT.samples])
    room.join(B, ParticipantOptions(wait_audio=music))
    assert room.state is ConferenceState.STARTED
    a, b = voice(1), voice(2)
    heard = room.mix({A: a, B: b})
    beep = heard[A].astype(np.int32) - b  # both hear the join beep on top of the other
    assert np.abs(beep).max() > 1000
    assert np.array_equal(heard[A].astype(np.int32) - b, heard[B].astype(np.int32) - a)


def test_callers_without_start_on_enter_wait_muted_until_the_moderator_joins(room):
    room.join(A, ParticipantOptions(start_on_enter=False, wait_audio=music))
    room.join(B, ParticipantOptions(start_on_enter=False, wait_audio=music))
    heard = room.mix({A: voice(1), B: voice(2)})
    assert room.state is ConferenceState.WAITING
    assert not np.array_equal(heard[A], voice(2)), "a waiting caller is not heard"
    room.join(C, ParticipantOptions(beep="false", end_on_exit=True))
    assert room.state is ConferenceState.STARTED
    heard = room.mix({A: voice(1), B: voice(2), C: voice(3)})
    assert np.array_equal(heard[C], voice(1).astype(np.int32) + voice(2))


def test_coach_is_heard_only_by_the_participant_it_coaches(room):
    for sid in (A, B):
        room.join(sid, ParticipantOptions(beep="false"))
    room.join(C, ParticipantOptions(beep="false", coach=A))
    silence = FMT.silence()
    heard = room.mix({A: silence, B: silence, C: voice(3)})
    assert np.array_equal(heard[A], voice(3))
    assert not heard[B].any()
    heard = room.mix({A: voice(1), B: voice(2), C: silence})
    assert np.array_equal(heard[C], voice(1).astype(np.int32) + voice(2)), "the coach hears all"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (ParticipantOptions(label="alice"), Refusal.DUPLICATE_LABEL),
        (ParticipantOptions(max_participants=1), Refusal.FULL),
        (ParticipantOptions(coach="CA" + "0" * 32), Refusal.UNKNOWN_COACH),
    ],
)
def test_a_refused_caller_does_not_join_and_the_room_is_unchanged(room, options, reason):
    room.join(A, ParticipantOptions(label="alice"))
    with pytest.raises(JoinRefused) as refused:
        room.join(B, options)
    assert refused.value.reason is reason
    assert [p.call_sid for p in room.participants] == [A]
    assert room.state is ConferenceState.WAITING


def test_end_on_exit_participant_leaving_ends_the_room_for_everyone(room):
    observer = Observer()
    room.join(A, ParticipantOptions(room=RoomOptions(observer=observer)))
    b = room.join(B, ParticipantOptions())
    room.join(C, ParticipantOptions(end_on_exit=True, label="moderator"))
    room.leave(C)
    assert room.state is ConferenceState.ENDED
    assert b.left.is_set() and b.leave_reason is LeaveReason.CONFERENCE_ENDED
    assert observer.kinds() == ["join", "join", "start", "join", "leave", "leave", "leave", "end"]
    end = observer.events[-1]
    assert end.reason == EndReason.END_ON_EXIT_LEFT
    assert end.ending is not None and end.ending.call_sid == C and end.ending.label == "moderator"
    evicted = observer.events[5]
    assert evicted.reason == LeaveReason.CONFERENCE_ENDED
    assert evicted.end_reason == EndReason.END_ON_EXIT_LEFT


def test_last_participant_leaving_ends_the_room_and_names_that_participant(room):
    observer = Observer()
    room.join(A, ParticipantOptions(room=RoomOptions(observer=observer)))
    room.join(B, ParticipantOptions())
    room.leave(B)
    assert room.state is ConferenceState.STARTED, "one participant left keeps the room going"
    room.leave(A)
    end = observer.events[-1]
    assert (end.kind, end.reason) == (EventKind.END, EndReason.LAST_PARTICIPANT_LEFT)
    assert end.ending is not None and end.ending.call_sid == A


def test_the_first_participants_room_options_win(room):
    first, second = Observer(), Observer()
    room.join(A, ParticipantOptions(room=RoomOptions(observer=first)))
    room.join(B, ParticipantOptions(room=RoomOptions(observer=second)))
    assert first.kinds() == ["join", "join", "start"]
    assert second.events == []


def test_mute_hold_and_modify_report_changes_only(room, bus):
    observer = Observer()
    room.join(A, ParticipantOptions(beep="false", wait_audio=music,
                                    room=RoomOptions(observer=observer)))
    room.join(B, ParticipantOptions(beep="false"))
    room.set_muted(B, True)
    room.set_muted(B, True)
    room.set_muted(B, False)
    room.set_held(A, True)
    heard = room.mix({A: voice(1), B: voice(2)})
    assert np.array_equal(heard[A], tone(440, 1000, FMT.rate)[: FMT.samples]), "held: music"
    assert not heard[B].any(), "held: not heard"
    room.set_held(A, False)
    room.modify(B, end_on_exit=True)
    assert observer.kinds()[3:] == ["mute", "unmute", "hold", "unhold", "modify"]
    assert observer.events[-1].participant is not None
    assert observer.events[-1].participant.end_on_exit
    topics = [kind for kind, _data in bus]
    assert topics[3:] == ["conference.mute", "conference.mute", "conference.hold",
                          "conference.hold", "conference.modify"]
    assert bus[3][1]["muted"] is True and bus[4][1]["muted"] is False


def test_speech_is_detected_per_participant_with_levels_on_the_bus(room, bus):
    observer = Observer()
    room.join(A, ParticipantOptions(beep="false", room=RoomOptions(observer=observer)))
    b = room.join(B, ParticipantOptions(beep="false"))
    silence = FMT.silence()
    for _ in range(5):
        room.mix({A: silence, B: voice(2)})
    assert b.talking and b.level_dbfs > -30
    for _ in range(30):
        room.mix({A: silence, B: silence})
    assert not b.talking
    speech = [(e.kind, e.participant.call_sid) for e in observer.events
              if e.participant is not None and e.kind.value.startswith("speech")]
    assert speech == [(EventKind.SPEECH_START, B), (EventKind.SPEECH_STOP, B)]
    start = next(data for kind, data in bus if kind == "conference.speaker")
    assert start["call_sid"] == B and start["talking"] is True
    assert {p["call_sid"]: p["talking"] for p in start["participants"]} == {A: False, B: True}


def test_announcement_end_is_reported_when_it_has_played(room):
    observer = Observer()
    room.join(A, ParticipantOptions(beep="false", room=RoomOptions(observer=observer)))
    room.join(B, ParticipantOptions(beep="false"))
    room.announce(BufferSource(tone(500, 50, FMT.rate), FMT), "https://example.com/hello.mp3")
    for _ in range(4):
        room.mix({})
    ends = [e for e in observer.events if e.kind is EventKind.ANNOUNCEMENT_END]
    assert [e.announce_url for e in ends] == ["https://example.com/hello.mp3"]


def test_time_in_the_conference_is_counted_in_ticks(room):
    a = room.join(A, ParticipantOptions())
    for _ in range(50):
        room.mix({})
    assert a.seconds == pytest.approx(1.0)


def recorded_room(tmp_path: Path, trim: bool) -> tuple[Conference, Observer]:
    observer = Observer()
    store = RecordingStore(tmp_path, "http://appliance.local")
    options = RoomOptions(observer=observer, record=RecordingOptions(store, trim=trim))
    room = Conference("recorded", FMT)
    room.join(A, ParticipantOptions(beep="false", wait_audio=music, room=options))
    for _ in range(10):
        room.mix({A: voice(1)})  # waiting: the music and this are not recorded
    room.join(B, ParticipantOptions(beep="false"))
    return room, observer


def finished(observer: Observer) -> RecordingResult:
    assert observer.recorded.wait(5)
    result = observer.events[-1].recording
    assert result is not None
    return result


def test_recording_holds_the_mix_from_the_start_with_silence_trimmed(tmp_path):
    room, observer = recorded_room(tmp_path, trim=True)
    silence = FMT.silence()
    frames = [silence] * 5 + [voice(1), voice(2)] + [silence] * 5
    for frame in frames:
        room.mix({A: frame, B: silence})
    room.leave(A)
    room.leave(B)
    result = finished(observer)
    assert result.status == "completed"
    assert result.url == f"http://appliance.local/recordings/{result.sid}"
    samples, rate = soundfile.read(result.path, dtype="int16")
    assert rate == FMT.rate
    assert np.array_equal(samples, np.concatenate([voice(1), voice(2)]))
    assert result.duration == pytest.approx(0.04)
    start = observer.events[observer.kinds().index("recording-start")]
    assert start.recording is not None and start.recording.status == "in-progress"


def test_recording_without_trim_keeps_the_silence(tmp_path):
    room, observer = recorded_room(tmp_path, trim=False)
    silence = FMT.silence()
    for frame in [silence, voice(1), silence]:
        room.mix({A: frame, B: silence})
    room.end()
    samples, _rate = soundfile.read(finished(observer).path, dtype="int16")
    assert np.array_equal(samples, np.concatenate([silence, voice(1), silence]))


def test_silent_trimmed_recording_is_absent_and_leaves_no_file(tmp_path):
    room, observer = recorded_room(tmp_path, trim=True)
    for _ in range(5):
        room.mix({})
    room.end()
    result = finished(observer)
    assert result.status == "absent"
    assert not result.path.exists()


def test_a_coach_refused_by_an_empty_room_leaves_no_room_behind():
    registry = ConferenceRegistry(FMT)
    with pytest.raises(JoinRefused):
        registry.get_or_create("room").join(C, ParticipantOptions(coach=A))
    assert registry.active() == []
