"""The drift buffer: ring wrap, overrun, underrun, priming, and holding its fill between clocks."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from appliance.audio.buffers import DriftBuffer

FRAME = 320  # 20 ms at 16 kHz


def ramp(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.int16)


def test_frames_come_out_in_order_across_the_wrap() -> None:
    buffer = DriftBuffer(frame_samples=4, target_samples=4, capacity_samples=10)
    taken = []
    for start in range(0, 40, 4):
        buffer.put(ramp(start, 4))
        frame = buffer.get_frame()
        taken.append(frame)
    # The first frame fades in from silence; the rest are the ramp, untouched, across wraps.
    assert np.array_equal(np.concatenate(taken[1:]), ramp(4, 36)), buffer
    assert buffer.stats()["underruns"] == 0, buffer


def test_chunks_of_any_length_wrap_correctly() -> None:
    buffer = DriftBuffer(frame_samples=5, target_samples=7, capacity_samples=12)
    buffer.put(ramp(0, 7))
    buffer.get_frame()  # primes: samples 0..4 (faded in)
    buffer.put(ramp(7, 9))  # crosses the end of the ring
    assert np.array_equal(buffer.get_frame(), ramp(5, 5)), buffer
    assert np.array_equal(buffer.get_frame(), ramp(10, 5)), buffer
    assert buffer.fill == 1, buffer


def test_overrun_drops_the_oldest_samples_and_is_counted() -> None:
    buffer = DriftBuffer(frame_samples=4, target_samples=4, capacity_samples=8)
    buffer.put(ramp(0, 6))
    buffer.put(ramp(6, 6))  # 12 samples into 8: 0..3 go
    assert buffer.fill == 8
    assert buffer.stats()["overruns"] == 1
    buffer.get_frame()  # priming frame: 4..7, faded in
    assert np.array_equal(buffer.get_frame(), ramp(8, 4)), buffer


def test_a_chunk_longer_than_the_ring_keeps_its_newest_samples() -> None:
    buffer = DriftBuffer(frame_samples=4, target_samples=4, capacity_samples=8)
    buffer.put(ramp(0, 20))
    assert buffer.fill == 8
    buffer.get_frame()
    assert np.array_equal(buffer.get_frame(), ramp(16, 4)), buffer


def test_underrun_plays_what_is_left_then_fades_to_silence_and_is_counted() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    loud = np.full(FRAME, 20000, dtype=np.int16)
    buffer.put(loud)
    buffer.get_frame()
    buffer.put(loud[:100])
    frame = buffer.get_frame()

    assert len(frame) == FRAME and frame.dtype == np.int16
    assert np.all(frame[:100] == 20000)
    fade = frame[100:140].astype(int)
    assert np.all(np.diff(fade) <= 0) and fade[0] < 20000, "a ramp down, not a step"
    assert np.all(frame[140:] == 0), "then silence, never noise"
    assert buffer.stats()["underruns"] == 1, buffer


def test_an_empty_buffer_fades_from_the_last_sample_played() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(np.full(FRAME, -8000, dtype=np.int16))
    buffer.get_frame()
    frame = buffer.get_frame()
    assert -8000 < frame[0] < 0 and np.all(frame[40:] == 0), buffer
    assert buffer.stats()["underruns"] == 1


def test_after_an_underrun_it_stays_silent_until_primed_to_its_target() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=2 * FRAME)
    tone = np.full(FRAME, 1000, dtype=np.int16)
    buffer.put(tone)
    assert not buffer.get_frame().any(), "one frame is below the target: still priming"
    buffer.put(tone)
    assert buffer.get_frame().any(), "primed at the target"
    buffer.get_frame()
    assert buffer.stats()["underruns"] == 0, buffer
    buffer.get_frame()  # empty now
    assert buffer.stats()["underruns"] == 1, buffer

    buffer.put(tone)
    assert not buffer.get_frame().any(), "priming again: one frame is not enough"
    assert buffer.fill == FRAME
    buffer.put(tone)
    assert buffer.get_frame().any()
    assert buffer.stats()["underruns"] == 1, "priming silence is not an underrun"


def test_a_target_of_zero_means_a_single_frame() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=0)
    buffer.put(np.full(FRAME, 1000, dtype=np.int16))
    assert buffer.get_frame().any()
    assert buffer.target == 0


def test_playback_resumes_with_a_fade_in_not_a_click() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(np.full(FRAME, 20000, dtype=np.int16))
    frame = buffer.get_frame()
    assert frame[0] == 0 and frame[-1] == 20000
    assert np.all(np.diff(frame[:40].astype(int)) >= 0)


def test_target_must_fit_in_the_ring() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME, capacity_samples=4 * FRAME)
    buffer.set_target(3 * FRAME)
    assert buffer.target == 3 * FRAME
    with pytest.raises(ValueError, match="target_samples must be within"):
        buffer.set_target(4 * FRAME)


def test_clear_drops_the_audio_and_primes_again() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(np.full(3 * FRAME, 1000, dtype=np.int16))
    buffer.get_frame()
    buffer.clear()
    assert buffer.fill == 0
    assert not buffer.get_frame().any()
    assert buffer.stats()["underruns"] == 0


def test_repr_shows_the_state() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=2 * FRAME)
    buffer.put(np.zeros(100, dtype=np.int16))
    assert (
        "priming" in repr(buffer) and "fill=100/" in repr(buffer) and "target=640" in repr(buffer)
    )


def clocked_run(ppm: float, target: int, minutes: float = 10.0, settle_s: float = 30.0) -> dict:
    """A producer putting 20 ms chunks on a clock ``ppm`` faster than the consumer's frames.

    Deterministic: time advances one consumer frame per step; the producer puts every chunk
    whose time has come. Returns the counters after settling and the range of fills seen.
    """
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=target)
    chunk = np.zeros(FRAME, dtype=np.int16)
    producer_period = 1 / (1 + ppm * 1e-6)  # in consumer frames
    next_put = 0.3  # the two clocks' phases differ
    frames = int(minutes * 60 * 50)
    settle = int(settle_s * 50)
    fills = []
    for step in range(frames):
        while next_put <= step + 1:
            buffer.put(chunk)
            next_put += producer_period
        if step == settle:
            before = buffer.stats()
        if step >= settle:
            fills.append(buffer.fill)
        buffer.get_frame()
    after = buffer.stats()
    counts = {key: after[key] - before[key] for key in after if key != "fill"}
    return {**counts, "frames": frames - settle, "low": min(fills), "high": max(fills)}


@pytest.mark.parametrize("ppm", [300, -300])
def test_fill_holds_near_target_between_clocks_300_ppm_apart_for_ten_minutes(ppm: int) -> None:
    target = 2 * FRAME  # one frame to take plus one chunk to ride through phase crossings
    run = clocked_run(ppm, target)

    assert run["underruns"] == 0, run
    assert run["overruns"] == 0, run
    # Before a get the fill is anywhere in the band [target, target + frame + 5 ms], plus the
    # one chunk a producer puts twice in a step when the phases cross.
    assert target - FRAME <= run["low"], run
    assert run["high"] <= target + 2 * FRAME + FRAME // 4 + 1, run
    expected_slips = abs(ppm) * 1e-6 * FRAME * run["frames"]
    slips = run["slips_dropped"] if ppm > 0 else run["slips_added"]
    assert slips == pytest.approx(expected_slips, rel=0.1), run
    assert run["slips_added" if ppm > 0 else "slips_dropped"] == 0, run


def test_fill_holds_at_1000_ppm_too() -> None:
    run = clocked_run(-1000, 2 * FRAME, minutes=3)
    assert run["underruns"] == 0 and run["overruns"] == 0, run
    assert run["slips_added"] == pytest.approx(1000e-6 * FRAME * run["frames"], rel=0.1), run


def test_a_consumer_paced_by_its_producer_needs_only_one_frame() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    for _ in range(500):
        buffer.put(np.full(FRAME, 100, dtype=np.int16))
        buffer.get_frame()
    stats = buffer.stats()
    assert stats == {
        "underruns": 0, "overruns": 0, "slips_added": 0, "slips_dropped": 0, "skips": 0, "fill": 0
    }


def test_a_slip_squeezes_one_extra_sample_into_a_smooth_frame() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(ramp(0, FRAME))
    buffer.get_frame()  # primed at the target
    buffer.put(ramp(FRAME, 2 * FRAME))  # two frames too many: not a burst, slipped away
    spans = []
    for n in range(3, 100):
        buffer.put(ramp(n * FRAME, FRAME))
        frame = buffer.get_frame().astype(int)
        assert np.all(np.diff(frame) >= 0), "a squeezed ramp is still a ramp"
        spans.append(frame[-1] - frame[0])
    # A squeezed frame holds 321 samples' span in 320; every other frame at most.
    assert set(spans) == {FRAME - 1, FRAME}, spans
    assert all(a + b < 2 * FRAME for a, b in itertools.pairwise(spans)), spans
    assert buffer.stats()["slips_dropped"] == spans.count(FRAME), buffer


def test_frames_handed_over_between_threads_arrive_intact() -> None:
    buffer = DriftBuffer(frame_samples=160, target_samples=160)
    ready, taken = threading.Event(), threading.Event()
    rounds = 100

    def produce() -> None:
        for n in range(rounds):
            for start in range(0, 160, 37):  # odd pieces, across the ring's end
                buffer.put(ramp(n * 160 + start, min(37, 160 - start)))
            ready.set()
            taken.wait(5)
            taken.clear()

    producer = threading.Thread(target=produce)
    producer.start()
    frames = []
    for _ in range(rounds):
        assert ready.wait(5), buffer
        ready.clear()
        frames.append(buffer.get_frame())
        taken.set()
    producer.join()
    assert np.array_equal(np.concatenate(frames)[160:], ramp(160, 160 * (rounds - 1))), buffer
    assert buffer.stats()["slips_added"] + buffer.stats()["slips_dropped"] == 0


@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.75, 0.99])
def test_equal_clocks_never_slip_whatever_their_phase(phase: float) -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=2 * FRAME)
    chunk = np.zeros(FRAME, dtype=np.int16)
    next_put = phase
    for step in range(5000):
        while next_put <= step + 1:
            buffer.put(chunk)
            next_put += 1.0
        buffer.get_frame()
    stats = buffer.stats()
    assert stats["slips_added"] == stats["slips_dropped"] == 0, buffer
    assert stats["underruns"] == 0, buffer


def test_a_larger_target_takes_effect_at_once_without_warping_audio() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    ramp = (np.arange(FRAME * 200) % 1000).astype(np.int16)
    out = []
    for index in range(200):
        buffer.put(ramp[index * FRAME : (index + 1) * FRAME])
        out.append(buffer.get_frame())
        if index == 50:
            buffer.set_target(3 * FRAME)  # e.g. jitterBufferSize="large" on joining
    heard = np.concatenate(out)
    # One gap of silence (two frames) is inserted; the audio after it is the source, unwarped.
    assert not heard[51 * FRAME : 53 * FRAME].any()
    after = heard[53 * FRAME :]
    assert set(np.diff(after.astype(np.int32)).tolist()) == {1, -999}, buffer
    assert buffer.stats()["slips_added"] == buffer.stats()["slips_dropped"] == 0


def test_a_burst_after_a_stalled_device_is_dropped_at_once_not_slipped() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(ramp(0, FRAME))
    buffer.get_frame()
    buffer.put(ramp(FRAME, 6 * FRAME))  # the device caught up five frames at once
    frame = buffer.get_frame().astype(int)
    assert buffer.stats()["skips"] == 1, buffer
    assert np.all(np.diff(frame) == 1), "the frame after a skip is plain audio"
    for n in range(7, 20):
        buffer.put(ramp(n * FRAME, FRAME))
        buffer.get_frame()
    assert buffer.stats()["slips_dropped"] == 0, buffer


def jittered_run(
    ppm: float,
    target: int = 2 * FRAME,
    minutes: float = 10.0,
    jitter_ms: float = 5.0,
    seed: int = 7,
    stall: tuple[float, float] | None = None,
) -> dict:
    """Like ``clocked_run``, but every chunk arrives up to ``jitter_ms`` early or late.

    Simulated time only (seeded, deterministic). ``stall`` = (at_s, for_s): the producer
    delivers nothing for ``for_s`` seconds, then everything it owes at once. The counters and
    fills are taken after the first 30 s.
    """
    rng = np.random.default_rng(seed)
    frames = int(minutes * 60 * 50)
    producer_period = 1 / (1 + ppm * 1e-6)  # in consumer frames
    due = np.arange(int(frames / producer_period) + 2) * producer_period + 0.3
    arrivals = np.maximum.accumulate(due + rng.uniform(-1, 1, len(due)) * jitter_ms / 20)
    if stall is not None:
        begin, end = stall[0] * 50, (stall[0] + stall[1]) * 50
        arrivals[(arrivals >= begin) & (arrivals < end)] = end
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=target, capacity_samples=8000)
    chunk = np.zeros(FRAME, dtype=np.int16)
    settle = 30 * 50
    before = buffer.stats()
    fills, next_chunk = [], 0
    for step in range(frames):
        while next_chunk < len(arrivals) and arrivals[next_chunk] <= step:
            buffer.put(chunk)
            next_chunk += 1
        if step == settle:
            before = buffer.stats()
        if step >= settle:
            fills.append(buffer.fill)
        buffer.get_frame()
    after = buffer.stats()
    counts = {key: after[key] - before[key] for key in after if key != "fill"}
    return {**counts, "frames": frames - settle, "mean": float(np.mean(fills)), "fills": fills}


@pytest.mark.parametrize("ppm", [300, -300])
def test_a_steady_drift_under_jitter_slips_one_way_at_the_drift_rate(ppm: int) -> None:
    run = jittered_run(ppm)  # ten minutes, chunks +-5 ms off their clock
    summary = {key: value for key, value in run.items() if key != "fills"}

    assert run["underruns"] == 0 and run["overruns"] == 0 and run["skips"] == 0, summary
    expected = abs(ppm) * 1e-6 * FRAME * run["frames"]  # 4.8 a second
    slips, wrong_way = (
        ("slips_dropped", "slips_added") if ppm > 0 else ("slips_added", "slips_dropped")
    )
    assert run[slips] == pytest.approx(expected, rel=0.1), summary
    assert run[wrong_way] == 0, summary


@pytest.mark.parametrize("ppm", [300, -300, 0])
def test_under_jitter_the_delay_stays_at_the_target(ppm: int) -> None:
    target = 2 * FRAME
    run = jittered_run(ppm, target=target, minutes=5)
    # The fill a get finds is the target plus what the two clocks' phase leaves: up to a frame
    # and the 5 ms dead band, on average; no creep over the run.
    assert target - FRAME // 4 <= run["mean"] <= target + FRAME + FRAME // 4, run["mean"]
    fills = run["fills"]
    first, last = np.mean(fills[: len(fills) // 4]), np.mean(fills[-len(fills) // 4 :])
    assert abs(last - first) <= FRAME, (first, last)


def test_a_stall_and_its_burst_under_jitter_cost_one_skip_and_no_slip_storm() -> None:
    run = jittered_run(300, minutes=3, stall=(60.0, 0.2))  # 200 ms of nothing, then all of it
    summary = {key: value for key, value in run.items() if key != "fills"}
    assert run["skips"] == 1, summary
    assert run["underruns"] <= 1 and run["overruns"] == 0, summary
    expected = 300e-6 * FRAME * run["frames"]
    assert run["slips_dropped"] <= 1.2 * expected and run["slips_added"] <= 20, summary
    assert max(run["fills"][-50 * 60 :]) <= 2 * FRAME + 2 * FRAME + FRAME // 4, summary


def test_a_late_consumer_taking_its_owed_frames_back_to_back_skips_nothing() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=2 * FRAME)
    source = ramp(0, 200 * FRAME)
    for n in range(200):
        buffer.put(source[n * FRAME : (n + 1) * FRAME])
        if n % 20 in (10, 11, 12):
            continue  # the tick is three frames late; it takes what it owes at once after
        for _ in range(4 if n % 20 == 13 else 1):
            buffer.get_frame()
    stats = buffer.stats()
    assert stats["skips"] == 0 and stats["underruns"] == 0, buffer


def test_after_an_underrun_a_backlog_is_trimmed_to_the_target_not_slipped_away() -> None:
    buffer = DriftBuffer(frame_samples=FRAME, target_samples=FRAME)
    buffer.put(ramp(0, FRAME))
    buffer.get_frame()
    buffer.get_frame()  # the producer is late: an underrun
    buffer.put(ramp(FRAME, 3 * FRAME))  # and catches up three frames at once
    buffer.get_frame()
    assert buffer.stats()["skips"] == 1 and buffer.fill == FRAME // 2, buffer
    for n in range(4, 100):
        buffer.put(ramp(n * FRAME, FRAME))
        buffer.get_frame()
    stats = buffer.stats()
    assert stats["slips_dropped"] == stats["slips_added"] == 0, buffer
    assert stats["underruns"] == 1, buffer
