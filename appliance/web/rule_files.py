"""Rule files: TwiML / Plivo XML documents kept in ``data_dir/rules``, checked before saving.

A document is checked with the parser calls run (``twiml.parse.check_twiml``, which
``appliance check`` prints): one with errors is never written, one with warnings is (Twilio runs
it too). A file's name is the one the owner chose, kept only when it is a plain name ending in
``.xml`` (letters, digits, ``. _ -`` and spaces, no folders): ``../x.xml`` and ``a/b.xml`` are
refused, never rewritten into something else. Writes are atomic: a temp file in the same
folder, fsync, rename, then the folder itself is synced, so a power cut leaves the old file or
the new one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from appliance.files import atomic_write_bytes, fsync_directory, read_at_most
from appliance.twiml.parse import TwimlError, check_twiml

FOLDER = "rules"  # under data_dir
MAX_BYTES = 256 * 1024  # a call document is a few KB; Twilio's own limit is 64 KB of TwiML
EXTENSION = ".xml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,59}\.xml")


class RuleRefused(ValueError):
    """The document or its name is not acceptable; ``problems`` holds the parser's findings."""

    def __init__(self, message: str, problems: list[TwimlError] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a rule file's name, or None."""
    if not name:
        return "Give the rule file a name ending in .xml."
    if "/" in name or "\\" in name or ".." in name:
        return "The name must be a plain file name (no folders, no “..”)."
    if not name.lower().endswith(EXTENSION):
        return "The name must end in .xml (rule files are TwiML or Plivo XML)."
    if not _NAME.fullmatch(name):
        return ("The name may only hold letters, digits, spaces, dots, - and _, start with a "
                "letter or digit, and be at most 64 characters.")
    return None


def problems_of(text: str | bytes) -> list[TwimlError]:
    """Every error and warning the call parser finds, in line order."""
    return check_twiml(text, source="rule file")


def errors_in(problems: list[TwimlError]) -> list[TwimlError]:
    return [problem for problem in problems if not problem.warning]


def normalise(text: str) -> str:
    """Text as kept on disk: browsers post a textarea with CRLF line ends."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class RuleFiles:
    """The rule files of one appliance."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> RuleFiles:
        return cls(Path(data_dir) / FOLDER)

    def names(self) -> list[str]:
        """The rule files, by name (case-insensitive order)."""
        if not self.folder.is_dir():
            return []
        return sorted((p.name for p in self.folder.iterdir()
                       if p.is_file() and name_problem(p.name) is None), key=str.lower)

    def path(self, name: str) -> Path | None:
        """The file called ``name``, or None when there is none (or the name is not one)."""
        if name_problem(name) is not None:
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def url(self, name: str) -> str:
        """The file: URL a call fetches the document from (relative URLs resolve beside it)."""
        if name_problem(name) is not None:
            raise ValueError(f"not a rule file name: {name!r}")
        return (self.folder / name).resolve().as_uri()

    def read(self, name: str) -> str:
        path = self.path(name)
        if path is None:
            raise FileNotFoundError(name)
        return path.read_text(encoding="utf-8", errors="replace")

    def save(self, name: str, text: str, *, new: bool) -> list[TwimlError]:
        """Check and write ``text`` as ``name``; returns its warnings. Raises RuleRefused.

        ``new`` refuses a name that is already taken (create and upload never replace).
        """
        problem = name_problem(name)
        if problem:
            raise RuleRefused(problem)
        text = normalise(text)
        data = text.encode("utf-8")
        if len(data) > self.max_bytes:
            raise RuleRefused(f"The document is too big: at most {self.max_bytes // 1024} KB.")
        if new and (self.folder / name).exists():
            raise RuleRefused(f"A rule file called “{name}” already exists: open it to edit it, "
                              "or delete it first.")
        if not new and self.path(name) is None:
            raise FileNotFoundError(name)
        problems = problems_of(data)
        if errors_in(problems):
            count = len(errors_in(problems))
            raise RuleRefused(f"“{name}” was not saved: the call parser found {count} "
                              f"error{'' if count == 1 else 's'}.", problems)
        self._write(name, data)
        return problems

    def save_upload(self, name: str, stream: BinaryIO) -> list[TwimlError]:
        """Check and keep an uploaded document as a new file; returns its warnings."""
        problem = name_problem(name)
        if problem:
            raise RuleRefused(problem)
        data = self._read_limited(stream)
        if not data.strip():
            raise RuleRefused("The file is empty.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RuleRefused("The file must be UTF-8 text (TwiML or Plivo XML).") from exc
        return self.save(name, text, new=True)

    def delete(self, name: str) -> None:
        path = self.path(name)
        if path is None:
            raise FileNotFoundError(name)
        path.unlink()
        fsync_directory(self.folder)

    def _write(self, name: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / name, data)

    def _read_limited(self, stream: BinaryIO) -> bytes:
        data = read_at_most(stream, self.max_bytes)
        if data is None:
            raise RuleRefused(f"The file is too big: at most {self.max_bytes // 1024} KB.")
        return data
