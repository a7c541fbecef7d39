"""The unit of audio: one frame of mono int16 samples at a fixed rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_DTYPE = np.int16


@dataclass(frozen=True)
class AudioFormat:
    """Rate and frame length; a frame is ``samples`` int16 values, mono."""

    rate: int = 16000
    frame_ms: int = 20

    @property
    def samples(self) -> int:
        return self.rate * self.frame_ms // 1000

    @property
    def period(self) -> float:
        """Seconds per frame."""
        return self.frame_ms / 1000.0

    def silence(self) -> np.ndarray:
        return np.zeros(self.samples, dtype=SAMPLE_DTYPE)

    def frames_for(self, seconds: float) -> int:
        """Whole frames covering ``seconds`` (rounded to nearest, at least 0)."""
        return max(0, round(seconds * 1000 / self.frame_ms))
