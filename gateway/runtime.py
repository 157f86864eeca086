"""Per-process singletons, built once in the app's lifespan and passed explicitly (RuntimeDep)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth.limits import Limiter
from gateway.auth.tokens import TokenAuthenticator
from gateway.billing.usage_writer import UsageWriter
from gateway.db.session import create_engine, create_sessionmaker
from gateway.images import fetch
from gateway.providers.registry import ProviderRegistry
from gateway.routing.catalog import Catalog
from gateway.routing.health import Health
from gateway.settings import Settings
from gateway.storage.base import ObjectStore
from gateway.storage.factory import build_store


def upstream_session() -> aiohttp.ClientSession:
    """One client for every upstream call: unbounded pool (hundreds of slow calls), DNS cached."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, read_bufsize=2**18)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: aiohttp.ClientSession
    providers: ProviderRegistry
    catalog: Catalog
    health: Health
    auth: TokenAuthenticator
    limiter: Limiter
    usage: UsageWriter
    store: ObjectStore | None
    fetcher: fetch.ImageFetcher
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.database)
        sessionmaker = create_sessionmaker(engine)
        http = upstream_session()
        providers = ProviderRegistry(http, settings.limits.max_upstream_response_bytes)
        usage = UsageWriter(sessionmaker, settings.usage)
        usage.start()
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            http=http,
            providers=providers,
            catalog=Catalog(settings.channels, providers.supports),
            health=Health(settings.retry),
            auth=TokenAuthenticator(sessionmaker, settings.auth.token_cache_seconds),
            limiter=Limiter(),
            usage=usage,
            store=build_store(settings.storage, settings.public_base_url()),
            fetcher=fetch.from_settings(settings.limits, settings.security),
        )

    async def close(self) -> None:
        await self.usage.stop()
        await self.http.close()
        await self.fetcher.close()
        if self.store is not None:
            await self.store.close()
        await self.engine.dispose()
