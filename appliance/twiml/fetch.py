"""Fetch call rules and media from ``file:`` and ``http(s):`` URLs, the way Twilio does.

Requests to http(s) carry the caller's voice parameters (query string for GET, form body for
POST) and an ``X-Twilio-Signature`` made with the auth token, so an existing Twilio app
validates them unchanged. Every failure is a ``FetchError`` with Twilio's code 11200
("HTTP retrieval failure"); ``retryable`` marks the ones a later attempt may not meet (no
answer, a 5xx), for which a cache may serve a stale copy instead.

Media is fetched with :meth:`Fetcher.fetch_media`, which can revalidate a cached copy
(``If-None-Match`` / ``If-Modified-Since``) and hands back the response's caching headers; the
caching policy itself lives in ``media_cache``. Documents are never conditional: Twilio
fetches them every time.
"""

from __future__ import annotations

import mimetypes
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

import requests

from appliance import __version__
from appliance.signing import SIGNATURE_HEADER, twilio_signature

HTTP_RETRIEVAL_FAILURE = 11200
MAX_BODY_BYTES = 32 * 1024 * 1024  # a few minutes of WAV hold music fit; more is a mistake
USER_AGENT = f"conference-line-appliance/{__version__}"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
# Characters left as they are when a relative reference is made into a URL: the reserved
# ones and "%" (already escaped); spaces and non-ASCII letters of file names get escaped.
_URL_SAFE = "/:@!$&'()*+,;=?#%~"
# Response headers a media cache needs (RFC 9111 sections 4.2 and 4.3).
CACHE_HEADERS = ("cache-control", "expires", "date", "age", "etag", "last-modified")


