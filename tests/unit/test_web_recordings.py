"""Recordings over real HTTP: the list, playing with Range requests, download and delete, and
nothing served that the index does not name inside the recordings folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from appliance.store import NotFoundError, RecordingEntry
from tests.web_harness import csrf_in
from tests.web_live_harness import running_live

SID = "RE" + "1" * 32
OTHER = "RE" + "2" * 32


@pytest.fixture
def web(tmp_path):
    with running_live(tmp_path) as harness:
        yield harness


def record(web, sid: str = SID, seconds: float = 2.0) -> RecordingEntry:
    """A real WAV in the recordings folder, indexed as the call history would."""
    path = web.recordings.path_for(sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (np.sin(np.arange(int(16000 * seconds)) / 5) * 8000).astype(np.int16)
    soundfile.write(path, samples, 16000, subtype="PCM_16")
    entry = RecordingEntry(sid=sid, path=str(path), created=1717259400.0, duration=seconds,
                           size=path.stat().st_size, conference="family")
    web.store.recordings.add(entry)
    return entry


def test_the_list_shows_each_recording_with_player_download_and_delete(web):
    entry = record(web)
    page = web.login().get(web.url + "/recordings")
    assert page.status_code == 200
    assert "Conference family" in page.text
    assert "0:02" in page.text and "63 KB" in page.text
    assert f'<audio controls preload="none" src="/recordings/{SID}"></audio>' in page.text
    assert f'href="/recordings/{SID}/download"' in page.text
    assert f'action="/recordings/{SID}/delete" data-confirm=' in page.text
    assert entry.size == 64044


def test_an_empty_list_says_how_recordings_are_made(web):
    page = web.login().get(web.url + "/recordings")
    assert 'id="no-recordings"' in page.text


def test_a_recording_plays_with_its_content_type_and_byte_ranges(web):
    entry = record(web)
    client = web.login()
    whole = client.get(web.url + f"/recordings/{SID}")
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.content == Path(entry.path).read_bytes()
    part = client.get(web.url + f"/recordings/{SID}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{entry.size}"
    assert part.content == whole.content[100:200]


def test_download_names_the_room_and_the_time(web):
    record(web)
    reply = web.login().get(web.url + f"/recordings/{SID}/download")
    assert reply.status_code == 200
    disposition = reply.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="family-2024-06-')
    assert disposition.endswith('.wav"')


@pytest.mark.parametrize("path", [
    f"/recordings/{OTHER}",                 # not in the index
    "/recordings/RE..%2F..%2Fdb%2Fsettings",  # not a sid at all
    "/recordings/re" + "1" * 32,            # wrong case
    f"/recordings/{OTHER}/download",
])
def test_anything_but_an_indexed_sid_is_refused(web, path):
    record(web)
    reply = web.login().get(web.url + path, headers={"Accept": "application/json"})
    assert reply.status_code == 404
    assert "audio" not in reply.headers["Content-Type"]


def test_an_index_entry_pointing_outside_the_folder_is_not_served(web, tmp_path):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF not yours")
    web.store.recordings.add(RecordingEntry(sid=OTHER, path=str(secret), created=1.0,
                                            duration=1.0, size=14, conference="x"))
    reply = web.login().get(web.url + f"/recordings/{OTHER}")
    assert reply.status_code == 404
    assert b"not yours" not in reply.content


def test_recordings_need_a_session(web):
    record(web)
    assert web.browser().get(web.url + f"/recordings/{SID}",
                             allow_redirects=False).status_code == 303


def test_delete_needs_the_form_token_then_removes_the_file_and_the_entry(web):
    entry = record(web)
    client = web.login()
    refused = client.post(web.url + f"/recordings/{SID}/delete", allow_redirects=False)
    assert refused.status_code == 403
    assert web.store.recordings.get(SID) == entry
    token = csrf_in(client.get(web.url + "/recordings").text)
    reply = client.post(web.url + f"/recordings/{SID}/delete", data={"csrf_token": token},
                        allow_redirects=False)
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/recordings")
    with pytest.raises(NotFoundError):
        web.store.recordings.get(SID)
    assert not web.recordings.path_for(SID).exists()
    page = client.get(web.url + "/recordings")
    assert "Recording deleted: Conference family" in page.text
    again = client.post(web.url + f"/recordings/{SID}/delete", data={"csrf_token": token},
                        allow_redirects=False)
    assert again.status_code == 404
