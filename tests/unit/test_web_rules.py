"""The rule files page over real HTTP: upload, create and edit checked by the call parser (errors
with line numbers, the text kept), delete refused while a line runs the file, each line's choice
of call rules stored in the settings, and the session and CSRF on every rules route."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from appliance.events import EventBus
from appliance.store import Store
from appliance.twiml.fetch import Fetcher
from appliance.twiml.parse import parse_twiml
from appliance.twiml.verbs import Say
from appliance.web import MemoryApiCredentials, WebOptions, WebServer, create_app
from appliance.web.line_rules import voice_url_for
from appliance.web.passwords import hash_password
from appliance.web.rule_files import RuleFiles
from appliance.web.settings import ADMIN_PASSWORD
from tests.web_harness import HTML, PASSWORD, FakeClock, WebHarness, csrf_in

LINES = [("gsm0", "rooms"), ("gsm1", "welcome.xml")]
GOOD = '<?xml version="1.0"?>\n<Response>\n  <Say>Hello from the page.</Say>\n</Response>\n'
BAD = '<Response>\n  <Say>Hello</Say>\n  <Sya>typo</Sya>\n  <Pause length="x"/>\n</Response>\n'
WARNED = '<Response>\n  <Say colour="blue">Hi</Say>\n</Response>\n'
PLIVO = '<Response>\n  <Speak>Hello from Plivo XML.</Speak>\n  <Wait length="1"/>\n</Response>\n'


@contextmanager
def rules_web(data_dir: Path) -> Iterator[tuple[WebHarness, Store, RuleFiles]]:
    """The app with its rule files (a real Store's settings in ``data_dir``) on loopback."""
    store = Store.in_data_dir(data_dir)
    store.settings.set(ADMIN_PASSWORD, hash_password(PASSWORD))
    files = RuleFiles.in_data_dir(data_dir)
    clock = FakeClock()
    credentials = MemoryApiCredentials("AC" + "0" * 32, "f" * 32)
    app = create_app(store.settings, EventBus(), credentials=credentials,
                     default_name="Family line", options=WebOptions(stream_poll=0.05),
                     clock=clock, store=store, rule_files=files, lines=lambda: list(LINES))
    server = WebServer(app, "127.0.0.1", 0, threads=4)
    server.start()
    try:
        yield WebHarness(app, server, EventBus(), store.settings, credentials, clock), store, files
    finally:
        server.stop()
        store.close()


@pytest.fixture
def web(tmp_path):
    with rules_web(tmp_path) as running:
        yield running


def post(web: WebHarness, client: requests.Session, path: str, data: dict,
         form_page: str = "/rules", files: dict | None = None) -> requests.Response:
    token = web.form_token(client, form_page)
    return client.post(web.url + path, data={**data, "csrf_token": token}, files=files,
                       allow_redirects=False)


def upload(web: WebHarness, client: requests.Session, name: str,
           data: bytes) -> requests.Response:
    return post(web, client, "/rules/upload", {},
                files={"rule_file": (name, data, "application/xml")})


def textarea(page: str) -> str:
    match = re.search(r'<textarea id="text"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, "no document textarea"
    return html.unescape(match.group(1))


def problems(page: str) -> list[tuple[str, str, str]]:
    """(where, kind and code, message) of each problem listed on the page."""
    found = re.findall(r'<span class="problem-where">(.*?)</span>\s*'
                       r'<span class="problem-kind">(.*?)</span>\s*'
                       r'<span class="problem-message">(.*?)</span>', page, re.S)
    return [(where, kind, html.unescape(message)) for where, kind, message in found]


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


# --- upload ---------------------------------------------------------------------------------


def test_an_uploaded_document_is_listed_kept_and_served_as_the_file_calls_run(web):
    harness, _store, files = web
    client = harness.login()
    assert 'id="no-rules"' in client.get(harness.url + "/rules").text
    reply = upload(harness, client, "welcome.xml", GOOD.encode())
    assert reply.status_code == 303, reply.text
    assert reply.headers["Location"].endswith("/rules/welcome.xml")
    assert (files.folder / "welcome.xml").read_text() == GOOD
    editor = client.get(reply.headers["Location"])
    assert "Rule file “welcome.xml” uploaded." in editor.text
    assert textarea(editor.text) == GOOD
    assert 'href="/rules/welcome.xml"' in client.get(harness.url + "/rules").text
    # What a call fetches from the file: URL is this document.
    _, body, _ = Fetcher("", "").fetch_document(files.url("welcome.xml"), "GET", {})
    verbs = parse_twiml(body).verbs
    assert isinstance(verbs[0], Say) and verbs[0].text == "Hello from the page."


def test_a_plivo_document_uploads_too(web):
    harness, _store, files = web
    reply = upload(harness, harness.login(), "plivo ivr.xml", PLIVO.encode())
    assert reply.status_code == 303
    assert reply.headers["Location"].endswith("/rules/plivo%20ivr.xml")
    assert parse_twiml((files.folder / "plivo ivr.xml").read_text()).dialect == "plivo"


def test_an_upload_with_errors_lists_them_by_line_and_writes_nothing(web, tmp_path):
    harness, _store, _files = web
    client = harness.login()
    before = files_under(tmp_path)
    reply = upload(harness, client, "broken.xml", BAD.encode())
    assert reply.status_code == 400
    assert "“broken.xml” was not saved: the call parser found 2 errors." in html.unescape(
        reply.text)
    listed = problems(reply.text)
    assert [(where, kind) for where, kind, _ in listed] == [
        ("Line 3", "error 12200"), ("Line 4", "error 12200")]
    assert "unknown verb <Sya> (did you mean <Say>?)" in listed[0][2]
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(("name", "data", "message"), [
    ("../../etc/evil.xml", GOOD.encode(), "no folders"),
    ("..\\evil.xml", GOOD.encode(), "no folders"),
    ("sub/evil.xml", GOOD.encode(), "no folders"),
    ("/tmp/evil.xml", GOOD.encode(), "no folders"),
    (".hidden.xml", GOOD.encode(), "start with a letter or digit"),
    ("notes.txt", GOOD.encode(), "must end in .xml"),
    ("big.xml", b"<Response>" + b" " * (256 * 1024) + b"</Response>", "too big"),
    ("latin.xml", "<Response><Say>Café</Say></Response>".encode("latin-1"), "UTF-8"),
    ("empty.xml", b"", "empty"),
    ("html.xml", b"<html><body>hi</body></html>", "root element must be <Response>"),
])
def test_bad_uploads_are_refused_and_nothing_is_written(web, tmp_path, name, data, message):
    harness, _store, _files = web
    client = harness.login()
    before = files_under(tmp_path.parent)
    reply = upload(harness, client, name, data)
    assert reply.status_code in (400, 413), reply.status_code
    assert message in html.unescape(reply.text)
    assert files_under(tmp_path.parent) == before


def test_an_upload_never_replaces_a_file_of_the_same_name(web):
    harness, _store, files = web
    client = harness.login()
    assert upload(harness, client, "welcome.xml", GOOD.encode()).status_code == 303
    again = upload(harness, client, "welcome.xml", WARNED.encode())
    assert again.status_code == 400 and "already exists" in again.text
    assert (files.folder / "welcome.xml").read_text() == GOOD


# --- create and edit ------------------------------------------------------------------------


def test_a_new_document_with_errors_keeps_its_text_and_is_saved_once_fixed(web):
    harness, _store, files = web
    client = harness.login()
    refused = post(harness, client, "/rules", {"name": "menu.xml", "text": BAD.replace(
        "\n", "\r\n")}, "/rules/new")
    assert refused.status_code == 400
    assert textarea(refused.text) == BAD, "the text is kept as typed (line ends aside)"
    assert 'name="name" type="text" value="menu.xml"' in refused.text
    assert [where for where, _, _ in problems(refused.text)] == ["Line 3", "Line 4"]
    assert files.names() == []
    created = post(harness, client, "/rules", {"name": "menu.xml", "text": GOOD}, "/rules/new")
    assert created.status_code == 303
    assert files.read("menu.xml") == GOOD


def test_an_edit_with_errors_is_not_saved_and_the_old_document_still_runs(web):
    harness, _store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    reply = post(harness, client, "/rules/welcome.xml", {"text": BAD}, "/rules/welcome.xml")
    assert reply.status_code == 400
    assert textarea(reply.text) == BAD
    assert "The text below is as you left it." in reply.text
    assert files.read("welcome.xml") == GOOD
    assert not list(files.folder.glob(".rule-*")), "no temp file left behind"


def test_warnings_are_saved_and_shown_with_their_line(web):
    harness, _store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    reply = post(harness, client, "/rules/welcome.xml", {"text": WARNED}, "/rules/welcome.xml")
    assert reply.status_code == 303
    assert files.read("welcome.xml") == WARNED
    page = client.get(reply.headers["Location"]).text
    assert "saved with 1 warning" in page
    assert problems(page) == [("Line 2", "warning 12200",
                               '<Say> has no attribute "colour"; ignored')]


def test_a_name_that_is_taken_or_not_a_file_name_is_refused_on_create(web):
    harness, _store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    taken = post(harness, client, "/rules", {"name": "welcome.xml", "text": WARNED}, "/rules/new")
    assert taken.status_code == 400 and "already exists" in taken.text
    traversal = post(harness, client, "/rules", {"name": "../x.xml", "text": GOOD}, "/rules/new")
    assert traversal.status_code == 400 and "no folders" in traversal.text
    assert files.names() == ["welcome.xml"] and files.read("welcome.xml") == GOOD


def test_unknown_rule_files_are_not_found(web):
    harness, _store, _files = web
    client = harness.login()
    assert client.get(harness.url + "/rules/nothing.xml").status_code == 404
    assert client.get(harness.url + "/rules/..%2F..%2Fsettings.json").status_code == 404
    assert post(harness, client, "/rules/nothing.xml/delete", {}).status_code == 404


# --- each line's rules, delete ---------------------------------------------------------------


def choose(harness: WebHarness, client: requests.Session, **fields: str) -> requests.Response:
    return post(harness, client, "/rules/lines", fields)


def test_each_line_chooses_config_rooms_a_rule_file_or_a_url(web):
    harness, store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    page = client.get(harness.url + "/rules").text
    assert "From config.toml (rooms)" in page and "From config.toml (welcome.xml)" in page
    reply = choose(harness, client, choice_0="rule:welcome.xml", choice_1="url",
                   url_1="https://example.com/voice.xml")
    assert reply.status_code == 303, reply.text
    stored = store.settings.snapshot().line_voice_urls
    assert stored == {"gsm0": "rule:welcome.xml", "gsm1": "https://example.com/voice.xml"}
    page = client.get(harness.url + "/rules").text
    assert re.search(r'<option value="rule:welcome.xml" selected>', page)
    assert 'value="https://example.com/voice.xml"' in page
    assert "Runs the calls of gsm0" in page
    # What the daemon runs for each choice.
    assert voice_url_for(stored["gsm0"], files) == (files.folder / "welcome.xml").as_uri()
    assert voice_url_for(stored["gsm1"], files) == "https://example.com/voice.xml"
    choose(harness, client, choice_0="rooms", choice_1="config")
    assert store.settings.snapshot().line_voice_urls == {"gsm0": "rooms"}
    assert voice_url_for("rooms", files) == "rooms"


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.com/voice.xml", "must start with http:// or https://"),
    ("javascript:alert(1)", "must start with http:// or https://"),
    ("https:///voice.xml", "must name a host"),
    ("https://example.com/a b.xml", "spaces"),
    ("https://user:secret@example.com/voice.xml", "Leave user names"),
    ("", "Type the URL"),
])
def test_a_bad_url_is_refused_with_the_typed_values_kept_and_nothing_stored(web, url, message):
    harness, store, _files = web
    client = harness.login()
    choose(harness, client, choice_0="rooms")
    reply = choose(harness, client, choice_0="config", choice_1="url", url_1=url)
    assert reply.status_code == 400
    assert 'id="error-line-1"' in reply.text and message in html.unescape(reply.text)
    assert re.search(r'<option value="config" selected>', reply.text), "what was chosen is kept"
    assert store.settings.snapshot().line_voice_urls == {"gsm0": "rooms"}, "nothing changed"


