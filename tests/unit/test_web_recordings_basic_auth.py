"""A recording's RecordingUrl over real HTTP: a Twilio app fetches it with the API credentials
in HTTP Basic (as Twilio's own recording URLs take them), the page with its session; anything
else is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from appliance.web.access import CUSTOM
from tests.unit.test_web_recordings import SID, record
from tests.web_harness import HTML
from tests.web_live_harness import running_live

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "f" * 32


@pytest.fixture
def web(tmp_path):
    with running_live(tmp_path) as harness:
        yield harness


def test_the_recording_url_serves_the_file_to_the_api_credentials(web):
    entry = record(web)
    url = web.recordings.url_for(SID).replace("http://appliance.test", web.url)
    reply = requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "audio/wav"
    assert reply.content == Path(entry.path).read_bytes()
    # Twilio apps fetch RecordingUrl + ".wav": the format the file is kept in.
    wav = requests.get(url + ".wav", auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert wav.status_code == 200 and wav.content == reply.content
    assert requests.get(url + ".mp3", auth=(ACCOUNT_SID, AUTH_TOKEN)).status_code == 404


def test_a_logged_in_page_still_plays_it(web):
    record(web)
    client = web.login()
    assert client.get(web.url + f"/recordings/{SID}").status_code == 200
    assert client.get(web.url + f"/recordings/{SID}/download").status_code == 200


@pytest.mark.parametrize("auth", [
    None,
    (ACCOUNT_SID, "0" * 32),                 # wrong token
    ("AC" + "1" * 32, AUTH_TOKEN),           # another account
    (ACCOUNT_SID, ""),
    (ACCOUNT_SID + ":" + AUTH_TOKEN, ""),    # a colon in the wrong place
])
def test_anything_else_is_refused_with_a_basic_challenge(web, auth):
    record(web)
    reply = requests.get(web.url + f"/recordings/{SID}", auth=auth)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith('Basic realm="Recordings"')
    assert reply.content[:4] != b"RIFF"


def test_garbled_basic_headers_and_forged_sessions_are_refused(web):
    record(web)
    url = web.url + f"/recordings/{SID}"
    for header in ("Basic not-base64!", "Basic " + "QUMw", "Bearer " + AUTH_TOKEN):
        assert requests.get(url, headers={"Authorization": header}).status_code == 401, header
    assert requests.get(url, cookies={"appliance_session": "forged"}).status_code == 401
    person = requests.get(url, headers=HTML, allow_redirects=False)
    assert person.status_code == 303
    assert person.headers["Location"] == f"/login?next=/recordings/{SID}"


def test_wrong_basic_credentials_are_refused_even_with_a_session(web):
    record(web)
    client = web.login()
    reply = client.get(web.url + f"/recordings/{SID}", auth=(ACCOUNT_SID, "0" * 32))
    assert reply.status_code == 401


def test_a_rotated_token_opens_it_and_the_old_one_no_longer_does(web):
    record(web)
    url = web.url + f"/recordings/{SID}"
    new = web.credentials.rotate()
    assert requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN)).status_code == 401
    assert requests.get(url, auth=(ACCOUNT_SID, new.auth_token)).status_code == 200


def test_only_the_file_route_takes_basic_auth(web):
    record(web)
    custom = {(route.method, route.rule) for route in web.app.bottle.routes
              if route.config.get("auth") == CUSTOM}
    assert ("GET", "/recordings/<sid>") in custom
    for path in ("/recordings", f"/recordings/{SID}/download"):
        reply = requests.get(web.url + path, auth=(ACCOUNT_SID, AUTH_TOKEN))
        assert reply.status_code == 401, path
    delete = requests.post(web.url + f"/recordings/{SID}/delete",
                           auth=(ACCOUNT_SID, AUTH_TOKEN))
    assert delete.status_code == 401
    assert web.store.recordings.get(SID).sid == SID
