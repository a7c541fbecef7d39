import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from appliance.webhooks import WebhookSender

TOKEN = "12345678901234567890123456789012"


@pytest.fixture
def receiver():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _record(self, params: dict) -> None:
            received.append({"method": self.command, "path": self.path, "params": params,
                             "signature": self.headers.get("X-Twilio-Signature", "")})
            self.send_response(500 if self.path.startswith("/fail") else 204)
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            self._record(dict(parse_qsl(body)))

        def do_GET(self) -> None:
            self._record(dict(parse_qsl(urlsplit(self.path).query)))

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()


def test_callbacks_arrive_in_order_signed_as_twilio_signs(receiver) -> None:
    base, received = receiver
    sender = WebhookSender(TOKEN)
    sender.start()
    for number in range(5):
        sender.send(f"{base}/status", "POST", {"SequenceNumber": str(number), "A": "b c"})
    sender.send(f"{base}/status?x=1", "GET", {"SequenceNumber": "5"})
    assert sender.wait_idle(10)
    sender.stop()

    assert [int(r["params"]["SequenceNumber"]) for r in received] == list(range(6))
    validator = RequestValidator(TOKEN)
    for request in received[:5]:
        assert validator.validate(f"{base}/status", request["params"], request["signature"])
    get = received[5]
    assert validator.validate(f"{base}{get['path']}", {}, get["signature"])


def test_a_failing_endpoint_is_retried_once_logged_and_does_not_block_the_rest(
    receiver, caplog
) -> None:
    base, received = receiver
    sender = WebhookSender(TOKEN, timeout=2)
    sender.start()
    with caplog.at_level(logging.WARNING):
        sender.send(f"{base}/fail", "POST", {"n": "1"})
        sender.send(f"{base}/ok", "POST", {"n": "2"})
        assert sender.wait_idle(10)
    sender.stop()
    assert [r["path"] for r in received] == ["/fail", "/fail", "/ok"]
    assert "15003" in caplog.text
    assert sender.failed == 1 and sender.delivered == 1


def test_a_callback_that_raises_does_not_stop_the_ones_after_it(monkeypatch):
    sender = WebhookSender("token", timeout=1.0, retries=0)
    delivered = []

    def deliver(hook):
        if hook.url == "http://bad.invalid/":
            raise ValueError("unusable URL")
        delivered.append(hook.url)

    monkeypatch.setattr(sender, "_deliver", deliver)
    sender.start()
    sender.send("http://bad.invalid/", "POST", {})
    sender.send("http://127.0.0.1:9/next", "POST", {})
    assert sender.wait_idle(5)
    sender.stop()
    assert delivered == ["http://127.0.0.1:9/next"]
    assert sender.failed == 1
