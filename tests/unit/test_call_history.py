"""The call history: bus events become call-log records and recordings-index entries in a real
Store, written on the history's own thread; stopping writes what is queued."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from appliance.call_history import CallHistory
from appliance.calls.conference import (
    ConferenceRegistry,
    ParticipantOptions,
    RecordingOptions,
    RoomOptions,
)
from appliance.calls.recording import RecordingStore
from appliance.events import EventBus
from appliance.store import Store
from tests.web_live_harness import FMT

A, B = "CA" + "a" * 32, "CA" + "b" * 32
WAIT = 10.0


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "db")
    yield store
    store.close()


@pytest.fixture
def bus():
    return EventBus()


@pytest.fixture
def history(bus, store):
    history = CallHistory(bus, store)
    history.start()
    yield history
    history.stop()


def test_a_call_is_logged_from_ringing_to_answer_to_its_room_to_its_end(bus, store, history):
    bus.publish("call.ringing", call_sid=A, line="gsm0", caller="+15557654321",
                direction="inbound")
    assert history.wait_idle(WAIT)
    ringing = store.calls.find(A)
    assert (ringing.status, ringing.line, ringing.from_) == ("ringing", "gsm0", "+15557654321")
    bus.publish("call.answered", call_sid=A, line="gsm0", direction="inbound")
    bus.publish("conference.join", conference="family", call_sid=A, participants=[])
    bus.publish("call.ended", call_sid=A, line="gsm0", reason="remote", status="completed",
                direction="inbound")
    assert history.wait_idle(WAIT)
    record = store.calls.find(A)
    assert record.status == "completed" and record.conference == "family"
    assert record.answered is not None and record.ended >= record.answered
    assert record.reason == "remote" and record.duration == 0
    assert store.calls.query(status="completed") == [record]


def test_an_unanswered_outbound_leg_keeps_its_direction_and_number(bus, store, history):
    bus.publish("call.ringing", call_sid=B, line="gsm1", caller="+15551230000",
                to="+15559990000", direction="outbound-dial", parent_call_sid=A)
    bus.publish("call.ringing", call_sid=B, line="gsm1", caller="+15551230000",
                to="+15559990000", direction="outbound-dial", parent_call_sid=A)  # alerting
    bus.publish("call.ended", call_sid=B, line="gsm1", reason="busy", status="busy",
                direction="outbound-dial")
    assert history.wait_idle(WAIT)
    [record] = store.calls.query()
    assert (record.direction, record.to, record.status) == ("outbound-dial", "+15559990000",
                                                            "busy")
    assert record.answered is None and record.duration == 0


def test_events_about_a_call_it_never_saw_ring_are_passed_over(bus, store, history):
    bus.publish("call.ended", call_sid=A, line="gsm0", reason="remote", status="completed")
    assert history.wait_idle(WAIT)
    assert store.calls.query() == []


def test_a_room_s_finished_recording_is_indexed_with_its_file_facts(bus, store, history,
                                                                    tmp_path):
    registry = ConferenceRegistry(FMT, bus.publish)
    room = registry.get_or_create("family")
    recordings = RecordingStore(tmp_path / "recordings", "http://appliance.test")
    record = RoomOptions(record=RecordingOptions(recordings, trim=False))
    room.join(A, ParticipantOptions(room=record))
    room.join(B, ParticipantOptions())
    rng = np.random.default_rng(1)
    for _ in range(50):  # one second of the room
        voice = rng.normal(0, 3000, FMT.samples).clip(-32768, 32767).astype(np.int16)
        room.mix({A: voice, B: FMT.silence()})
    finished = threading.Event()
    bus.subscribe(lambda event: finished.set()
                  if event.data.get("recording_status") == "completed" else None,
                  "conference.recording")
    room.end()
    assert finished.wait(WAIT)
    assert history.wait_idle(WAIT)
    [entry] = store.recordings.list()
    assert entry.sid == room.recording_sid and entry.conference == "family"
    assert entry.path == str(recordings.path_for(entry.sid))
    assert entry.size == recordings.path_for(entry.sid).stat().st_size > 0
    assert entry.duration == pytest.approx(1.0, abs=0.05)
    assert entry.created > 0 and entry.call_sid is None


def test_a_call_recording_event_is_indexed_and_an_absent_one_is_not(bus, store, history):
    bus.publish("call.recording", call_sid=A, recording_sid="RE" + "1" * 32,
                path="/data/recordings/x.wav", started=1000.0, duration=3.5, size=112044,
                status="completed")
    bus.publish("call.recording", call_sid=A, recording_sid="RE" + "2" * 32, path="",
                started=1000.0, status="absent")
    assert history.wait_idle(WAIT)
    [entry] = store.recordings.list()
    assert (entry.sid, entry.call_sid, entry.duration, entry.size) == (
        "RE" + "1" * 32, A, 3.5, 112044)


def test_stop_writes_everything_queued_and_stops_listening(bus, store):
    history = CallHistory(bus, store)
    history.start()
    for n in range(30):
        bus.publish("call.ringing", call_sid=f"CA{n:032d}", line="gsm0", caller=f"+1555{n}")
    history.stop()
    assert len(store.calls.query(limit=100)) == 30
    bus.publish("call.ringing", call_sid="CA" + "f" * 32, line="gsm0", caller="+1")
    assert store.calls.find("CA" + "f" * 32) is None


def test_the_publisher_never_waits_for_the_disk(bus, store):
    history = CallHistory(bus, store)
    gate = threading.Event()
    saved = store.calls.save
    store.calls.save = lambda record: (gate.wait(WAIT), saved(record))[1]
    history.start()
    try:
        bus.publish("call.ringing", call_sid=A, line="gsm0", caller="+1")
        bus.publish("conference.level", conference="family", levels={})  # the tick's event
        # Both returned while the worker is stuck on the disk: publishing only queues.
        assert store.calls.find(A) is None
    finally:
        gate.set()
        history.stop()
    assert store.calls.find(A) is not None
