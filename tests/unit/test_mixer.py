"""Mix-minus in FreeSWITCH's exact order, checked against a plain int64 model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from appliance.mixer import mix_conference, mix_minus

SAMPLES = 8


def expected_mix(frames, contributors, listener, private=None, common=None) -> np.ndarray:
    """The definition: clip(sum of contributors - own + private + common), in int64."""
    total = sum((frames[key].astype(np.int64) for key in contributors), np.zeros(SAMPLES, np.int64))
    if listener in contributors:
        total = total - frames[listener]
    if private and listener in private:
        total = total + private[listener]
    if common is not None:
        total = total + common
    return np.clip(total, -32768, 32767).astype(np.int16)


def int16_frames(count: int) -> st.SearchStrategy[np.ndarray]:
    # Full-scale values are likely, so sums overflow int16 (and, with many talkers, +-65535).
    samples = st.one_of(st.integers(-32768, 32767), st.sampled_from([-32768, -32767, 32767]))
    return arrays(np.int16, (count, SAMPLES), elements=samples)


@st.composite
def conferences(draw):
    count = draw(st.integers(1, 24))  # from 8 talkers on, the block path runs
    rows = draw(int16_frames(count))
    frames = {f"p{i}": rows[i] for i in range(count)}
    keys = list(frames)
    contributors = draw(st.lists(st.sampled_from(keys), unique=True))
    listeners = draw(st.lists(st.sampled_from([*keys, "late-joiner"]), unique=True))
    whisperers = draw(st.lists(st.sampled_from([*keys, "late-joiner"]), unique=True, max_size=3))
    extras = draw(int16_frames(len(whisperers)))
    private = dict(zip(whisperers, extras, strict=True))
    common = draw(st.none() | int16_frames(1).map(lambda array: array[0]))
    return frames, contributors, listeners, private, common


@settings(max_examples=300, deadline=None)
@given(conferences())
def test_each_listener_hears_everyone_else_plus_its_private_and_common_audio(conference) -> None:
    frames, contributors, listeners, private, common = conference
    mixed = mix_conference(frames, contributors, listeners, private, common)

    assert set(mixed) == set(listeners)
    for listener in listeners:
        expected = expected_mix(frames, contributors, listener, private, common)
        assert mixed[listener].dtype == np.int16
        assert np.array_equal(mixed[listener], expected), listener


@st.composite
def rows_and_mask(draw):
    rows = draw(int16_frames(draw(st.integers(1, 20))))
    flags = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    return rows, flags


@settings(max_examples=200, deadline=None)
@given(rows_and_mask())
def test_mix_minus_rows_are_the_sum_of_contributing_rows_minus_their_own(case) -> None:
    rows, flags = case
    before = rows.copy()
    frames = {i: row for i, row in enumerate(rows)}
    talkers = [i for i, flag in enumerate(flags) if flag]
    out = mix_minus(rows, np.array(flags))
    assert np.array_equal(rows, before), "the input is left alone"
    assert out.dtype == np.int16 and out.shape == rows.shape
    for i in range(len(rows)):
        assert np.array_equal(out[i], expected_mix(frames, talkers, i)), i


def speech(count: int, seed: int = 0) -> dict[int, np.ndarray]:
    noise = np.random.default_rng(seed).normal(0, 3000, (count, SAMPLES))
    return {i: row for i, row in enumerate(noise.astype(np.int16))}


@pytest.mark.parametrize("talking", [3, 20])
def test_listeners_who_neither_talk_nor_whisper_share_one_array(talking: int) -> None:
    frames = speech(250)
    everyone = list(frames)
    mixed = mix_conference(frames, everyone[:talking], everyone, private={249: frames[0]})
    silent = {id(mixed[key]) for key in everyone[talking:249]}
    assert len(silent) == 1
    shared = mixed[everyone[-2]]
    assert all(mixed[key] is not shared for key in [*everyone[:talking], 249])


def test_muted_participants_are_not_heard() -> None:
    frames = speech(5)
    frames[4] = np.full(SAMPLES, 30000, dtype=np.int16)  # loud, but muted
    with_muted = mix_conference(frames, [0, 1, 2], [0, 1, 2, 3, 4])
    without = mix_conference({k: v for k, v in frames.items() if k != 4}, [0, 1, 2], [0, 1, 2, 3])
    for key in range(4):
        assert np.array_equal(with_muted[key], without[key])


def test_a_talker_never_hears_itself() -> None:
    frames = {"alice": np.full(SAMPLES, 1000, np.int16), "bob": np.full(SAMPLES, 7, np.int16)}
    mixed = mix_conference(frames, ["alice", "bob"], ["alice", "bob"])
    assert np.all(mixed["alice"] == 7) and np.all(mixed["bob"] == 1000)


def test_clipping_happens_once_after_subtracting_own_audio() -> None:
    # Asterisk's order (clip the sum, then subtract) would give 32767 - 30000 = 2767 here.
    frames = {0: np.full(SAMPLES, 30000, np.int16), 1: np.full(SAMPLES, 20000, np.int16)}
    frames[2] = np.full(SAMPLES, -15000, np.int16)
    mixed = mix_conference(frames, [0, 1, 2], [0])
    assert np.all(mixed[0] == 5000)


def test_a_whisper_reaches_only_its_listener_and_an_announcement_everyone() -> None:
    frames = speech(4)
    whisper = np.full(SAMPLES, 500, np.int16)
    beep = np.full(SAMPLES, 100, np.int16)
    plain = mix_conference(frames, [0, 1], [0, 1, 2, 3])
    mixed = mix_conference(frames, [0, 1], [0, 1, 2, 3], private={3: whisper}, common=beep)
    for key in (0, 1, 2):
        assert np.array_equal(mixed[key], np.clip(plain[key].astype(int) + 100, -32768, 32767))
    assert np.array_equal(mixed[3], np.clip(plain[3].astype(int) + 600, -32768, 32767))


def test_a_room_where_nobody_talks_is_silence_of_frame_length() -> None:
    mixed = mix_conference(speech(3), [], [0, 1, 2])
    assert all(len(frame) == SAMPLES and not frame.any() for frame in mixed.values())


@pytest.mark.parametrize("count", [3, 40])
def test_when_everyone_talks_everyone_hears_all_the_others(count: int) -> None:
    rng = np.random.default_rng(count)
    frames = {i: rng.integers(-32768, 32768, SAMPLES).astype(np.int16) for i in range(count)}
    everyone = list(frames)
    mixed = mix_conference(frames, everyone, everyone)
    assert len({id(frame) for frame in mixed.values()}) == count
    for key in everyone:
        assert np.array_equal(mixed[key], expected_mix(frames, everyone, key))


def test_many_full_scale_talkers_saturate_exactly() -> None:
    count = 600  # beyond what float32 sums exactly: the int32 path
    rows = np.where(np.arange(count)[:, None] % 3 == 0, -32768, 32767) * np.ones(SAMPLES, int)
    frames = {i: row.astype(np.int16) for i, row in enumerate(rows)}
    everyone = list(frames)
    mixed = mix_conference(frames, everyone, everyone)
    for key in (0, 1, count - 1):
        assert np.array_equal(mixed[key], expected_mix(frames, everyone, key))


def test_frames_of_the_wrong_type_are_refused() -> None:
    frames = {i: np.zeros(SAMPLES, dtype=np.int32) for i in range(10)}
    with pytest.raises(ValueError, match="int16"):
        mix_conference(frames, list(frames), list(frames))
