import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from appliance.signing import signature_matches, twilio_signature
from appliance.twiml.fetch import Fetcher, FetchError, resolve_url

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "12345678901234567890123456789012"
TWIML = b"<Response><Say>hi</Say></Response>"
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"


# --- resolving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "ref", "expected"),
    [
        ("https://host/app/start.xml", "next.xml", "https://host/app/next.xml"),
        ("https://host/app/start.xml", "/root.xml", "https://host/root.xml"),
        ("https://host/app/start.xml", "../up.xml", "https://host/up.xml"),
        ("https://host/app/start.xml", "?step=2", "https://host/app/start.xml?step=2"),
        ("https://host/app/start.xml", "//cdn.example/m.mp3", "https://cdn.example/m.mp3"),
        ("https://host/app/start.xml", "http://other/x.xml", "http://other/x.xml"),
        ("file:///srv/rules/main.xml", "music/hold.wav", "file:///srv/rules/music/hold.wav"),
        ("file:///srv/rules/main.xml", "/etc/x.xml", "file:///etc/x.xml"),
        ("/srv/config.toml", "rules/welcome.xml", "file:///srv/rules/welcome.xml"),
        ("/srv/config.toml", "my rules/a.xml", "file:///srv/my%20rules/a.xml"),
        ("file:///srv/", "a.xml", "file:///srv/a.xml"),
    ],
)
def test_relative_references_resolve_like_a_browser(base, ref, expected):
    assert resolve_url(base, ref) == expected


def test_local_folder_base_resolves_inside_it(tmp_path):
    assert resolve_url(str(tmp_path), "a.xml") == (tmp_path / "a.xml").as_uri()


def test_empty_base_resolves_against_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_url("", "rules.xml") == (tmp_path / "rules.xml").as_uri()


# --- signatures -----------------------------------------------------------------------------


def test_signature_matches_twilios_own_validator():
    url = "https://example.com/voice?lang=en"
    params = {"CallSid": "CA1", "From": "+15550001111", "To": "+15551230000", "Digits": "1234#"}
    signature = twilio_signature(AUTH_TOKEN, url, params)
    assert RequestValidator(AUTH_TOKEN).validate(url, params, signature)
    assert signature_matches(AUTH_TOKEN, url, params, signature)
    assert not signature_matches("another token", url, params, signature)


# --- file: ---------------------------------------------------------------------------------


def test_file_url_is_read(tmp_path):
    path = tmp_path / "rules.xml"
    path.write_bytes(TWIML)
    url, body, content_type = Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document(
        path.as_uri(), "POST", {"CallSid": "CA1"}
    )
    assert (url, body) == (path.as_uri(), TWIML)
    assert content_type.endswith("xml")
    assert Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_bytes(path.as_uri()) == TWIML


def test_missing_file_is_11200(tmp_path):
    with pytest.raises(FetchError) as caught:
        Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document((tmp_path / "nope.xml").as_uri(), "GET", {})
    assert caught.value.code == 11200
    assert "not found" in str(caught.value)


def test_other_schemes_are_refused():
    with pytest.raises(FetchError) as caught:
        Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document("ftp://host/a.xml", "GET", {})
    assert caught.value.code == 11200


# --- http: against a loopback server --------------------------------------------------------


@dataclass
class Recorded:
    method: str
    url: str
    form: dict[str, str]
    signature: str | None
    if_none_match: str | None = None
    if_modified_since: str | None = None


@dataclass
class LoopbackServer:
    base: str
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    state = LoopbackServer(base="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _record(self, form: dict[str, str]) -> None:
            url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
            signature = self.headers.get("X-Twilio-Signature")
            conditions = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            state.requests.append(Recorded(self.command, url, form, signature, *conditions))

        def _answer(self) -> None:
            route = urlsplit(self.path).path
            if route == "/slow":
                state.release.wait(10)  # the client has given up by now: no answer
                return
            if route == "/missing":
                self.send_error(404)
                return
            if route == "/always-304":
                self.send_response(304)
                self.end_headers()
                return
            if route == "/down":
                self.send_error(503)
                return
            if route == "/tagged.wav":
                unchanged = self.headers.get("If-None-Match") == '"v1"' or (
                    self.headers.get("If-Modified-Since") == LAST_MODIFIED
                )
                self.send_response(304 if unchanged else 200)
                self.send_header("ETag", '"v1"')
                self.send_header("Last-Modified", LAST_MODIFIED)
                self.send_header("Cache-Control", "max-age=60")
                self.send_header("Content-Length", "0" if unchanged else str(len(TWIML)))
                self.end_headers()
                if not unchanged:
                    self.wfile.write(TWIML)
                return
            if route == "/moved":
                self.send_response(302)
                self.send_header("Location", "/voice.xml")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(TWIML)))
            self.end_headers()
            self.wfile.write(TWIML)

        def do_GET(self) -> None:
            self._record({})
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
            self._record(form)
            self._answer()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


PARAMS = {
    "CallSid": "CA0123",
    "From": "+15550001111",
    "To": "+15551230000",
    "CallStatus": "in-progress",
    "Direction": "inbound",
}


