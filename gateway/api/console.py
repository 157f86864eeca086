"""The web console at /console: sign-in, sign-out, the page shells and their static files.

A page is an HTML shell holding no data but its session's CSRF token; its scripts read and change
everything through the admin API, with the session cookie instead of the bearer token. So nothing here
reads or changes data, and `require_session` is how the admin API accepts that cookie.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import RuntimeDep, read_body
from gateway.console.assets import assets, render
from gateway.console.session import (
    COOKIE,
    CSRF_HEADER,
    LOGIN_COOKIE,
    Session,
    Signer,
    new_login_nonce,
)
from gateway.errors import AuthenticationError, NotFound, PermissionDenied
from gateway.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",  # the page carries the session's CSRF token
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
IMMUTABLE = "public, max-age=31536000, immutable"
PAGES = {
    "overview": "Overview",
    "tokens": "Tokens",
    "token": "Token",
    "usage": "Usage",
    "channels": "Channels",
}


async def _enabled(rt: RuntimeDep) -> None:
    if not rt.settings.console.enabled:
        raise NotFound("The console is switched off (console.enabled: false).", code="not_found")


router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(_enabled)])


def signer(settings: Settings) -> Signer | None:
    token = settings.admin.token
    if token is None or not token.get_secret_value():
        return None
    secret = settings.console.session_secret
    return Signer(token.get_secret_value(), secret.get_secret_value() if secret else "")


def session_of(request: Request, settings: Settings) -> tuple[Signer, Session] | None:
    sign = signer(settings)
    if sign is None or not settings.console.enabled:
        return None
    max_age = settings.console.session_hours * 3600
    session = sign.verify(request.cookies.get(COOKIE), time.time(), max_age)
    return None if session is None else (sign, session)


def require_session(request: Request, settings: Settings) -> None:
    """The admin API's check of a console session: a valid cookie, and the CSRF header on any change."""
    found = session_of(request, settings)
    if found is None:
        raise AuthenticationError("The console session is not valid or has expired.", code="invalid_session")
    sign, session = found
    if request.method not in SAFE_METHODS and not sign.csrf_ok(session, request.headers.get(CSRF_HEADER)):
        raise PermissionDenied(f"Missing or wrong CSRF token ({CSRF_HEADER} header).", code="csrf_failed")


def _secure(request: Request, settings: Settings) -> bool:
    mode = settings.console.secure_cookie
    if mode != "auto":
        return mode == "always"
    return request.url.scheme == "https" or settings.public_base_url().startswith("https://")


def _safe_next(value: str | None) -> str:
    """Only a console path: never an open redirect (`//evil`, `/console\\@evil`, a scheme)."""
    if value and value.startswith("/console") and "//" not in value and "\\" not in value:
        return value
    return "/console"


def _page(request: Request, settings: Settings, page: str) -> Response:
    found = session_of(request, settings)
    if found is None:
        return RedirectResponse(f"/console/login?next={quote(request.url.path)}", status_code=303)
    sign, session = found
    body = render("page", csrf=sign.csrf_token(session), title=PAGES[page], page=page, build=assets().build)
    return HTMLResponse(body, headers=PAGE_HEADERS)


@router.get("")
@router.get("/")
async def overview(request: Request, rt: RuntimeDep) -> Response:
    return _page(request, rt.settings, "overview")


@router.get("/tokens")
async def tokens(request: Request, rt: RuntimeDep) -> Response:
    return _page(request, rt.settings, "tokens")


@router.get("/tokens/{token_id}")
async def token(token_id: str, request: Request, rt: RuntimeDep) -> Response:
    return _page(request, rt.settings, "token")


@router.get("/usage")
async def usage(request: Request, rt: RuntimeDep) -> Response:
    return _page(request, rt.settings, "usage")


@router.get("/channels")
async def channels(request: Request, rt: RuntimeDep) -> Response:
    return _page(request, rt.settings, "channels")


def _login_page(request: Request, next_path: str, error: str = "", status: int = 200) -> Response:
    nonce = new_login_nonce()
    body = render("login", error=error, nonce=nonce, next=next_path, build=assets().build)
    response = HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, path="/console/login", httponly=True, samesite="strict"
    )
    return response


@router.get("/login")
async def login_form(request: Request, rt: RuntimeDep, next: str | None = None) -> Response:
    next_path = _safe_next(next)
    if session_of(request, rt.settings) is not None:
        return RedirectResponse(next_path, status_code=303)
    if signer(rt.settings) is None:
        return _login_page(request, next_path, _NO_TOKEN, status=503)
    return _login_page(request, next_path)


_NO_TOKEN = "The admin token is not set: set GATEWAY_ADMIN_TOKEN (or admin.token) and restart the gateway."
Form = dict[str, list[str]]


async def _form(request: Request) -> Form:
    raw = await read_body(request, 16 * 1024)
    return parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=10)


def _field(form: Form, name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""


@router.post("/login")
async def login(request: Request, rt: RuntimeDep) -> Response:
    settings = rt.settings
    form = await _form(request)
    next_path = _safe_next(_field(form, "next"))
    sign = signer(settings)
    if sign is None:
        return _login_page(request, next_path, _NO_TOKEN, status=503)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce.encode(), _field(form, "nonce").encode()):
        # a cross-site form never carries the SameSite=Strict nonce cookie
        return _login_page(request, next_path, "This sign-in form expired or came from elsewhere.", 403)
    admin = settings.admin.token
    assert admin is not None  # signer() checked it
    if not hmac.compare_digest(_field(form, "token").encode(), admin.get_secret_value().encode()):
        return _login_page(request, next_path, "Wrong admin token.", status=401)
    cookie, _ = sign.issue(time.time())
    response = RedirectResponse(next_path, status_code=303)
    max_age = int(settings.console.session_hours * 3600)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max_age,
        expires=max_age,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, rt: RuntimeDep) -> Response:
    found = session_of(request, rt.settings)
    if found is not None:
        sign, session = found
        presented = request.headers.get(CSRF_HEADER) or _field(await _form(request), "csrf_token")
        if not sign.csrf_ok(session, presented):
            raise PermissionDenied("Missing or wrong CSRF token.", code="csrf_failed")
    response = RedirectResponse("/console/login", status_code=303)
    secure = _secure(request, rt.settings)
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
    return response


@router.get("/static/{build}/{name}")
async def static(build: str, name: str, request: Request) -> Response:
    found = assets()
    asset = found.files.get(name)
    if asset is None:
        raise NotFound(f"No console file named '{name}'.", code="not_found")
    headers = {
        "ETag": asset.etag,
        # an old page asking for another build's URL gets today's file, but must not keep it
        "Cache-Control": IMMUTABLE if build == found.build else "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.content_type, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)
