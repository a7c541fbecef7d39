"""The conference state machine: waiting, started, ended; wait music, beeps and mix-minus."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.audio.media import BufferSource
from appliance.audio.tones import join_beep, leave_beep, tone
from appliance.calls.conference import (
    Conference,
    ConferenceRegistry,
    ConferenceState,
    LeaveReason,
    ParticipantOptions,
)

FMT = AudioFormat(16000, 20)
A, B, C = "CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32
SILENCE = FMT.silence()


def voice(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2000, FMT.samples).clip(-32768, 32767).astype(np.int16)


def music(freq: float):
    samples = tone(freq, 1000, FMT.rate)
    return lambda: BufferSource(samples, FMT, loop=0)


def first_frame(freq: float) -> np.ndarray:
    return tone(freq, 1000, FMT.rate)[: FMT.samples]


@pytest.fixture
def room() -> Conference:
    return Conference("room", FMT)


def test_conference_waits_for_a_second_participant_then_starts(room):
    room.join(A, ParticipantOptions())
    assert room.state is ConferenceState.WAITING
    room.join(B, ParticipantOptions())
    assert room.state is ConferenceState.STARTED


def test_conference_waits_until_someone_who_starts_it_on_enter_joins(room):
    room.join(A, ParticipantOptions(start_on_enter=False))
    room.join(B, ParticipantOptions(start_on_enter=False))
    assert room.state is ConferenceState.WAITING
    room.join(C, ParticipantOptions(start_on_enter=True))
    assert room.state is ConferenceState.STARTED


def test_waiting_participants_hear_their_own_wait_music_and_not_each_other(room):
    room.join(A, ParticipantOptions(start_on_enter=False, wait_audio=music(440)))
    room.join(B, ParticipantOptions(start_on_enter=False, wait_audio=music(550)))
    heard = room.mix({A: voice(1), B: voice(2)})
    assert np.array_equal(heard[A], first_frame(440))
    assert np.array_equal(heard[B], first_frame(550))


def test_waiting_without_wait_audio_is_silence(room):
    room.join(A, ParticipantOptions())
    assert not room.mix({A: voice(1)})[A].any()


def test_once_started_the_wait_music_stops_and_the_room_is_heard(room):
    room.join(A, ParticipantOptions(beep="false", wait_audio=music(440)))
    room.mix({A: SILENCE})
    room.join(B, ParticipantOptions(beep="false", wait_audio=music(440)))
    heard = room.mix({A: voice(1), B: voice(2)})
    assert np.array_equal(heard[A], voice(2))
    assert np.array_equal(heard[B], voice(1))


def test_the_join_beep_plays_once_the_room_starts_not_while_waiting(room):
    room.join(A, ParticipantOptions())
    assert not room.mix({A: SILENCE})[A].any(), "no beep for a caller alone"
    room.join(B, ParticipantOptions())
    heard = room.mix({A: SILENCE, B: SILENCE})
    assert np.array_equal(heard[A], join_beep(FMT.rate)[: FMT.samples])


@pytest.mark.parametrize(
    ("beep", "on_join", "on_leave"),
    [("true", True, True), ("false", False, False), ("onEnter", True, False),
     ("onExit", False, True)],
)
def test_beeps_on_join_and_leave_follow_the_beep_attribute(room, beep, on_join, on_leave):
    room.join(A, ParticipantOptions(beep="false"))
    room.join(B, ParticipantOptions(beep="false"))
    room.join(C, ParticipantOptions(beep=beep))
    heard = room.mix({})
    assert bool(heard[A].any()) is on_join
    for _ in range(30):
        room.mix({})  # let the join beep finish
    room.leave(C)
    heard = room.mix({})
    assert bool(heard[A].any()) is on_leave
    if on_leave:
        assert np.array_equal(heard[A], leave_beep(FMT.rate)[: FMT.samples])


def test_beeps_are_heard_over_the_talk(room):
    room.join(A, ParticipantOptions())
    room.join(B, ParticipantOptions())
    heard = room.mix({A: SILENCE, B: voice(2)})
    beep = join_beep(FMT.rate)[: FMT.samples].astype(np.int32)
    assert np.array_equal(heard[A], np.clip(beep + voice(2), -32768, 32767).astype(np.int16))


def test_muted_participants_hear_the_room_but_are_not_heard(room):
    room.join(A, ParticipantOptions(beep="false"))
    room.join(B, ParticipantOptions(beep="false", muted=True))
    heard = room.mix({A: voice(1), B: voice(2)})
    assert np.array_equal(heard[B], voice(1))
    assert not heard[A].any()


def test_an_ordinary_participant_leaving_leaves_the_room_going(room):
    room.join(A, ParticipantOptions())
    room.join(B, ParticipantOptions())
    c = room.join(C, ParticipantOptions())
    room.leave(C)
    assert c.left.is_set() and c.leave_reason is LeaveReason.HANGUP
    assert room.state is ConferenceState.STARTED
    assert [p.call_sid for p in room.participants] == [A, B]


def test_an_end_on_exit_participant_leaving_ends_the_conference_for_everyone(room):
    a = room.join(A, ParticipantOptions())
    b = room.join(B, ParticipantOptions())
    room.join(C, ParticipantOptions(end_on_exit=True))
    room.leave(C)
    assert room.state is ConferenceState.ENDED
    assert a.left.is_set() and b.left.is_set()
    assert a.leave_reason is b.leave_reason is LeaveReason.CONFERENCE_ENDED
    assert room.participants == []


def test_the_last_participant_leaving_ends_the_conference(room):
    room.join(A, ParticipantOptions())
    room.leave(A)
    assert room.state is ConferenceState.ENDED
    with pytest.raises(RuntimeError):
        room.join(B, ParticipantOptions())


def test_leaving_twice_is_harmless(room):
    room.join(A, ParticipantOptions())
    room.join(B, ParticipantOptions())
    room.leave(B)
    room.leave(B)
    assert room.state is ConferenceState.STARTED


def test_a_room_name_is_reused_once_its_conference_has_ended():
    registry = ConferenceRegistry(FMT)
    first = registry.get_or_create("room")
    first.join(A, ParticipantOptions())
    first.leave(A)
    assert registry.active() == []
    assert registry.get_or_create("room") is not first