def test_post_form_encodes_params_and_signs_them(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN)
    url, body, content_type = fetcher.fetch_document(f"{server.base}/voice.xml", "POST", PARAMS)
    assert (url, body, content_type) == (f"{server.base}/voice.xml", TWIML, "text/xml")
    (request,) = server.requests
    assert request.method == "POST"
    assert request.form == {**PARAMS, "AccountSid": ACCOUNT_SID}
    validator = RequestValidator(AUTH_TOKEN)
    assert validator.validate(request.url, request.form, request.signature)


def test_get_puts_params_in_the_query_string_and_signs_the_url(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN)
    fetcher.fetch_document(f"{server.base}/voice.xml?room=family", "GET", PARAMS)
    (request,) = server.requests
    query = dict(parse_qsl(urlsplit(request.url).query))
    assert query == {"room": "family", **PARAMS, "AccountSid": ACCOUNT_SID}
    assert RequestValidator(AUTH_TOKEN).validate(request.url, {}, request.signature)


def test_redirects_are_followed_and_the_final_url_returned(server):
    url, body, _ = Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document(
        f"{server.base}/moved", "GET", {}
    )
    assert (url, body) == (f"{server.base}/voice.xml", TWIML)


def test_media_bytes_are_fetched_with_get(server):
    assert Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_bytes(f"{server.base}/hold.wav") == TWIML
    assert server.requests[0].method == "GET"


def test_http_error_status_is_11200(server):
    with pytest.raises(FetchError) as caught:
        Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document(f"{server.base}/missing", "POST", PARAMS)
    assert caught.value.code == 11200
    assert "HTTP 404" in str(caught.value)


def test_timeout_is_11200(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN, timeout=0.3)
    with pytest.raises(FetchError) as caught:
        fetcher.fetch_document(f"{server.base}/slow", "POST", PARAMS)
    assert caught.value.code == 11200
    assert "no answer within 0.3 s" in str(caught.value)


def test_connection_refused_is_11200():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as caught:
        Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_document(f"http://127.0.0.1:{port}/", "GET", {})
    assert caught.value.code == 11200


def test_oversized_body_is_refused(server, tmp_path):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN, max_bytes=10)
    with pytest.raises(FetchError):
        fetcher.fetch_bytes(f"{server.base}/voice.xml")
    big = Path(tmp_path / "big.wav")
    big.write_bytes(b"x" * 11)
    with pytest.raises(FetchError):
        fetcher.fetch_bytes(big.as_uri())


# --- media, conditional ---------------------------------------------------------------------


def test_media_fetch_hands_back_the_caching_headers(server):
    response = Fetcher(ACCOUNT_SID, AUTH_TOKEN).fetch_media(f"{server.base}/tagged.wav")
    assert (response.status, response.body) == (200, TWIML)
    assert response.headers["etag"] == '"v1"'
    assert response.headers["cache-control"] == "max-age=60"
    assert response.headers["last-modified"] == LAST_MODIFIED
    (request,) = server.requests
    assert (request.if_none_match, request.if_modified_since) == (None, None)


def test_media_revalidation_sends_the_validators_and_returns_304(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN)
    response = fetcher.fetch_media(f"{server.base}/tagged.wav", '"v1"', LAST_MODIFIED)
    assert response.not_modified
    assert response.body == b""
    assert response.headers["cache-control"] == "max-age=60"
    (request,) = server.requests
    assert (request.if_none_match, request.if_modified_since) == ('"v1"', LAST_MODIFIED)
    assert RequestValidator(AUTH_TOKEN).validate(request.url, {}, request.signature)


def test_a_304_to_an_unconditional_request_is_an_error(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN)
    for fetch in (
        lambda url: fetcher.fetch_document(url, "GET", {}),  # documents are never conditional
        fetcher.fetch_media,
    ):
        with pytest.raises(FetchError) as caught:
            fetch(f"{server.base}/always-304")
        assert "HTTP 304" in str(caught.value)


def test_outages_are_retryable_and_answers_are_not(server):
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN, timeout=0.3)
    failures = {}
    for route in ("/down", "/missing", "/slow"):
        with pytest.raises(FetchError) as caught:
            fetcher.fetch_media(f"{server.base}{route}")
        failures[route] = (caught.value.code, caught.value.retryable)
    assert failures == {"/down": (11200, True), "/missing": (11200, False), "/slow": (11200, True)}


def test_unchanged_file_answers_304_without_being_read_and_a_changed_one_200(tmp_path):
    path = tmp_path / "hold.wav"
    path.write_bytes(b"one")
    fetcher = Fetcher(ACCOUNT_SID, AUTH_TOKEN)
    first = fetcher.fetch_media(path.as_uri())
    assert (first.status, first.body) == (200, b"one")
    assert fetcher.fetch_media(path.as_uri(), first.headers["etag"]).not_modified
    path.write_bytes(b"three")
    changed = fetcher.fetch_media(path.as_uri(), first.headers["etag"])
    assert (changed.status, changed.body) == (200, b"three")
    assert changed.headers["etag"] != first.headers["etag"]