class FetchError(Exception):
    """A document or media file could not be fetched; ``code`` is Twilio's error code.

    ``retryable``: the failure says nothing about the resource (no answer, a refused
    connection, a 5xx), so a cached copy may still stand in (RFC 5861's stale-if-error).
    """

    def __init__(self, code: int, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class MediaResponse:
    """A media fetch: ``status`` 200 with the ``body``, or 304 (the cached copy still holds).

    ``headers`` holds the caching headers of :data:`CACHE_HEADERS` and the content type,
    names in lower case.
    """

    url: str
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _base_url(base: str) -> str:
    """``base`` as a URL: URLs stay, local paths (or "" for the working folder) become file:."""
    if _SCHEME.match(base):
        return base
    path = Path(base).expanduser().absolute() if base else Path.cwd()
    url = path.as_uri()
    if not base or base.endswith("/") or path.is_dir():
        url += "/"
    return url


def resolve_url(base: str, ref: str) -> str:
    """Resolve ``ref`` against the URL (or local path) of the document it appears in.

    Absolute URLs are returned as they are; relative references resolve like a browser's
    (and Twilio's): "next.xml" against "https://host/app/start.xml" is
    "https://host/app/next.xml". Local paths, relative or absolute, become file: URLs.
    """
    ref = ref.strip()
    if _SCHEME.match(ref):
        return ref
    if ref.startswith("~"):
        return Path(ref).expanduser().as_uri()
    return urljoin(_base_url(base), quote(ref, safe=_URL_SAFE))


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: a file: URL must name a local file")
    return Path(url2pathname(parts.path))


def _with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit(parts._replace(query=query))


class Fetcher:
    """Fetches documents and media for calls; safe to share between call threads."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str | Callable[[], str],
        timeout: float = 10.0,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        """``auth_token`` signs requests: the token, or a provider called at each request
        (so a rotated token is used at once)."""
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._local = threading.local()  # one requests.Session per thread

    @property
    def auth_token(self) -> str:
        token = self._auth_token
        return token() if callable(token) else token

    def fetch_document(
        self, url: str, method: str = "POST", params: Mapping[str, str] | None = None
    ) -> tuple[str, bytes, str]:
        """Fetch ``url``; returns (final URL after redirects, body, content type)."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return url, self._read_file(url), self._guess_type(url)
        if scheme in ("http", "https"):
            response = self._request(url, method, dict(params or {}))
            return response.url, response.body, response.headers.get("content-type", "")
        raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: only file:, http: and https: URLs work")

    def fetch_bytes(self, url: str) -> bytes:
        """The bytes of a media file (a GET without parameters for http)."""
        return self.fetch_media(url).body

    def fetch_media(self, url: str, etag: str = "", last_modified: str = "") -> MediaResponse:
        """A media file, revalidating a cached copy when its validators are given.

        http(s): a GET without parameters, with ``If-None-Match`` / ``If-Modified-Since``;
        a 304 comes back as such. file: the file's modification time and size make its
        ETag, so an unchanged file answers 304 without being read.
        """
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return self._file_media(url, etag)
        if scheme in ("http", "https"):
            conditions = {}
            if etag:
                conditions["If-None-Match"] = etag
            if last_modified:
                conditions["If-Modified-Since"] = last_modified
            return self._request(url, "GET", {}, add_account=False, conditions=conditions)
        raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: only file:, http: and https: URLs work")

    # --- file: ------------------------------------------------------------------------------

    def _read_file(self, url: str) -> bytes:
        return self._file_media(url, "").body

    def _file_media(self, url: str, etag: str) -> MediaResponse:
        path = _local_path(url)
        try:
            stat = path.stat()
            stamp = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
            if etag == stamp:
                return MediaResponse(url, 304, headers={"etag": stamp})
            if stat.st_size > self.max_bytes:
                raise FetchError(
                    HTTP_RETRIEVAL_FAILURE, f"{path}: {stat.st_size} bytes, over {self.max_bytes}"
                )
            return MediaResponse(url, 200, path.read_bytes(), {"etag": stamp})
        except FileNotFoundError:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{path}: file not found") from None
        except IsADirectoryError:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{path}: is a folder, not a file") from None
        except OSError as exc:
            raise FetchError(
                HTTP_RETRIEVAL_FAILURE, f"{path}: cannot read: {exc.strerror or exc}"
            ) from None

    @staticmethod
    def _guess_type(url: str) -> str:
        return mimetypes.guess_type(urlsplit(url).path)[0] or "application/octet-stream"

    # --- http(s): ---------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _request(
        self,
        url: str,
        method: str,
        params: dict[str, str],
        add_account: bool = True,
        conditions: Mapping[str, str] | None = None,
    ) -> MediaResponse:
        """One request; ``conditions`` (If-None-Match...) make a 304 an answer, not an error."""
        method = method.upper()
        if method not in ("GET", "POST"):
            raise FetchError(
                HTTP_RETRIEVAL_FAILURE, f'{url}: method must be GET or POST, not "{method}"'
            )
        if add_account and self.account_sid:
            params.setdefault("AccountSid", self.account_sid)
        if method == "GET":
            target, form = _with_query(url, params), None
            signed = twilio_signature(self.auth_token, target, {})
        else:
            target, form = url, params
            signed = twilio_signature(self.auth_token, url, params)
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **(conditions or {})}
        if self.auth_token:
            headers[SIGNATURE_HEADER] = signed
        deadline = time.monotonic() + self.timeout
        try:
            with self._session().request(
                method, target, data=form, headers=headers, timeout=self.timeout, stream=True
            ) as response:
                status = response.status_code
                kept = {
                    name: response.headers[name]
                    for name in (*CACHE_HEADERS, "content-type")
                    if name in response.headers
                }
                if status == 304 and conditions:
                    return MediaResponse(response.url, 304, headers=kept)
                if not 200 <= status < 300:
                    raise FetchError(
                        HTTP_RETRIEVAL_FAILURE,
                        f"{url}: HTTP {status} {response.reason}".rstrip(),
                        retryable=status >= 500,
                    )
                body = self._read_body(response, url, deadline)
                return MediaResponse(response.url, status, body, kept)
        except requests.Timeout:
            raise FetchError(
                HTTP_RETRIEVAL_FAILURE, f"{url}: no answer within {self.timeout:g} s", True
            ) from None
        except requests.ConnectionError as exc:
            raise FetchError(
                HTTP_RETRIEVAL_FAILURE, f"{url}: cannot connect: {exc}", True
            ) from None
        except requests.exceptions.ChunkedEncodingError as exc:  # the answer broke off
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: {exc}", True) from None
        except requests.RequestException as exc:
            raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: {exc}") from None

    def _read_body(self, response: requests.Response, url: str, deadline: float) -> bytes:
        """The body, within ``max_bytes`` and the overall deadline (a slow drip is a timeout)."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(HTTP_RETRIEVAL_FAILURE, f"{url}: body over {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise requests.Timeout()
            chunks.append(chunk)
        return b"".join(chunks)