def test_a_missing_rule_file_cannot_be_chosen(web):
    harness, store, _files = web
    client = harness.login()
    reply = choose(harness, client, choice_0="rule:../settings.json")
    assert reply.status_code == 400 and "Choose one of the offered rule files" in reply.text
    assert store.settings.snapshot().line_voice_urls == {}


def test_a_rule_file_a_line_runs_cannot_be_deleted_until_the_line_moves_on(web):
    harness, _store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    choose(harness, client, choice_1="rule:welcome.xml")
    refused = post(harness, client, "/rules/welcome.xml/delete", {})
    assert refused.status_code == 409
    assert ("“welcome.xml” was not deleted: line gsm1 runs it. Choose other call rules for "
            "them first.") in html.unescape(refused.text)
    assert files.names() == ["welcome.xml"]
    choose(harness, client, choice_1="config")
    deleted = post(harness, client, "/rules/welcome.xml/delete", {})
    assert deleted.status_code == 303
    assert files.names() == []
    assert "Rule file “welcome.xml” is deleted." in client.get(harness.url + "/rules").text


# --- access -----------------------------------------------------------------------------------


def test_every_rules_route_needs_a_session_and_every_form_its_csrf_token(web):
    harness, _store, files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    routes = [route for route in harness.app.bottle.routes if route.rule.startswith("/rules")]
    assert {(route.method, route.rule) for route in routes} >= {
        ("GET", "/rules"), ("GET", "/rules/new"), ("POST", "/rules"), ("POST", "/rules/upload"),
        ("POST", "/rules/lines"), ("GET", "/rules/<name>"), ("POST", "/rules/<name>"),
        ("POST", "/rules/<name>/delete")}
    for route in routes:
        url = harness.url + route.rule.replace("<name>", "welcome.xml")
        assert requests.request(route.method, url, allow_redirects=False).status_code == 401
        person = requests.request(route.method, url, headers=HTML, allow_redirects=False)
        assert person.status_code == 303 and "/login" in person.headers["Location"]
        if route.method == "POST":
            for token in (None, "wrong"):
                data = {"text": WARNED, "name": "x.xml", "choice_0": "rooms"}
                if token is not None:
                    data["csrf_token"] = token
                reply = client.post(url, data=data, allow_redirects=False)
                assert reply.status_code == 403, (route.rule, token)
    assert files.read("welcome.xml") == GOOD and files.names() == ["welcome.xml"]
    assert harness.settings.get("line_voice_urls") in (None, {})
    csrf_in(client.get(harness.url + "/rules").text)  # the page's own forms carry one


def test_the_pages_carry_no_inline_script_or_style(web):
    harness, _store, _files = web
    client = harness.login()
    upload(harness, client, "welcome.xml", GOOD.encode())
    for path in ("/rules", "/rules/new", "/rules/welcome.xml"):
        page = client.get(harness.url + path).text
        assert 'href="/rules" aria-current="page"' in page
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page)
