"""The media cache honours HTTP caching against a real loopback server: freshness, validators,
no-cache / no-store, stale copies when the origin fails, file: sources, the disk store across
a restart, and MP3 as well as WAV decoded through the real decoder."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile

from appliance.audio.media import MediaError
from appliance.twiml import media_cache
from appliance.twiml.fetch import Fetcher, FetchError
from appliance.twiml.media_cache import CachePolicy, MediaCache, MediaStore

RATE = 16000
SOURCE_RATE = 8000
NOW = 1_700_000_000.0


def tone_wav(frequency: float, seconds: float = 0.5) -> bytes:
    """A WAV file of one tone at 8 kHz, as bytes."""
    t = np.arange(int(SOURCE_RATE * seconds)) / SOURCE_RATE
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.5 * np.sin(2 * np.pi * frequency * t), SOURCE_RATE, format="WAV")
    return buffer.getvalue()


def tone_mp3(frequency: float, seconds: float = 1.0) -> bytes:
    """An MP3 of one tone: soundfile's libsndfile writes it, else sox (with its MP3 codec)."""
    t = np.arange(int(SOURCE_RATE * seconds)) / SOURCE_RATE
    samples = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, samples, SOURCE_RATE, format="MP3")
        return buffer.getvalue()
    except (soundfile.LibsndfileError, ValueError, TypeError):
        pass
    if shutil.which("sox"):
        result = subprocess.run(
            ["sox", "-t", "wav", "-", "-t", "mp3", "-"],
            input=tone_wav(frequency, seconds),
            capture_output=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout:
            return result.stdout
    pytest.skip("nothing here writes MP3 (libsndfile without MPEG, no sox MP3 codec)")


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * RATE / len(samples))


# --- a loopback origin ----------------------------------------------------------------------


@dataclass
class Resource:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200  # anything but 200 is answered as such, without a body


@dataclass
class Seen:
    path: str
    if_none_match: str | None
    if_modified_since: str | None
    status: int


class Origin:
    """Serves ``resources`` by path, answering conditional GETs with 304 as a server does."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}
        self.seen: list[Seen] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                resource = origin.resources[self.path]
                etag = resource.headers.get("ETag")
                modified = resource.headers.get("Last-Modified")
                unchanged = (etag and self.headers.get("If-None-Match") == etag) or (
                    modified and self.headers.get("If-Modified-Since") == modified
                )
                status = 304 if unchanged and resource.status == 200 else resource.status
                origin.seen.append(
                    Seen(
                        self.path,
                        self.headers.get("If-None-Match"),
                        self.headers.get("If-Modified-Since"),
                        status,
                    )
                )
                self.send_response(status)
                for name, value in resource.headers.items():
                    self.send_header(name, value)
                body = resource.body if status == 200 else b""
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def serve(self, path: str, body: bytes, **headers: str) -> str:
        self.resources[path] = Resource(body, {k.replace("_", "-"): v for k, v in headers.items()})
        return self.base + path

    def at(self, path: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == path]

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    yield server
    server.close()


class Clock:
    """The wall clock the cache compares headers with; starts now (the server's Date)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts of every real decode the cache asks for."""
    calls: list[int] = []
    real = media_cache.load_audio

    def counting(data: bytes, rate: int) -> np.ndarray:
        calls.append(len(data))
        return real(data, rate)

    monkeypatch.setattr(media_cache, "load_audio", counting)
    return calls


def make_cache(clock: Clock, cache_dir: Path | None = None, **kwargs: object) -> MediaCache:
    return MediaCache(
        Fetcher("", "", timeout=2.0), RATE, cache_dir=cache_dir, clock=clock, **kwargs
    )


# --- freshness ------------------------------------------------------------------------------


def test_fresh_max_age_copy_plays_without_any_request(origin, clock, decodes):
    url = origin.serve("/hold.wav", tone_wav(440), Cache_Control="max-age=60")
    cache = make_cache(clock)
    first = cache.get(url)
    clock.now += 30
    assert cache.get(url) is first
    assert len(origin.at("/hold.wav")) == 1
    assert len(decodes) == 1
    assert dominant_hz(first) == pytest.approx(440, abs=5)


def test_expired_max_age_is_fetched_again(origin, clock):
    url = origin.serve("/hold.wav", tone_wav(440), Cache_Control="max-age=60")
    cache = make_cache(clock)
    cache.get(url)
    clock.now += 61
    cache.get(url)
    assert len(origin.at("/hold.wav")) == 2


def test_expires_header_gives_freshness_relative_to_date(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), Expires=formatdate(clock.now + 120, usegmt=True))
    cache = make_cache(clock)
    cache.get(url)
    clock.now += 60
    cache.get(url)
    assert len(origin.at("/a.wav")) == 1
    clock.now += 70
    cache.get(url)
    assert len(origin.at("/a.wav")) == 2


