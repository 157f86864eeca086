"""Concurrency slots shared through Redis: one lease per request in flight, in a sorted set per token.

A lease is a member whose score is its expiry time (Redis server time, so node clocks don't matter).
Taking a slot drops the expired leases, counts the rest and adds one, in one script. The process that
holds a lease renews it every `ttl / 3` seconds while the request runs, however long that is; a process
that dies stops renewing, so its slots come back by themselves within `ttl` seconds instead of leaking
forever (which a bare INCR/DECR counter would do). Releasing removes the member.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from redis.asyncio import Redis

from gateway.cluster.link import REDIS_ERRORS, Outage

# KEYS[1] the token's lease set; ARGV: limit, ttl ms, lease id. 1 = taken, 0 = full.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] a lease set; ARGV: ttl ms, then the lease ids this process still holds in it.
RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""


class RedisLeases:
    def __init__(self, client: Redis, prefix: str, outage: Outage, ttl_seconds: float = 30.0) -> None:
        self._client = client
        self._prefix = prefix
        self._outage = outage
        self._ttl_ms = int(ttl_seconds * 1000)
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._held: dict[str, str] = {}  # lease id -> its set's key, while the request runs
        self._releasing: dict[str, set[asyncio.Task[None]]] = {}  # per set key: removals under way
        self._renewer: asyncio.Task[None] | None = None

    def _key(self, token_id: str) -> str:
        return f"{self._prefix}{token_id}"

    async def acquire(self, token_id: str, limit: int) -> str | None:
        """A lease id, or None when the token already has `limit` requests in flight."""
        lease = secrets.token_hex(8)
        key = self._key(token_id)
        releasing = self._releasing.get(key)
        if releasing:  # a slot this process gave back a moment ago must be free before we count
            await asyncio.wait(set(releasing))
        taken = await self._acquire(keys=[key], args=[limit, self._ttl_ms, lease])
        if not taken:
            return None
        self._held[lease] = key
        return lease

    def release(self, lease: str) -> None:
        """Give a slot back, without waiting (called when a response ends)."""
        key = self._held.pop(lease, None)
        if key is None:
            return
        task = asyncio.get_running_loop().create_task(self._remove(key, lease))
        releasing = self._releasing.setdefault(key, set())
        releasing.add(task)

        def done(_: asyncio.Task[None]) -> None:
            releasing.discard(task)
            if not releasing and self._releasing.get(key) is releasing:
                del self._releasing[key]

        task.add_done_callback(done)

    async def _remove(self, key: str, lease: str) -> None:
        try:
            await self._client.zrem(key, lease)
        except REDIS_ERRORS as exc:  # it expires by itself, no longer renewed
            self._outage.failed("concurrency release", exc)

    async def renew(self) -> None:
        by_key: dict[str, list[str]] = {}
        for lease, key in list(self._held.items()):
            by_key.setdefault(key, []).append(lease)
        if not by_key:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for key, leases in by_key.items():
                await self._renew(keys=[key], args=[self._ttl_ms, *leases], client=pipe)
            await pipe.execute()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self.renew()
            except REDIS_ERRORS as exc:
                self._outage.failed("concurrency lease renewal", exc)

    def start(self) -> None:
        self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self.settle(timeout=2)

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until the slots given back so far are free in Redis."""
        pending = {task for tasks in self._releasing.values() for task in tasks}
        if pending:
            await asyncio.wait(pending, timeout=timeout)
