"""The redis registry against a real redis-server: the data model, atomic
writes, the in-process cache (warm lookups never reach Redis), pub/sub
invalidation, negative entries, outages (stale within the bound, 503 when
uncached, recovery without a restart) and what /healthz says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.web.app import create_app
from proxy.config import Config, ConfigError, RegistryConfig
from proxy.registry import ManifestError, open_registry
from proxy.registry.redis import (
    Keys,
    RedisRegistry,
    RegistryWriter,
    connect,
    redact_url,
)

from tests.conftest import Provider
from tests.redis_server import RedisServer, start_redis
from tests.support import (
    COMMUNITY,
    CONSUMER_TOKEN,
    ECHO,
    OTHER_TOKEN,
    PROVIDER_SECRET,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    make_config,
    provider_manifest,
    token_line,
    write_catalogue,
)

pytestmark = pytest.mark.redis



PREFIX = "t"
CALL = f"/v1/services/call/{ECHO}/provider-app"
DISCOVER = f"/v1/services/discover/{ECHO}"
GOOD = {"data": {"value": 3, "label": "x"}}


def redis_config(tmp_path: Path, url: str, **registry: Any) -> Config:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()], [])
    return make_config(root, registry={"backend": "redis", "url": url, "prefix": PREFIX, **registry})


@pytest.fixture
async def writer(redis_server: RedisServer) -> AsyncIterator[RegistryWriter]:
    """Another instance's writes, as the CLI makes them: only pub/sub tells the hub."""
    client = connect(RegistryConfig(url=redis_server.url, timeout_ms=2000))
    yield RegistryWriter(client, Keys.for_prefix(PREFIX))
    await client.aclose()


HubStarter = Callable[..., Awaitable[tuple[TestClient, RedisRegistry]]]


@pytest.fixture
def start_hub(tmp_path: Path, aiohttp_client: Any, redis_server: RedisServer) -> HubStarter:
    async def start(url: str | None = None, *, subscribed: bool = True,
                    **registry: Any) -> tuple[TestClient, RedisRegistry]:
        config = redis_config(tmp_path, url or redis_server.url, **registry)
        shared = open_registry(config)
        assert isinstance(shared, RedisRegistry)
        client = await aiohttp_client(create_app(config, registry=shared))
        if subscribed:
            # Tests that lean on the cache need the first lookups cached, which a
            # subscription still on its way would flush (a loaded machine is slow).
            await eventually(lambda: _true(shared.health()["subscribed"]), within_s=5.0)
        return client, shared

    return start


