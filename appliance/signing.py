"""Twilio's request signature (X-Twilio-Signature), so existing apps validate our requests.

The algorithm, from Twilio's "Webhooks security" page: take the full URL of the request
(with its query string), append each POST parameter's name and value sorted by name,
HMAC-SHA1 the result with the auth token and base64 the digest. A GET request has no POST
parameters; its parameters are already part of the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The X-Twilio-Signature of a request to ``url`` with POST ``params``."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether ``signature`` is the one ``twilio_signature`` gives (compared in constant time)."""
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
