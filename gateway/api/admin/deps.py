"""Admin authentication: the configured admin token, compared in constant time, or a console session.

A request without a token but with the console's session cookie is checked as a console session (a
change then also needs its CSRF header); a request with a token is checked as before.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from gateway.api.console import require_session
from gateway.api.deps import RuntimeDep, presented_key
from gateway.console.session import COOKIE
from gateway.errors import AuthenticationError, ServiceUnavailable


async def require_admin(request: Request, rt: RuntimeDep) -> None:
    configured = rt.settings.admin.token
    if configured is None or not configured.get_secret_value():
        raise ServiceUnavailable(
            "The admin API is off: set GATEWAY_ADMIN_TOKEN (or admin.token in the config file) to enable it.",
            code="admin_api_disabled",
        )
    key = presented_key(request)
    if key is None and COOKIE in request.cookies:
        require_session(request, rt.settings)
        return
    key = key or ""
    if not hmac.compare_digest(key.encode(), configured.get_secret_value().encode()):
        raise AuthenticationError("Invalid admin token.", code="invalid_admin_token")


AdminDep = Annotated[None, Depends(require_admin)]

# A filter is compared with text columns, and PostgreSQL text cannot hold NUL: refused as invalid (400)
# on every backend, not left to fail in the database driver.
FilterText = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]
