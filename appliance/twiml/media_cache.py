"""Decoded audio by URL, cached the way HTTP says (RFC 9111's essentials), so a prompt or a
wait-music loop is fetched and decoded once, and a flaky uplink does not silence the line.

- Freshness: ``Cache-Control: max-age`` (or ``Expires`` minus ``Date``), less the response's
  age; a fresh copy is played without any request. No freshness information means none is
  invented: the URL is requested again each time (RFC 9111 section 4.2.2 allows a heuristic;
  Twilio-style apps expect a changed file to play at once).
- Revalidation: a stale copy is revalidated with ``If-None-Match`` / ``If-Modified-Since``;
  a 304 keeps the decoded samples (no second decode) and updates the stored headers (section
  4.3.4); a 200 replaces them. ``no-cache`` always revalidates; ``no-store`` is never kept.
- ``file:`` sources carry their modification time and size as an ETag (see ``fetch``): an
  unchanged file is not read again.
- Errors: when a revalidation gets no answer or a 5xx and a stale copy exists, the copy plays
  and a warning is logged (RFC 5861's stale-if-error; a ``stale-if-error=N`` directive bounds
  it). ``no-cache`` and ``must-revalidate`` forbid this (section 4.2.4), and without any
  copy the fetch error (Twilio's 11200) stands.
- Samples are kept by content (SHA-256 of the bytes), so the same file behind several URLs,
  or a waitUrl's answer fetched by every caller, is decoded once. With a ``cache_dir``, http(s)
  bodies and their headers are also kept on disk under a size cap, so hold music from a URL
  survives a restart and plays while the uplink is down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from appliance.audio.media import MediaError, load_audio
from appliance.twiml.fetch import (
    CACHE_HEADERS,
    HTTP_RETRIEVAL_FAILURE,
    Fetcher,
    FetchError,
    MediaResponse,
)

log = logging.getLogger(__name__)

DEFAULT_DISK_BYTES = 128 * 1024 * 1024
MAX_URL_ENTRIES = 256  # caching headers remembered per URL (the samples have their own cap)
_STRIPES = 16  # fetches of one URL (or one content) run one at a time; other URLs don't wait


# --- the caching policy of one response (pure) ----------------------------------------------


def _directives(value: str) -> dict[str, str | None]:
    """Cache-Control directives, names in lower case; the first of a repeated one counts."""
    found: dict[str, str | None] = {}
    for part in value.split(","):
        name, has_argument, argument = part.strip().partition("=")
        name = name.strip().lower()
        if name and name not in found:
            found[name] = argument.strip().strip('"') if has_argument else None
    return found


def _seconds(argument: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 section 1.2.2), or None when it is not one."""
    if argument is None or not argument.isdigit():
        return None
    return int(argument)


def _http_date(value: str | None) -> float | None:
    """An HTTP-date as a POSIX time, or None when absent or invalid."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(frozen=True)
class CachePolicy:
    """What one response's headers allow a private cache (RFC 9111 sections 4.2, 5.2.2)."""

    response_time: float  # when the response arrived (POSIX time)
    lifetime: float = 0.0  # freshness lifetime, seconds; 0: stale at once
    initial_age: float = 0.0  # the response's age on arrival (Age header, Date skew)
    no_store: bool = False
    no_cache: bool = False
    must_revalidate: bool = False
    stale_if_error: float | None = None  # RFC 5861: seconds of staleness allowed on error
    etag: str = ""
    last_modified: str = ""

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], response_time: float) -> CachePolicy:
        """The policy of a response with ``headers`` (names in lower case)."""
        control = _directives(headers.get("cache-control", ""))
        date = _http_date(headers.get("date"))
        if "max-age" in control:
            lifetime = float(_seconds(control["max-age"]) or 0)  # invalid: stale (4.2.1)
        elif "expires" in headers:
            expires = _http_date(headers["expires"])  # invalid, e.g. "0": already expired
            lifetime = 0.0 if expires is None else max(0.0, expires - (date or response_time))
        else:
            lifetime = 0.0
        apparent_age = max(0.0, response_time - date) if date is not None else 0.0
        age_value = _seconds(headers.get("age", "").strip()) or 0
        stale_if_error = _seconds(control.get("stale-if-error"))
        return cls(
            response_time=response_time,
            lifetime=lifetime,
            initial_age=max(apparent_age, float(age_value)),
            no_store="no-store" in control,
            no_cache="no-cache" in control,
            must_revalidate="must-revalidate" in control,
            stale_if_error=None if stale_if_error is None else float(stale_if_error),
            etag=headers.get("etag", ""),
            last_modified=headers.get("last-modified", ""),
        )

    def age(self, now: float) -> float:
        """The current age (section 4.2.3; a clock set back counts as no time passed)."""
        return self.initial_age + max(0.0, now - self.response_time)

    def is_fresh(self, now: float) -> bool:
        """True when the copy may be used without asking the origin."""
        return not self.no_cache and self.age(now) < self.lifetime

    def may_stand_in(self, now: float) -> bool:
        """True when the (stale) copy may play because the origin cannot be reached."""
        if self.stale_if_error is not None:
            return self.age(now) - self.lifetime <= self.stale_if_error
        return not (self.no_cache or self.must_revalidate)


