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
from typing import TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)

_LOW, _HIGH = np.iinfo(np.int16).min, np.iinfo(np.int16).max

# From this many talkers on, their outputs are computed as one (talkers, samples) block.
_BLOCK_MIN = 8


def mix_conference(
    frames: Mapping[K, np.ndarray],
    contributors: Collection[K],
    listeners: Collection[K],
    private: Mapping[K, np.ndarray] | None = None,
    common: np.ndarray | None = None,
) -> dict[K, np.ndarray]:
    """Return each listener's frame: clip(sum of contributors - own + private + common).

    ``frames`` holds one int16 frame per participant (every contributor must have one);
    muted, held and waiting participants are simply left out of ``contributors``. Returned
    arrays must be treated as read-only: listeners who neither talk nor hear anything private
    share one array.
    """
    talkers = list(contributors)
    private = private or {}
    block = _stack(frames, talkers) if len(talkers) >= _BLOCK_MIN else None
    if block is not None:
        base = block.sum(axis=0, dtype=np.int32)
    else:
        base = _sum_few(frames, talkers, private, common)
    if common is not None:
        base += common

    plain = _clip(base)
    result = dict.fromkeys(listeners, plain)
    if block is not None:
        _put_rows(result, talkers, _subtract_own(base, block), listeners)
    else:
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
    mask = np.asarray(contributing, dtype=bool)[:, None]
    total = np.sum(frames, axis=0, dtype=np.int32, where=mask)
    own = np.where(mask, frames, 0).astype(np.int16, copy=False)
    return _subtract_own(total, own)


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


def _put_rows(
    result: dict[K, np.ndarray], talkers: list[K], rows: np.ndarray, listeners: Collection[K]
) -> None:
    """Give each talker who listens its row of ``rows`` (views, no copies)."""
    listening = len(result)
    result.update(zip(talkers, rows, strict=True))
    if len(result) != listening:  # some talkers only talk (a music source, a recorder)
        wanted = set(listeners)
        for key in talkers:
            if key not in wanted:
                result.pop(key, None)


def _stack(frames: Mapping[K, np.ndarray], keys: list[K]) -> np.ndarray:
    """A fresh, writable (len(keys), S) int16 copy of the keys' frames."""
    return np.concatenate([frames[key] for key in keys]).reshape(len(keys), -1)


def _subtract_own(base: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Overwrite each row of ``own`` (int16) with clip(base - row); return it."""
    return np.clip(np.subtract(base, own, dtype=np.int32), _LOW, _HIGH, out=own)


def _clip(mixed: np.ndarray) -> np.ndarray:
    return np.clip(mixed, _LOW, _HIGH).astype(np.int16)
