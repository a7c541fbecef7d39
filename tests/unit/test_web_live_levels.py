"""The talking level a conference publishes for the live page: a few times a second at most,
and nothing while no rounded level changes (the tick stays cheap)."""

from __future__ import annotations

import numpy as np

from appliance.calls.conference import LEVEL_EVERY_SECONDS, Conference, ParticipantOptions
from tests.web_live_harness import FMT

A, B = "CA" + "a" * 32, "CA" + "b" * 32
TICKS_PER_SECOND = round(1 / FMT.period)


def loud() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(0, 3000, FMT.samples).clip(-32768, 32767).astype(np.int16)


def levels_published(seconds: float, frame_for_a) -> list[dict]:
    published: list[dict] = []
    room = Conference("room", FMT, lambda kind, **data: published.append(data)
                      if kind == "conference.level" else None)
    room.join(A, ParticipantOptions())
    room.join(B, ParticipantOptions())
    for tick in range(round(seconds * TICKS_PER_SECOND)):
        room.mix({A: frame_for_a(tick), B: FMT.silence()})
    return published


def test_a_talker_s_level_is_published_at_most_four_times_a_second():
    published = levels_published(2.0, lambda tick: loud())
    assert 1 <= len(published) <= 2.0 / LEVEL_EVERY_SECONDS + 1
    last = published[-1]["levels"]
    assert last[A]["talking"] is True and last[A]["level_dbfs"] > -30
    assert last[B] == {"level_dbfs": -96.0, "talking": False}


def test_a_level_that_changes_all_the_time_still_publishes_four_times_a_second():
    # Alternate loud and quiet frames every tick: the throttle, not the change, limits it.
    quiet = (loud() // 20).astype(np.int16)
    published = levels_published(2.0, lambda tick: loud() if (tick // 3) % 2 else quiet)
    assert len(published) <= 2.0 / LEVEL_EVERY_SECONDS + 1


def test_a_silent_room_publishes_no_levels():
    assert levels_published(2.0, lambda tick: FMT.silence()) == []
