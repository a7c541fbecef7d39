"""``/voice/…``: the TwiML of the built-in rooms, for the appliance's own interpreter.

Not for people: like any Twilio app, these routes answer only requests whose
``X-Twilio-Signature`` validates with the appliance's current auth token (Twilio's
``RequestValidator`` rules: the full URL with its query, POST parameters sorted by name; the
URL is tried with and without the default port). Anything else gets 403.

The entry (``voice_url = "rooms"`` resolves to ``/voice/entry``): welcome, PIN and ``#``,
three tries, goodbye; a right PIN checks the room's opening hours and allowed callers, then
dials the caller into the room's conference (``room_twiml``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import bottle
from bottle import request, response

from appliance.signing import SIGNATURE_HEADER, signature_matches
from appliance.store.errors import NotFoundError
from appliance.store.rooms import Room
from appliance.web import room_twiml
from appliance.web.access import CUSTOM, client_address, refuse
from appliance.web.context import WebContext
from appliance.web.room_services import RoomServices

log = logging.getLogger(__name__)

METHODS = ["GET", "POST"]
XML = "application/xml; charset=utf-8"
REFUSED = "This address is for the appliance's own call rules: the request is not signed."
_DEFAULT_PORTS = {"http": 80, "https": 443}


def request_url(req: bottle.BaseRequest) -> str:
    """The URL the client asked for, as it wrote it (the string a signature covers)."""
    raw = req.environ.get("REQUEST_URI") or req.environ.get("RAW_URI")
    if not raw:
        return req.url
    parts = urlsplit(raw)
    if parts.scheme:  # an absolute request-target (proxies send these)
        return raw
    return f"{req.urlparts.scheme}://{req.urlparts.netloc}{raw}"


def url_variants(url: str) -> list[str]:
    """``url`` with and without its scheme's default port (twilio's RequestValidator tries
    both, since proxies and clients differ on whether ``Host`` carries it)."""
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is None and default is not None:
        other = parts._replace(netloc=f"{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=host)
    else:
        return [url]
    return [url, urlunsplit(other)]


def signed_params(req: bottle.BaseRequest) -> dict[str, str]:
    """The POST parameters a signature covers (a GET has none: they are in the URL)."""
    if req.method != "POST":
        return {}
    forms = req.forms.decode()  # bottle keeps form values as latin-1; the signer used UTF-8
    return {name: forms.get(name, "") for name in forms}


def is_signed(req: bottle.BaseRequest, auth_token: str) -> bool:
    """Whether ``req`` carries a valid X-Twilio-Signature for ``auth_token``."""
    signature = req.headers.get(SIGNATURE_HEADER, "")
    if not signature or not auth_token:
        return False
    params = signed_params(req)
    return any(signature_matches(auth_token, url, params, signature)
               for url in url_variants(request_url(req)))


def _param(name: str) -> str:
    value = request.forms.getunicode(name) if request.method == "POST" else None
    if value is None:
        value = request.query.getunicode(name, default="")
    return value or ""


def _attempt() -> int:
    try:
        return max(1, min(room_twiml.TRIES, int(request.query.get("attempt", "1"))))
    except ValueError:
        return 1


def install(app: bottle.Bottle, ctx: WebContext, services: RoomServices) -> None:
    """Add the ``/voice/…`` routes to ``app``."""

    def signed(callback: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(callback)
        def checked(*args: Any, **kwargs: Any) -> Any:
            token = ctx.credentials.current().auth_token if ctx.credentials else ""
            if not is_signed(request, token):
                log.warning("voice: refused an unsigned request for %s from %s",
                            request.path, client_address(request))
                raise refuse(request, 403, REFUSED, "Forbidden")
            return callback(*args, **kwargs)
        return checked

    def xml(document: str) -> str:
        response.content_type = XML
        response.set_header("Cache-Control", "no-store")
        return document

    @app.route(room_twiml.ENTRY_PATH, method=METHODS, auth=CUSTOM)
    @signed
    def entry() -> str:
        caller = _param("From")
        if services.lockout.retry_after(caller) > 0:
            log.info("voice: caller %s is locked out after wrong PINs", caller or "(no ID)")
            return xml(room_twiml.goodbye(room_twiml.LOCKED_OUT))
        welcome = room_twiml.welcome_text(ctx.appliance_name())
        return xml(room_twiml.pin_prompt(welcome, 1))

    @app.route(room_twiml.PIN_PATH, method=METHODS, auth=CUSTOM)
    @signed
    def pin() -> str:
        caller, digits, attempt = _param("From"), _param("Digits"), _attempt()
        if services.lockout.retry_after(caller) > 0:
            return xml(room_twiml.goodbye(room_twiml.LOCKED_OUT))
        found = services.rooms.find_by_pin(digits) if digits else None
        if found is None:
            if digits and services.lockout.failure(caller):
                log.warning("voice: caller %s locked out after too many wrong PINs",
                            caller or "(no ID)")
                return xml(room_twiml.goodbye(room_twiml.WRONG_PIN, room_twiml.LOCKED_OUT))
            reason = room_twiml.WRONG_PIN if digits else room_twiml.NO_PIN
            log.info("voice: caller %s: %s (try %d of %d)", caller or "(no ID)",
                     "wrong PIN" if digits else "no PIN", attempt, room_twiml.TRIES)
            if attempt >= room_twiml.TRIES:
                return xml(room_twiml.goodbye(reason, room_twiml.GOODBYE))
            return xml(room_twiml.pin_prompt(None, attempt + 1, before=reason))
        room, moderator = found
        services.lockout.success(caller)
        moment = services.now()
        if not room.is_open(moment):
            log.info("voice: caller %s: room %r is closed", caller, room.name)
            return xml(room_twiml.goodbye(room_twiml.closed_message(room, moment)))
        if not room.admits(caller):
            log.info("voice: caller %s is not among room %r's callers", caller, room.name)
            return xml(room_twiml.goodbye(room_twiml.NOT_ALLOWED))
        log.info("voice: caller %s enters room %r%s", caller, room.name,
                 " as the moderator" if moderator else "")
        return xml(room_twiml.admitted(room, moderator))

    def room_of(room_id: int) -> Room:
        try:
            return services.rooms.get(room_id)
        except NotFoundError:
            raise bottle.HTTPError(404, "no such room") from None

    @app.route("/voice/room/<room_id:int>", method=METHODS, auth=CUSTOM)
    @signed
    def room_document(room_id: int) -> str:
        return xml(room_twiml.room_document(room_of(room_id)))

    @app.route("/voice/room/<room_id:int>/moderator", method=METHODS, auth=CUSTOM)
    @signed
    def moderator_document(room_id: int) -> str:
        return xml(room_twiml.room_document(room_of(room_id), moderator=True))

    @app.route(room_twiml.MEDIA_PATH + "<name>", method=METHODS, auth=CUSTOM)
    @signed
    def media(name: str) -> bottle.HTTPResponse:
        path = services.media.path(name)
        if path is None:
            raise bottle.HTTPError(404, "no such file")
        return bottle.static_file(path.name, root=str(path.parent))
