"""Voice through an ALSA PCM: a USB-audio-class modem, an I2S codec HAT or a USB sound card.

One capture and one playback stream on the same device, both at the port's device rate, mono,
signed 16-bit, with an ALSA period of one frame. The capture stream is the clock: every period
read is handed to the port and answered by one period written (read-paced writes, as
``serial_audio`` does), so this transport never sleeps and never keeps time of its own.

Xruns are expected now and then (a busy Pi, a slow SD card): an overrun on capture or an
underrun on playback is counted and the stream carries on (pyalsaaudio re-prepares the PCM and
reports ``-EPIPE``; an underrun is followed by fresh silence so the playback fill comes back).
Any other ALSA error means the device is gone (a USB modem or sound card unplugged:
``No such device``, ``Input/output error``): the thread stops and ``on_error`` is called.

pyalsaaudio is imported when the transport starts, so serial-only installs work without it.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from appliance.audio.port import DeviceAudioPort

log = logging.getLogger(__name__)

PCM_DTYPE = np.dtype("<i2")
PREFILL_PERIODS = 2  # playback silence queued at start: room for the capture/playback phase


class AlsaAudioError(OSError):
    """An ALSA device cannot be opened or set up as asked."""


class Pcm(Protocol):
    """What this transport uses of ``alsaaudio.PCM``."""

    def read(self) -> tuple[int, bytes]: ...

    def write(self, data: bytes) -> int: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def load_alsaaudio() -> Any:
    """The ``alsaaudio`` module, or ``AlsaAudioError`` saying how to install it."""
    try:
        import alsaaudio
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise AlsaAudioError(
            "ALSA audio needs the pyalsaaudio package (and libasound2): pip install pyalsaaudio"
        ) from exc
    return alsaaudio


class AlsaAudioTransport:
    """Moves frames between an ALSA device and a ``DeviceAudioPort`` on its own thread."""

    def __init__(
        self,
        device: str,
        port: DeviceAudioPort,
        *,
        rate: int | None = None,
        period: int | None = None,
        periods: int = 4,
        channels: int = 1,
        on_error: Callable[[BaseException], None] | None = None,
        alsa: Any = None,
    ) -> None:
        """``alsa`` is the ``alsaaudio`` module (the default) or a stand-in with its names."""
        self.device = device
        self.port = port
        self.rate = rate or port.device_rate
        self.period = period or port.device_frame_samples
        self.periods = periods
        self.channels = channels
        self.on_error = on_error
        self._alsa = alsa
        self._capture: Pcm | None = None
        self._playback: Pcm | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.frames_in = 0
        self.frames_out = 0
        self.overruns = 0  # capture xruns
        self.underruns = 0  # playback xruns

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> dict[str, int]:
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "overruns": self.overruns,
            "underruns": self.underruns,
        }

    def start(self) -> None:
        """Open both streams, queue a little silence and start moving frames.

        Raises ``AlsaAudioError`` (an ``OSError``) when the device cannot be opened at the
        port's rate with one-frame periods.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.device}: transport already started")
        alsa = self._alsa = self._alsa or load_alsaaudio()
        error_type = alsa.ALSAAudioError
        try:
            self._capture = self._open(alsa, alsa.PCM_CAPTURE)
            self._playback = self._open(alsa, alsa.PCM_PLAYBACK)
            self._check(self._capture, "capture")
            self._check(self._playback, "playback")
            self._write(self._silence(PREFILL_PERIODS))
        except error_type as exc:
            self._close()
            raise AlsaAudioError(f"ALSA device {self.device!r}: {exc}") from exc
        except AlsaAudioError:
            self._close()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(error_type,), name=f"audio-{self.device}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close both streams (safe to call twice, or from ``on_error``)."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
            if thread.is_alive():
                # Closing a PCM under a blocked read would free it in use: leave it to the OS.
                log.warning("%s: audio thread did not stop; leaving the device open", self.device)
                return
        self._close()

    # --- the thread ---

    def _run(self, error_type: type[BaseException]) -> None:
        capture = self._capture
        assert capture is not None
        frame_bytes = self.period * self.channels * PCM_DTYPE.itemsize
        pending = bytearray()
        try:
            while not self._stopping.is_set():
                count, data = capture.read()
                if count < 0:
                    self._xrun("capture", count)
                    continue
                pending += data
                while len(pending) >= frame_bytes and not self._stopping.is_set():
                    frame = np.frombuffer(bytes(pending[:frame_bytes]), PCM_DTYPE)
                    del pending[:frame_bytes]
                    if self.channels > 1:
                        frame = frame[:: self.channels]  # the first channel
                    self.port.device_frame_in(frame.astype(np.int16))
                    self.frames_in += 1
                    out = np.asarray(self.port.device_frame_out(), PCM_DTYPE)
                    if self.channels > 1:
                        out = np.repeat(out, self.channels)
                    self._write(out.tobytes())
                    self.frames_out += 1
        except Exception as exc:
            if self._stopping.is_set():
                return
            error: BaseException = exc
            if isinstance(exc, error_type):
                log.error("%s: audio stopped: %s", self.device, exc)
                error = AlsaAudioError(f"ALSA device {self.device!r} failed: {exc}")
            else:
                log.exception("%s: audio stopped", self.device)
            if self.on_error is not None:
                self.on_error(error)

    def _write(self, data: bytes) -> None:
        playback = self._playback
        assert playback is not None
        if playback.write(data) < 0:
            self._xrun("playback", -errno.EPIPE)
            # The stream restarts from empty: give it its cushion back before the frame.
            playback.write(self._silence(PREFILL_PERIODS))
            playback.write(data)

    def _xrun(self, stream: str, code: int) -> None:
        if stream == "capture":
            self.overruns += 1
            count = self.overruns
        else:
            self.underruns += 1
            count = self.underruns
        if count == 1 or count % 100 == 0:
            log.warning("%s: %s xrun (%s), %d so far", self.device, stream, -code, count)

    # --- helpers ---

    def _open(self, alsa: Any, kind: Any) -> Pcm:
        pcm: Pcm = alsa.PCM(
            type=kind,
            device=self.device,
            rate=self.rate,
            channels=self.channels,
            format=alsa.PCM_FORMAT_S16_LE,
            periodsize=self.period,
            periods=self.periods,
        )
        return pcm

    def _check(self, pcm: Pcm, stream: str) -> None:
        info = pcm.info()
        rate, channels = info.get("rate"), info.get("channels")
        if rate != self.rate or channels != self.channels:
            raise AlsaAudioError(
                f"ALSA device {self.device!r} ({stream}) runs at {rate} Hz x {channels} channels, "
                f"not {self.rate} Hz x {self.channels}; use its plughw: name so ALSA converts"
            )
        if info.get("period_size") != self.period:
            log.info(
                "%s: %s period is %s frames, not %d; reading whole frames anyway",
                self.device,
                stream,
                info.get("period_size"),
                self.period,
            )

    def _silence(self, periods: int) -> bytes:
        return bytes(periods * self.period * self.channels * PCM_DTYPE.itemsize)

    def _close(self) -> None:
        for pcm in (self._capture, self._playback):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception as exc:  # the device may be gone already
                    log.debug("%s: closing: %s", self.device, exc)
        self._capture = self._playback = None