async def push_defaults(writer: RegistryWriter, provider: Provider) -> None:
    await writer.put_app(provider_manifest("provider-app", provider.url))
    await writer.put_app(consumer_manifest())


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 1.0) -> float:
    """Poll `check` until true; the seconds it took (fails past `within_s`)."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(f"not true within {within_s}s")
        await asyncio.sleep(0.02)


async def status_of(hub: TestClient, path: str = CALL, token: str = CONSUMER_TOKEN) -> int:
    if path.startswith("/v1/services/call"):
        r = await hub.post(path, json=GOOD, headers=call_headers(token))
    else:
        r = await hub.get(path, headers=call_headers(token))
    await r.read()
    return r.status


async def command_calls(url: str, *names: str) -> int:
    """How many of these commands the server has run (INFO commandstats)."""
    client = connect(RegistryConfig(url=url, timeout_ms=2000))
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return sum(int(stats.get(f"cmdstat_{n}", {}).get("calls", 0)) for n in names)


# ---- the happy path and the data model ------------------------------------------------

async def test_call_and_discover_through_redis(start_hub: HubStarter, writer: RegistryWriter,
                                               provider: Provider) -> None:
    await push_defaults(writer, provider)
    hub, _ = await start_hub()
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    assert r.status == 200, await r.text()
    assert await r.json() == {"data": {"echo": GOOD["data"]}}
    assert provider.last_body()["secret"] == PROVIDER_SECRET
    r = await hub.get(DISCOVER, headers=call_headers())
    assert r.status == 200
    assert [p["id"] for p in await r.json()] == ["provider-app"]
    assert (await (await hub.get("/healthz")).json())["registry"]["status"] == "ok"


async def test_data_model_follows_every_write(writer: RegistryWriter, redis_server: RedisServer) -> None:
    client = connect(RegistryConfig(url=redis_server.url))
    k = Keys.for_prefix(PREFIX)
    digest = token_line(CONSUMER_TOKEN).removeprefix("sha256:")

    async def members(key: str) -> set[str]:
        return {m.decode() for m in await client.smembers(key)}

    try:
        doc = consumer_manifest(consumes=(ECHO,))
        doc["provides"] = {ECHO: {"url": "http://127.0.0.1:1/a", "versions": [1]}}
        doc["secret"] = {"env": "SOME_SECRET"}
        assert await writer.put_app(doc) == "created"
        assert await writer.put_app(doc) == "unchanged"
        assert orjson.loads(await client.get(k.app("consumer-app"))) == doc
        assert await members(k.apps) == {"consumer-app"}
        assert (await client.get(k.token(digest))) == b"consumer-app"
        assert await members(k.community(COMMUNITY)) == {"consumer-app"}
        assert await members(k.action(ECHO)) == {"consumer-app"}
        assert all(key.decode().startswith("{t}:") for key in await client.keys("*"))

        # A replacement moves every index entry in one transaction.
        moved = {**doc, "tokens": [token_line(OTHER_TOKEN)], "communities": ["elsewhere"],
                 "provides": {"@x:Other:run": {"url": "http://127.0.0.1:1/b", "versions": [1]}}}
        assert await writer.put_app(moved) == "updated"
        assert await client.get(k.token(digest)) is None
        assert await members(k.community(COMMUNITY)) == set()
        assert await members(k.action(ECHO)) == set()
        assert await members(k.community("elsewhere")) == {"consumer-app"}
        assert await members(k.action("@x:Other:run")) == {"consumer-app"}

        assert await writer.set_installed(COMMUNITY, "consumer-app", True)
        assert await members(k.community(COMMUNITY)) == {"consumer-app"}
        assert (await writer.get_manifest("consumer-app") or {})["communities"] == ["elsewhere", COMMUNITY]
        assert await writer.set_installed("elsewhere", "consumer-app", False)
        assert await members(k.community("elsewhere")) == set()
        assert not await writer.set_installed(COMMUNITY, "nobody", True)

        assert await writer.delete_app("consumer-app")
        assert not await writer.delete_app("consumer-app")
        assert await client.keys("*") == [k.marker.encode()]  # only the marker stays
    finally:
        await client.aclose()


async def test_a_token_belongs_to_one_app(writer: RegistryWriter) -> None:
    await writer.put_app(consumer_manifest("first"))
    with pytest.raises(ManifestError) as caught:
        await writer.put_app(consumer_manifest("second"))
    assert caught.value.field == "/tokens/0"
    assert "first" in caught.value.message
    assert await writer.get_manifest("second") is None


# ---- cache and invalidation -----------------------------------------------------------

async def test_warm_lookups_never_reach_redis(start_hub: HubStarter, writer: RegistryWriter,
                                              provider: Provider, redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    hub, _ = await start_hub()
    assert await status_of(hub) == 200
    assert await status_of(hub, DISCOVER) == 200
    before = await command_calls(redis_server.url, "get", "mget", "sinter", "smembers")
    for _ in range(20):
        assert await status_of(hub) == 200
        assert await status_of(hub, DISCOVER) == 200
    assert await command_calls(redis_server.url, "get", "mget", "sinter", "smembers") == before


async def test_changes_elsewhere_seen_within_a_second(start_hub: HubStarter, writer: RegistryWriter,
                                                      provider: Provider) -> None:
    await push_defaults(writer, provider)
    hub, _ = await start_hub(cache_ttl_s=3600)  # only pub/sub can make the hub see a change
    assert await status_of(hub) == 200
    # Negative entries too: an unknown token is cached as unknown...
    assert await status_of(hub, token=OTHER_TOKEN) == 401
    # ... until an app holding it is written.
    await writer.put_app(consumer_manifest("other-consumer", OTHER_TOKEN))
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 200))

    # Token rotation: the old one stops working, the new one works.
    await writer.put_app(consumer_manifest(token=CONSUMER_TOKEN + "-rotated"))
    await eventually(lambda: _is(status_of(hub), 401))
    assert await status_of(hub, token=CONSUMER_TOKEN + "-rotated") == 200

    # Uninstalling the provider from the community: unknown_provider.
    assert await writer.set_installed(COMMUNITY, "provider-app", False)
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 404))
    assert await status_of(hub, DISCOVER, token=OTHER_TOKEN) == 200
    r = await hub.get(DISCOVER, headers=call_headers(OTHER_TOKEN))
    assert await r.json() == []
    assert await writer.set_installed(COMMUNITY, "provider-app", True)
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 200))

    assert await writer.delete_app("provider-app")
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 404))


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def _true(value: bool) -> bool:
    return value


async def test_cache_size_is_bounded(writer: RegistryWriter, redis_server: RedisServer) -> None:
    shared = RedisRegistry(RegistryConfig(url=redis_server.url, prefix=PREFIX), max_entries=10)
    await shared.start()
    try:
        for n in range(50):  # e.g. random tokens: each cached as unknown
            assert await shared.app_by_token(f"{n:064x}") is None
        assert shared.health()["cachedUnknown"]["tokens"] == 10
    finally:
        await shared.close()


async def test_provider_secret_from_this_instances_environment(
        tmp_path: Path, aiohttp_client: Any, writer: RegistryWriter, provider: Provider,
        redis_server: RedisServer) -> None:
    await writer.put_app(provider_manifest("provider-app", provider.url, secret={"env": "HUB_T_SECRET"}))
    await writer.put_app(provider_manifest("broken-app", provider.url, secret={"env": "HUB_T_UNSET"}))
    await writer.put_app(consumer_manifest())
    config = redis_config(tmp_path, redis_server.url)
    shared = RedisRegistry(config.registry, environ={"HUB_T_SECRET": "from-env-secret"})
    hub = await aiohttp_client(create_app(config, registry=shared))
    assert await status_of(hub) == 200
    assert provider.last_body()["secret"] == "from-env-secret"
    # An app this instance cannot serve (its secret's variable is unset here): 503, named.
    r = await hub.post(f"/v1/services/call/{ECHO}/broken-app", json=GOOD, headers=call_headers())
    assert r.status == 503
    body = await r.json()
    assert body["code"] == "registry_unavailable" and "/secret/env" in body["detail"]
    r = await hub.get(DISCOVER, headers=call_headers())
    assert [p["id"] for p in await r.json()] == ["provider-app"]


# ---- outages ------------------------------------------------------------------------

async def test_outage_cached_serve_uncached_503_then_recovery(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,
        redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    await writer.put_app(consumer_manifest("other-consumer", OTHER_TOKEN))
    hub, _ = await start_hub()
    assert await status_of(hub) == 200
    redis_server.stop(save=True)

    assert await status_of(hub) == 200  # cached: keeps serving
    started = time.monotonic()
    r = await hub.post(CALL, json=GOOD, headers=call_headers(OTHER_TOKEN))  # never looked up
    elapsed = time.monotonic() - started
    assert r.status == 503 and (await r.json())["code"] == "registry_unavailable"
    assert elapsed < 1.0
    started = time.monotonic()
    assert await status_of(hub, DISCOVER) == 503
    assert time.monotonic() - started < 1.0
    health = await (await hub.get("/healthz")).json()
    assert health["status"] == "degraded"
    assert health["registry"]["status"] == "unavailable"
    assert health["registry"]["lastError"]

    redis_server.start()  # same port, same data (saved above): no hub restart
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 200), within_s=3.0)
    health = await (await hub.get("/healthz")).json()
    assert health["registry"]["status"] == "ok" and health["registry"]["subscribed"]
    # Re-subscribed: invalidation works again.
    await writer.delete_app("other-consumer")
    await eventually(lambda: _is(status_of(hub, token=OTHER_TOKEN), 401))


async def test_stale_entries_served_only_up_to_the_bound(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,
        redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    # stale_max_s leaves room for a slow redis-server shutdown on a loaded machine.
    hub, _ = await start_hub(cache_ttl_s=0.2, stale_max_s=4.0)
    assert await status_of(hub) == 200
    fetched = time.monotonic()
    redis_server.stop()
    await asyncio.sleep(max(0.0, fetched + 0.3 - time.monotonic()))  # past the TTL: the stale entry serves
    assert await status_of(hub) == 200
    await asyncio.sleep(max(0.0, fetched + 4.2 - time.monotonic()))  # past stale_max_s
    assert await status_of(hub) == 503


async def test_hub_starts_while_redis_is_down_and_recovers(
        start_hub: HubStarter, writer: RegistryWriter, provider: Provider,
        redis_server: RedisServer) -> None:
    await push_defaults(writer, provider)
    redis_server.stop(save=True)
    hub, _ = await start_hub(subscribed=False)
    assert await status_of(hub) == 503
    assert (await (await hub.get("/healthz")).json())["registry"]["status"] == "unavailable"
    redis_server.start()
    await eventually(lambda: _is(status_of(hub), 200), within_s=3.0)


async def test_health_and_logs_never_show_the_password(
        tmp_path: Path, aiohttp_client: Any, provider: Provider, log_sink: Any) -> None:
    workdir = tmp_path / "redis-auth"
    workdir.mkdir()
    password = "pw-registry-9c8d7e6f"
    server = start_redis(workdir, password=password)
    try:
        hub_url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        config = redis_config(tmp_path, hub_url)
        mark = log_sink.mark()
        hub = await aiohttp_client(create_app(config, registry=open_registry(config)))
        wrong = RedisRegistry(RegistryConfig(url=f"redis://:wrong-{password}@127.0.0.1:{server.port}/0"))
        await wrong.start()
        try:
            assert wrong.health()["status"] == "unavailable"
            assert password not in orjson.dumps(wrong.health()).decode()
        finally:
            await wrong.close()
        assert await status_of(hub) == 401  # Redis answers: unknown token
        server.stop()
        assert await status_of(hub, token=OTHER_TOKEN) == 503
        health = await (await hub.get("/healthz")).read()
        assert b"unavailable" in health and password.encode() not in health
        assert all(password not in orjson.dumps(rec).decode() for rec in log_sink.since(mark))
    finally:
        server.stop()
    assert password not in redact_url(hub_url)


# ---- configuration ------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "redis://h:6379/0", "rediss://:pw@h:6380/1", "unix:///run/redis.sock?db=2",
    "redis+sentinel://:pw@s1:26379,s2:26379/mymaster/0", "redis+cluster://h:7000",
])
def test_supported_urls(tmp_path: Path, url: str) -> None:
    assert isinstance(open_registry(redis_config(tmp_path, url)), RedisRegistry)


@pytest.mark.parametrize("url", ["http://h:6379", "redis+sentinel://s1:26379", "h:6379"])
def test_unsupported_urls_stop_start_up(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"\[registry\] url"):
        open_registry(redis_config(tmp_path, url))


def test_file_backend_opens_no_shared_registry(tmp_path: Path) -> None:
    registry = open_registry(make_config(tmp_path))
    assert registry.name == "file" and registry.health() is None


# ---- Cluster and Sentinel -------------------------------------------------------------

def _cluster(workdir: Path) -> tuple[RedisServer, str]:
    """A one-node Redis Cluster owning every slot."""
    server = start_redis(workdir, extra=("--cluster-enabled", "yes", "--cluster-port", str(free_port()),
                                         "--cluster-config-file", str(workdir / "nodes.conf")))
    server.command(b"CLUSTER ADDSLOTSRANGE 0 16383")
    deadline = time.monotonic() + 10
    while b"cluster_state:ok" not in server.command(b"CLUSTER INFO"):
        assert time.monotonic() < deadline, "the one-node cluster did not come up"
        time.sleep(0.05)
    return server, f"redis+cluster://127.0.0.1:{server.port}"


def _sentinel(workdir: Path) -> tuple[list[RedisServer], str]:
    """A master and one Sentinel watching it."""
    master = start_redis(workdir)
    conf = workdir / "sentinel.conf"
    conf.write_text(f"sentinel monitor svc 127.0.0.1 {master.port} 1\n")
    sentinel = start_redis(workdir, config_file=conf, extra=("--sentinel",))
    return [master, sentinel], f"redis+sentinel://127.0.0.1:{sentinel.port}/svc/0"


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
async def test_cluster_and_sentinel_urls(tmp_path: Path, topology: str) -> None:
    workdir = tmp_path / topology
    workdir.mkdir()
    if topology == "cluster":
        server, url = _cluster(workdir)
        servers = [server]
    else:
        servers, url = _sentinel(workdir)
    reader = RedisRegistry(RegistryConfig(url=url, prefix=PREFIX, cache_ttl_s=3600))
    writer_side = RedisRegistry(RegistryConfig(url=url, prefix=PREFIX))
    await reader.start()
    await writer_side.start()
    try:
        await eventually(lambda: _true(reader.health()["subscribed"]), within_s=5.0)
        digest = token_line(CONSUMER_TOKEN).removeprefix("sha256:")
        assert await reader.app_by_token(digest) is None  # cached as unknown
        assert await writer_side.writer.put_app(consumer_manifest()) == "created"
        await writer_side.writer.put_app(provider_manifest("provider-app", "http://127.0.0.1:1/a"))

        async def known() -> bool:
            return await reader.app_by_token(digest) is not None

        await eventually(known)  # pub/sub works on this topology too
        assert [a.id for a in await reader.providers(ECHO, COMMUNITY)] == ["provider-app"]
        assert await writer_side.writer.delete_app("consumer-app")

        async def forgotten() -> bool:
            return await reader.app_by_token(digest) is None

        await eventually(forgotten)
        assert reader.health()["status"] == "ok"
    finally:
        await reader.close()
        await writer_side.close()
        for server in reversed(servers):
            server.stop()


async def _true(value: Any) -> bool:
    return bool(value)
