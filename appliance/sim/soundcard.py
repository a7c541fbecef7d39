"""An emulated sound card: an ALSA device made of two FIFOs that the emulator clocks.

libasound opens it through its own ``file`` PCM plugin over a ``null`` slave (``ALSA_CONFIG``,
loaded with ``ALSA_CONFIG_PATH``): the capture stream reads what the emulator writes into one
FIFO, the playback stream writes into the other. A driver's ALSA transport therefore runs
through the real libasound, and the emulator's clock is the sound card's clock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import tempfile
import termios
from pathlib import Path

ALSA_PCM_NAME = "appliance_sim"
# One PCM, two FIFOs: capture reads CAPTURE (what the emulator writes), playback writes PLAYBACK.
# The "file" plugin over a "null" slave is libasound's own code (pcm_file.c, pcm_null.c).
ALSA_CONFIG = f"""\
pcm.{ALSA_PCM_NAME} {{
    @args [ CAPTURE PLAYBACK ]
    @args.CAPTURE {{ type string }}
    @args.PLAYBACK {{ type string }}
    type asym
    capture.pcm {{
        type file
        slave.pcm {{ type null }}
        file "/dev/null"
        infile $CAPTURE
        format raw
    }}
    playback.pcm {{
        type file
        slave.pcm {{ type null }}
        file $PLAYBACK
        format raw
    }}
}}
"""
SYSTEM_ALSA_CONFIG = Path("/usr/share/alsa/alsa.conf")
# Capture periods a slow reader may find queued before the oldest are lost: the four-period
# buffer the ALSA transport configures (AlsaAudioTransport(periods=4)), as a real card holds.
CARD_BACKLOG_FRAMES = 4


def write_alsa_config(directory: Path) -> Path:
    """Write ``ALSA_CONFIG`` into ``directory``; returns the file."""
    path = Path(directory) / "appliance-sim.asoundrc"
    path.write_text(ALSA_CONFIG)
    return path


def alsa_config_search_path(config: Path) -> str:
    """The ``ALSA_CONFIG_PATH`` value that loads the system configuration and then ``config``."""
    files = [str(SYSTEM_ALSA_CONFIG)] if SYSTEM_ALSA_CONFIG.exists() else []
    return ":".join([*files, str(config)])


def install_alsa_config(directory: Path) -> str:
    """Write ``ALSA_CONFIG`` and point this process's ALSA at it (before any device opens).

    libasound reads ``ALSA_CONFIG_PATH`` again when it changes, so this also works after other
    devices were opened; returns the value set.
    """
    value = alsa_config_search_path(write_alsa_config(directory))
    os.environ["ALSA_CONFIG_PATH"] = value
    return value


class SoundCard:
    """The emulator's side of an ALSA device made of two FIFOs (see ``ALSA_CONFIG``)."""

    def __init__(self, name: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=f"sim-{name}-"))
        self.capture_path = self._dir / "capture.fifo"
        self.playback_path = self._dir / "playback.fifo"
        os.mkfifo(self.capture_path)
        os.mkfifo(self.playback_path)
        # Read-write opens never block and keep a reader and a writer on each FIFO while the
        # card lives: libasound's blocking opens return at once, and its writes never fail.
        flags = os.O_RDWR | os.O_NONBLOCK
        self._capture = os.open(self.capture_path, flags)
        self._playback = os.open(self.playback_path, flags)
        self.overruns = 0
        self.closed = False

    @property
    def device(self) -> str:
        """The ALSA device name a driver opens (``audio = "alsa:" + device``)."""
        return f'{ALSA_PCM_NAME}:CAPTURE="{self.capture_path}",PLAYBACK="{self.playback_path}"'

    def read_playback(self) -> bytes:
        """Everything the driver played since the last call."""
        return drain(self._playback)

    def write_capture(self, frame: bytes) -> None:
        """One capture period; a backlog beyond CARD_BACKLOG_FRAMES loses its oldest periods."""
        queued = _pending_bytes(self._capture)
        excess = queued + len(frame) - CARD_BACKLOG_FRAMES * len(frame)
        if excess > 0:
            excess -= excess % len(frame)
            with contextlib.suppress(OSError):
                os.read(self._capture, excess)
            self.overruns += 1
        with contextlib.suppress(BlockingIOError):
            os.write(self._capture, frame)

    def close(self) -> None:
        """Close both FIFOs: the driver's next playback write fails, as on an unplugged card."""
        if self.closed:
            return
        self.closed = True
        for fd in (self._capture, self._playback):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)


def drain(fd: int) -> bytes:
    """Everything readable now from a non-blocking descriptor."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # nothing more now (EAGAIN), or the other end is gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _pending_bytes(fd: int) -> int:
    """Bytes queued in a pipe or tty (FIONREAD)."""
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])