def test_age_header_counts_against_freshness(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), Cache_Control="max-age=60", Age="50")
    cache = make_cache(clock)
    cache.get(url)
    clock.now += 5
    cache.get(url)
    assert len(origin.at("/a.wav")) == 1
    clock.now += 7  # 50 + 12 s old: stale
    cache.get(url)
    assert len(origin.at("/a.wav")) == 2


def test_without_validators_or_freshness_every_play_fetches_but_decodes_once(
    origin, clock, decodes
):
    url = origin.serve("/plain.wav", tone_wav(440))
    cache = make_cache(clock)
    first = cache.get(url)
    second = cache.get(url)
    seen = origin.at("/plain.wav")
    assert [(s.if_none_match, s.if_modified_since, s.status) for s in seen] == [
        (None, None, 200),
        (None, None, 200),
    ]
    assert second is first
    assert len(decodes) == 1


# --- revalidation ---------------------------------------------------------------------------


def test_etag_revalidates_with_if_none_match_and_304_keeps_the_decoded_audio(
    origin, clock, decodes
):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"')
    cache = make_cache(clock)
    first = cache.get(url)
    assert cache.get(url) is first
    assert [(s.if_none_match, s.status) for s in origin.at("/moh.wav")] == [
        (None, 200),
        ('"v1"', 304),
    ]
    assert len(decodes) == 1


def test_last_modified_revalidates_with_if_modified_since(origin, clock, decodes):
    stamp = formatdate(clock.now - 3600, usegmt=True)
    url = origin.serve("/moh.wav", tone_wav(440), Last_Modified=stamp)
    cache = make_cache(clock)
    first = cache.get(url)
    assert cache.get(url) is first
    assert [(s.if_modified_since, s.status) for s in origin.at("/moh.wav")] == [
        (None, 200),
        (stamp, 304),
    ]
    assert len(decodes) == 1


def test_changed_content_replaces_the_cached_audio(origin, clock):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"')
    cache = make_cache(clock)
    assert dominant_hz(cache.get(url)) == pytest.approx(440, abs=5)
    origin.serve("/moh.wav", tone_wav(1000), ETag='"v2"')
    assert dominant_hz(cache.get(url)) == pytest.approx(1000, abs=5)
    assert origin.at("/moh.wav")[-1].if_none_match == '"v1"'
    assert dominant_hz(cache.get(url)) == pytest.approx(1000, abs=5)
    assert origin.at("/moh.wav")[-1].if_none_match == '"v2"'


def test_no_cache_revalidates_even_while_fresh(origin, clock, decodes):
    url = origin.serve("/a.wav", tone_wav(440), Cache_Control="no-cache, max-age=600", ETag='"x"')
    cache = make_cache(clock)
    cache.get(url)
    cache.get(url)
    assert [s.status for s in origin.at("/a.wav")] == [200, 304]
    assert len(decodes) == 1


