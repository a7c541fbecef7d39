"""The admin password: rules for a new one, and a salted scrypt hash (hashlib)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

MIN_LENGTH = 8  # NIST SP 800-63B's minimum for a memorised secret
MAX_LENGTH = 256  # keeps one hash bounded in time
SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # 16 MiB, about 60 ms on a desktop core, a few hundred on a Pi 3
SALT_BYTES = 16
KEY_BYTES = 32


def password_problem(password: str, confirm: str, min_length: int = MIN_LENGTH) -> str | None:
    """Why ``password`` (typed twice) cannot be the admin password, or None if it can."""
    if not password:
        return "Enter a password."
    if password != confirm:
        return "The two passwords differ. Type the same password in both fields."
    if len(password) < min_length:
        return f"The password is too short: use at least {min_length} characters."
    if len(password) > MAX_LENGTH:
        return f"The password is too long: use at most {MAX_LENGTH} characters."
    if not password.strip():
        return "The password cannot be only spaces."
    return None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$key`` (base64 fields), with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P, KEY_BYTES)
    return "$".join((SCHEME, str(N), str(R), str(P), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored``; a malformed or absent hash matches nothing."""
    if not stored or len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != SCHEME or not 1 < int(n) <= 2**20 or not 0 < int(r) * int(p) <= 64:
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _derive(password, base64.b64decode(salt, validate=True), int(n), int(r),
                         int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)
