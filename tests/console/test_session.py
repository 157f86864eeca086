"""Console session cookies: signed, expiring, bound to the admin token and the session secret."""

from __future__ import annotations

from gateway.console.session import MAX_COOKIE_CHARS, Signer

NOW = 1_800_000_000.0
HOURS_12 = 12 * 3600


def test_a_cookie_verifies_until_it_expires() -> None:
    signer = Signer("admin-token", "secret")
    cookie, session = signer.issue(NOW)
    assert signer.verify(cookie, NOW, HOURS_12) == session
    assert signer.verify(cookie, NOW + HOURS_12 - 1, HOURS_12) == session
    assert signer.verify(cookie, NOW + HOURS_12, HOURS_12) is None
    assert signer.verify(cookie, NOW + 3600, 3600) is None  # a shorter configured lifetime applies at once


def test_the_cookie_holds_no_admin_token() -> None:
    cookie, _ = Signer("admin-token-123", "").issue(NOW)
    assert "admin-token-123" not in cookie
    assert len(cookie) < MAX_COOKIE_CHARS


def test_a_new_admin_token_or_secret_ends_every_session() -> None:
    cookie, _ = Signer("admin-token", "secret").issue(NOW)
    assert Signer("admin-token", "secret").verify(cookie, NOW, HOURS_12) is not None  # any node, same config
    assert Signer("other-token", "secret").verify(cookie, NOW, HOURS_12) is None
    assert Signer("admin-token", "other-secret").verify(cookie, NOW, HOURS_12) is None


def test_tampered_or_malformed_cookies_are_refused() -> None:
    signer = Signer("admin-token")
    cookie, session = signer.issue(NOW)
    sid, issued, mac = cookie.split(".")
    for bad in (
        f"{sid}.{int(issued) + 3600}.{mac}",  # a later issue time, to live longer
        f"x{sid}.{issued}.{mac}",
        f"{sid}.{issued}.{mac[:-1]}A" if mac[-1] != "A" else f"{sid}.{issued}.{mac[:-1]}B",
        f"{sid}.{issued}",
        f"{sid}.-1.{mac}",
        "",
        "a" * (MAX_COOKIE_CHARS + 1),
    ):
        assert signer.verify(bad, NOW, HOURS_12) is None, bad
    assert signer.verify(cookie, NOW - 3600, HOURS_12) is None  # issued in the future: another clock's lie


def test_csrf_tokens_belong_to_one_session() -> None:
    signer = Signer("admin-token")
    _, first = signer.issue(NOW)
    _, second = signer.issue(NOW)
    token = signer.csrf_token(first)
    assert signer.csrf_ok(first, token)
    assert not signer.csrf_ok(second, token)
    assert not signer.csrf_ok(first, None)
    assert not signer.csrf_ok(first, "")
    assert not Signer("other-token").csrf_ok(first, token)
