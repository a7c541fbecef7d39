"""The appliance's settings: one document in ``settings.json``.

Read as a typed snapshot (:meth:`SettingsStore.snapshot`), or key by key with ``get``/``set``
(the web layer's ``SettingsStore`` protocol). ``None`` means "not set": no admin password yet
(the page asks for one on first run), no name of its own (``config.toml``'s name is shown), no
stored API credentials or session secret (the web layer makes them and keeps them here).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinydb.table import Document

from appliance.store.errors import Problems, StoreCorruptError
from appliance.store.storage import Database

DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 3650
_ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ApplianceSettings:
    """What the owner sets on the page (and the web layer's own secrets)."""

    appliance_name: str | None = None
    admin_password: str | None = None  # a hash (web.passwords.hash_password), never the password
    api_account_sid: str | None = None
    api_auth_token: str | None = None
    session_secret: str | None = None
    call_log_retention_days: int = DEFAULT_RETENTION_DAYS
    line_voice_urls: dict[str, str] = field(default_factory=dict)  # line name -> voice_url


def _optional_text(max_length: int, min_length: int = 1) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            return "must be text"
        if not min_length <= len(value.strip()) <= max_length:
            return f"must be {min_length} to {max_length} characters"
        if _CONTROL.search(value):
            return "must not contain control characters"
        return None

    return check


def _account_sid(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and _ACCOUNT_SID.fullmatch(value)):
        return None
    return "must be AC followed by 32 lowercase hex digits"


def _retention(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RETENTION_DAYS:
        return None
    return f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}"


def _voice_urls(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must map line names to voice URLs"
    for line, url in value.items():
        if not (isinstance(line, str) and line and isinstance(url, str) and url.strip()):
            return f"line {line!r}: the voice URL must be non-empty text"
    return None


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "appliance_name": _optional_text(64),
    "admin_password": _optional_text(1024),
    "api_account_sid": _account_sid,
    "api_auth_token": _optional_text(256, min_length=16),
    "session_secret": _optional_text(1024, min_length=16),
    "call_log_retention_days": _retention,
    "line_voice_urls": _voice_urls,
}
assert set(CHECKS) == {f.name for f in dataclasses.fields(ApplianceSettings)}


def validate_settings(changes: dict[str, Any]) -> None:
    """Raise ValidationError listing every unknown name and bad value."""
    problems = Problems()
    for name, value in changes.items():
        check = CHECKS.get(name)
        if check is None:
            hint = difflib.get_close_matches(name, CHECKS, n=1)
            problems.add(name, "unknown setting" + (f"; did you mean {hint[0]}?" if hint else ""))
        elif (message := check(value)) is not None:
            problems.add(name, message)
    problems.raise_if_any()


class SettingsStore:
    """The settings; every change is validated, and one call is one atomic write."""

    TABLE = "settings"
    DOC_ID = 1

    def __init__(self, database: Database) -> None:
        self._database = database

    def snapshot(self) -> ApplianceSettings:
        """Every setting, defaults filled in."""
        with self._database.locked() as db:
            stored = db.table(self.TABLE).get(doc_id=self.DOC_ID) or {}
        known = {name: value for name, value in stored.items() if name in CHECKS}
        for name, value in known.items():
            if (message := CHECKS[name](value)) is not None:
                raise StoreCorruptError(self._database.path, f"setting {name} {message}")
        if "line_voice_urls" in known:  # a copy: the stored dict is the database's own
            known["line_voice_urls"] = dict(known["line_voice_urls"])
        return ApplianceSettings(**known)

    def get(self, key: str, default: Any = None) -> Any:
        """One setting: its value, else ``default`` when given, else its own default."""
        if key not in CHECKS:
            validate_settings({key: None})  # raises, with a "did you mean"
        value = getattr(self.snapshot(), key)
        return default if value is None and default is not None else value

    def set(self, key: str, value: Any) -> None:
        self.update(**{key: value})

    def update(self, **changes: Any) -> ApplianceSettings:
        """Set the given settings (``None`` clears an optional one); returns them all."""
        validate_settings(changes)
        with self._database.locked() as db:
            db.table(self.TABLE).upsert(Document(changes, doc_id=self.DOC_ID))
            return self.snapshot()