def test_304_headers_refresh_the_entry(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), ETag='"x"')
    cache = make_cache(clock)
    cache.get(url)
    origin.resources["/a.wav"].headers["Cache-Control"] = "max-age=60"
    cache.get(url)  # 304 carrying max-age=60: fresh from now on
    clock.now += 30
    cache.get(url)
    assert [s.status for s in origin.at("/a.wav")] == [200, 304]


def test_no_store_is_never_kept(origin, clock, decodes, tmp_path):
    url = origin.serve("/secret.wav", tone_wav(440), Cache_Control="no-store", ETag='"s"')
    cache = make_cache(clock, tmp_path / "media")
    cache.get(url)
    cache.get(url)
    assert [(s.if_none_match, s.status) for s in origin.at("/secret.wav")] == [
        (None, 200),
        (None, 200),
    ]
    assert len(decodes) == 2
    folder = tmp_path / "media"
    assert not folder.exists() or not any(folder.iterdir())


# --- when the origin fails ------------------------------------------------------------------


def test_stale_copy_plays_with_a_warning_when_the_origin_answers_5xx(origin, clock, caplog):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"', Cache_Control="max-age=10")
    cache = make_cache(clock)
    first = cache.get(url)
    clock.now += 3600
    origin.resources["/moh.wav"].status = 503
    with caplog.at_level(logging.WARNING, logger="appliance.twiml.media_cache"):
        assert cache.get(url) is first
    assert "HTTP 503" in caplog.text and "stale-if-error" in caplog.text


def test_stale_copy_plays_when_the_origin_is_unreachable(origin, clock, caplog):
    url = origin.serve("/moh.wav", tone_wav(440))  # no validators: refetched every time
    cache = make_cache(clock)
    first = cache.get(url)
    origin.close()
    with caplog.at_level(logging.WARNING, logger="appliance.twiml.media_cache"):
        assert cache.get(url) is first
    assert "cannot connect" in caplog.text


@pytest.mark.parametrize("directive", ["no-cache", "must-revalidate, max-age=5"])
def test_no_cache_and_must_revalidate_forbid_the_stale_copy(origin, clock, directive):
    url = origin.serve("/a.wav", tone_wav(440), Cache_Control=directive, ETag='"v1"')
    cache = make_cache(clock)
    cache.get(url)
    clock.now += 10
    origin.resources["/a.wav"].status = 502
    with pytest.raises(FetchError) as caught:
        cache.get(url)
    assert caught.value.code == 11200


def test_stale_if_error_directive_bounds_the_stale_copy(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), Cache_Control="max-age=10, stale-if-error=60")
    cache = make_cache(clock)
    first = cache.get(url)
    origin.resources["/a.wav"].status = 500
    clock.now += 50  # 40 s stale
    assert cache.get(url) is first
    clock.now += 30  # 70 s stale
    with pytest.raises(FetchError):
        cache.get(url)


def test_a_404_is_an_answer_not_an_outage(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), ETag='"v1"')
    cache = make_cache(clock)
    cache.get(url)
    origin.resources["/a.wav"].status = 404
    with pytest.raises(FetchError) as caught:
        cache.get(url)
    assert "HTTP 404" in str(caught.value)


def test_without_a_copy_the_fetch_error_stands(origin, clock):
    url = origin.serve("/a.wav", b"")
    origin.resources["/a.wav"].status = 503
    with pytest.raises(FetchError) as caught:
        make_cache(clock).get(url)
    assert caught.value.code == 11200


def test_new_content_that_is_not_audio_fails_and_drops_the_old_copy(origin, clock):
    url = origin.serve("/a.wav", tone_wav(440), ETag='"v1"')
    cache = make_cache(clock)
    cache.get(url)
    origin.serve("/a.wav", b"<html>moved</html>", ETag='"v2"')
    with pytest.raises(MediaError):
        cache.get(url)
    origin.resources["/a.wav"].status = 503
    with pytest.raises(FetchError):
        cache.get(url)  # no stale 440 Hz: it was replaced by what is not audio


