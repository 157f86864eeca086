"""Per-process singletons, built once in the app's lifespan and passed explicitly (RuntimeDep).

With `redis.url`, the runtime also joins the cluster: one subscriber task applies what other processes
decided (key cooldowns and disables, channel switches, token changes) to this process's state.

`reload()` re-reads the config file and swaps `settings` and `catalog` in one step (no await between
the two assignments): a request that already started keeps the channel objects it was routed with.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.auth.limits import Limiter, SharedLimits
from gateway.auth.tokens import TokenAuthenticator
from gateway.billing.ledger import QuotaLedger
from gateway.billing.pricing import PriceBook
from gateway.billing.usage_writer import UsageWriter
from gateway.cluster.bus import Bus
from gateway.cluster.events import ChannelSwitch, Event, ReloadRequested, TokenChanged
from gateway.cluster.link import RedisLink
from gateway.db.inline import InlineSQLite
from gateway.db.session import create_engine, create_sessionmaker
from gateway.errors import GatewayError, InvalidRequest
from gateway.images import fetch
from gateway.images.resolver import InputResolver
from gateway.providers.http1 import Http1Client
from gateway.providers.registry import ProviderRegistry
from gateway.routing.catalog import Catalog
from gateway.routing.health import Health
from gateway.settings import ConfigError, Settings, config_path, load_settings
from gateway.storage.base import ObjectStore
from gateway.storage.factory import build_store

log = logging.getLogger("gateway.runtime")

# Config sections a reload applies; every other section is bound to objects built at start-up.
LIVE_SECTIONS = frozenset({"admin", "chat", "groups", "channels", "pricing", "retry"})
SUBSCRIBE_WAIT_SECONDS = 3.0


def upstream_session() -> aiohttp.ClientSession:
    """One client for every upstream call: unbounded pool (hundreds of slow calls), DNS cached."""
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, read_bufsize=2**18)


@dataclass(frozen=True, slots=True)
class Reloaded:
    channels: int
    needs_restart: list[str]  # sections that changed in the file but only take effect on a restart


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: aiohttp.ClientSession
    lean: Http1Client  # chat completions to OpenAI-compatible upstreams (providers/http1.py)
    providers: ProviderRegistry
    catalog: Catalog
    health: Health
    auth: TokenAuthenticator
    limiter: Limiter
    usage: UsageWriter
    store: ObjectStore | None
    fetcher: fetch.ImageFetcher
    resolver: InputResolver  # input images: data: URLs, this gateway's storage, or fetched (§3.4, §5.3)
    prices: PriceBook
    quota: QuotaLedger
    inline: InlineSQLite | None
    rng: random.Random = field(default_factory=random.Random)
    link: RedisLink | None = None
    bus: Bus | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        engine = create_engine(settings.database)
        sessionmaker = create_sessionmaker(engine)
        http = upstream_session()
        store = build_store(settings.storage, settings.public_base_url())
        fetcher = fetch.from_settings(settings.limits, settings.security)
        resolver = InputResolver(store, fetcher)
        lean = Http1Client()
        providers = ProviderRegistry(http, settings.limits.max_upstream_response_bytes, resolver, lean)
        link = RedisLink(settings.redis) if settings.redis.url else None
        inline = InlineSQLite.beside(engine)  # a SQLite file: quota and usage statements on the loop
        usage = UsageWriter(sessionmaker, settings.usage, inline)
        usage.start()
        rt = cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            http=http,
            lean=lean,
            providers=providers,
            catalog=Catalog(settings.channels, providers.supports),
            health=Health(settings.retry),
            auth=TokenAuthenticator(sessionmaker, settings.auth.token_cache_seconds),
            limiter=Limiter(SharedLimits.over(link) if link is not None else None),
            usage=usage,
            store=store,
            fetcher=fetcher,
            resolver=resolver,
            link=link,
            prices=PriceBook(settings.pricing, settings.groups),
            quota=QuotaLedger(
                sessionmaker, inline=inline, block_requests=settings.pricing.quota_block_requests
            ),
            inline=inline,
        )
        rt.limiter.start()
        if link is not None:
            await rt._join_cluster(link)
        return rt

    async def _join_cluster(self, link: RedisLink) -> None:
        self.bus = bus = Bus(link, self._on_event)
        self.health.publish = bus.post
        bus.start()
        # Start serving in step with the others when Redis answers; without it, per process (logged).
        await bus.wait_subscribed(SUBSCRIBE_WAIT_SECONDS)

    def _on_event(self, event: Event) -> None:
        """What another process decided, applied here."""
        if isinstance(event, TokenChanged):
            self.auth.invalidate(event.token_id)
            self.quota.leases.release(event.token_id)
        elif isinstance(event, ReloadRequested):
            task = asyncio.get_running_loop().create_task(self._reload_logged())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self.health.apply(event)

    async def _reload_logged(self) -> None:
        try:
            done = await self.reload()
        except GatewayError as exc:
            log.error("reload asked by another node failed; the running config stays: %s", exc.message)
        else:
            log.warning("config reloaded at another node's request: %d channels", done.channels)

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()
        for task in list(self._background):
            task.cancel()
        await self.limiter.close()
        await self.quota.drain()  # settlements submit their usage records: before the writer stops
        await self.usage.stop()
        if self.inline is not None:
            self.inline.close()
        await self.http.close()
        await self.lean.close()
        await self.fetcher.close()
        if self.store is not None:
            await self.store.close()
        await self.engine.dispose()
        if self.link is not None:
            await self.link.close()

    async def forget_token(self, token_id: str) -> None:
        """A token was revoked, disabled, rotated or edited: drop it from this cache and every node's."""
        self.auth.invalidate(token_id)
        self.quota.leases.release(token_id)
        if self.bus is not None:
            await self.bus.send(TokenChanged(token_id))

    async def switch_channel(self, name: str, enabled: bool) -> None:
        """Switch a channel on or off here at once, and on every other node through Redis."""
        self.health.switch_channel(name, enabled)
        if self.bus is not None:
            await self.bus.send(ChannelSwitch(name, enabled))

    async def ask_all_to_reload(self) -> bool:
        return self.bus is not None and await self.bus.send(ReloadRequested())

    async def reload(self) -> Reloaded:
        """Re-read the config file and apply its live sections; a bad file changes nothing."""
        path = config_path()
        if path is None:
            raise InvalidRequest(
                "There is no config file to reload: start the gateway with --config or GATEWAY_CONFIG.",
                code="invalid_config",
            )
        try:
            new = await asyncio.to_thread(load_settings, path)
        except ConfigError as exc:
            raise InvalidRequest(
                f"The config file was not reloaded; the running config stays. {_safe(exc, path)}",
                code="invalid_config",
            ) from None
        current = self.settings
        kept = {
            name: getattr(current, name) for name in type(current).model_fields if name not in LIVE_SECTIONS
        }
        needs_restart = sorted(name for name, value in kept.items() if getattr(new, name) != value)
        merged = new.model_copy(update=kept)
        catalog = Catalog(merged.channels, self.providers.supports)
        prices = PriceBook(merged.pricing, merged.groups)
        self.settings, self.catalog, self.prices = merged, catalog, prices  # one step: no request sees half
        self.quota.leases.block_requests = merged.pricing.quota_block_requests
        self.health.reloaded(merged.retry)
        log.warning("config reloaded from %s: %d channels", path, len(merged.channels))
        if needs_restart:
            log.warning("config sections changed that need a restart: %s", ", ".join(needs_restart))
        return Reloaded(len(merged.channels), needs_restart)


def _safe(exc: ConfigError, path: Path) -> str:
    """The error, without the lines of YAML a parser error quotes (they may hold keys)."""
    cause = exc.__cause__
    if isinstance(cause, yaml.MarkedYAMLError):
        mark = cause.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"config file {path} is not valid YAML: {cause.problem}{where}"
    return str(exc)
