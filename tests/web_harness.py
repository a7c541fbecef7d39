"""The web page on a real waitress server on loopback, with an in-memory store and a fake clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests

from appliance.events import EventBus
from appliance.web import MemoryApiCredentials, MemorySettings, WebOptions, WebServer, create_app
from appliance.web.app import WebApp
from appliance.web.passwords import hash_password
from appliance.web.settings import ADMIN_PASSWORD, SettingsStore

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html,application/xhtml+xml"}  # what a browser navigating sends
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class WebHarness:
    app: WebApp
    server: WebServer
    bus: EventBus
    settings: SettingsStore
    credentials: MemoryApiCredentials
    clock: FakeClock
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def browser(self) -> requests.Session:
        """A client that navigates like a browser (asks for HTML, keeps cookies)."""
        client = requests.Session()
        client.headers.update(HTML)
        return client

    def form_token(self, client: requests.Session, path: str) -> str:
        """The CSRF token in the form of the page at ``path``."""
        page = client.get(self.url + path)
        page.raise_for_status()
        return csrf_in(page.text)

    def login(self, client: requests.Session | None = None,
              password: str = PASSWORD) -> requests.Session:
        client = client or self.browser()
        token = self.form_token(client, "/login")
        reply = client.post(self.url + "/login", data={"password": password, "csrf_token": token},
                            allow_redirects=False)
        assert reply.status_code == 303, reply.text
        return client


def csrf_in(html: str) -> str:
    match = _CSRF_FIELD.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


@contextmanager
def running_web(password: str | None = PASSWORD, options: WebOptions | None = None,
                bus: EventBus | None = None, threads: int = 6,
                settings: SettingsStore | None = None) -> Iterator[WebHarness]:
    """The app on a free loopback port; ``password=None`` is a first run."""
    settings = settings if settings is not None else MemorySettings()
    if password is not None:
        settings.set(ADMIN_PASSWORD, hash_password(password))
    bus = bus or EventBus()
    clock = FakeClock()
    credentials = MemoryApiCredentials("AC" + "0" * 32, "f" * 32)
    lines: dict[str, dict[str, Any]] = {}
    options = options or WebOptions(stream_poll=0.05, keepalive=0.2)
    app = create_app(settings, bus, line_states=lambda: dict(lines), credentials=credentials,
                     default_name="Test line", options=options, clock=clock)
    server = WebServer(app, "127.0.0.1", 0, threads=threads)
    server.start()
    try:
        yield WebHarness(app, server, bus, settings, credentials, clock, lines)
    finally:
        server.stop()
