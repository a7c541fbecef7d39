"""Mix-minus of a conference, once per tick, in FreeSWITCH's exact order.

Every speaking input is summed in 32 bits; each listener then hears that sum minus its own input,
plus what only it hears (coach, whisper) and what everyone hears (announcements, beeps), clipped
to int16 once at the end. FreeSWITCH's ``conference`` mixes this way; Asterisk clips the sum
before subtracting, which distorts loud rooms.

Listeners who contribute nothing and hear nothing private all get the very same array, as in
Asterisk's ConfBridge: a room of 250 with three talkers costs three mixes and one shared copy.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

_LOW, _HIGH = np.iinfo(np.int16).min, np.iinfo(np.int16).max

# From this many talkers on, their outputs are computed as one (talkers, samples) block.
_BLOCK_MIN = 8
# float32 holds every sum of up to 2**24 / 2**15 int16 values exactly.
_FLOAT_SUM_MAX = 512
# Rows derived from the total for _subtract_own: the total itself (clamped to where results
# stop changing), and [total - 32767, total + 32768], in which total - own fits int16.
_OFFSETS = np.array([[0], [-_HIGH], [-_LOW]], dtype=np.int32)
_FLOORS = np.array([[2 * _LOW], [_LOW], [_LOW]], dtype=np.int32)
_CEILINGS = np.array([[2 * _HIGH], [_HIGH], [_HIGH]], dtype=np.int32)
_ONES = np.ones(_FLOAT_SUM_MAX, dtype=np.float32)
# Frames per line in _subtract_own's passes; large blocks are padded to whole lines.
_LINE_FRAMES = 25


def mix_conference(
    frames: Mapping[K, np.ndarray],
    contributors: Collection[K],
    listeners: Collection[K],
    private: Mapping[K, np.ndarray] | None = None,
    common: np.ndarray | None = None,
) -> dict[K, np.ndarray]:
    """Return each listener's frame: clip(sum of contributors - own + private + common).

    ``frames`` holds one int16 frame per participant (every contributor must have one);
    muted, held and waiting participants are simply left out of ``contributors``. Keys in
    ``contributors`` and in ``listeners`` are distinct. Returned arrays must be treated as
    read-only: listeners who neither talk nor hear anything private share one array.
    """
    talkers = list(contributors)
    private = private or {}
    if len(talkers) >= _BLOCK_MIN:
        block = _stack(frames, talkers)
        base = _sum_rows(block)
        if common is not None:
            base += common
        rows = _subtract_own(base, block)[: len(talkers)]
        result = _with_rows(listeners, talkers, rows, base)
    else:
        base = _sum_few(frames, talkers, private, common)
        if common is not None:
            base += common
        result = dict.fromkeys(listeners, _clip(base))
        for key in talkers:
            if key in result:
                result[key] = _clip(base - frames[key])

    if private:
        talking = set(talkers)
        for key, extra in private.items():
            if key in result:
                mixed = base + extra
                if key in talking:
                    mixed -= frames[key]
                result[key] = _clip(mixed)
    return result


def mix_minus(frames: np.ndarray, contributing: np.ndarray) -> np.ndarray:
    """Mix-minus of an (N, S) int16 array: row i = clip(sum of contributing rows - own row).

    A row that does not contribute hears the whole sum. Returns a new (N, S) int16 array.
    """
    if frames.dtype != np.int16 or frames.ndim != 2:
        raise ValueError(f"frames must be (N, S) int16, not {frames.ndim}-d {frames.dtype}")
    mask = np.asarray(contributing, dtype=bool)[:, None]
    total = np.sum(frames, axis=0, dtype=np.int32, where=mask)
    return _subtract_own(total, np.where(mask, frames, 0))


def _sum_few(
    frames: Mapping[K, np.ndarray],
    talkers: list[K],
    private: Mapping[K, np.ndarray],
    common: np.ndarray | None,
) -> np.ndarray:
    """The int32 sum of a few talkers' frames, one add each; zeros when nobody talks."""
    if not talkers:
        shapes = (common, *frames.values(), *private.values())
        sample = next((array for array in shapes if array is not None), ())
        return np.zeros(len(sample), dtype=np.int32)
    total = frames[talkers[0]].astype(np.int32)
    for key in talkers[1:]:
        total += frames[key]
    return total


