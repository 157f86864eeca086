"""The cluster bus over a real Redis: what one node's Health decides reaches another's within one
message, a node that starts (or reconnects) late catches up from Redis, and junk is ignored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from gateway.cluster.bus import Bus
from gateway.cluster.events import ChannelSwitch, Event, KeyCooldown, TokenChanged
from gateway.cluster.link import Outage, RedisLink
from gateway.routing.health import Health
from gateway.routing.policy import Decision
from gateway.settings import RedisSettings, RetrySettings
from tests.redis_support import REDIS_URL, drop_prefix_async, requires_redis, unique_prefix

pytestmark = requires_redis

COOL_30 = Decision(True, "key", "cooldown", 30.0)
WAIT = 10.0  # a safety net against hanging, never a measured time


@dataclass
class Node:
    link: RedisLink
    health: Health
    bus: Bus
    heard: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)

    async def next_heard(self) -> Event:
        return await asyncio.wait_for(self.heard.get(), WAIT)


class Cluster:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[Node] = []

    async def node(self) -> Node:
        assert REDIS_URL
        # A short back-off after a failure keeps the reconnect test quick.
        link = RedisLink(RedisSettings(url=REDIS_URL, key_prefix=self.prefix), Outage(backoff_seconds=0.1))
        health = Health(RetrySettings())
        heard: asyncio.Queue[Event] = asyncio.Queue()

        def handle(event: Event) -> None:
            if not isinstance(event, TokenChanged):
                health.apply(event)  # type: ignore[arg-type]
            heard.put_nowait(event)

        bus = Bus(link, handle)
        health.publish = bus.post
        bus.start()
        assert await bus.wait_subscribed(WAIT)
        node = Node(link, health, bus, heard)
        self.nodes.append(node)
        return node

    async def close(self) -> None:
        for node in self.nodes:
            await node.bus.close()
            await node.link.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    prefix = unique_prefix()
    group = Cluster(prefix)
    yield group
    await group.close()
    await drop_prefix_async(prefix)


async def test_a_cooldown_on_one_node_is_honoured_by_the_other(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    a.health.failure("busy", 1, COOL_30)
    heard = await b.next_heard()
    assert isinstance(heard, KeyCooldown) and (heard.channel, heard.key_index) == ("busy", 1)
    assert not b.health.available("busy", 1)
    assert b.health.available("busy", 0)
    # a did not hear its own event: b's reply is the first thing a hears
    await b.bus.send(TokenChanged("marker"))
    assert await a.next_heard() == TokenChanged("marker")


async def test_a_late_node_catches_up_on_cooldowns_and_switches(cluster: Cluster) -> None:
    a = await cluster.node()
    a.health.failure("busy", 0, COOL_30)
    assert await a.bus.send(ChannelSwitch("old", False))
    await a.bus.flush(WAIT)
    late = await cluster.node()
    assert not late.health.available("busy", 0)
    assert not late.health.channel_enabled("old")
    assert late.health.available("busy", 1)


async def test_ended_cooldowns_are_dropped_from_redis(cluster: Cluster) -> None:
    a = await cluster.node()
    key = a.link.key("cooldowns")
    await a.link.client.hset(key, mapping={b'["gone",0]': "1.0", b"junk": "x", b'["bad",0]': "soon"})
    await a.bus.catch_up()
    assert await a.link.client.hlen(key) == 0
    assert a.health.available("gone", 0)


async def test_junk_on_the_channel_is_ignored(cluster: Cluster) -> None:
    a = await cluster.node()
    await a.link.client.publish(a.link.key("events"), b"{not json")
    await a.link.client.publish(a.link.key("events"), b'{"node":"x","type":"token_changed","token_id":"ok"}')
    assert await a.next_heard() == TokenChanged("ok")


async def _wait_until(check: Callable[[], bool]) -> None:
    for _ in range(int(WAIT / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_dropped_subscription_reconnects_and_catches_up(cluster: Cluster) -> None:
    a, b = await cluster.node(), await cluster.node()
    assert REDIS_URL
    admin = Redis.from_url(REDIS_URL)
    try:
        for entry in await admin.client_list(_type="pubsub"):
            if entry.get("name") == f"{cluster.prefix}bus":  # this test's subscribers only
                await admin.client_kill_filter(_id=entry["id"])
    finally:
        await admin.aclose()
    await _wait_until(lambda: not b.bus.subscribed.is_set())
    # While the subscriptions are down, a cooldown is published: only Redis' hash keeps it.
    a.health.failure("busy", 2, COOL_30)
    await _wait_until(lambda: b.bus.subscribed.is_set() and not b.health.available("busy", 2))
