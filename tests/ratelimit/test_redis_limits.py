"""The `redis` limiter against a real redis-server: the script's counting,
a quota resetting at its window (clock injected), and an outage following
`[ratelimit] on_redis_error`, through a hub driven over real sockets."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from proxy.config import RegistryConfig
from proxy.ratelimit.base import Check
from proxy.ratelimit.redis import RedisLimiter
from proxy.types import Rate
from tests.conftest import HubFactory, Provider
from tests.redis_server import RedisServer
from tests.support import ECHO, call_headers, consumer_manifest, problem, provider_manifest

pytestmark = pytest.mark.redis

CALL = f"/v1/services/call/{ECHO}/provider-app"
BODY = {"data": {"value": 1, "label": "x"}}


async def test_quota_resets_at_its_window_and_rate_is_gcra(redis_server: RedisServer) -> None:
    # 1.5 s before a UTC midnight, in 2052: keys expire by the Redis server's own clock.
    now = [86400.0 * 30_000 - 1.5]
    limiter = RedisLimiter(RegistryConfig(url=redis_server.url, prefix="t"), clock=lambda: now[0])
    await limiter.start()
    try:
        quota = [Check("quota", "c:a:s:x", Rate(2, 86400))]
        assert [(await limiter.hit(quota)).refused is None for _ in range(3)] == [True, True, False]
        refused = (await limiter.hit(quota)).refused
        assert refused is not None and refused.retry_s == pytest.approx(1.5)
        assert (await limiter.peek(quota))[0].remaining == 0
        now[0] += 1.5
        verdict = await limiter.hit(quota)
        assert verdict.refused is None and verdict.outcomes[0].remaining == 1

        # All or none: the refused rate leaves the quota beside it uncounted.
        both = [Check("rate", "c:a:s:y", Rate(1, 60)), Check("quota", "c:a:s:y", Rate(5, 86400))]
        assert (await limiter.hit(both)).refused is None
        verdict = await limiter.hit(both)
        refused = verdict.refused
        assert refused is not None and refused.check.kind == "rate" and refused.retry_s == pytest.approx(60)
        assert verdict.outcomes[1].remaining == 4  # what remains, the refused call not counted
        assert [o.remaining for o in await limiter.peek(both)] == [0, 4]
        assert limiter.key(both[0]) == "{t:rl:c:a:s:y}:rate"
        assert redis_server.command(b"TYPE {t:rl:c:a:s:y}:quota").startswith(b"+hash")
    finally:
        await limiter.close()


@pytest.mark.parametrize("on_error", ["open", "closed"])
async def test_redis_outage_follows_on_redis_error(make_hub: HubFactory, provider: Provider,
                                                    redis_server: RedisServer, on_error: str) -> None:
    consumer = {**consumer_manifest(), "limits": {"*": {"rate": "3/min"}}}
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url), consumer],
                         registry={"url": redis_server.url},
                         ratelimit={"backend": "redis", "on_redis_error": on_error})
    r = await hub.post(CALL, json=BODY, headers=call_headers())
    assert r.status == 200 and r.headers["RateLimit"].startswith('"rate";r=2;')
    assert redis_server.command(b"EXISTS {apihub:rl:c:consumer-app:colegio-teste:@test:Echo:run}:rate") \
        == b":1\r\n"
    redis_server.stop()

    r = await hub.post(CALL, json=BODY, headers=call_headers())
    if on_error == "closed":
        doc = await problem(r, 429, "rate_limited")
        assert doc["limit"] == {"kind": "unavailable"} and r.headers["Retry-After"] == "1"
    else:
        # A fresh local count (approximate): 3 more in this process, then 429.
        assert r.status == 200
        statuses = [(await hub.post(CALL, json=BODY, headers=call_headers())).status for _ in range(3)]
        assert statuses == [200, 200, 429]
    health = await (await hub.get("/healthz")).json()
    assert health["status"] == "degraded"
    assert health["ratelimit"]["status"] == "unavailable" and health["ratelimit"]["onRedisError"] == on_error
    metrics = (await (await hub.get("/metrics")).read()).decode()
    assert f'apihub_ratelimit_redis_errors_total{{on_error="{on_error}"}}' in metrics

    redis_server.start()
    await _wait_recovered(hub)


async def _wait_recovered(hub: TestClient) -> None:
    for _ in range(100):  # Redis is tried again a second after the failure
        r = await hub.post(CALL, json=BODY, headers=call_headers())
        health = await (await hub.get("/healthz")).json()
        if health["ratelimit"]["status"] == "ok":
            assert r.status in (200, 429)
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the limiter did not find Redis again")
