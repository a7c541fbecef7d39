"""The store's exceptions: one tree, so callers catch ``StoreError`` at their boundary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class StoreError(Exception):
    """Anything the store refuses or cannot do."""


class StoreCorruptError(StoreError):
    """A database file on disk is not a TinyDB JSON document; it was left untouched."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: not a readable database ({reason}); the file was left as it is: "
            "repair it or move it away, then start again"
        )
        self.path = path
        self.reason = reason


class NotFoundError(StoreError, KeyError):
    """No record with that id or name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "not found"


class ValidationError(StoreError, ValueError):
    """One message per bad field, all reported at once (a form shows each beside its field)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.errors.items()))


class Problems:
    """Collects field errors, then raises them together (Mopidy's config style)."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)