# --- fetched bodies on disk -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredMedia:
    """One URL's cached response: its content's digest, arrival time and caching headers."""

    url: str
    digest: str
    response_time: float
    headers: dict[str, str]

    @property
    def policy(self) -> CachePolicy:
        return CachePolicy.from_headers(self.headers, self.response_time)


class MediaStore:
    """Fetched media bodies and their headers under ``folder``, at most ``max_bytes`` of them.

    Each URL has ``<hash>.body`` and ``<hash>.json``, both written to a temporary file and
    renamed, so power lost mid-write leaves the old entry or none; a body whose digest does not
    match is dropped. Beyond the cap, the entries fetched longest ago go first. A store that
    cannot be written only logs a warning: the call goes on from memory.
    """

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_DISK_BYTES) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def load(self, url: str) -> StoredMedia | None:
        """The stored entry for ``url`` (its body is read by :meth:`body`), or None."""
        try:
            meta = json.loads(self._path(url, ".json").read_text("utf-8"))
            if meta["url"] != url:
                return None
            return StoredMedia(
                url, str(meta["digest"]), float(meta["response_time"]), dict(meta["headers"])
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("media cache entry for %s unreadable (%s); fetching again", url, exc)
            self.remove(url)
            return None

    def body(self, entry: StoredMedia) -> bytes | None:
        """The stored bytes of ``entry``, or None when missing or not what was stored."""
        try:
            data = self._path(entry.url, ".body").read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != entry.digest:
            log.warning("media cache body for %s is damaged; fetching again", entry.url)
            self.remove(entry.url)
            return None
        return data

    def save(self, entry: StoredMedia, data: bytes | None = None) -> None:
        """Keep ``entry`` (and its body, unless only the headers changed), then apply the cap."""
        if data is not None and len(data) > self.max_bytes:
            self.remove(entry.url)
            return
        meta = {
            "url": entry.url,
            "digest": entry.digest,
            "response_time": entry.response_time,
            "headers": entry.headers,
        }
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if data is not None:
                    self._write(self._path(entry.url, ".body"), data)
                self._write(self._path(entry.url, ".json"), json.dumps(meta).encode())
            except OSError as exc:
                log.warning("cannot keep %s in the media cache %s: %s", entry.url, self.folder, exc)
                return
            if data is not None:
                self._apply_cap(keep=self._path(entry.url, ".body"))

    def remove(self, url: str) -> None:
        for suffix in (".json", ".body"):
            try:
                self._path(url, suffix).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s from the media cache: %s", url, exc)

    def _path(self, url: str, suffix: str) -> Path:
        return self.folder / (hashlib.sha256(url.encode()).hexdigest()[:40] + suffix)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def _apply_cap(self, keep: Path) -> None:
        """Remove the oldest bodies (and their headers) until the total fits ``max_bytes``."""
        bodies = []
        try:
            for path in self.folder.glob("*.body"):
                stat = path.stat()
                bodies.append((stat.st_mtime, stat.st_size, path))
        except OSError as exc:
            log.warning("cannot size the media cache %s: %s", self.folder, exc)
            return
        total = sum(size for _, size, _ in bodies)
        for _, size, path in sorted(bodies):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
            total -= size


# --- the cache ------------------------------------------------------------------------------


class MediaCache:
    """Decoded audio by URL for prompts and wait music; safe to share between call threads.

    ``size`` decoded files are kept in memory (least recently used first out); ``cache_dir``
    (optional) keeps http(s) bodies on disk, at most ``disk_bytes``. ``clock`` is the wall
    clock the caching headers are compared with.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        rate: int,
        size: int = 32,
        cache_dir: Path | None = None,
        disk_bytes: int = DEFAULT_DISK_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self._rate = rate
        self._size = size
        self._clock = clock
        self._store = MediaStore(cache_dir, disk_bytes) if cache_dir is not None else None
        self._samples: OrderedDict[str, np.ndarray] = OrderedDict()  # by content digest
        self._entries: OrderedDict[str, StoredMedia] = OrderedDict()  # by URL
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def get(self, url: str) -> np.ndarray:
        """Mono int16 samples (read-only) of the audio at ``url``; raises ``FetchError`` or
        ``MediaError`` as fetching and decoding do, unless a stale copy may stand in."""
        with self._stripe(url):
            return self._get(url)

    def decode(self, url: str, data: bytes) -> np.ndarray:
        """Audio already fetched from ``url`` (a waitUrl's answer), decoded once per content."""
        digest = hashlib.sha256(data).hexdigest()
        with self._stripe(digest):
            return self._decoded(digest, data)

    # --- one URL ----------------------------------------------------------------------------

    def _get(self, url: str) -> np.ndarray:
        entry = self._lookup(url)
        samples = self._samples_of(entry) if entry is not None else None
        if samples is None:
            entry = None
        now = self._clock()
        policy = entry.policy if entry is not None else None
        if samples is not None and policy is not None and policy.is_fresh(now):
            return samples
        try:
            response = self._fetcher.fetch_media(
                url, policy.etag if policy else "", policy.last_modified if policy else ""
            )
        except FetchError as exc:
            if samples is None or policy is None or not exc.retryable:
                raise
            if not policy.may_stand_in(now):
                raise
            log.warning(
                "%s; playing the copy cached %.0f s ago (stale-if-error)", exc, policy.age(now)
            )
            return samples
        now = self._clock()
        if response.not_modified:
            if entry is None or samples is None:
                raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: 304 without a cached copy")
            self._revalidated(entry, response, now)
            return samples
        return self._replace(url, response, now)

    def _lookup(self, url: str) -> StoredMedia | None:
        with self._lock:
            entry = self._entries.get(url)
            if entry is not None:
                self._entries.move_to_end(url)
                return entry
        if self._store is None or not _is_http(url):
            return None
        entry = self._store.load(url)
        if entry is not None:
            self._remember(entry)
        return entry

    def _samples_of(self, entry: StoredMedia) -> np.ndarray | None:
        """The entry's samples from memory, else decoded from its body on disk."""
        with self._lock:
            samples = self._samples.get(entry.digest)
            if samples is not None:
                self._samples.move_to_end(entry.digest)
                return samples
        data = self._store.body(entry) if self._store is not None else None
        if data is None:
            return None
        try:
            return self._decoded(entry.digest, data)
        except MediaError as exc:  # a body that decoded once and no longer does: fetch again
            log.warning("media cache copy of %s unusable (%s); fetching again", entry.url, exc)
            return None

    def _revalidated(self, entry: StoredMedia, response: MediaResponse, now: float) -> None:
        """A 304: the stored headers take the new ones (RFC 9111 section 4.3.4)."""
        headers = {**entry.headers, **_cache_headers(response.headers)}
        updated = StoredMedia(entry.url, entry.digest, now, headers)
        if updated.policy.no_store:
            self._forget(entry.url)
            return
        self._remember(updated)
        validators_changed = any(
            headers.get(name) != entry.headers.get(name) for name in ("etag", "last-modified")
        )
        worth_a_write = updated.policy.lifetime > 0 or validators_changed  # spare the SD card
        if self._store is not None and _is_http(entry.url) and worth_a_write:
            self._store.save(updated)

    def _replace(self, url: str, response: MediaResponse, now: float) -> np.ndarray:
        """A 200: decode (unless this content is decoded already) and keep what may be kept."""
        headers = _cache_headers(response.headers)
        digest = hashlib.sha256(response.body).hexdigest()
        entry = StoredMedia(url, digest, now, headers)
        if entry.policy.no_store:
            self._forget(url)
            return self._decode_uncached(digest, response.body)
        try:
            samples = self._decoded(digest, response.body)
        except MediaError:
            self._forget(url)  # what the URL holds now is not audio: the old copy is outdated
            raise
        self._remember(entry)
        if self._store is not None and _is_http(url):
            self._store.save(entry, response.body)
        return samples

    def _remember(self, entry: StoredMedia) -> None:
        with self._lock:
            self._entries[entry.url] = entry
            self._entries.move_to_end(entry.url)
            while len(self._entries) > MAX_URL_ENTRIES:
                self._entries.popitem(last=False)

    def _forget(self, url: str) -> None:
        with self._lock:
            self._entries.pop(url, None)
        if self._store is not None and _is_http(url):
            self._store.remove(url)

    # --- samples by content -----------------------------------------------------------------

    def _decoded(self, digest: str, data: bytes) -> np.ndarray:
        """The samples of ``data`` (SHA-256 ``digest``), decoded only if not in memory."""
        with self._lock:
            samples = self._samples.get(digest)
            if samples is not None:
                self._samples.move_to_end(digest)
                return samples
        samples = self._decode_uncached(digest, data)
        with self._lock:
            self._samples[digest] = samples
            while len(self._samples) > self._size:
                self._samples.popitem(last=False)
        return samples

    def _decode_uncached(self, digest: str, data: bytes) -> np.ndarray:
        with self._lock:
            known = self._samples.get(digest)
        if known is not None:
            return known
        samples = load_audio(data, self._rate)
        samples.flags.writeable = False  # shared by every caller that plays it
        return samples

    @contextmanager
    def _stripe(self, key: str) -> Iterator[None]:
        with self._stripes[zlib.crc32(key.encode()) % _STRIPES]:
            yield


def _cache_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in CACHE_HEADERS if name in headers}


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")