def _sum_rows(block: np.ndarray) -> np.ndarray:
    """The int32 column sums of an int16 block (through BLAS while float32 is exact)."""
    if len(block) > _FLOAT_SUM_MAX:
        return block.sum(axis=0, dtype=np.int32)
    return (_ONES[: len(block)] @ block.astype(np.float32)).astype(np.int32)


def _with_rows(
    listeners: Collection[K], talkers: list[K], rows: np.ndarray, base: np.ndarray
) -> dict[K, np.ndarray]:
    """Each listener's frame: its own row (a view) if it talks, else the shared clip(base)."""
    if isinstance(listeners, list) and listeners == talkers:
        return dict(zip(talkers, rows, strict=True))  # everyone talks
    result: dict[K, Any] = dict.fromkeys(listeners)
    listening = len(result)
    result.update(zip(talkers, rows, strict=True))
    talking = len(talkers)
    if len(result) > listening:  # some talkers only talk (a music source, a recorder)
        for key in set(talkers).difference(listeners):
            del result[key]
            talking -= 1
    if talking < listening:
        plain = _clip(base)
        for key, frame in result.items():
            if frame is None:
                result[key] = plain
    return result


def _stack(frames: Mapping[K, np.ndarray], keys: list[K]) -> np.ndarray:
    """A fresh, writable int16 block of the keys' frames, one per row, then zero rows.

    A large block is padded with silence to whole lines of ``_LINE_FRAMES`` (see
    ``_subtract_own``), which adds at most a quarter to its work. Joining the frames' buffers
    costs a third of ``np.concatenate`` for 250 small arrays.
    """
    first = frames[keys[0]]
    if first.dtype != np.int16:
        raise ValueError(f"frames must be int16, not {first.dtype}")
    arrays = itemgetter(*keys)(frames) if len(keys) > 1 else (first,)
    missing = -len(keys) % _LINE_FRAMES if len(keys) >= 4 * _LINE_FRAMES else 0
    padding = (bytes(first.nbytes),) * missing
    raw = bytearray().join(arrays + padding if padding else arrays)
    if len(raw) != (len(keys) + len(padding)) * first.nbytes:
        raise ValueError("frames must be int16 arrays of one length")
    return np.frombuffer(raw, dtype=np.int16).reshape(len(keys) + len(padding), -1)


def _subtract_own(base: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Overwrite each int16 row of ``own`` with clip(base - row), in three int16 passes; return it.

    Each row is first clamped to [low, high], the range that keeps ``base - row`` inside int16;
    the subtraction can then run in wrapping int16 arithmetic and still be exact. Beyond
    [-65536, 65534] every result saturates the same way, so ``base`` is clamped there first.
    NumPy runs these passes much faster on long rows than on 320-sample ones, so when the row
    count allows, they see the block as lines of ``_LINE_FRAMES`` frames, bounds repeated.
    """
    count, samples = own.shape
    per_line = _LINE_FRAMES if count % _LINE_FRAMES == 0 else 1
    lines = own.reshape(count // per_line, per_line * samples)
    bounds = np.minimum(np.maximum(base + _OFFSETS, _FLOORS), _CEILINGS).astype(np.int16)
    repeated = np.broadcast_to(bounds[:, None, :], (3, per_line, samples))
    total, low, high = repeated.reshape(3, per_line * samples)  # total wraps, as will the result
    np.maximum(lines, low, out=lines)
    np.minimum(lines, high, out=lines)
    np.subtract(total, lines, out=lines)
    return lines.reshape(count, samples)


def _clip(mixed: np.ndarray) -> np.ndarray:
    """int32 -> int16, saturating (ufuncs: ``np.clip`` costs microseconds per call)."""
    return np.minimum(np.maximum(mixed, _LOW), _HIGH).astype(np.int16)
