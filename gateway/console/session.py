"""Console sessions as stateless signed cookies, so any node can check one and none stores the admin token.

A cookie is `<session id>.<issued at, Unix seconds>.<HMAC-SHA256 of both>`. The HMAC key is derived from
the admin token and `console.session_secret`: changing either ends every session at once. A session's CSRF
token is another HMAC of its id under the same key; the page carries it and sends it back in a header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

COOKIE = "gateway_console"
LOGIN_COOKIE = "gateway_console_login"  # the sign-in form's own CSRF value (double submit)
CSRF_HEADER = "x-csrf-token"
MAX_COOKIE_CHARS = 200  # a real cookie is about 80; anything longer is refused before it is parsed
CLOCK_SKEW_SECONDS = 60  # nodes' clocks may differ a little: a cookie "issued" slightly ahead is fine
_LABEL = b"gateway console session v1\x00"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    id: str
    issued_at: int


class Signer:
    """Issues and checks session cookies and CSRF tokens under one key."""

    def __init__(self, admin_token: str, secret: str = "") -> None:
        self._key = hmac.new(secret.encode(), _LABEL + admin_token.encode(), hashlib.sha256).digest()

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self._key, "\x00".join(parts).encode(), hashlib.sha256).digest())

    def issue(self, now: float) -> tuple[str, Session]:
        session = Session(_b64(secrets.token_bytes(16)), int(now))
        body = f"{session.id}.{session.issued_at}"
        return f"{body}.{self._mac('session', body)}", session

    def verify(self, cookie: str | None, now: float, max_age_seconds: float) -> Session | None:
        """The session, if the cookie is ours, unchanged and younger than `max_age_seconds`."""
        if not cookie or len(cookie) > MAX_COOKIE_CHARS:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 12:
            return None
        sid, issued, mac = parts
        if not hmac.compare_digest(mac.encode(), self._mac("session", f"{sid}.{issued}").encode()):
            return None
        age = now - int(issued)
        if age >= max_age_seconds or age < -CLOCK_SKEW_SECONDS:
            return None
        return Session(sid, int(issued))

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.id)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.csrf_token(session).encode()
        )


def new_login_nonce() -> str:
    return _b64(secrets.token_bytes(16))
