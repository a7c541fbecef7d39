"""Voice over a serial tty: SIMCom's PCM port (8 kHz, signed 16-bit little-endian, mono).

After ``AT+CPCMREG=1`` the SIM7600 streams 320-byte frames (20 ms) on its audio interface and
plays whatever is written back. The modem's clock paces both directions: every frame read is
answered by one frame written (read-paced writes, as chan_dongle and chan_quectel do), so this
transport never sleeps and never keeps time of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from appliance.lines.at import DEVICE_ERRORS, open_serial

if TYPE_CHECKING:
    import serial

    from appliance.audio.port import DeviceAudioPort

log = logging.getLogger(__name__)

PCM_DTYPE = np.dtype("<i2")


class SerialAudioTransport:
    """Moves frames between a PCM tty and a ``DeviceAudioPort`` on its own thread."""

    def __init__(
        self,
        path: str,
        port: DeviceAudioPort,
        frame_bytes: int = 320,
        *,
        on_error: Callable[[BaseException], None] | None = None,
        baudrate: int = 115200,
    ) -> None:
        if frame_bytes <= 0 or frame_bytes % PCM_DTYPE.itemsize:
            raise ValueError(f"frame_bytes must be a positive even number, not {frame_bytes}")
        self.path = path
        self.port = port
        self.frame_bytes = frame_bytes
        self.on_error = on_error
        self._baudrate = baudrate
        self._serial: serial.SerialBase | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.frames_in = 0
        self.frames_out = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open the tty, drop whatever it buffered before the call, and start moving frames.

        Raises ``serial.SerialException`` / ``OSError`` when the tty cannot be opened.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.path}: transport already started")
        self._serial = open_serial(self.path, self._baudrate)
        self._serial.reset_input_buffer()
        self._thread = threading.Thread(target=self._run, name=f"audio-{self.path}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close the tty (safe to call twice, or from ``on_error``)."""
        self._stopping.set()
        tty = self._serial
        if tty is not None:
            for cancel in ("cancel_read", "cancel_write"):
                try:
                    getattr(tty, cancel)()
                except (AttributeError, *DEVICE_ERRORS):
                    pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        if tty is not None:
            try:
                tty.close()
            except DEVICE_ERRORS as exc:
                log.debug("%s: closing: %s", self.path, exc)

    def _run(self) -> None:
        tty = self._serial
        assert tty is not None
        frame = bytearray()
        try:
            while not self._stopping.is_set():
                chunk = tty.read(self.frame_bytes - len(frame))
                if not chunk:
                    continue
                frame += chunk
                if len(frame) < self.frame_bytes:
                    continue
                self.port.device_frame_in(np.frombuffer(bytes(frame), PCM_DTYPE).astype(np.int16))
                self.frames_in += 1
                frame.clear()
                tty.write(np.asarray(self.port.device_frame_out(), PCM_DTYPE).tobytes())
                self.frames_out += 1
        except Exception as exc:
            if self._stopping.is_set():
                return  # stop() closed the tty under the read
            if isinstance(exc, DEVICE_ERRORS):
                log.error("%s: audio stopped: %s", self.path, exc)
            else:
                log.exception("%s: audio stopped", self.path)
            if self.on_error is not None:
                self.on_error(exc)
