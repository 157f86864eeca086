"""Token keys (generated, hashed, never stored in clear) and the cached key → caller lookup.

A lookup is cached in process for `auth.token_cache_seconds`; a change made through this node's
admin API (disable, delete, rotate) drops the cached entry at once, and a lookup that was already
reading the database when the change came is not cached (it may hold the row from before).
A database that cannot be reached makes the lookup a 503, not a crash.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.db import repositories as repo
from gateway.db.errors import DATABASE_ERRORS, describe
from gateway.db.models import Token
from gateway.domain import Caller
from gateway.errors import AuthenticationError, ServiceUnavailable

log = logging.getLogger("gateway.auth")

KEY_PREFIX_LEN = 10


def generate_key() -> str:
    """`sk-` followed by 48 random URL-safe characters."""
    return "sk-" + secrets.token_urlsafe(36)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:KEY_PREFIX_LEN]


def new_token_id() -> str:
    """Sortable by creation time, so the id doubles as a pagination cursor."""
    return f"tok_{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def caller_from_row(token: Token) -> Caller:
    return Caller(
        token_id=token.id,
        name=token.name,
        group=token.group,
        allowed_groups=tuple(token.allowed_groups or ()),
        models=tuple(token.models) if token.models is not None else None,
        chat_image_field=token.chat_image_field,
        rpm_limit=token.rpm_limit,
        max_concurrency=token.max_concurrency,
        quota_micro_usd=token.quota_micro_usd,
        used_micro_usd=token.used_micro_usd,
        expires_at=_aware(token.expires_at),
        key_hash=token.key_hash,
    )


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every stored time is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class TokenAuthenticator:
    """Resolves a presented key to an active caller, with a short in-process cache.

    `_epoch` counts invalidations. A lookup notes it before reading the database and caches what it
    read only if no invalidation came meanwhile: the token id is not known before the read, so any
    invalidation counts (they are rare; the cost is one uncached lookup).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._epoch = 0

    async def resolve(self, key: str | None) -> Caller:
        if not key:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="invalid_api_key",
            )
        key_hash = hash_key(key)
        now = self._monotonic()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[1] > now:
            caller = hit[0]
        else:
            epoch = self._epoch
            token = await self._read(key_hash)
            if token is None or token.status != "active":
                self._cache.pop(key_hash, None)
                raise AuthenticationError("Incorrect API key provided.")
            caller = caller_from_row(token)
            if self._ttl > 0 and epoch == self._epoch:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[key_hash] = (caller, now + self._ttl)
        if caller.expires_at is not None and caller.expires_at <= datetime.now(UTC):
            raise AuthenticationError("This API key has expired.")
        return caller

    async def _read(self, key_hash: str) -> Token | None:
        try:
            async with self._sessionmaker() as session:
                return await repo.get_token_by_hash(session, key_hash)
        except DATABASE_ERRORS as exc:
            log.error("token lookup failed, the database is unavailable: %s", describe(exc))
            raise ServiceUnavailable(
                "The gateway cannot reach its database right now; please try again shortly."
            ) from None

    def invalidate(self, token_id: str) -> None:
        """Forget every cached entry of a token (disabled, deleted, rotated or edited), and keep
        lookups already under way from caching what they read."""
        self._epoch += 1
        for key_hash in [h for h, (c, _) in self._cache.items() if c.token_id == token_id]:
            del self._cache[key_hash]
