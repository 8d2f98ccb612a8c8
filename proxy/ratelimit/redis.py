"""The `redis` limiter: counters in the Redis the registry uses, shared by
every instance and worker. One Lua script (the rules of gcra.py) checks and
counts every counter of a call in one round trip, all or none.

Keys, one Cluster hash slot per scope (so `redis+cluster://` works):

    {<prefix>:rl:c:<consumer>:<community>:<action>}:rate    GCRA tat (ms), PX until it is spent
    {<prefix>:rl:c:<consumer>:<community>:<action>}:quota   hash {s: window start ms, n: calls}, PEXPIREAT its end
    {<prefix>:rl:p:<provider>:<action>}:provider            GCRA tat of the provider's protection

On a Cluster the scopes of one call go in one script call each, sent
together; all-or-none then holds within each scope only.

When Redis cannot be reached `[ratelimit] on_redis_error` decides: "open"
counts in this process instead (limits/instance: approximate), "closed"
refuses. Either way the outage is logged once, counted in
`apihub_ratelimit_redis_errors`, and shown by /healthz; Redis is tried again
after `RETRY_AFTER_FAILURE_S`, so an outage costs no timeout per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from ..config import Config, RegistryConfig
from ..errors import RegistryUnavailable
from ..observe.logs import get_logger
from ..observe.metrics import Metrics
from ..registry.redis import REDIS_FAILURES, Client, connect, disconnect, redact
from .base import Check, Outcome, Verdict, counted, uncounted
from .local import LocalLimiter

log = get_logger("apihub.ratelimit")

RETRY_AFTER_FAILURE_S = 1.0

# ARGV[1]: now in ms ("" = the Redis server's clock, one clock for every instance);
# ARGV[2]: "1" to count, "0" to only look; then per key: fixed window ("1") or
# GCRA ("0"), count, window in ms. Returns {allowed, remaining, reset_ms, retry_ms}
# per key, flattened. Counts only when every key admits the call.
_SCRIPT = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local out, writes, all = {}, {}, true
for i, key in ipairs(KEYS) do
  local fixed, count, w = ARGV[3 * i] == '1', tonumber(ARGV[3 * i + 1]), tonumber(ARGV[3 * i + 2])
  local allowed, remaining, reset, retry = 1, 0, 0, 0
  if fixed then
    local start = math.floor(now / w) * w
    local stored = redis.call('HMGET', key, 's', 'n')
    local used = 0
    if tonumber(stored[1]) == start then used = tonumber(stored[2]) or 0 end
    reset = start + w - now
    if used >= count then
      allowed, retry = 0, reset
    else
      remaining = count - used - 1
      writes[#writes + 1] = {key, true, start, used + 1, start + w}
    end
  else
    local interval = w / count
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local new_tat = tat + interval
    local allow_at = new_tat - w
    if now < allow_at then
      allowed, reset, retry = 0, tat - now, allow_at - now
    else
      remaining = math.floor((now - allow_at) / interval + 1e-9)
      reset = new_tat - now
      writes[#writes + 1] = {key, false, new_tat, 0, math.ceil(new_tat - now) + 1000}
    end
  end
  if allowed == 0 then all = false end
  out[#out + 1] = allowed
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(reset)
  out[#out + 1] = math.ceil(retry)
end
if all and ARGV[2] == '1' then
  for _, wr in ipairs(writes) do
    if wr[2] then
      redis.call('HSET', wr[1], 's', wr[3], 'n', wr[4])
      redis.call('PEXPIREAT', wr[1], wr[5])
    else
      redis.call('SET', wr[1], string.format('%.3f', wr[3]), 'PX', wr[5])
    end
  end
end
return out
"""


