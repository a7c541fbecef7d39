"""Signed callbacks (status, recording, conference events) delivered off the call path.

One worker thread sends them in the order they were queued, so a conference's events arrive
in ``SequenceNumber`` order. Each request carries ``X-Twilio-Signature`` made with the auth
token, exactly as Twilio signs, so an application's ``RequestValidator`` accepts it. A failed
delivery is retried once and then logged with Twilio's code 15003; it never affects a call.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from appliance.signing import twilio_signature

log = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"  # what Twilio sends; some applications check it


@dataclass(frozen=True)
class Webhook:
    url: str
    method: str
    params: dict[str, str]


class WebhookSender:
    def __init__(self, auth_token: str | Callable[[], str], timeout: float = 5.0,
                 retries: int = 1) -> None:
        """``auth_token`` signs callbacks: the token, or a provider called at each send."""
        self._auth_token = auth_token
        self._timeout = timeout
        self._retries = retries
        self._queue: queue.Queue[Webhook | None] = queue.Queue()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self.delivered = 0
        self.failed = 0

    def _token(self) -> str:
        token = self._auth_token
        return token() if callable(token) else token

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def send(self, url: str, method: str, params: Mapping[str, str]) -> None:
        """Queue a callback; returns at once."""
        if not url:
            return
        self._idle.clear()
        self._queue.put(Webhook(url, (method or "POST").upper(), dict(params)))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything queued so far has been delivered or given up."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            hook = self._queue.get()
            if hook is None:
                return
            try:
                self._deliver(hook)
            except Exception:  # a bad callback (e.g. an unusable URL) must not stop the rest
                self.failed += 1
                log.exception("error 15003: callback to %s failed", hook.url)
            if self._queue.empty():
                self._idle.set()

    def _deliver(self, hook: Webhook) -> None:
        if hook.method == "GET":
            url = _with_query(hook.url, hook.params)
            signature = twilio_signature(self._token(), url, {})
            request = {"url": url}
        else:
            signature = twilio_signature(self._token(), hook.url, hook.params)
            request = {"url": hook.url, "data": hook.params}
        headers = {"X-Twilio-Signature": signature, "User-Agent": USER_AGENT}
        for attempt in range(self._retries + 1):
            try:
                response = self._session.request(hook.method, headers=headers,
                                                 timeout=self._timeout, **request)
                if response.status_code < 400:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                problem = str(exc)
            log.debug("callback %s attempt %d failed: %s", hook.url, attempt + 1, problem)
        self.failed += 1
        log.warning("error 15003: callback to %s failed: %s", hook.url, problem)


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))
