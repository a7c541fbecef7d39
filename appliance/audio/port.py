"""The edge between one device's clock and the appliance's tick.

A ``DeviceAudioPort`` belongs to one line's audio device (a serial audio tty, an ALSA PCM).
The device side is called from the transport's own thread, paced by the device clock:
for every period read from the device, the transport calls ``device_frame_in(samples)`` and
then writes ``device_frame_out()`` back to the device (read-paced writes, as chan_dongle does).
Samples there are int16 at ``device_rate``; the port resamples (soxr, streaming) to and from
the internal ``AudioFormat`` rate, so the mixer never sees another rate.

The tick side (the audio engine's thread) calls ``read_frame()`` once per tick for what the
device heard and ``write_frame(frame)`` once per tick for what the device should play. Between
the two sides sit two drift buffers (``appliance.audio.buffers.DriftBuffer``) whose fill is held
near its target by slipping single samples, so two clocks that differ by a few hundred ppm
never grow or drain a buffer; an underrun yields silence (faded), an overrun drops the oldest
audio; both are counted in ``stats()``.

When the port is the engine's master, ``device_frame_in`` also signals the engine
(``set_tick_listener``) once per frame's worth of samples, so the tick is driven by the
device's clock. The period's output is taken from the outbound buffer before that signal, so
it is always what the previous ticks wrote, however quickly the engine answers: a master adds
one device period of latency on the way out and none on the way in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from appliance.audio.buffers import DriftBuffer
from appliance.audio.frames import AudioFormat
from appliance.audio.resample import StreamResampler

# Room in each drift buffer, whatever its target.
_CAPACITY_MS = 500


class DeviceAudioPort:
    """Two drift buffers and two resamplers between a device's periods and the tick's frames.

    ``target_ms`` is the inbound (jitter) target: the audio the tick finds buffered, its own
    frame included, so 20 ms at 20 ms frames means no more buffering than one frame: right for
    the master, whose frames pace the tick. A port on another clock rides through the moments
    its phase crosses the tick's without a gap from 40 ms on. The outbound target is one
    device period (at least one frame): all a master needs, whose own clock paces the tick.
    A port on another clock keeps it while its clock and the tick's hold their phase (two
    devices on one crystal); at its first outbound underrun, the mark of a phase crossing, it
    takes a frame more for the rest of the call, so a drifting clock costs one gap, not one
    per crossing, and a steady one no delay.
    """

    def __init__(
        self,
        name: str,
        fmt: AudioFormat,
        device_rate: int,
        device_frame_samples: int,
        target_ms: int = 20,
    ) -> None:
        if device_frame_samples <= 0:
            raise ValueError(f"device_frame_samples must be positive, not {device_frame_samples}")
        self.name = name
        self.fmt = fmt
        self.device_rate = device_rate
        self.device_frame_samples = device_frame_samples
        capacity = fmt.rate * _CAPACITY_MS // 1000
        self._inbound = DriftBuffer(fmt.samples, self._samples(target_ms), capacity)
        device_period = math.ceil(device_frame_samples * fmt.rate / device_rate)
        self._paced_target = max(device_period, fmt.samples)
        self._free_target = device_period + fmt.samples
        self._outbound = DriftBuffer(fmt.samples, self._paced_target, capacity)
        self._free_underruns = 0  # outbound underruns when the port last stopped being master
        self._jitter_ms = target_ms
        self._to_tick = StreamResampler(device_rate, fmt.rate)
        self._to_device = StreamResampler(fmt.rate, device_rate)
        # Resampled output waits here until it makes a whole device period.
        chunk = math.ceil(fmt.samples * device_rate / fmt.rate) + self._to_device.delay_samples
        self._staging = np.zeros(device_frame_samples + chunk, dtype=np.int16)
        self._staged = 0
        self._pending: np.ndarray | None = None
        self._listener: Callable[[], None] | None = None
        self._unsignalled = 0  # tick-rate samples received since the listener's last call
        self._frames_in = 0
        self._frames_out = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    # --- device side (the transport's thread) -----------------------------------------------

    def device_frame_in(self, samples: np.ndarray) -> None:
        """Take one period read from the device; signal the tick listener per frame received."""
        if self._closed:
            return
        self._pending = self._next_device_frame()
        converted = self._to_tick.process(samples)
        self._inbound.put(converted)
        self._frames_in += 1
        listener = self._listener
        if listener is None:
            return
        self._unsignalled += len(converted)
        while self._unsignalled >= self.fmt.samples:
            self._unsignalled -= self.fmt.samples
            listener()

    def device_frame_out(self) -> np.ndarray:
        """The period to write to the device: exactly ``device_frame_samples`` int16 samples."""
        if self._closed:
            return np.zeros(self.device_frame_samples, dtype=np.int16)
        frame = self._pending if self._pending is not None else self._next_device_frame()
        self._pending = None
        self._frames_out += 1
        return frame

    # --- tick side (the engine's thread) ----------------------------------------------------

    def read_frame(self) -> np.ndarray:
        """What the device heard: one frame of ``fmt.samples`` int16 samples at ``fmt.rate``."""
        if self._closed:
            return self.fmt.silence()
        return self._inbound.get_frame()

    def write_frame(self, frame: np.ndarray) -> None:
        """What the device should play: one frame at ``fmt.rate``."""
        if not self._closed:
            self._outbound.put(frame)

    # --- control ----------------------------------------------------------------------------

    def set_tick_listener(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (on the device thread) for every frame's worth of device input.

        A port with a listener is the engine's master: the tick keeps its device's pace, and
        one device period is enough outbound. Without one, its outbound target grows by a
        frame at its next underrun (see the class).
        """
        self._unsignalled = 0
        self._listener = callback
        if callback is not None:
            self._outbound.set_target(self._paced_target)
        else:
            self._free_underruns = self._outbound.underruns

    def set_jitter_target(self, ms: int) -> None:
        """Inbound buffering in ms, the tick's frame included; 0 (off) keeps just one frame."""
        self._inbound.set_target(self._samples(ms))
        self._jitter_ms = ms

    def stats(self) -> dict[str, Any]:
        return {
            "inbound": self._inbound.stats(),
            "outbound": self._outbound.stats(),
            "frames_in": self._frames_in,
            "frames_out": self._frames_out,
            "jitter_target_ms": self._jitter_ms,
            "master": self._listener is not None,
        }

    def close(self) -> None:
        """Stop signalling and drop buffered audio; afterwards both sides see silence."""
        self._closed = True
        self._listener = None
        self._inbound.clear()
        self._outbound.clear()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"DeviceAudioPort({self.name!r}, {self.device_rate} Hz x {self.device_frame_samples}"
            f" <-> {self.fmt.rate} Hz x {self.fmt.samples}, {state})"
        )

    def _samples(self, ms: int) -> int:
        if ms < 0:
            raise ValueError(f"a buffer target cannot be negative ({ms} ms)")
        return self.fmt.rate * ms // 1000

    def _next_device_frame(self) -> np.ndarray:
        """Pull frames from the outbound buffer through the resampler until a period is ready."""
        need = self.device_frame_samples
        while self._staged < need:
            chunk = self._to_device.process(self._outbound.get_frame())
            self._staging[self._staged : self._staged + len(chunk)] = chunk
            self._staged += len(chunk)
        outbound = self._outbound
        if self._listener is None and outbound.underruns > self._free_underruns:
            # Another clock whose phase crossed the tick's: ride through the next crossings.
            self._free_underruns = outbound.underruns
            if outbound.target < self._free_target:
                outbound.set_target(self._free_target)
        frame = self._staging[:need].copy()
        rest = self._staged - need
        self._staging[:rest] = self._staging[need : self._staged]
        self._staged = rest
        return frame