class RedisLimiter:
    name = "redis"

    def __init__(self, config: RegistryConfig, *, on_error: str = "open", metrics: Metrics | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self._config = config
        self._prefix = config.prefix.replace("{", "").replace("}", "")
        self._on_error = on_error
        self._metrics = metrics
        # None: the Redis server's clock; tests pass their own.
        self._clock = clock
        self._fallback = LocalLimiter(clock=clock or time.time)
        self._client: Client | None = None
        self._script: AsyncScript | None = None
        self._available = True
        self._retry_at = 0.0
        self._last_error: str | None = None

    @classmethod
    def open(cls, config: Config, metrics: Metrics) -> RedisLimiter:
        return cls(config.registry, on_error=config.ratelimit.on_redis_error, metrics=metrics)

    async def start(self) -> None:
        # No I/O here: a hub without limits never talks to Redis for them.
        self._client = connect(self._config)
        self._script = self._client.register_script(_SCRIPT)

    async def close(self) -> None:
        if self._client is not None:
            await disconnect(self._client)
            self._client = None
        await self._fallback.close()

    def key(self, check: Check) -> str:
        return f"{{{self._prefix}:rl:{check.scope}}}:{check.kind}"

    async def hit(self, checks: Sequence[Check]) -> Verdict:
        if not self._available and time.monotonic() < self._retry_at:
            return self._without_redis(checks)
        try:
            outcomes = await self._run(checks, count=True)
        except REDIS_FAILURES as exc:
            self._failed(exc)
            return self._without_redis(checks)
        if not self._available:
            self._available = True
            log.info("ratelimit_redis_recovered")
        return counted(outcomes)

    async def peek(self, checks: Sequence[Check]) -> tuple[Outcome, ...]:
        try:
            outcomes = await self._run(checks, count=False)
        except REDIS_FAILURES as exc:
            self._failed(exc)
            raise RegistryUnavailable("the rate-limit counters in Redis cannot be reached") from None
        # The script answered as if counting one more call: give that one back
        # (a refusal's remaining is 0 and its retry not asked for here).
        return tuple(replace(uncounted(o), retry_s=0.0) for o in outcomes)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = {"backend": self.name, "status": "ok" if self._available else "unavailable",
                                "onRedisError": self._on_error}
        if not self._available:
            body["lastError"] = self._last_error
        return body

    # -- internals --

    async def _run(self, checks: Sequence[Check], *, count: bool) -> tuple[Outcome, ...]:
        if self._script is None:
            raise RuntimeError("the redis limiter is not started")
        if not isinstance(self._client, RedisCluster):
            return await self._eval(checks, count)
        scopes: dict[str, list[Check]] = {}
        for check in checks:
            scopes.setdefault(check.scope, []).append(check)
        parts = await asyncio.gather(*(self._eval(group, count) for group in scopes.values()))
        found = {o.check: o for part in parts for o in part}
        return tuple(found[check] for check in checks)

    async def _eval(self, checks: Sequence[Check], count: bool) -> tuple[Outcome, ...]:
        assert self._script is not None
        args: list[str | int] = ["" if self._clock is None else int(self._clock() * 1000), int(count)]
        for check in checks:
            args += [int(check.fixed_window), check.rate.count, check.rate.window_s * 1000]
        raw = await self._script(keys=[self.key(c) for c in checks], args=args)
        return tuple(
            Outcome(check, bool(raw[4 * i]), int(raw[4 * i + 1]), raw[4 * i + 2] / 1000, raw[4 * i + 3] / 1000)
            for i, check in enumerate(checks)
        )

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER_FAILURE_S
        self._last_error = redact(f"{type(exc).__name__}: {exc}", self._config.url)
        if self._available:
            self._available = False
            log.warning("ratelimit_redis_unavailable", error=self._last_error, onRedisError=self._on_error)

    def _without_redis(self, checks: Sequence[Check]) -> Verdict:
        if self._metrics is not None:
            self._metrics.ratelimit_redis_error(self._on_error)
        if self._on_error == "closed":
            return Verdict(tuple(Outcome(c, False, 0, RETRY_AFTER_FAILURE_S, RETRY_AFTER_FAILURE_S)
                                 for c in checks), unavailable=True)
        return self._fallback.hit_now(checks)
