"""Uploaded wait music: checked (name, type, size, real audio) and kept in ``data_dir/media``.

A file's name is the one the owner chose, kept only when it is a plain name the rooms store
accepts (letters, digits, ``. _ -`` and spaces, no folders): ``../../etc/passwd`` and
``a/b.wav`` are refused, never rewritten into something else. The content must be audio that
the appliance can decode (soundfile reads its header), not just carry an audio extension.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import BinaryIO

import soundfile

from appliance.files import atomic_write_bytes, read_at_most

MAX_BYTES = 20 * 1024 * 1024  # under the fetcher's 32 MB: minutes of WAV, an hour of MP3
EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")  # the rooms store's wait_music names


class MediaRefused(ValueError):
    """The upload is not acceptable; the message says why, for the owner."""


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an uploaded file's name, or None."""
    if not name:
        return "Choose a file to upload."
    if "/" in name or "\\" in name or ".." in name or not _NAME.fullmatch(name):
        return ("The file name may only hold letters, digits, spaces, dots, - and _ "
                "(no folders); rename the file and upload it again.")
    if not name.lower().endswith(EXTENSIONS):
        return "The file must be audio: " + ", ".join(EXTENSIONS) + "."
    return None


class MediaLibrary:
    """The uploaded audio files of one appliance."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    def names(self) -> list[str]:
        """The uploaded files, by name."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir()
                      if p.is_file() and name_problem(p.name) is None)

    def path(self, name: str) -> Path | None:
        """The file called ``name``, or None when there is none (or the name is not one)."""
        if name_problem(name) is not None:
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def save(self, name: str, stream: BinaryIO) -> str:
        """Check and keep an upload; returns its name. Raises MediaRefused."""
        problem = name_problem(name)
        if problem:
            raise MediaRefused(problem)
        data = self._read_limited(stream)
        if not data:
            raise MediaRefused("The file is empty.")
        try:
            soundfile.info(io.BytesIO(data))
        except (RuntimeError, soundfile.LibsndfileError, TypeError) as exc:
            raise MediaRefused(f"“{name}” is not an audio file this appliance can play.") from exc
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / name, data)
        return name

    def _read_limited(self, stream: BinaryIO) -> bytes:
        data = read_at_most(stream, self.max_bytes)
        if data is None:
            raise MediaRefused(f"The file is too big: at most {self.max_bytes // 1024 // 1024}"
                               " MB.")
        return data
