"""/events over real HTTP: bus events as SSE, keep-alives, and no leak when a client leaves."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from appliance.events import EventBus
from appliance.web import WebOptions
from appliance.web.sse import format_event
from tests.web_harness import WebHarness, csrf_in, running_web

WAIT = 5.0  # seconds; a condition not met by then is a failure


class CountingBus(EventBus):
    """An EventBus that knows how many subscriptions are live."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.changed = threading.Condition()

    def subscribe(self, callback, prefix: str = "") -> Callable[[], None]:
        unsubscribe = super().subscribe(callback, prefix)
        with self.changed:
            self.live += 1
        done = False

        def counted() -> None:
            nonlocal done
            unsubscribe()
            with self.changed:
                if not done:
                    done = True
                    self.live -= 1
                    self.changed.notify_all()

        return counted

    def wait_live(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.live == count, WAIT)


@pytest.fixture
def bus():
    return CountingBus()


@pytest.fixture
def web(bus):
    with running_web(bus=bus, threads=3,
                     options=WebOptions(stream_poll=0.05, keepalive=0.2, max_streams=2)) as h:
        yield h


class SSEReader:
    """Reads one text/event-stream response message by message."""

    def __init__(self, reply: requests.Response) -> None:
        self.reply = reply
        self._lines: Iterator[str] = reply.iter_lines(decode_unicode=True)

    def next_block(self) -> list[str]:
        """The lines up to the next blank line (one message or comment)."""
        block: list[str] = []
        for line in self._lines:
            if line == "" and block:
                return block
            if line != "":
                block.append(line)
        raise EOFError("stream ended")

    def next_event(self) -> tuple[str, dict]:
        """The next ``event:``/``data:`` message, skipping comments and retry hints."""
        while True:
            block = self.next_block()
            fields = dict(line.split(": ", 1) for line in block if not line.startswith(":"))
            if "event" in fields:
                return fields["event"], json.loads(fields["data"])

    def close(self) -> None:
        self.reply.close()


def open_stream(web: WebHarness, client: requests.Session) -> SSEReader:
    reply = client.get(web.url + "/events", stream=True, timeout=WAIT,
                       headers={"Accept": "text/event-stream"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/event-stream")
    return SSEReader(reply)


def test_stream_opens_with_a_snapshot_then_delivers_published_events(web):
    web.lines["gsm0"] = {"state": "starting", "detail": {}}
    stream = open_stream(web, web.login())
    try:
        assert stream.next_block() == ["retry: 3000"]
        kind, data = stream.next_event()
        assert kind == "snapshot"
        assert data == {"lines": {"gsm0": {"state": "starting", "detail": {}}}}
        web.bus.publish("line.status", line="gsm0", state="idle",
                        detail={"operator": "Test Net", "signal_dbm": -71})
        kind, data = stream.next_event()
        assert kind == "line.status"
        assert data["line"] == "gsm0" and data["state"] == "idle"
        assert data["detail"] == {"operator": "Test Net", "signal_dbm": -71}
        assert isinstance(data["timestamp"], float)
        # Published from another thread (as the line drivers do), in order.
        publisher = threading.Thread(target=lambda: [
            web.bus.publish("call.ringing", line="gsm0", caller=f"+1555000{n}")
            for n in range(3)])
        publisher.start()
        callers = [stream.next_event()[1]["caller"] for _ in range(3)]
        publisher.join()
        assert callers == ["+15550000", "+15550001", "+15550002"]
    finally:
        stream.close()


def test_an_idle_stream_sends_keep_alive_comments(web):
    stream = open_stream(web, web.login())
    try:
        stream.next_block()
        stream.next_event()
        assert stream.next_block() == [": keep-alive"]
    finally:
        stream.close()


def test_a_client_that_leaves_releases_its_subscription_and_thread(web, bus):
    client = web.login()
    for _ in range(5):  # more than the server's 3 threads: each must come back
        streams = [open_stream(web, client) for _ in range(2)]
        for stream in streams:
            stream.next_event()
        assert bus.live == 2 and web.app.ctx.streams.active() == 2
        for stream in streams:
            stream.close()
        assert bus.wait_live(0), "a stream kept its bus subscription"
        assert web.app.ctx.streams.wait_for_active(0, WAIT)
    assert client.get(web.url + "/api/status", headers={"Accept": "*/*"}).status_code == 200


def test_more_streams_than_allowed_are_refused_until_one_closes(web, bus):
    client = web.login()
    streams = [open_stream(web, client) for _ in range(2)]
    try:
        for stream in streams:
            stream.next_event()
        third = client.get(web.url + "/events", headers={"Accept": "*/*"})
        assert third.status_code == 503 and third.headers["Retry-After"] == "10"
        streams.pop().close()
        assert web.app.ctx.streams.wait_for_active(1, WAIT)
        streams.append(open_stream(web, client))
    finally:
        for stream in streams:
            stream.close()


def test_logging_out_ends_the_stream(web, bus):
    client = web.login()
    stream = open_stream(web, client)
    stream.next_event()
    token = csrf_in(client.get(web.url + "/").text)
    client.post(web.url + "/logout", data={"csrf_token": token}, allow_redirects=False)
    with pytest.raises(EOFError):
        while True:
            stream.next_block()
    assert bus.wait_live(0)


def test_stopping_the_server_ends_open_streams(bus):
    with running_web(bus=bus) as web:
        stream = open_stream(web, web.login())
        stream.next_event()
        assert bus.live == 1
    assert bus.wait_live(0)
    with pytest.raises((EOFError, requests.RequestException)):
        while True:
            stream.next_block()


def test_event_data_is_one_line_of_json_whatever_it_holds():
    message = format_event("conference.join\nevil: x", {"label": "a\nb\r\n", "when": object()})
    lines = message.decode().split("\n")
    assert lines[0] == "event: conference.joinevil: x"
    assert lines[1].startswith("data: {") and lines[2:] == ["", ""]
    assert json.loads(lines[1][6:])["label"] == "a\nb\r\n"
