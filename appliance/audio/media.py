"""Audio for prompts: decoded files, synthesized speech, hold music, and the sources that feed
them to the tick one frame at a time.

Decoding and synthesis run on the interpreter's thread; the ``MediaSource`` classes are pure
and cheap, read by the tick thread.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile
import soxr

from appliance.audio.frames import SAMPLE_DTYPE, AudioFormat

log = logging.getLogger(__name__)

# Debian's asterisk-moh-opsound-wav: Creative Commons music made for hold.
MOH_DIR = Path("/usr/share/asterisk/moh")
PREFERRED_HOLD_MUSIC = "macroform-the_simplicity.wav"

ESPEAK = "espeak-ng"
ESPEAK_TIMEOUT = 60.0
DEFAULT_ESPEAK_VOICE = "en-us"
FEMALE_VARIANT = "+f3"
# Amazon Polly's male voices; every other Polly voice (and "woman", "alice") is female.
POLLY_MALE = frozenset(
    {"matthew", "joey", "justin", "kevin", "brian", "russell", "geraint", "stephen", "gregory"}
)


class MediaError(Exception):
    """Audio cannot be decoded or synthesized."""


# --- decoding -------------------------------------------------------------------------------


def _to_int16(samples: np.ndarray) -> np.ndarray:
    scaled = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0)
    return scaled.astype(SAMPLE_DTYPE)


def load_audio(source: str | Path | bytes, rate: int) -> np.ndarray:
    """Decode WAV/FLAC/MP3/OGG (a path or the file's bytes) to mono int16 at ``rate``."""
    if isinstance(source, bytes | bytearray | memoryview):
        name = f"{len(source)} bytes of audio"
        handle: io.BytesIO | str = io.BytesIO(bytes(source))
    else:
        name = str(source)
        if not Path(source).is_file():
            raise MediaError(f"{name}: no such file")
        handle = name
    try:
        data, source_rate = soundfile.read(handle, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise MediaError(f"cannot decode {name}: {exc}") from None
    mono = data.mean(axis=1)
    if source_rate != rate and len(mono):
        mono = soxr.resample(mono, source_rate, rate, quality="HQ")
    return _to_int16(mono)


# --- speech ---------------------------------------------------------------------------------


class SpeechSynth:
    """Text to speech with espeak-ng, cached on disk and in memory.

    Twilio's voices map loosely onto espeak-ng's: "man" (and the default) is espeak-ng's male
    voice, "woman", "alice" and Polly's female voices a female variant; the language picks the
    espeak-ng voice ("en-GB" -> "en-gb"), falling back to the bare language, then to en-us.
    """

    def __init__(self, cache_dir: Path, memory_items: int = 64) -> None:
        self.cache_dir = Path(cache_dir)
        self._memory_items = memory_items
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._languages: frozenset[str] | None = None

    def synthesize(
        self, text: str, voice: str = "", language: str = "en-US", rate: int = 16000
    ) -> np.ndarray:
        """Speech for ``text`` as mono int16 at ``rate`` (read-only; shared between callers)."""
        key = hashlib.sha256(json.dumps([text, voice, language, rate]).encode()).hexdigest()
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        path = self.cache_dir / f"{key}.npy"
        samples = self._load_cached(path)
        if samples is None:
            samples = self._speak(text, self.espeak_voice(voice, language), rate)
            self._store(path, samples)
        samples.flags.writeable = False
        with self._lock:
            self._memory[key] = samples
            while len(self._memory) > self._memory_items:
                self._memory.popitem(last=False)
        return samples

    def espeak_voice(self, voice: str, language: str) -> str:
        """The espeak-ng voice name for a Twilio ``voice`` and ``language``."""
        voice = voice.strip().lower()
        language = language.strip().lower().replace("_", "-")
        embedded = re.match(r"google\.([a-z]{2,3}-[a-z]{2})-", voice)  # Google.en-GB-Standard-A
        if embedded:
            language = embedded.group(1)
        available = self._available_languages()
        candidates = (language, language.split("-")[0])
        base = next((name for name in candidates if name in available), DEFAULT_ESPEAK_VOICE)
        female = voice in ("woman", "alice") or (
            voice.startswith("polly.") and voice.split(".")[1].split("-")[0] not in POLLY_MALE
        )
        return base + (FEMALE_VARIANT if female else "")

    def _available_languages(self) -> frozenset[str]:
        if self._languages is None:
            self._languages = _espeak_languages()
        return self._languages

    def _speak(self, text: str, voice: str, rate: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="tts-") as folder:
            wav = Path(folder) / "speech.wav"
            result = _run_espeak(["-b", "1", "-v", voice, "-w", str(wav), "--stdin"], text)
            if result.returncode != 0 or not wav.exists():
                detail = result.stderr.decode("utf-8", "replace").strip()
                raise MediaError(f"espeak-ng failed (voice {voice}): {detail or result.returncode}")
            return load_audio(wav, rate)

    @staticmethod
    def _load_cached(path: Path) -> np.ndarray | None:
        try:
            samples = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("speech cache %s unreadable (%s); synthesizing again", path, exc)
            return None
        return samples.astype(SAMPLE_DTYPE, copy=False)

    def _store(self, path: Path, samples: np.ndarray) -> None:
        """Write the cache entry atomically; a cache that cannot be written is only a warning."""
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                np.save(handle, samples, allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot cache speech in %s: %s", path.parent, exc)
            tmp.unlink(missing_ok=True)


def _run_espeak(args: list[str], text: str = "") -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [ESPEAK, *args],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=ESPEAK_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise MediaError("espeak-ng is not installed (Debian package espeak-ng)") from None
    except subprocess.TimeoutExpired:
        raise MediaError(f"espeak-ng took more than {ESPEAK_TIMEOUT:g} s") from None


def _espeak_languages() -> frozenset[str]:
    """Language names espeak-ng has built-in voices for (MBROLA voices need extra packages)."""
    result = _run_espeak(["--voices"])
    languages = {DEFAULT_ESPEAK_VOICE}
    for row in result.stdout.decode("utf-8", "replace").splitlines()[1:]:
        fields = row.split()
        if len(fields) < 5 or fields[1] == "variant" or fields[4].startswith("mb/"):
            continue
        languages.add(fields[1].lower())
        languages.update(match.lower() for match in re.findall(r"\(([\w-]+) \d+\)", row))
    return frozenset(languages)


# --- hold music -----------------------------------------------------------------------------


def _hold_music_file() -> Path | None:
    preferred = MOH_DIR / PREFERRED_HOLD_MUSIC
    if preferred.is_file():
        return preferred
    others = sorted(MOH_DIR.glob("*.wav")) if MOH_DIR.is_dir() else []
    return others[0] if others else None


def _generated_tune(rate: int) -> np.ndarray:
    """A soft, slow arpeggio (C E G E) with gaps: inoffensive music when none is installed."""
    note_seconds, gap_seconds = 0.6, 0.15
    t = np.arange(int(note_seconds * rate)) / rate
    envelope = np.sin(np.pi * t / note_seconds) ** 2
    gap = np.zeros(int(gap_seconds * rate))
    parts = []
    for frequency in (261.63, 329.63, 392.00, 329.63):
        tone = np.sin(2 * np.pi * frequency * t) + 0.3 * np.sin(2 * np.pi * 2 * frequency * t)
        parts += [0.12 * envelope * tone, gap]
    parts.append(np.zeros(rate))
    return _to_int16(np.concatenate(parts))


@functools.lru_cache(maxsize=4)
def hold_music(rate: int) -> np.ndarray:
    """The default wait music at ``rate`` (decoded once, read-only)."""
    path = _hold_music_file()
    samples: np.ndarray | None = None
    if path is None:
        log.warning(
            "no hold music in %s (Debian package asterisk-moh-opsound-wav); using a generated tune",
            MOH_DIR,
        )
    else:
        try:
            samples = load_audio(path, rate)
        except MediaError as exc:
            log.warning("hold music %s unusable (%s); using a generated tune", path, exc)
    if samples is None or not len(samples):
        samples = _generated_tune(rate)
    samples.flags.writeable = False
    return samples


# --- sources read by the tick ---------------------------------------------------------------


class MediaSource(abc.ABC):
    """Audio played one frame per tick; pure (no threads, no I/O)."""

    @abc.abstractmethod
    def read_frame(self) -> np.ndarray | None:
        """The next frame (``fmt.samples`` int16, zero-padded at the end); None when finished."""

    @property
    @abc.abstractmethod
    def done(self) -> bool:
        """True once every frame has been read."""


class BufferSource(MediaSource):
    """Samples in memory, played ``loop`` times (0 = forever); loops join without a gap."""

    def __init__(self, samples: np.ndarray, fmt: AudioFormat, loop: int = 1) -> None:
        if loop < 0:
            raise ValueError(f"loop must be 0 (forever) or more, not {loop}")
        self._samples = np.asarray(samples, dtype=SAMPLE_DTYPE)
        self._fmt = fmt
        self._loops_left: int | None = loop or None  # None: forever
        self._position = 0
        self._finished = len(self._samples) == 0

    @property
    def done(self) -> bool:
        return self._finished

    def read_frame(self) -> np.ndarray | None:
        if self._finished:
            return None
        frame = self._fmt.silence()
        filled = 0
        total = len(self._samples)
        while filled < len(frame) and not self._finished:
            take = min(len(frame) - filled, total - self._position)
            frame[filled : filled + take] = self._samples[self._position : self._position + take]
            filled += take
            self._position += take
            if self._position == total:
                self._position = 0
                if self._loops_left is not None:
                    self._loops_left -= 1
                    self._finished = self._loops_left == 0
        return frame


class SilenceSource(MediaSource):
    """``frames`` frames of silence (a <Pause>)."""

    def __init__(self, frames: int, fmt: AudioFormat) -> None:
        self._remaining = max(0, frames)
        self._fmt = fmt

    @property
    def done(self) -> bool:
        return self._remaining == 0

    def read_frame(self) -> np.ndarray | None:
        if self._remaining == 0:
            return None
        self._remaining -= 1
        return self._fmt.silence()


class SequenceSource(MediaSource):
    """Several sources played one after the other."""

    def __init__(self, sources: Iterable[MediaSource]) -> None:
        self._sources = list(sources)
        self._index = 0

    @property
    def done(self) -> bool:
        return all(source.done for source in self._sources[self._index :])

    def read_frame(self) -> np.ndarray | None:
        while self._index < len(self._sources):
            source = self._sources[self._index]
            frame = source.read_frame()
            if frame is None or source.done:
                self._index += 1
            if frame is not None:
                return frame
        return None
