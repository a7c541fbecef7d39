"""What the web page needs from storage: a settings table, and the API credentials."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any, Protocol

ADMIN_PASSWORD = "admin_password"  # a passwords.hash_password() string; absent until first run
APPLIANCE_NAME = "appliance_name"


class SettingsStore(Protocol):
    """A key-value settings table (the store's settings table has this shape)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class MemorySettings:
    """SettingsStore in a dict: for tests and for running without a database."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._values: dict[str, Any] = dict(initial or {})
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._values[key] = value


class ApiCredentials(Protocol):
    """The REST API's credentials (``supervisor.ApiCredentials`` has this shape)."""

    @property
    def account_sid(self) -> str: ...

    @property
    def auth_token(self) -> str: ...


class ApiCredentialsManager(Protocol):
    """Reads and rotates the API credentials; kept by whoever signs webhooks and checks REST.

    ``rotate()`` makes a new auth token, keeps it durably and starts using it; it raises
    ``ValueError`` with a reason for the owner when it cannot (e.g. the token is pinned in
    ``config.toml``).
    """

    def current(self) -> ApiCredentials: ...

    def rotate(self) -> ApiCredentials: ...


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str


class MemoryApiCredentials:
    """ApiCredentialsManager held in memory: for tests and the demo."""

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self._credentials = Credentials(account_sid or "AC" + secrets.token_hex(16),
                                        auth_token or secrets.token_hex(16))
        self._lock = threading.Lock()

    def current(self) -> Credentials:
        with self._lock:
            return self._credentials

    def rotate(self) -> Credentials:
        with self._lock:
            self._credentials = Credentials(self._credentials.account_sid, secrets.token_hex(16))
            return self._credentials


def mask_secret(secret: str, visible: int = 4) -> str:
    """``••••••••abcd``: enough to recognise a token, not enough to use it."""
    if len(secret) <= visible * 2:
        return "•" * len(secret)
    return "•" * (len(secret) - visible) + secret[-visible:]
