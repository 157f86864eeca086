import asyncio
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.auth import manage
from gateway.auth.tokens import (
    TokenAuthenticator,
    caller_from_row,
    display_prefix,
    generate_key,
    hash_key,
    new_token_id,
)
from gateway.db import repositories as repo
from gateway.db.models import Token
from gateway.errors import AuthenticationError, ServiceUnavailable

Sessionmaker = async_sessionmaker[AsyncSession]


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class CountingSessionmaker:
    """Wraps the real sessionmaker and counts how often a session is opened."""

    def __init__(self, inner: Sessionmaker) -> None:
        self.inner = inner
        self.opened = 0

    def __call__(self) -> AsyncSession:
        self.opened += 1
        return self.inner()


async def create_token(sm: Sessionmaker, **fields: Any) -> tuple[Token, str]:
    async with sm() as session, session.begin():
        return await manage.create(session, name=fields.pop("name", "t"), **fields)


async def update(sm: Sessionmaker, token_id: str, **values: Any) -> None:
    async with sm() as session, session.begin():
        assert await repo.update_token(session, token_id, values)


async def delete(sm: Sessionmaker, token_id: str) -> None:
    async with sm() as session, session.begin():
        assert await repo.delete_token(session, token_id)


def authenticator(
    sm: Sessionmaker | CountingSessionmaker, ttl: float = 10.0, clock: Clock | None = None
) -> TokenAuthenticator:
    return TokenAuthenticator(cast(Sessionmaker, sm), ttl, monotonic=clock or Clock())


# keys


def test_generate_key_format() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"sk-[A-Za-z0-9_-]{48}", key), key


def test_hash_is_sha256_hex() -> None:
    key = "sk-" + "a" * 48
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key))
    assert hash_key(key) != hash_key(key + "b")


def test_display_prefix_and_token_id() -> None:
    assert display_prefix("sk-abcdefghijkl") == "sk-abcdefg"
    ids = [new_token_id() for _ in range(50)]
    assert all(re.fullmatch(r"tok_[0-9a-f]{24}", i) for i in ids)
    assert len(set(ids)) == 50


# the stored row


