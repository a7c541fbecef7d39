"""Plivo's room features (seed 004), driven tick by tick: stayAlone, timeLimit, digitsMatch,
floorEvent, relayDTMF, enterSound "beep:2" and the callbackUrl's parameters."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frames import AudioFormat
from appliance.audio.media import SpeechSynth
from appliance.audio.tones import DTMF_FREQS, goertzel_power, join_beep, tone_segments
from appliance.calls.call import Call
from appliance.calls.conference import (
    Conference,
    ConferenceEvent,
    ConferenceRegistry,
    ConferenceState,
    EndReason,
    EventKind,
    LeaveReason,
    ParticipantOptions,
    RoomOptions,
)
from appliance.calls.plivo_callbacks import PlivoConferenceCallbacks
from appliance.calls.session import LiveCallSession
from appliance.calls.twilio_callbacks import CallbackUrl
from appliance.twiml.fetch import Fetcher
from appliance.twiml.interpreter import Interpreter
from appliance.twiml.media_cache import MediaCache
from appliance.twiml.verbs import PlivoConference

FMT = AudioFormat(16000, 20)
TICKS_PER_SECOND = 50  # 20 ms frames
A, B, C = "CA" + "a" * 32, "CA" + "b" * 32, "CA" + "c" * 32
CALLBACK = "http://example.test/conference"
QUIET = ParticipantOptions(beep="false")


class Observer:
    """Keeps every event the room reports."""

    def __init__(self) -> None:
        self.events: list[ConferenceEvent] = []

    def conference_event(self, conference: Conference, event: ConferenceEvent) -> None:
        self.events.append(event)

    def of(self, kind: EventKind) -> list[ConferenceEvent]:
        return [event for event in self.events if event.kind is kind]


class FakeSender:
    """A WebhookSender that records each send(url, method, params) instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def send(self, url: str, method: str, params: dict[str, str]) -> None:
        self.sent.append((url, method, dict(params)))

    def actions(self) -> list[str]:
        return [params["ConferenceAction"] for _url, _method, params in self.sent]

    def with_action(self, action: str) -> list[dict[str, str]]:
        return [params for _url, _method, params in self.sent
                if params["ConferenceAction"] == action]


class ScriptedKeys:
    """The caller's key presses in order; once they run out, ``then`` runs once (on the
    member's own thread, so nothing waits) and no more keys come."""

    def __init__(self, keys: str, then: Callable[[], None]) -> None:
        self._keys = list(keys)
        self._then: Callable[[], None] | None = then

    def get(self, timeout: float | None = None) -> str:
        if self._keys:
            return self._keys.pop(0)
        if self._then is not None:
            then, self._then = self._then, None
            then()
        raise queue.Empty