# --- file: ---------------------------------------------------------------------------------


def test_file_source_is_reread_only_when_its_mtime_or_size_changes(clock, tmp_path, monkeypatch):
    path = tmp_path / "prompt.wav"
    path.write_bytes(tone_wav(440))
    cache = make_cache(clock)
    statuses: list[int] = []
    real = Fetcher.fetch_media

    def spying(self: Fetcher, url: str, etag: str = "", last_modified: str = ""):
        response = real(self, url, etag, last_modified)
        statuses.append(response.status)
        return response

    monkeypatch.setattr(Fetcher, "fetch_media", spying)
    first = cache.get(path.as_uri())
    assert cache.get(path.as_uri()) is first
    path.write_bytes(tone_wav(1000, seconds=0.6))
    changed = cache.get(path.as_uri())
    assert statuses == [200, 304, 200]
    assert dominant_hz(changed) == pytest.approx(1000, abs=5)


# --- decoding -------------------------------------------------------------------------------


def test_the_same_content_behind_two_urls_is_decoded_once(origin, clock, decodes):
    body = tone_wav(440)
    one = origin.serve("/one.wav", body, ETag='"a"')
    two = origin.serve("/two.wav", body, ETag='"b"')
    cache = make_cache(clock)
    assert cache.get(one) is cache.get(two)
    assert cache.decode(f"{origin.base}/wait?CallSid=CA1", body) is cache.get(one)
    assert cache.decode(f"{origin.base}/wait?CallSid=CA2", body) is cache.get(one)
    assert len(decodes) == 1


def test_decoded_samples_are_read_only(origin, clock):
    samples = make_cache(clock).get(origin.serve("/a.wav", tone_wav(440)))
    with pytest.raises(ValueError):
        samples[0] = 1


@pytest.mark.parametrize("kind", ["wav", "mp3"])
def test_wav_and_mp3_served_over_http_decode_and_resample(origin, clock, kind):
    body = tone_wav(1000, 1.0) if kind == "wav" else tone_mp3(1000, 1.0)
    url = origin.serve(f"/tone.{kind}", body, Content_Type=f"audio/{kind}")
    samples = make_cache(clock).get(url)
    assert samples.dtype == np.int16
    assert abs(len(samples) - RATE) < RATE * 0.1  # one second (MP3 adds codec padding)
    assert dominant_hz(samples) == pytest.approx(1000, abs=5)
    assert 0.3 < np.abs(samples).max() / 32767 < 0.7


def test_memory_holds_at_most_size_decoded_files(origin, clock, decodes):
    urls = [origin.serve(f"/{f}.wav", tone_wav(f), ETag=f'"{f}"') for f in (300, 400, 500)]
    cache = make_cache(clock, size=2)
    for url in urls:
        cache.get(url)
    cache.get(urls[0])  # evicted: fetched whole again (no 304 without the samples)
    assert len(decodes) == 4
    assert origin.at("/300.wav")[-1].if_none_match is None


# --- the disk store -------------------------------------------------------------------------


def test_fresh_copy_on_disk_plays_after_a_restart_without_any_request(origin, clock, tmp_path):
    url = origin.serve("/moh.wav", tone_wav(440), Cache_Control="max-age=3600")
    first = make_cache(clock, tmp_path / "media").get(url)
    clock.now += 60
    after_restart = make_cache(clock, tmp_path / "media").get(url)
    assert np.array_equal(after_restart, first)
    assert len(origin.at("/moh.wav")) == 1


def test_copy_on_disk_is_revalidated_after_a_restart(origin, clock, tmp_path, decodes):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"')
    make_cache(clock, tmp_path / "media").get(url)
    make_cache(clock, tmp_path / "media").get(url)
    assert [(s.if_none_match, s.status) for s in origin.at("/moh.wav")] == [
        (None, 200),
        ('"v1"', 304),
    ]


