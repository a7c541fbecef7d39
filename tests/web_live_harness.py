"""The web app with a live conference registry, a real Store and a recordings folder, on a
real waitress server on loopback (the pages of the live view, the call log, the recordings)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from appliance.audio.frames import AudioFormat
from appliance.calls.conference import ConferenceRegistry
from appliance.calls.recording import RecordingStore
from appliance.events import EventBus
from appliance.store import Store
from appliance.web import MemoryApiCredentials, MemorySettings, WebOptions, WebServer, create_app
from appliance.web.passwords import hash_password
from appliance.web.settings import ADMIN_PASSWORD
from tests.web_harness import PASSWORD, FakeClock, WebHarness

FMT = AudioFormat(16000, 20)
WAIT = 5.0


@dataclass
class LiveHarness(WebHarness):
    conferences: ConferenceRegistry | None = None
    store: Store | None = None
    recordings: RecordingStore | None = None
    callers: dict[str, str] = field(default_factory=dict)

    def token(self, client: requests.Session) -> str:
        """The session's CSRF token, as the page's <meta> gives it to fetch()."""
        page = client.get(self.url + "/live")
        page.raise_for_status()
        marker = '<meta name="csrf-token" content="'
        start = page.text.index(marker) + len(marker)
        return page.text[start:page.text.index('"', start)]

    def act(self, client: requests.Session, path: str, token: str | None = None
            ) -> requests.Response:
        """POST an action as live.js does: JSON wanted, the CSRF header set."""
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["X-CSRF-Token"] = token
        return client.post(self.url + path, headers=headers, timeout=WAIT)


@contextmanager
def running_live(tmp_path: Path, *, with_store: bool = True) -> Iterator[LiveHarness]:
    settings = MemorySettings()
    settings.set(ADMIN_PASSWORD, hash_password(PASSWORD))
    bus = EventBus()
    conferences = ConferenceRegistry(FMT, bus.publish)
    store = Store(tmp_path / "db") if with_store else None
    recordings = RecordingStore(tmp_path / "recordings", "http://appliance.test")
    callers: dict[str, str] = {}
    lines: dict[str, dict] = {}
    clock = FakeClock()
    credentials = MemoryApiCredentials("AC" + "0" * 32, "f" * 32)
    app = create_app(settings, bus, line_states=lambda: dict(lines), credentials=credentials,
                     default_name="Test line", clock=clock,
                     options=WebOptions(stream_poll=0.05, keepalive=0.2),
                     conferences=conferences, callers=lambda: dict(callers), store=store,
                     recordings=recordings)
    server = WebServer(app, "127.0.0.1", 0, threads=6)
    server.start()
    try:
        yield LiveHarness(app, server, bus, settings, credentials, clock, lines,
                          conferences=conferences, store=store, recordings=recordings,
                          callers=callers)
    finally:
        server.stop()
        if store is not None:
            store.close()


def sse_events(reply: requests.Response) -> Iterator[tuple[str, dict]]:
    """(kind, data) of each message of an open text/event-stream response."""
    kind = ""
    for line in reply.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield kind, json.loads(line[6:])
