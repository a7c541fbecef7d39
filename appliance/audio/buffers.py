"""A ring buffer between two clocks, held near its target fill by slipping single samples.

One side (a device's thread) puts audio in whatever chunks its clock delivers; the other (the
tick) takes whole frames. Two crystals never agree exactly, so the fill creeps; rather than
let it grow without bound or drain into gaps, the consumer now and then takes one sample more
(or less) than a frame and squeezes (or stretches) it to a frame by linear interpolation. A
slip every other frame corrects up to 1/(2 * frame_samples) (1560 ppm at 320 samples), more
than the +-1000 ppm of real clocks, and is inaudible.

``target`` is the fill ``get_frame`` aims to find, the frame it takes included. One frame is
enough when the consumer is paced by the producer (the engine's master port). Between two
free-running clocks, though, once per phase crossing the consumer comes twice between two
chunks; riding through that without an underrun takes a target of one frame plus one chunk.

The fill each ``get_frame`` sees is the fill at a random phase of two clocks plus the jitter of
two threads: it jumps by a chunk from one frame to the next. Slips follow the drift only, never
that noise: the fill is averaged over about a second, a slip is due only when the average
leaves a dead band a frame wide, each slip moves the average with it (so a lagging average
does not ask for more), and slips come at most every ``_SLIP_EVERY`` frames; so a steady
drift gives slips in one direction at the drift rate. A consumer that was late and takes the
frames it owes back to back is not a burst; only a fill beyond that backlog (a stalled device
catching up), or more than the target found when resuming after an underrun, is dropped at
once (a skip).
"""

from __future__ import annotations

import threading

import numpy as np

# The fill is smoothed over about this many frames (a second of 20 ms frames).
_SMOOTHING_FRAMES = 50
# At most one slip per this many frames: 1/(2 * 320) = 1560 ppm at 20 ms and 16 kHz.
_SLIP_EVERY = 2
# Frames a late consumer may owe and take back to back (the engine's _MAX_BACKLOG_PERIODS):
# a fill that high is a late tick, not a burst to drop.
_BACKLOG_FRAMES = 3