def voice(seed: int, level: float = 3000.0) -> np.ndarray:
    """A frame of noise at a talker's level, different per ``seed``."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, level, FMT.samples).clip(-32768, 32767).astype(np.int16)


def plivo(stay_alone: bool = True, **options) -> ParticipantOptions:
    return ParticipantOptions(beep="false", stay_alone=stay_alone, **options)


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
def room() -> Conference:
    return Conference("room", FMT)


def join_observed(room: Conference, observer: Observer, sid: str,
                  options: ParticipantOptions) -> None:
    options.room = RoomOptions(observer=observer)
    room.join(sid, options)


# --- stayAlone -------------------------------------------------------------------------------


def test_stay_alone_false_ends_the_room_when_a_member_leaving_leaves_one_alone(room, observer):
    join_observed(room, observer, A, plivo())
    room.join(B, plivo(stay_alone=False))
    room.leave(A)
    assert room.state is ConferenceState.ENDED
    assert room.end_reason is EndReason.MEMBER_ALONE
    assert room.participants == []
    (end,) = observer.of(EventKind.END)
    assert end.reason == "member-alone" and end.ending is not None and end.ending.call_sid == A
    left = {event.participant.call_sid: event.reason for event in observer.of(EventKind.LEAVE)}
    assert left == {A: LeaveReason.HANGUP.value, B: LeaveReason.CONFERENCE_ENDED.value}


def test_stay_alone_true_by_default_keeps_one_member_alone_in_the_room(room):
    room.join(A, plivo())
    room.join(B, plivo())
    room.leave(A)
    assert room.state is ConferenceState.STARTED
    assert [p.call_sid for p in room.participants] == [B]


def test_stay_alone_false_does_not_end_a_room_that_still_holds_two_members(room):
    for sid in (A, B, C):
        room.join(sid, plivo(stay_alone=sid != A))
    room.leave(C)
    assert room.state is ConferenceState.STARTED
    assert len(room.participants) == 2


def test_stay_alone_never_turns_back_to_true_once_its_false_member_has_left(room):
    room.join(A, plivo(stay_alone=False))
    room.join(B, plivo())
    room.join(C, plivo())  # joins later with stayAlone true: the room stays "false"
    room.leave(A)
    assert room.state is ConferenceState.STARTED, "two members remain"
    room.leave(B)
    assert room.state is ConferenceState.ENDED
    assert room.end_reason is EndReason.MEMBER_ALONE


# --- timeLimit -------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [1, 3, 5, 10])
def test_time_limit_ends_the_room_after_exactly_that_many_seconds_of_ticks(seconds, observer):
    room = Conference("room", FMT)
    room.join(A, plivo(room=RoomOptions(observer=observer, time_limit=float(seconds))))
    room.join(B, plivo())
    silence = {A: FMT.silence(), B: FMT.silence()}
    for tick in range(seconds * TICKS_PER_SECOND - 1):
        assert room.mix(silence), f"tick {tick + 1} ended the room early"
    assert room.state is ConferenceState.STARTED
    assert room.mix(silence) == {}
    assert room.state is ConferenceState.ENDED
    assert room.end_reason is EndReason.TIME_LIMIT
    assert observer.of(EventKind.END)[0].reason == "conference-time-limit"


def test_time_limit_counts_the_waiting_time_too():
    room = Conference("room", FMT)
    room.join(A, plivo(room=RoomOptions(time_limit=1.0)))
    for _tick in range(TICKS_PER_SECOND - 1):
        room.mix({})
    assert room.state is ConferenceState.WAITING
    room.mix({})
    assert room.state is ConferenceState.ENDED
    assert room.end_reason is EndReason.TIME_LIMIT


def test_no_time_limit_keeps_the_room_going(room):
    room.join(A, plivo())
    room.join(B, plivo())
    for _tick in range(20 * TICKS_PER_SECOND):
        room.mix({})
    assert room.state is ConferenceState.STARTED


# --- a member's keys through the call session: digitsMatch and relayDTMF ---------------------


class Room:
    """One room with member B already in it; member A joins through a real call session whose
    keys are scripted, and the test ticks the room while A is in it."""

    def __init__(self) -> None:
        self.registry = ConferenceRegistry(FMT)
        self.conference = self.registry.get_or_create("Room")
        self.conference.join(B, plivo())
        self.sender = FakeSender()
        self.call = Call("line1", "+15550001111", "+15551230000", sid=A)
        self.session = LiveCallSession(self.call, self.registry, lambda call: None,
                                       "AC" + "0" * 32, webhooks=self.sender)
        self.heard: list[dict[str, np.ndarray]] = []

    def press(self, keys: str, ticks: int = 0, **verb) -> str:
        """A joins, presses ``keys``, the room ticks ``ticks`` times, then A hangs up."""

        def listen_then_hang_up() -> None:
            for _tick in range(ticks):
                self.heard.append(self.conference.mix({}))
            self.call.end()

        self.call.keys = ScriptedKeys(keys, listen_then_hang_up)
        verb.setdefault("callback_url", CALLBACK)
        return self.session.join_plivo_conference(PlivoConference("Room", **verb),
                                                  None, None, None).status

    def heard_by(self, sid: str, frames: int) -> np.ndarray:
        return np.concatenate([outputs[sid] for outputs in self.heard[:frames]])


def dtmf_power(samples: np.ndarray, key: str) -> tuple[float, float]:
    low, high = DTMF_FREQS[key]
    return goertzel_power(samples, low, FMT.rate), goertzel_power(samples, high, FMT.rate)


def test_digits_match_reports_a_matching_sequence_to_the_callback_url():
    room = Room()
    assert room.press("12", digits_match=("12", "34")) == "hangup"
    (digits,) = room.sender.with_action("digits")
    assert digits["ConferenceDigitsMatch"] == "12"
    assert digits["CallUUID"] == A and digits["ConferenceMemberID"] == "2"
    assert room.sender.actions() == ["enter", "digits", "exit"]


def test_digits_match_reports_a_pattern_that_ends_a_longer_sequence():
    room = Room()
    room.press("9934", digits_match=("12", "34"))
    assert [p["ConferenceDigitsMatch"] for p in room.sender.with_action("digits")] == ["34"]


def test_digits_match_reports_nothing_for_a_sequence_that_does_not_match():
    room = Room()
    room.press("13", digits_match=("12", "34"))
    assert room.sender.with_action("digits") == []
    assert room.sender.actions() == ["enter", "exit"]


TONE_FRAMES = 5  # a relayed key is 100 ms of tone, then as long a gap


def test_relay_dtmf_plays_a_members_key_to_the_others_as_its_dtmf_tone():
    room = Room()
    room.press("5", ticks=2 * TONE_FRAMES)
    low, high = dtmf_power(room.heard_by(B, TONE_FRAMES), "5")
    assert low > 0.01 and high > 0.01


def test_relay_dtmf_does_not_play_a_members_key_back_to_the_presser():
    room = Room()
    room.press("5", ticks=2 * TONE_FRAMES)
    low, high = dtmf_power(room.heard_by(A, TONE_FRAMES), "5")
    assert low < 1e-6 and high < 1e-6


def test_relay_dtmf_false_keeps_keys_out_of_the_room():
    room = Room()
    room.press("5", ticks=2 * TONE_FRAMES, relay_dtmf=False)
    low, high = dtmf_power(room.heard_by(B, TONE_FRAMES), "5")
    assert low < 1e-6 and high < 1e-6


def test_keys_that_may_begin_a_digits_match_pattern_are_not_relayed():
    room = Room()
    room.press("1", ticks=2 * TONE_FRAMES, digits_match=("12",))
    low, high = dtmf_power(room.heard_by(B, TONE_FRAMES), "1")
    assert low < 1e-6 and high < 1e-6


# --- floorEvent ------------------------------------------------------------------------------


def test_the_loudest_talker_holds_the_floor_and_a_floor_event_follows_each_change(room,
                                                                                observer):
    join_observed(room, observer, A, plivo())
    room.join(B, plivo())
    for tick in range(5):
        room.mix({A: voice(tick, 6000), B: voice(100 + tick, 1500)})
    assert room.floor == A
    assert [e.participant.call_sid for e in observer.of(EventKind.FLOOR)] == [A]
    for tick in range(5):
        room.mix({A: voice(tick, 1500), B: voice(100 + tick, 6000)})
    assert room.floor == B
    assert [e.participant.call_sid for e in observer.of(EventKind.FLOOR)] == [A, B]


def test_the_floor_stays_with_its_holder_without_new_events(room, observer):
    join_observed(room, observer, A, plivo())
    room.join(B, plivo())
    for tick in range(20):
        room.mix({A: voice(tick, 6000), B: voice(100 + tick, 1500)})
    assert len(observer.of(EventKind.FLOOR)) == 1


def test_a_muted_member_never_takes_the_floor(room, observer):
    join_observed(room, observer, A, plivo())
    room.join(B, plivo(muted=True))
    for tick in range(5):
        room.mix({A: voice(tick, 1500), B: voice(100 + tick, 6000)})
    assert room.floor == A


def test_floor_event_true_sends_a_floor_callback_only_for_that_member(room):
    sender = FakeSender()
    a = PlivoConferenceCallbacks(sender, A, CallbackUrl(CALLBACK + "/a"), floor_event=True)
    b = PlivoConferenceCallbacks(sender, B, CallbackUrl(CALLBACK + "/b"), floor_event=False)
    room.join(A, plivo(room=RoomOptions(observer=a), observer=a))
    room.join(B, plivo(observer=b))
    for tick in range(5):
        room.mix({A: voice(tick, 6000), B: voice(100 + tick, 1500)})
    for tick in range(5):
        room.mix({A: voice(tick, 1500), B: voice(100 + tick, 6000)})
    assert room.floor == B
    floors = [(url, params) for url, _m, params in sender.sent
              if params["ConferenceAction"] == "floor"]
    assert floors == [(CALLBACK + "/a", {
        "ConferenceAction": "floor", "ConferenceName": "room", "ConferenceUUID": room.uuid,
        "ConferenceMemberID": "1", "CallUUID": A,
    })]


# --- enterSound ------------------------------------------------------------------------------


def enter_sound(sound: str, tmp_path: Path) -> np.ndarray | None:
    fetcher = Fetcher("AC" + "0" * 32, "0" * 32)
    interpreter = Interpreter(None, fetcher, SpeechSynth(tmp_path), FMT,  # type: ignore[arg-type]
                              MediaCache(fetcher, FMT.rate))
    return interpreter._room_sound("http://example.test/", sound, join_beep(FMT.rate))


def beeps_heard(sound: np.ndarray) -> list[tuple[float, float]]:
    """The 880 Hz notes (the join beep's second note) that the other member hears."""
    room = Conference("room", FMT)
    room.join(A, plivo())
    room.join(B, ParticipantOptions(beep="onEnter", enter_sound=sound))
    heard = [room.mix({})[A] for _tick in range(40)]
    return tone_segments(np.concatenate(heard), 880.0, FMT.rate)


def test_enter_sound_beep_2_plays_the_join_beep_twice_200_ms_apart(tmp_path):
    sound = enter_sound("beep:2", tmp_path)
    assert sound is not None
    beeps = beeps_heard(sound)
    assert len(beeps) == 2
    (_s1, end1), (start2, _e2) = beeps
    gap_after_note = start2 - end1  # 200 ms of silence, then the 120 ms first note
    assert gap_after_note == pytest.approx(0.32, abs=0.03)


def test_enter_sound_beep_1_plays_the_join_beep_once(tmp_path):
    sound = enter_sound("beep:1", tmp_path)
    assert sound is not None
    assert len(beeps_heard(sound)) == 1


def test_enter_sound_empty_plays_nothing(tmp_path):
    assert enter_sound("", tmp_path) is None


# --- the callbackUrl's parameters ------------------------------------------------------------


def members_with_callbacks(room: Conference, sender: FakeSender) -> None:
    for sid, path in ((A, "/a"), (B, "/b")):
        callbacks = PlivoConferenceCallbacks(sender, sid, CallbackUrl(CALLBACK + path, "GET"))
        room.join(sid, plivo(room=RoomOptions(observer=callbacks), observer=callbacks))


def test_callbacks_send_enter_with_the_documented_parameters_to_each_members_url(room):
    sender = FakeSender()
    members_with_callbacks(room, sender)
    assert sender.sent == [
        (CALLBACK + "/a", "GET", {
            "ConferenceAction": "enter", "ConferenceName": "room",
            "ConferenceUUID": room.uuid, "ConferenceMemberID": "1", "CallUUID": A}),
        (CALLBACK + "/b", "GET", {
            "ConferenceAction": "enter", "ConferenceName": "room",
            "ConferenceUUID": room.uuid, "ConferenceMemberID": "2", "CallUUID": B}),
    ]


def test_callbacks_send_exit_for_the_member_who_left(room):
    sender = FakeSender()
    members_with_callbacks(room, sender)
    room.join(C, plivo())
    sender.sent.clear()
    room.leave(B)
    assert sender.sent == [(CALLBACK + "/b", "GET", {
        "ConferenceAction": "exit", "ConferenceName": "room", "ConferenceUUID": room.uuid,
        "ConferenceMemberID": "2", "CallUUID": B})]


def test_callbacks_send_digits_with_conference_digits_match(room):
    sender = FakeSender()
    members_with_callbacks(room, sender)
    sender.sent.clear()
    room.report_digits(B, "34")
    assert sender.sent == [(CALLBACK + "/b", "GET", {
        "ConferenceAction": "digits", "ConferenceName": "room", "ConferenceUUID": room.uuid,
        "ConferenceMemberID": "2", "CallUUID": B, "ConferenceDigitsMatch": "34"})]


def test_conference_uuid_is_the_rooms_sid_as_a_uuid(room):
    assert room.uuid.replace("-", "") == room.sid[2:]


def test_callbacks_without_a_callback_url_send_nothing(room):
    sender = FakeSender()
    callbacks = PlivoConferenceCallbacks(sender, A)
    room.join(A, plivo(room=RoomOptions(observer=callbacks), observer=callbacks))
    room.join(B, plivo())
    room.report_digits(A, "12")
    room.leave(A)
    assert sender.sent == []
