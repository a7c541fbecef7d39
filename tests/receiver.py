"""A loopback web application for end-to-end tests: it serves TwiML (or audio) by path and
keeps every request it gets, with whether Twilio's own ``RequestValidator`` accepts its
``X-Twilio-Signature``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "e2e0123456789abcdef0123456789ab"
API_CONFIG = f'[api]\naccount_sid = "{ACCOUNT_SID}"\nauth_token = "{AUTH_TOKEN}"\n'

# A route answers a request's parameters with a TwiML string, or (content type, body).
Route = Callable[[dict[str, str]], "str | tuple[str, bytes]"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    params: dict[str, str]
    signed: bool  # RequestValidator accepts its X-Twilio-Signature


class Receiver:
    """``routes`` by path; every request is kept in ``requests``, in arrival order."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._changed = threading.Condition()
        validator = RequestValidator(AUTH_TOKEN)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, params: dict[str, str], signed_url: str,
                        signed_params: dict[str, str]) -> None:
                path = urlsplit(self.path).path
                signature = self.headers.get("X-Twilio-Signature", "")
                signed = validator.validate(signed_url, signed_params, signature)
                route = receiver.routes.get(path)
                answer = route(params) if route else None
                with receiver._changed:
                    receiver.requests.append(Request(self.command, path, params, signed))
                    receiver._changed.notify_all()
                if answer is None:
                    self.send_response(204)
                    self.end_headers()
                    return
                kind, body = (("text/xml", answer.encode()) if isinstance(answer, str)
                              else answer)
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                params = dict(parse_qsl(self.rfile.read(length).decode()))
                self._handle(params, receiver.url(urlsplit(self.path).path), params)

            def do_GET(self) -> None:
                params = dict(parse_qsl(urlsplit(self.path).query))
                self._handle(params, receiver.base + self.path, {})

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def at(self, path: str) -> list[Request]:
        with self._changed:
            return [request for request in self.requests if request.path == path]

    def wait(self, path: str, count: int = 1, timeout: float = 20.0,
             where: Callable[[Request], bool] = lambda request: True) -> list[Request]:
        """Block until ``count`` requests to ``path`` (matching ``where``) have arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self.requests if r.path == path and where(r)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(found)} of {count} requests to {path}; got "
                                         f"{[(r.path, r.params) for r in self.requests]}")
                self._changed.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def receiving() -> Iterator[Receiver]:
    """A pytest fixture body: a receiver for the test, closed after it."""
    receiver = Receiver()
    yield receiver
    receiver.close()
