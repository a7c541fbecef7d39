"""Who is talking: a per-participant level meter and talk detector with hysteresis.

A participant starts talking when its frame level stays above ``start_dbfs`` for
``start_frames`` frames, and stops once it stays below the lower ``stop_dbfs`` for
``hang_frames`` frames (a hang time of about 400 ms, as conference bridges use, so the pauses
between words do not flap the indicator). The meter is the frame's RMS level in dBFS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SILENCE_DBFS = -96.0


def frame_dbfs(frame: np.ndarray) -> float:
    """RMS level of an int16 frame in dBFS (full-scale sine = -3 dBFS); -96 for silence."""
    if len(frame) == 0:
        return SILENCE_DBFS
    samples = frame.astype(np.float32)
    power = float(np.dot(samples, samples)) / len(frame)
    if power < 1.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(power / (32768.0 * 32768.0)))


@dataclass
class TalkDetector:
    """Feed one frame per tick; ``update`` returns True/False when talking starts/stops."""

    start_dbfs: float = -42.0
    stop_dbfs: float = -48.0
    start_frames: int = 2
    hang_frames: int = 20
    talking: bool = False
    level_dbfs: float = SILENCE_DBFS
    _above: int = 0
    _below: int = 0

    def update(self, frame: np.ndarray) -> bool | None:
        """The new talking state when it changed on this frame, else None."""
        self.level_dbfs = frame_dbfs(frame)
        if not self.talking:
            self._above = self._above + 1 if self.level_dbfs >= self.start_dbfs else 0
            if self._above >= self.start_frames:
                self.talking, self._below = True, 0
                return True
        else:
            self._below = self._below + 1 if self.level_dbfs < self.stop_dbfs else 0
            if self._below >= self.hang_frames:
                self.talking, self._above = False, 0
                return False
        return None

    def reset(self) -> None:
        self.talking, self._above, self._below = False, 0, 0
        self.level_dbfs = SILENCE_DBFS
