"""Events between gateway processes: one Redis pub/sub channel, plus hashes that a starting node reads.

Each process runs one subscriber task (reconnecting with back-off) and one publisher task. The hot path
never waits for Redis: `post()` queues an event (bounded) for the publisher. Admin calls use `send()`,
which publishes before the answer goes out. Every process applies what it hears to its own in-process
state, so reading that state never costs a round trip.

Key cooldowns and run-time channel switches are also written to hashes (cooldown fields hold their end
time and are dropped once past it; the field set is bounded by the configured keys), and read each time
the subscription (re)starts, so a node that starts late or lost its connection catches up. Key disables
and token changes are not kept: a node starting later finds a refused key on its own first attempt, and
its token cache starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.cluster.events import ChannelSwitch, Event, KeyCooldown, decode, encode
from gateway.cluster.link import REDIS_ERRORS, RedisLink

log = logging.getLogger("gateway.cluster")

QUEUE_SIZE = 1000
MAX_BACKOFF_SECONDS = 10.0
PING_EVERY_SECONDS = 15.0
FLUSH_ON_CLOSE_SECONDS = 2.0


class Bus:
    def __init__(
        self, link: RedisLink, handler: Callable[[Event], None], wall: Callable[[], float] = time.time
    ) -> None:
        self.node = secrets.token_hex(8)  # messages a node sent itself are not applied twice
        self._link = link
        self._handler = handler
        self._wall = wall
        self._channel = link.key("events")
        self._cooldowns = link.key("cooldowns")
        self._switches = link.key("channels")
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = asyncio.Event()  # set while the subscription is live (and caught up)
        self._first_try = asyncio.Event()  # the first attempt to subscribe ended, either way

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._subscribe_forever(), name="cluster-subscriber"),
            asyncio.create_task(self._publish_forever(), name="cluster-publisher"),
        ]

    async def wait_subscribed(self, timeout: float) -> bool:
        """Wait for the first attempt to subscribe (not for a Redis that is down); True if it worked."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_try.wait(), timeout)
        return self.subscribed.is_set()

    async def flush(self, timeout: float) -> None:
        """Wait until the events posted so far were published (or given up on)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        if self._tasks:
            await self.flush(FLUSH_ON_CLOSE_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def post(self, event: Event) -> None:
        """Publish soon, without waiting (request path); dropped, with a log line, if the queue is full."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._link.outage.failed("publish queue full", RuntimeError(f"{QUEUE_SIZE} events waiting"))

    async def send(self, event: Event) -> bool:
        """Publish now; False (logged) when Redis could not take it."""
        try:
            await self._publish(event)
        except REDIS_ERRORS as exc:
            self._link.outage.failed("publish", exc)
            return False
        self._link.outage.ok()
        return True

    async def _publish(self, event: Event) -> None:
        async with self._link.client.pipeline(transaction=True) as pipe:
            if isinstance(event, KeyCooldown):
                pipe.hset(self._cooldowns, _field(event.channel, event.key_index), repr(event.until))
            elif isinstance(event, ChannelSwitch):
                pipe.hset(self._switches, event.channel, "1" if event.enabled else "0")
            pipe.publish(self._channel, encode(event, self.node))
            await pipe.execute()

    async def _publish_forever(self) -> None:
        while True:
            event = await self._queue.get()
            # During a back-off, events wait in the (bounded) queue: a short blip loses none of them.
            while (wait := self._link.outage.wait_seconds()) > 0:
                await asyncio.sleep(wait)
            await self.send(event)
            self._queue.task_done()

    async def _subscribe_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._subscription()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._link.outage.failed("subscription", exc)
            except Exception:  # a bug must not end cluster sync for the life of the process
                log.exception("cluster subscriber failed; reconnecting")
            self._first_try.set()
            self.subscribed.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _subscription(self) -> None:
        client = self._link.subscriber()
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(self._channel)
                # Subscribed first, then read the hashes: nothing published in between is missed.
                await self.catch_up()
                self.subscribed.set()
                self._first_try.set()
                self._link.outage.ok()
                log.info("cluster events subscribed")
                idle = 0.0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        idle += 1.0
                        if idle >= PING_EVERY_SECONDS:  # find a dead connection without waiting for TCP
                            idle = 0.0
                            await pubsub.ping()
                        continue
                    idle = 0.0
                    if message.get("type") == "message":
                        self._receive(message.get("data"))
        finally:
            await client.aclose()

    def _receive(self, data: Any) -> None:
        if not isinstance(data, bytes | str):
            return
        decoded = decode(data)
        if decoded is None:
            log.warning("ignored a malformed cluster event")
            return
        node, event = decoded
        if node != self.node:
            self._handler(event)

    async def catch_up(self) -> None:
        """Apply the cooldowns still running and the channel switches, as kept in Redis."""
        client = self._link.client
        now = self._wall()
        expired: list[bytes | str] = []
        for field, value in (await client.hgetall(self._cooldowns)).items():
            parsed = _parse_field(field)
            try:
                until = float(value)
            except ValueError:
                parsed = None
            if parsed is None or until <= now:
                expired.append(field)
                continue
            self._handler(KeyCooldown(parsed[0], parsed[1], until))
        if expired:
            await client.hdel(self._cooldowns, *expired)
        for name, value in (await client.hgetall(self._switches)).items():
            if isinstance(name, bytes) and value in (b"0", b"1"):
                self._handler(ChannelSwitch(name.decode(errors="replace"), value == b"1"))


def _field(channel: str, key_index: int) -> bytes:
    return orjson.dumps([channel, key_index])


def _parse_field(field: Any) -> tuple[str, int] | None:
    try:
        value = orjson.loads(field)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
        and value[1] >= 0
    ):
        return value[0], value[1]
    return None
