"""The redis registry under abuse, against a real redis-server: a flood of
unknown tokens cannot evict a known app from the cache, and a Redis that
comes back empty (FLUSHALL, restart without persistence) leaves the hub
serving its cached apps and saying "degraded" until the apps are pushed again."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from proxy.registry.redis import RedisRegistry, RegistryWriter
from tests.conftest import Provider
from tests.redis_server import RedisServer
from tests.registry.test_redis_registry import (
    CALL,
    GOOD,
    HubStarter,
    _is,
    eventually,
    push_defaults,
    start_hub,  # noqa: F401 - fixture
    status_of,
    writer,  # noqa: F401 - fixture
)
from tests.support import call_headers, problem

pytestmark = pytest.mark.redis


async def health(hub: Any) -> dict[str, Any]:
    return await (await hub.get("/healthz")).json()  # type: ignore[no-any-return]


async def test_unknown_token_flood_never_evicts_a_known_app(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,  # noqa: F811
        redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    hub, shared = await start_hub()
    shared._tokens.max_entries = shared._apps.max_entries = 8  # noqa: SLF001 - a small bound
    assert await status_of(hub) == 200
    for _ in range(40):  # five times the bound, over real sockets
        r = await hub.post(CALL, json=GOOD, headers=call_headers("hub_" + secrets.token_hex(16)))
        await problem(r, 401, "unauthenticated")
    cached = shared.health()
    assert cached["cachedUnknown"]["tokens"] == 8 and cached["cached"]["tokens"] == 1

    redis_server.stop()
    assert await status_of(hub) == 200  # served from the cache, not 503


async def test_redis_emptied_serves_cached_apps_and_reports_degraded(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,  # noqa: F811
        redis_server: RedisServer, log_sink: Any) -> None:
    await push_defaults(writer, provider)
    hub, shared = await start_hub(cache_ttl_s=0.1)
    assert await status_of(hub) == 200
    assert (await health(hub))["status"] == "ok"

    redis_server.command(b"FLUSHALL")
    # Past the TTL every lookup goes to Redis, which now says "unknown":
    # the hub answers from what it knew instead of 401.
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await status_of(hub) == 200
    body = await health(hub)
    assert body["status"] == "degraded"
    assert body["registry"]["status"] == "empty"
    assert "initialised" in body["registry"]["lastError"]
    assert any(r.get("event") == "registry_empty" for r in log_sink.records())

    # An operator pushes the apps again: the marker is back, status ok.
    await push_defaults(writer, provider)
    await eventually(lambda: _health_ok(hub), within_s=3.0)
    assert await status_of(hub) == 200


async def test_restart_empty_is_seen_on_resubscription(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,  # noqa: F811
        redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    hub, shared = await start_hub()
    assert await status_of(hub) == 200
    redis_server.stop()  # without saving: it comes back empty
    redis_server.start()
    await eventually(lambda: _registry_status(hub, "empty"), within_s=4.0)
    assert isinstance(shared, RedisRegistry)
    assert await status_of(hub) == 200  # the re-subscription kept the cache
    await push_defaults(writer, provider)
    await eventually(lambda: _is(status_of(hub), 200), within_s=3.0)
    await eventually(lambda: _health_ok(hub), within_s=3.0)


async def _health_ok(hub: Any) -> bool:
    return (await health(hub))["status"] == "ok"


async def _registry_status(hub: Any, status: str) -> bool:
    return (await health(hub))["registry"]["status"] == status  # type: ignore[no-any-return]