async def test_created_token_stores_only_hash_and_prefix(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(sessionmaker, name="alice", group="economy", rpm_limit=5)
    async with sessionmaker() as session:
        row = (await session.execute(select(Token).where(Token.id == token.id))).scalar_one()
    assert row.key_hash == hash_key(key)
    assert row.key_prefix == key[:10]
    assert key not in {str(v) for v in row.__dict__.values()}
    caller = caller_from_row(row)
    assert (caller.name, caller.group, caller.rpm_limit) == ("alice", "economy", 5)


# TokenAuthenticator


async def test_resolves_an_active_token(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(
        sessionmaker,
        name="bob",
        allowed_groups=["economy"],
        models=["gpt-image-1"],
        quota_micro_usd=5_000_000,
        max_concurrency=2,
        chat_image_field="list_data",
    )
    caller = await authenticator(sessionmaker).resolve(key)
    assert caller.token_id == token.id
    assert caller.name == "bob"
    assert caller.group == "default"
    assert caller.allowed_groups == ("economy",)
    assert caller.models == ("gpt-image-1",)
    assert caller.quota_micro_usd == 5_000_000
    assert caller.used_micro_usd == 0
    assert caller.max_concurrency == 2
    assert caller.chat_image_field == "list_data"
    assert caller.key_hash == hash_key(key)


async def assert_refused(auth: TokenAuthenticator, key: str | None) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await auth.resolve(key)
    err = info.value
    assert (err.status, err.type, err.code) == (401, "invalid_request_error", "invalid_api_key")
    return err


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_refused(sessionmaker: Sessionmaker, key: str | None) -> None:
    err = await assert_refused(authenticator(sessionmaker), key)
    assert "Bearer" in err.message


async def test_unknown_key_refused(sessionmaker: Sessionmaker) -> None:
    await create_token(sessionmaker)
    await assert_refused(authenticator(sessionmaker), generate_key())


async def test_disabled_token_refused(sessionmaker: Sessionmaker) -> None:
    _, key = await create_token(sessionmaker, status="disabled")
    await assert_refused(authenticator(sessionmaker), key)


async def test_expired_token_refused(sessionmaker: Sessionmaker) -> None:
    _, key = await create_token(sessionmaker, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    err = await assert_refused(authenticator(sessionmaker), key)
    assert "expired" in err.message


async def test_token_expiring_later_is_accepted(sessionmaker: Sessionmaker) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    _, key = await create_token(sessionmaker, expires_at=expires)
    caller = await authenticator(sessionmaker).resolve(key)
    assert caller.expires_at is not None and caller.expires_at.tzinfo is not None
    assert abs((caller.expires_at - expires).total_seconds()) < 1


async def test_cache_spares_the_database(sessionmaker: Sessionmaker) -> None:
    _, key = await create_token(sessionmaker)
    counting = CountingSessionmaker(sessionmaker)
    auth = authenticator(counting)
    first = await auth.resolve(key)
    assert counting.opened == 1
    for _ in range(5):
        assert await auth.resolve(key) == first
    assert counting.opened == 1


async def test_cached_caller_survives_row_deletion_within_ttl(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(sessionmaker)
    clock = Clock()
    auth = authenticator(sessionmaker, ttl=10, clock=clock)
    await auth.resolve(key)
    await delete(sessionmaker, token.id)
    clock.now += 9.9
    assert (await auth.resolve(key)).token_id == token.id  # still cached
    clock.now += 0.1
    await assert_refused(auth, key)  # TTL over: the database is read again


async def test_ttl_expiry_rereads_the_row(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(sessionmaker, rpm_limit=10)
    clock = Clock()
    counting = CountingSessionmaker(sessionmaker)
    auth = authenticator(counting, ttl=5, clock=clock)
    assert (await auth.resolve(key)).rpm_limit == 10
    await update(sessionmaker, token.id, rpm_limit=20)
    clock.now += 4
    assert (await auth.resolve(key)).rpm_limit == 10
    clock.now += 1
    assert (await auth.resolve(key)).rpm_limit == 20
    assert counting.opened == 2


async def test_zero_ttl_disables_the_cache(sessionmaker: Sessionmaker) -> None:
    _, key = await create_token(sessionmaker)
    counting = CountingSessionmaker(sessionmaker)
    auth = authenticator(counting, ttl=0)
    await auth.resolve(key)
    await auth.resolve(key)
    assert counting.opened == 2


async def test_invalidate_makes_a_disabled_token_refused_at_once(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(sessionmaker)
    other, other_key = await create_token(sessionmaker, name="other")
    counting = CountingSessionmaker(sessionmaker)
    auth = authenticator(counting, ttl=3600)
    await auth.resolve(key)
    await auth.resolve(other_key)
    await update(sessionmaker, token.id, status="disabled")
    assert (await auth.resolve(key)).token_id == token.id  # cached: not seen yet
    auth.invalidate(token.id)
    await assert_refused(auth, key)
    opened = counting.opened
    assert (await auth.resolve(other_key)).token_id == other.id  # other tokens stay cached
    assert counting.opened == opened


async def test_rotated_key_stops_working(sessionmaker: Sessionmaker) -> None:
    token, old = await create_token(sessionmaker)
    auth = authenticator(sessionmaker, ttl=3600)
    await auth.resolve(old)
    async with sessionmaker() as session, session.begin():
        new = await manage.rotate(session, token.id)
    assert new is not None and new != old
    auth.invalidate(token.id)
    await assert_refused(auth, old)
    assert (await auth.resolve(new)).token_id == token.id


async def test_refused_lookup_is_not_cached(sessionmaker: Sessionmaker) -> None:
    token, key = await create_token(sessionmaker, status="disabled")
    auth = authenticator(sessionmaker, ttl=3600)
    await assert_refused(auth, key)
    await update(sessionmaker, token.id, status="active")
    assert (await auth.resolve(key)).token_id == token.id


class GatedLookup:
    """Stands in for repo.get_token_by_hash: the first lookup reads the row, then waits for `release`
    before it returns, so a test can revoke the token in between."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = repo.get_token_by_hash
        self.read_done = asyncio.Event()
        self.release = asyncio.Event()
        self.reads = 0
        monkeypatch.setattr(repo, "get_token_by_hash", self)

    async def __call__(self, session: AsyncSession, key_hash: str) -> Token | None:
        token = await self.real(session, key_hash)
        self.reads += 1
        if self.reads == 1:
            self.read_done.set()
            await self.release.wait()
        return token


async def revoke(sm: Sessionmaker, how: str, token_id: str) -> None:
    """What the admin API does before it invalidates the cache: PATCH status, DELETE, or rotate."""
    if how == "disable":
        await update(sm, token_id, status="disabled")
    elif how == "delete":
        await delete(sm, token_id)
    else:
        async with sm() as session, session.begin():
            assert await manage.rotate(session, token_id)


@pytest.mark.parametrize("how", ["disable", "delete", "rotate"])
async def test_lookup_that_read_the_row_before_a_revocation_does_not_cache_it(
    sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    token, key = await create_token(sessionmaker)
    auth = authenticator(sessionmaker, ttl=3600)
    lookup = GatedLookup(monkeypatch)
    in_flight = asyncio.create_task(auth.resolve(key))
    await lookup.read_done.wait()  # the row has been read, still active
    await revoke(sessionmaker, how, token.id)
    auth.invalidate(token.id)  # ...and the cache is told, while that lookup is still under way
    lookup.release.set()
    assert (await in_flight).token_id == token.id  # that request started before the revocation
    await assert_refused(auth, key)  # the next one must not find it cached
    assert lookup.reads == 2


class DownSessionmaker:
    """A database that cannot be reached: opening a session or running the lookup raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self) -> AsyncSession:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
        OperationalError("SELECT tokens", {}, Exception("could not connect to server")),
        DBAPIError("SELECT tokens", {}, Exception("connection was closed"), connection_invalidated=True),
        SATimeoutError("QueuePool limit of size 10 overflow 0 reached"),
    ],
    ids=["refused", "timeout", "operational", "dbapi", "pool"],
)
async def test_database_outage_during_lookup_is_a_503(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    auth = authenticator(cast(Sessionmaker, DownSessionmaker(error)))
    with caplog.at_level("WARNING"), pytest.raises(ServiceUnavailable) as info:
        await auth.resolve(generate_key())
    err = info.value
    assert (err.status, err.type, err.code) == (503, "server_error", "service_unavailable")
    assert "SELECT" not in err.message and "try again" in err.message
    (line,) = [r for r in caplog.records if r.name == "gateway.auth"]
    assert line.exc_info is None and "database" in line.getMessage()  # one line, no traceback
    assert "SELECT" not in line.getMessage()
