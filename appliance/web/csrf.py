"""CSRF tokens: one per session for logged-in pages, a double-submit cookie before login."""

from __future__ import annotations

import hmac
import secrets

import bottle

FIELD = "csrf_token"  # the hidden form field
HEADER = "X-CSRF-Token"  # what fetch() from the page sends instead
PRE_LOGIN_COOKIE = "appliance_csrf"  # login and first-run forms, before any session exists
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSED = ("This form was not sent from this appliance's own page, or it has expired. "
           "Reload the page and try again.")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def submitted_token(request: bottle.BaseRequest) -> str:
    """The token the request carries: the header (fetch) or the form field."""
    header = request.headers.get(HEADER, "")
    if header:
        return header
    content_type = request.content_type.split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.forms.get(FIELD, "")
    return ""


def tokens_match(expected: str | None, submitted: str | None) -> bool:
    """Constant-time comparison; an empty token never matches."""
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode("utf-8", "replace"),
                               submitted.encode("utf-8", "replace"))


def pre_login_token(request: bottle.BaseRequest, response: bottle.BaseResponse) -> str:
    """The browser's pre-login token, issuing the cookie when it has none yet."""
    token = request.get_cookie(PRE_LOGIN_COOKIE, "")
    if not token or len(token) > 64:
        token = new_token()
    response.set_cookie(PRE_LOGIN_COOKIE, token, path="/", httponly=True, samesite="strict",
                        secure=request.urlparts.scheme == "https")
    return token