class DriftBuffer:
    """Fixed-capacity single-producer/single-consumer ring of int16 samples; thread-safe.

    ``put`` accepts any length; when full, the oldest samples are dropped (an overrun).
    ``get_frame`` always returns ``frame_samples`` samples: on an underrun what is left, then
    a short fade to silence; after that silence until the fill is back at the target
    (priming). ``capacity_samples`` defaults to room for twice the target, a backlog of late
    frames and a burst beyond it.
    """

    def __init__(
        self, frame_samples: int, target_samples: int, capacity_samples: int | None = None
    ) -> None:
        if frame_samples < 2:
            raise ValueError(f"frame_samples must be at least 2, not {frame_samples}")
        if capacity_samples is None:
            level = max(target_samples, frame_samples)
            capacity_samples = 2 * level + (_BACKLOG_FRAMES + 2) * frame_samples
        if capacity_samples < 2 * frame_samples:
            raise ValueError(f"capacity_samples must be at least {2 * frame_samples}")
        self._frame = frame_samples
        self._ring = np.zeros(capacity_samples, dtype=np.int16)
        self._start = 0  # index of the oldest sample
        self._fill = 0
        self._lock = threading.Lock()
        self._target = 0
        self._level = frame_samples  # the fill actually aimed at: the target, at least a frame
        self._threshold = max(1, frame_samples // 4)  # 5 ms at 20 ms frames
        self._fade = max(1, frame_samples // 10)
        self._smoothed = 0.0
        self._since_slip = 0  # frames taken since the last slip
        self._playing = False
        self._last = 0  # the last sample handed out: where a fade to silence starts
        self._underruns = 0
        self._overruns = 0
        self._slips_added = 0
        self._slips_dropped = 0
        self._skips = 0  # excess audio dropped at once after a burst
        # Sample positions for squeezing frame+1 samples, or stretching frame-1, into a frame.
        self._squeeze = (np.linspace(0, frame_samples, frame_samples), np.arange(frame_samples + 1))
        self._stretch = (
            np.linspace(0, frame_samples - 2, frame_samples),
            np.arange(frame_samples - 1),
        )
        self.set_target(target_samples)

    @property
    def fill(self) -> int:
        """Samples buffered now."""
        return self._fill

    @property
    def target(self) -> int:
        """The target as set (a target under one frame behaves as one frame)."""
        return self._target

    @property
    def underruns(self) -> int:
        """Underruns since creation (cheaper than ``stats()`` once a period)."""
        return self._underruns

    @property
    def capacity(self) -> int:
        return len(self._ring)

    def set_target(self, target_samples: int) -> None:
        """Aim for a new fill at once.

        A playing buffer jumps there (silence is inserted before the oldest sample, or the
        oldest samples are dropped) instead of slipping a sample per frame: walking 40 ms at
        one slip per frame would warp the next dozen seconds of speech.
        """
        room = len(self._ring) - self._frame
        if not 0 <= target_samples <= room:
            raise ValueError(f"target_samples must be within 0..{room}, not {target_samples}")
        with self._lock:
            self._target = target_samples
            level = max(target_samples, self._frame)
            if self._playing:
                self._jump(level - self._level)
            self._level = level

    def clear(self) -> None:
        """Drop all audio and start priming again (counters are kept)."""
        with self._lock:
            self._start = 0
            self._fill = 0
            self._playing = False
            self._last = 0

    def put(self, samples: np.ndarray) -> None:
        """Append int16 samples; on overflow the oldest samples make room (one overrun)."""
        count = len(samples)
        if count == 0:
            return
        with self._lock:
            capacity = len(self._ring)
            if count > capacity:
                samples = samples[count - capacity :]
                count = capacity
            excess = self._fill + count - capacity
            if excess > 0:
                self._overruns += 1
                self._start = (self._start + excess) % capacity
                self._fill -= excess
            end = (self._start + self._fill) % capacity
            first = min(count, capacity - end)
            self._ring[end : end + first] = samples[:first]
            self._ring[: count - first] = samples[first:]
            self._fill += count

    def get_frame(self) -> np.ndarray:
        """Take one frame (exactly ``frame_samples`` int16 samples), slipping a sample if due."""
        with self._lock:
            fill = self._fill
            if not self._playing:
                if fill < self._level:
                    return np.zeros(self._frame, dtype=np.int16)
                self._playing = True
                if fill > self._level + self._frame:
                    # More than the target came while priming (a late producer catching up
                    # after a gap): resume at the target, as after a burst, rather than slip
                    # the surplus away over the next seconds.
                    fill = self._skip(fill)
                self._smoothed = float(fill)
                return self._faded_in(self._take(self._frame))
            if fill < self._frame:
                self._underruns += 1
                self._playing = False
                return self._faded_out(self._take(fill))

            if fill > self._level + (1 + _BACKLOG_FRAMES) * self._frame + self._threshold:
                # Far beyond any phase crossing or late tick: a burst after a stalled device.
                # Drop the excess at once (one skip) rather than slipping it away and warping
                # seconds of speech.
                fill = self._skip(fill)
                self._smoothed = float(fill)
            self._smoothed += (fill - self._smoothed) / _SMOOTHING_FRAMES
            self._since_slip += 1
            # Two clocks with an arbitrary phase leave anything from the level to a frame above
            # it at this point; that band is left alone, so slips happen at the clocks' drift
            # rate only, never to chase the phase (a slip per frame would warp speech 0.3 %).
            due = self._since_slip >= _SLIP_EVERY
            if (
                due
                and fill > self._frame
                and self._smoothed > self._level + self._frame + self._threshold
            ):
                self._since_slip = 0
                self._smoothed -= 1.0
                self._slips_dropped += 1
                frame = self._resized(self._take(self._frame + 1), self._squeeze)
            elif due and self._smoothed < self._level - 0.5:
                self._since_slip = 0
                self._smoothed += 1.0
                self._slips_added += 1
                frame = self._resized(self._take(self._frame - 1), self._stretch)
            else:
                frame = self._take(self._frame)
            self._last = int(frame[-1])
            return frame

    def stats(self) -> dict[str, int]:
        """Counters since creation, and the fill now."""
        with self._lock:
            return {
                "underruns": self._underruns,
                "overruns": self._overruns,
                "slips_added": self._slips_added,
                "slips_dropped": self._slips_dropped,
                "skips": self._skips,
                "fill": self._fill,
            }

    def __repr__(self) -> str:
        state = "playing" if self._playing else "priming"
        return (
            f"DriftBuffer({state}, fill={self._fill}/{len(self._ring)}, target={self._target}, "
            f"smoothed={self._smoothed:.1f}, frame={self._frame}, underruns={self._underruns}, "
            f"overruns={self._overruns}, slips=+{self._slips_added}/-{self._slips_dropped})"
        )

    # --- inside the lock ------------------------------------------------------------------

    def _jump(self, samples: int) -> None:
        """Grow the fill by ``samples`` of leading silence, or shrink it by dropping the oldest."""
        capacity = len(self._ring)
        if samples > 0:
            samples = min(samples, capacity - self._fill)
            start = (self._start - samples) % capacity
            if start + samples <= capacity:
                self._ring[start : start + samples] = 0
            else:
                self._ring[start:] = 0
                self._ring[: (start + samples) % capacity] = 0
            self._start = start
            self._fill += samples
        elif samples < 0:
            drop = min(-samples, self._fill)
            self._start = (self._start + drop) % capacity
            self._fill -= drop
            samples = -drop
        self._smoothed += samples  # the band the fill moves in shifts with it

    def _skip(self, fill: int) -> int:
        """Drop the oldest samples down to half a frame above the level (one skip); new fill."""
        excess = fill - (self._level + self._frame // 2)
        self._start = (self._start + excess) % len(self._ring)
        self._fill -= excess
        self._skips += 1
        return self._fill

    def _take(self, count: int) -> np.ndarray:
        """Remove and return the oldest ``count`` samples (a copy)."""
        capacity = len(self._ring)
        start, end = self._start, self._start + count
        if end <= capacity:
            taken = self._ring[start:end].copy()
        else:
            taken = np.concatenate((self._ring[start:], self._ring[: end - capacity]))
        self._start = end % capacity
        self._fill -= count
        return taken

    def _resized(self, samples: np.ndarray, positions: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        at, known = positions
        return np.rint(np.interp(at, known, samples)).astype(np.int16)

    def _faded_in(self, frame: np.ndarray) -> np.ndarray:
        """Ramp up from silence over the first samples, so resuming does not click."""
        head = frame[: self._fade]
        head[:] = head * np.linspace(0.0, 1.0, len(head), endpoint=False)
        self._last = int(frame[-1])
        return frame

    def _faded_out(self, rest: np.ndarray) -> np.ndarray:
        """``rest`` then a ramp from its last sample down to silence: a frame, never noise."""
        frame = np.zeros(self._frame, dtype=np.int16)
        frame[: len(rest)] = rest
        start = int(rest[-1]) if len(rest) else self._last
        ramp = np.linspace(start, 0, self._fade + 1)[1:][: self._frame - len(rest)]
        frame[len(rest) : len(rest) + len(ramp)] = np.rint(ramp).astype(np.int16)
        self._last = 0
        return frame
