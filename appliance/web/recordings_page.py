"""Recordings: the list, playing in the page, download and delete.

A file is only ever found through the recordings index, by its recording sid (``RE`` and 32
hex digits), and only served or deleted when the indexed path lies inside the recordings
folder: no part of a path comes from the request.

``/recordings/<sid>`` is also the ``RecordingUrl`` callbacks carry, so besides a session it
takes HTTP Basic with the API credentials (account SID and auth token), as Twilio's own
recording URLs do; like Twilio's, it serves the file with the format's extension appended too
(``RecordingUrl + ".wav"``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bottle
from bottle import request

from appliance.calls.recording import RecordingStore
from appliance.store import NotFoundError, RecordingEntry, Store
from appliance.web.access import (
    CUSTOM,
    SESSION_COOKIE,
    client_address,
    current_session,
    refuse,
    wants_html,
)
from appliance.web.context import WebContext
from appliance.web.render import render

log = logging.getLogger(__name__)

SID = re.compile(r"RE[0-9a-f]{32}")
LIST_LIMIT = 200
MIME_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}
MISSING = "There is no such recording (it may have been deleted)."
BASIC_REALM = 'Basic realm="Recordings", charset="UTF-8"'


def duration_text(seconds: float) -> str:
    """``1:05`` or ``1:02:05``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def when_text(timestamp: float) -> str:
    """Local time on the appliance, as people read it."""
    return datetime.fromtimestamp(timestamp).strftime("%d %b %Y, %H:%M")


def owner_text(entry: RecordingEntry) -> str:
    if entry.conference:
        return f"Conference {entry.conference}"
    return f"Call {entry.call_sid}"


def download_name(entry: RecordingEntry) -> str:
    """A file name a person recognises: ``family-2024-05-01-1830.wav``."""
    owner = entry.conference or entry.call_sid or "recording"
    owner = re.sub(r"[^A-Za-z0-9_-]+", "-", owner).strip("-") or "recording"
    stamp = datetime.fromtimestamp(entry.created).strftime("%Y-%m-%d-%H%M")
    return f"{owner}-{stamp}{Path(entry.path).suffix}"


class RecordingFiles:
    """The index entries and their files, for the routes."""

    def __init__(self, store: Store | None, recordings: RecordingStore | None) -> None:
        self.store = store
        self.folder = recordings.directory.resolve() if recordings is not None else None

    def entries(self) -> list[RecordingEntry]:
        return self.store.recordings.list(limit=LIST_LIMIT) if self.store is not None else []

    def entry(self, sid: str) -> RecordingEntry | None:
        if self.store is None or not SID.fullmatch(sid):
            return None
        try:
            return self.store.recordings.get(sid)
        except NotFoundError:
            return None

    def relative_path(self, entry: RecordingEntry) -> str | None:
        """The file's path inside the recordings folder, or None when it lies elsewhere."""
        if self.folder is None:
            return None
        path = Path(entry.path).resolve()
        if not path.is_relative_to(self.folder):
            log.warning("recording %s: %s is outside %s; not served", entry.sid, path,
                        self.folder)
            return None
        return str(path.relative_to(self.folder))

    def delete(self, entry: RecordingEntry) -> None:
        """The file (when it is ours), then its index entry."""
        assert self.store is not None
        relative = self.relative_path(entry)
        if relative is not None and self.folder is not None:
            (self.folder / relative).unlink(missing_ok=True)
        self.store.recordings.delete(entry.sid)


def basic_credentials(request: bottle.BaseRequest) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None when it has none."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode(
            "utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    return (user, password) if colon else ("", "")


def api_credentials_match(ctx: WebContext, user: str, password: str) -> bool:
    """The account SID and the current auth token (a rotated token stops working at once)."""
    if ctx.credentials is None:
        return False
    current = ctx.credentials.current()
    sid_ok = hmac.compare_digest(user.encode(), current.account_sid.encode())
    token_ok = hmac.compare_digest(password.encode(), current.auth_token.encode())
    return sid_ok and token_ok


def media_access_refusal(ctx: WebContext, request: bottle.BaseRequest) -> Any:
    """None when the request may fetch a recording's file, else the refusal to return.

    API credentials in HTTP Basic, else a logged-in session (a browser without one is sent to
    log in, as on every page). Wrong Basic credentials are refused even with a session.
    """
    basic = basic_credentials(request)
    if basic is not None:
        if api_credentials_match(ctx, *basic):
            return None
        log.info("recordings: wrong API credentials from %s", client_address(request))
        refusal = refuse(request, 401, "Wrong account SID or auth token.")
    elif ctx.is_set_up() and ctx.sessions.get(request.get_cookie(SESSION_COOKIE, "")):
        return None
    elif wants_html(request):
        target = "/login?next=" + quote(request.fullpath, safe="/") if ctx.is_set_up() \
            else "/setup"
        return bottle.HTTPResponse(status=303, headers={"Location": target})
    else:
        refusal = refuse(request, 401, "Log in, or use the API credentials (HTTP Basic).")
    refusal.set_header("WWW-Authenticate", BASIC_REALM)
    return refusal


def install(app: bottle.Bottle, ctx: WebContext, store: Store | None,
            recordings: RecordingStore | None) -> None:
    """Add /recordings and each recording's file, download and delete routes."""
    files = RecordingFiles(store, recordings)

    def serve(sid: str, download: bool) -> Any:
        sid, dot, extension = sid.partition(".")
        entry = files.entry(sid)
        relative = files.relative_path(entry) if entry is not None else None
        if entry is None or relative is None or files.folder is None:
            return refuse(request, 404, MISSING, "Not found")
        if dot and "." + extension.lower() != Path(relative).suffix.lower():
            return refuse(request, 404, f"This recording is not kept as .{extension}; ask for "
                                        f"{Path(relative).suffix} (or no extension).",
                          "Not found")
        mimetype = MIME_TYPES.get(Path(relative).suffix.lower(), "application/octet-stream")
        served = bottle.static_file(relative, root=str(files.folder), mimetype=mimetype,
                                    download=download_name(entry) if download else False)
        if served.status_code == 404:
            return refuse(request, 404, "The recording's file is missing.", "Not found")
        return served

    @app.get("/recordings")
    def recordings_list() -> str:
        return render("recordings", ctx=ctx, session=current_session(request),
                      title="Recordings", scripts=["confirm.js"], styles=["pages.css"],
                      entries=files.entries(), available=store is not None,
                      owner_text=owner_text, when_text=when_text, duration_text=duration_text,
                      size_text=size_text)

    @app.get("/recordings/<sid>", auth=CUSTOM)
    def recording_file(sid: str) -> Any:
        refusal = media_access_refusal(ctx, request)
        return refusal if refusal is not None else serve(sid, download=False)

    @app.get("/recordings/<sid>/download")
    def recording_download(sid: str) -> Any:
        if "." in sid:
            return refuse(request, 404, MISSING, "Not found")
        return serve(sid, download=True)

    @app.post("/recordings/<sid>/delete")
    def recording_delete(sid: str) -> Any:
        session = current_session(request)
        entry = files.entry(sid)
        if entry is None:
            return refuse(request, 404, MISSING, "Not found")
        try:
            files.delete(entry)
        except NotFoundError:
            return refuse(request, 404, MISSING, "Not found")
        if session is not None:
            session.flash("ok", f"Recording deleted: {owner_text(entry)}, "
                                f"{when_text(entry.created)}.")
        return bottle.HTTPResponse(status=303, headers={"Location": "/recordings"})
