"""The REST API's credentials: the AccountSid in callbacks and paths, and the auth token that
signs webhooks and checks REST requests.

Taken from ``config.toml`` when set there, else generated on first start and kept in
``data_dir/api.json`` (mode 0600, written atomically). The owner may rotate a generated token
on the web page; everything that signs or checks reads :meth:`ApiCredentialsFile.current`, so
a rotation takes effect at once.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.files import atomic_write_bytes

log = logging.getLogger(__name__)

FILE_NAME = "api.json"


@dataclass(frozen=True)
class ApiCredentials:
    account_sid: str
    auth_token: str


def new_auth_token() -> str:
    return secrets.token_hex(16)


def _write_private(path: Path, credentials: ApiCredentials) -> None:
    atomic_write_bytes(path, json.dumps({"account_sid": credentials.account_sid,
                                         "auth_token": credentials.auth_token}).encode())


class ApiCredentialsFile:
    """The appliance's credentials, kept in ``data_dir/api.json``; thread-safe."""

    def __init__(self, data_dir: Path, account_sid: str = "", auth_token: str = "") -> None:
        self._path = Path(data_dir) / FILE_NAME
        self._pinned_token = bool(auth_token)
        self._lock = threading.Lock()
        stored = self._read()
        sid = account_sid or stored.get("account_sid") or "AC" + secrets.token_hex(16)
        token = auth_token or stored.get("auth_token") or new_auth_token()
        self._credentials = ApiCredentials(sid, token)
        if stored != {"account_sid": sid, "auth_token": token}:
            _write_private(self._path, self._credentials)

    def current(self) -> ApiCredentials:
        with self._lock:
            return self._credentials

    @property
    def account_sid(self) -> str:
        return self.current().account_sid

    def auth_token(self) -> str:
        """The token now (a provider for the signers: call it at each use)."""
        return self.current().auth_token

    def rotate(self) -> ApiCredentials:
        """A new auth token, kept durably and used from now on."""
        if self._pinned_token:
            raise ValueError("auth_token is set in config.toml; change it there")
        with self._lock:
            rotated = ApiCredentials(self._credentials.account_sid, new_auth_token())
            _write_private(self._path, rotated)
            self._credentials = rotated
        log.info("API auth token rotated")
        return rotated

    def _read(self) -> dict[str, str]:
        if not self._path.exists():
            return {}
        try:
            stored = json.loads(self._path.read_text())
            if not isinstance(stored, dict):
                raise ValueError("not a JSON object")
            return stored
        except (OSError, ValueError) as exc:  # e.g. cut short by a power loss on first start
            log.warning("%s unreadable (%s); generating new API credentials", self._path, exc)
            return {}


def load_api_credentials(config: Config) -> ApiCredentialsFile:
    """The credentials ``config`` names, else those kept in (or generated into) its data_dir."""
    return ApiCredentialsFile(config.appliance.data_dir, config.api.account_sid,
                              config.api.auth_token)
