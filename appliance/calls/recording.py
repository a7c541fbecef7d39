"""Recordings written to files off the tick thread: a conference's mix, a caller's voice.

The tick thread hands each frame to :meth:`Recorder.write`, which only queues a copy; a writer
thread owns the file (soundfile, 16-bit PCM WAV at the mixing rate, or MP3 when asked and
libsndfile can write it; otherwise WAV, with a note in the log). With ``trim`` the leading and
trailing silence is left out, as Twilio's ``trim-silence`` does: frames are skipped until the
first one with sound, and the file is truncated after the last one at the end. A recording
with no sound at all is *absent*: its file is removed (with ``trim``, or when the owner asks
for silent recordings to be dropped, as TwiML's <Record> does). Frames may be stereo
(``channels`` 2: one column per channel).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from appliance.audio.frames import AudioFormat
from appliance.audio.talk import frame_dbfs

log = logging.getLogger(__name__)

SILENCE_BELOW_DBFS = -60.0  # a frame quieter than this is silence for trim-silence
FILE_FORMATS = {"wav": ("WAV", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III")}


def writable_format(file_format: str) -> str:
    """``file_format`` if libsndfile can write it here, else "wav" (logged)."""
    if file_format == "mp3" and "MP3" not in soundfile.available_formats():
        log.warning("this libsndfile cannot write MP3; recording as WAV instead")
        return "wav"
    return file_format if file_format in FILE_FORMATS else "wav"


def new_recording_sid() -> str:
    return "RE" + uuid.uuid4().hex


@dataclass(frozen=True)
class RecordingResult:
    """A finished recording; ``status`` is "completed" or "absent" (nothing was heard)."""

    sid: str
    url: str
    path: Path
    started_at: float  # wall-clock time the recording started
    status: str
    duration: float = 0.0  # seconds in the file
    size: int = 0  # bytes of the file


class RecordingStore:
    """Where recordings are kept (``data_dir/recordings``) and the URL each is served at."""

    def __init__(self, directory: Path, base_url: str) -> None:
        self.directory = Path(directory)
        self.base_url = base_url.rstrip("/")

    @classmethod
    def for_listen(cls, directory: Path, host: str, port: int) -> RecordingStore:
        """A store whose URLs name the appliance's web server at ``host:port``.

        A wildcard listen address is no address to fetch from: the machine's host name
        stands in for it.
        """
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = socket.gethostname()
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        netloc = host if port == 80 else f"{host}:{port}"
        return cls(directory, f"http://{netloc}")

    def path_for(self, sid: str, file_format: str = "wav") -> Path:
        return self.directory / f"{sid}.{file_format}"

    def url_for(self, sid: str) -> str:
        return f"{self.base_url}/recordings/{sid}"


class Recorder:
    """One recording; :meth:`write` on the tick, :meth:`stop` when it is over.

    ``on_done`` receives the :class:`RecordingResult` on the writer thread once the file is
    complete; :meth:`wait` returns it to any other thread.
    """

    def __init__(
        self,
        store: RecordingStore,
        fmt: AudioFormat,
        trim: bool,
        on_done: Callable[[RecordingResult], None],
        file_format: str = "wav",
        channels: int = 1,
        drop_silent: bool = False,
    ) -> None:
        self.sid = new_recording_sid()
        self.file_format = writable_format(file_format)
        self.url = store.url_for(self.sid)
        self.path = store.path_for(self.sid, self.file_format)
        self.started_at = time.time()
        self._store = store
        self._fmt = fmt
        self._trim = trim
        self._on_done = on_done
        self._channels = channels
        self._drop_silent = drop_silent
        self.result: RecordingResult | None = None
        self._finished = threading.Event()
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.sid[2:10]}",
                                        daemon=True)
        self._stopped = False

    def start(self) -> None:
        self._thread.start()

    def write(self, frame: np.ndarray) -> None:
        """Queue one mixed frame (tick thread: never blocks, never touches the disk)."""
        if not self._stopped:
            self._queue.put_nowait(np.array(frame, dtype=np.int16, copy=True))

    def stop(self) -> None:
        """No more frames: the writer finishes the file and reports it."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> RecordingResult | None:
        """The finished recording (after :meth:`stop`), or None if not done in ``timeout``."""
        self._finished.wait(timeout)
        return self.result

    # --- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            result = self._write_file()
        except (OSError, soundfile.LibsndfileError) as exc:
            log.error("recording %s: cannot write %s: %s", self.sid, self.path, exc)
            self._stopped = True  # the tick stops queueing frames
            self._drain()
            with contextlib.suppress(OSError):  # no folder (or not a folder): no file made
                self.path.unlink(missing_ok=True)
            result = self._result("absent")
        log.info("recording %s %s: %.1f s, %d bytes", self.sid, result.status, result.duration,
                 result.size)
        self.result = result
        try:
            self._on_done(result)
        except Exception:
            log.exception("recording %s: completion handler failed", self.sid)
        finally:
            self._finished.set()

    def _write_file(self) -> RecordingResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        written = 0  # samples in the file
        heard_until = 0  # end of the last frame with sound, in samples
        container, subtype = FILE_FORMATS[self.file_format]
        truncatable = self.file_format == "wav"
        with soundfile.SoundFile(self.path, "w", samplerate=self._fmt.rate,
                                 channels=self._channels, subtype=subtype,
                                 format=container) as wav:
            while (frame := self._queue.get()) is not None:
                loud = frame_dbfs(frame.reshape(-1)) >= SILENCE_BELOW_DBFS
                if self._trim and written == 0 and not loud:
                    continue  # leading silence
                wav.write(frame)
                written += len(frame)
                if loud:
                    heard_until = written
            if self._trim and truncatable and heard_until < written:
                wav.truncate(heard_until)  # trailing silence
                written = heard_until
        if written == 0 or (self._drop_silent and heard_until == 0):
            self.path.unlink(missing_ok=True)
            return self._result("absent")
        return self._result("completed", written / self._fmt.rate, self.path.stat().st_size)

    def _result(self, status: str, duration: float = 0.0, size: int = 0) -> RecordingResult:
        return RecordingResult(self.sid, self.url, self.path, self.started_at, status,
                               duration, size)

    def _drain(self) -> None:
        """Drop the frames still queued after a failure."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


class ConferenceRecorder(Recorder):
    """Records one conference's mix; :meth:`stop` when the room ends."""