def test_hold_music_survives_a_restart_while_the_uplink_is_down(origin, clock, tmp_path, caplog):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"')
    first = make_cache(clock, tmp_path / "media").get(url)
    origin.close()
    clock.now += 86400
    with caplog.at_level(logging.WARNING, logger="appliance.twiml.media_cache"):
        after_restart = make_cache(clock, tmp_path / "media").get(url)
    assert np.array_equal(after_restart, first)
    assert "stale-if-error" in caplog.text


def test_damaged_body_on_disk_is_fetched_again(origin, clock, tmp_path):
    url = origin.serve("/moh.wav", tone_wav(440), ETag='"v1"')
    make_cache(clock, tmp_path / "media").get(url)
    (body,) = (tmp_path / "media").glob("*.body")
    body.write_bytes(body.read_bytes()[:-100] + b"\0" * 100)
    samples = make_cache(clock, tmp_path / "media").get(url)
    assert [(s.if_none_match, s.status) for s in origin.at("/moh.wav")] == [
        (None, 200),
        (None, 200),
    ]
    assert dominant_hz(samples) == pytest.approx(440, abs=5)


def test_disk_store_keeps_under_its_size_cap(origin, clock, tmp_path):
    bodies = {f: tone_wav(f, 1.0) for f in (300, 400, 500)}
    cap = len(bodies[300]) * 2 + 10
    cache = make_cache(clock, tmp_path / "media", disk_bytes=cap)
    for frequency, body in bodies.items():
        cache.get(origin.serve(f"/{frequency}.wav", body, ETag=f'"{frequency}"'))
    store = MediaStore(tmp_path / "media", cap)
    kept = {f for f in bodies if store.load(f"{origin.base}/{f}.wav") is not None}
    on_disk = sum(p.stat().st_size for p in (tmp_path / "media").glob("*.body"))
    assert on_disk <= cap
    assert kept >= {500}
    assert len(kept) == 2


def test_a_body_over_the_cap_is_not_stored(origin, clock, tmp_path):
    url = origin.serve("/big.wav", tone_wav(440, 1.0), ETag='"b"')
    make_cache(clock, tmp_path / "media", disk_bytes=1000).get(url)
    assert not list((tmp_path / "media").glob("*.body"))


# --- the policy of one response (pure) ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime", "fresh_after_30s"),
    [
        ({"cache-control": "max-age=60"}, 60, True),
        ({"cache-control": 'public, max-age="60"'}, 60, True),
        ({"cache-control": "max-age=60, max-age=0"}, 60, True),  # the first one counts
        ({"cache-control": "max-age=abc"}, 0, False),  # invalid: stale
        ({"cache-control": "max-age=60", "expires": "Thu, 01 Jan 1970 00:00:00 GMT"}, 60, True),
        (
            {"expires": formatdate(NOW + 100, usegmt=True), "date": formatdate(NOW, usegmt=True)},
            100,
            True,
        ),
        ({"expires": "0"}, 0, False),
        ({"etag": '"x"'}, 0, False),  # validators alone: no freshness invented
        ({"last-modified": formatdate(NOW - 86400 * 365, usegmt=True)}, 0, False),
        ({"cache-control": "no-cache, max-age=600"}, 600, False),
    ],
)
def test_policy_freshness(headers, lifetime, fresh_after_30s):
    policy = CachePolicy.from_headers(headers, NOW)
    assert policy.lifetime == lifetime
    assert policy.is_fresh(NOW + 30) is fresh_after_30s


def test_policy_age_counts_the_age_header_and_clock_skew():
    policy = CachePolicy.from_headers(
        {"cache-control": "max-age=60", "age": "10", "date": formatdate(NOW - 20, usegmt=True)},
        NOW,
    )
    assert policy.age(NOW) == 20  # the Date is 20 s old: more than Age says
    assert policy.age(NOW - 100) == 20  # a clock set back does not make it younger
    assert not policy.is_fresh(NOW + 41)
