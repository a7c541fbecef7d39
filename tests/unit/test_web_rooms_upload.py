"""Wait music uploads on the room form: real audio is kept in data_dir/media and served to the
interpreter; wrong types, oversized files and traversal names are refused and nothing is
written."""

from __future__ import annotations

import html
import io

import numpy as np
import pytest
import soundfile

from appliance.twiml.fetch import Fetcher
from appliance.twiml.parse import parse_twiml
from tests.unit.test_web_rooms import AUTH_TOKEN, FAMILY, post_form, rooms_web


def wav_bytes(seconds: float = 0.5) -> bytes:
    samples = (np.sin(np.arange(int(8000 * seconds)) * 0.3) * 8000).astype(np.int16)
    out = io.BytesIO()
    soundfile.write(out, samples, 8000, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.fixture
def web(tmp_path):
    with rooms_web(tmp_path) as (harness, services):
        yield harness, services, tmp_path


def upload(harness, client, name: str, data: bytes):  # type: ignore[no-untyped-def]
    return post_form(harness, client, "/rooms", {**FAMILY, "wait_music": "upload"},
                     "/rooms/new", files={"wait_file": (name, data, "audio/wav")})


def files_under(folder) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_an_uploaded_wav_is_kept_in_media_and_served_as_the_rooms_wait_url(web):
    harness, services, data_dir = web
    client = harness.login()
    music = wav_bytes()
    reply = upload(harness, client, "Hold tune.wav", music)
    assert reply.status_code == 303, reply.text
    room = services.rooms.find_by_name("family")
    assert room.wait_music == "Hold tune.wav"
    assert (data_dir / "media" / "Hold tune.wav").read_bytes() == music
    page = client.get(harness.url + f"/rooms/{room.id}").text
    shown = page.split('<pre class="twiml">')[1].split("</pre>")[0]
    conference = parse_twiml(html.unescape(shown)).verbs[0].nouns[0]
    assert conference.wait_url == "/voice/media/Hold tune.wav"
    # The interpreter resolves it against the room document's URL and fetches it, signed.
    fetcher = Fetcher("AC" + "0" * 32, AUTH_TOKEN)
    served = fetcher.fetch_media(harness.url + "/voice/media/Hold%20tune.wav")
    assert served.body == music
    assert "Hold tune.wav" in client.get(harness.url + "/rooms/new").text, "offered again"


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "../music.wav", "..\\..\\music.wav", "sub/music.wav", "/tmp/music.wav",
    ".hidden.wav", "music..wav",
])
def test_traversal_and_folder_names_are_refused_and_nothing_is_written(web, name):
    harness, services, data_dir = web
    client = harness.login()
    before = files_under(data_dir.parent)
    reply = upload(harness, client, name, wav_bytes())
    assert reply.status_code == 400
    assert "no folders" in reply.text
    assert services.rooms.list() == [], "the room waits for a good file"
    assert files_under(data_dir.parent) == before


def test_files_that_are_not_audio_are_refused(web):
    harness, services, data_dir = web
    client = harness.login()
    text = upload(harness, client, "notes.txt", b"hello")
    assert text.status_code == 400 and "The file must be audio" in text.text
    fake = upload(harness, client, "fake.wav", b"#!/bin/sh\nrm -rf /\n" * 50)
    assert fake.status_code == 400
    assert "is not an audio file this appliance can play" in fake.text
    empty = upload(harness, client, "empty.wav", b"")
    assert empty.status_code == 400
    assert not (data_dir / "media").exists() or services.media.names() == []
    assert services.rooms.list() == []


def test_a_file_over_the_size_limit_is_refused(web):
    harness, services, _data_dir = web
    services.media.max_bytes = 4000
    client = harness.login()
    reply = upload(harness, client, "long.wav", wav_bytes(1.0))  # 16 kB
    assert reply.status_code == 400 and "The file is too big" in reply.text
    assert services.media.names() == []
    small = upload(harness, client, "short.wav", wav_bytes(0.2))  # 3.2 kB
    assert small.status_code == 303
    assert services.media.names() == ["short.wav"]
