"""Circuit breakers and bulkheads: unit behaviour on a fake clock, then the
whole cycle over real sockets (opens, short-circuits, half-opens, closes),
visible in the logs and in /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.config import BreakerConfig
from proxy.errors import ProviderOverloaded
from proxy.upstream.guards import Breaker, BreakerState, Bulkhead, Guards

from tests.conftest import HubFactory, LogSink, Provider
from tests.support import ECHO, call_headers, consumer_manifest, free_port, provider_manifest
from tests.support import problem

CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": "x"}}
BREAKER = {"failure_threshold": 3, "cooldown_ms": 300}


# ---- units ----------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: Clock, changes: list[tuple[str, str]]) -> Breaker:
    return Breaker("p", BreakerConfig(failure_threshold=3, cooldown_ms=1000),
                   lambda key, old, new: changes.append((old.value, new.value)), clock=clock)


def test_breaker_cycle_on_a_fake_clock() -> None:
    clock, changes = Clock(), []
    b = make_breaker(clock, changes)
    for _ in range(2):
        assert b.admit() is False
        b.record(failed=True, probe=False)
    assert b.state is BreakerState.CLOSED
    b.record(failed=False, probe=False)  # a success resets the count: failures must be consecutive
    for _ in range(3):
        b.admit()
        b.record(failed=True, probe=False)
    assert b.state is BreakerState.OPEN
    with pytest.raises(ProviderOverloaded):
        b.admit()
    clock.now += 1.0
    assert b.admit() is True  # the probe
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(ProviderOverloaded):
        b.admit()  # one probe at a time
    b.record(failed=True, probe=True)
    assert b.state is BreakerState.OPEN  # a failed probe opens it again, for a new cool-down
    clock.now += 0.5
    with pytest.raises(ProviderOverloaded):
        b.admit()
    clock.now += 0.5
    assert b.admit() is True
    b.record(failed=False, probe=True)
    assert b.state is BreakerState.CLOSED
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                       ("open", "half_open"), ("half_open", "closed")]


def test_abandoned_probe_lets_the_next_call_probe() -> None:
    clock, changes = Clock(), []
    b = make_breaker(clock, changes)
    for _ in range(3):
        b.record(failed=True, probe=False)
    clock.now += 2
    assert b.admit() is True
    b.abandon(probe=True)  # e.g. the bulkhead was full, or the call was cancelled
    assert b.admit() is True


def test_bulkhead_limits_and_releases() -> None:
    bulkhead = Bulkhead("p", 2)
    bulkhead.acquire()
    bulkhead.acquire()
    with pytest.raises(ProviderOverloaded):
        bulkhead.acquire()
    bulkhead.release()
    bulkhead.acquire()


def test_guards_are_per_provider_and_per_override() -> None:
    guards = Guards(BreakerConfig(), 10, lambda *a: None)
    assert guards.breaker("a") is guards.breaker("a")
    assert guards.breaker("a") is not guards.breaker("b")
    shared = guards.bulkhead("a", "@x", None)
    assert shared.limit == 10 and guards.bulkhead("a", "@y", None) is shared
    own = guards.bulkhead("a", "@z", 3)
    assert own is not shared and own.limit == 3


# ---- over real sockets ----------------------------------------------------

def breaker_gauge(text: str, provider: str = "provider-app") -> float | None:
    for line in text.splitlines():
        if line.startswith(f'apihub_breaker_state{{provider="{provider}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_breaker_opens_short_circuits_half_opens_and_closes(
    make_hub: HubFactory, provider: Provider, log_sink: LogSink,
) -> None:
    mark = log_sink.mark()
    healthy = provider.behaviour

    async def broken(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.json_response({"error": "down"}, status=500)

    provider.behaviour = broken
    hub = await make_hub(breaker=BREAKER)
    for _ in range(3):
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        await problem(r, 502, "provider_error")
    assert len(provider.received) == 3

    # Open: answered at once, the provider sees nothing.
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    doc = await problem(r, 503, "provider_overloaded")
    assert "breaker" in doc["detail"]
    assert len(provider.received) == 3
    metrics = await (await hub.get("/metrics")).text()
    assert breaker_gauge(metrics) == 2.0

    # Half-open after the cool-down: one probe; it fails, so open again.
    await asyncio.sleep(0.35)
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    await problem(r, 502, "provider_error")
    assert len(provider.received) == 4
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    await problem(r, 503, "provider_overloaded")
    assert len(provider.received) == 4

    # The provider recovers: the next probe closes the breaker.
    provider.behaviour = healthy
    await asyncio.sleep(0.35)
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    assert r.status == 200
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    assert r.status == 200
    assert len(provider.received) == 6
    metrics = await (await hub.get("/metrics")).text()
    assert breaker_gauge(metrics) == 0.0
    assert 'apihub_breaker_transitions_total{provider="provider-app",to="open"} 2.0' in metrics

    moves = [(line["from"], line["to"]) for line in log_sink.since(mark)
             if line["event"] == "breaker_state_changed" and line["provider"] == "provider-app"]
    assert moves == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                     ("open", "half_open"), ("half_open", "closed")]


async def test_half_open_lets_one_probe_through(make_hub: HubFactory, provider: Provider) -> None:
    release = asyncio.Event()
    failing = True

    async def behaviour(request: web.Request, raw: bytes) -> web.StreamResponse:
        if failing:
            return web.json_response({}, status=503)
        await release.wait()
        return web.json_response({"data": {"echo": 1}})

    provider.behaviour = behaviour
    hub = await make_hub(breaker=BREAKER)
    for _ in range(3):
        await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502, "provider_error")
    failing = False
    await asyncio.sleep(0.35)
    probe = asyncio.create_task(hub.post(CALL, json=GOOD, headers=call_headers()))
    while len(provider.received) < 4:
        await asyncio.sleep(0.01)
    others = await asyncio.gather(*(hub.post(CALL, json=GOOD, headers=call_headers()) for _ in range(5)))
    for r in others:
        doc = await problem(r, 503, "provider_overloaded")
        assert "probe" in doc["detail"]
    assert len(provider.received) == 4
    release.set()
    assert (await probe).status == 200
    assert (await hub.post(CALL, json=GOOD, headers=call_headers())).status == 200


async def test_breaker_counts_timeouts_and_unreachable(make_hub: HubFactory, provider: Provider) -> None:
    async def slow(request: web.Request, raw: bytes) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({"data": {"echo": 1}})

    provider.behaviour = slow
    hub = await make_hub(breaker=BREAKER, upstream={"timeout_ms": 200})
    for _ in range(3):
        await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 504, "provider_timeout")
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 503, "provider_overloaded")

    dead = f"http://127.0.0.1:{free_port()}/action"
    hub = await make_hub(breaker=BREAKER, apps=[provider_manifest("provider-app", dead), consumer_manifest()])
    for _ in range(3):
        await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502, "provider_unreachable")
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 503, "provider_overloaded")


@pytest.mark.parametrize("case", ["consumer_error", "provider_4xx", "invalid_answer", "consumer_timeout"])
async def test_breaker_ignores_what_is_not_the_providers_failure(
    make_hub: HubFactory, provider: Provider, case: str,
) -> None:
    """Consumer errors, provider 4xx, invalid answers and a deadline the
    consumer shortened say nothing about the provider's health: a consumer
    must not be able to open a provider's breaker for everyone."""

    async def answer(request: web.Request, raw: bytes) -> web.StreamResponse:
        if case == "provider_4xx":
            return web.json_response({}, status=404)
        if case == "invalid_answer":
            return web.json_response({"data": {"nope": 1}})
        if case == "consumer_timeout" and orjson.loads(raw)["data"].get("label") == "slow":
            await asyncio.sleep(1)
        return web.json_response({"data": {"echo": 1}})

    provider.behaviour = answer
    hub = await make_hub(breaker=BREAKER)
    for _ in range(6):
        if case == "consumer_error":
            r = await hub.post(CALL, json={"data": {"value": -1}}, headers=call_headers())
            await problem(r, 400, "invalid_request")
        elif case == "provider_4xx":
            await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502, "provider_error")
        elif case == "invalid_answer":
            await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502,
                          "invalid_provider_response")
        else:
            r = await hub.post(CALL + "?timeout=50", json={"data": {"value": 1, "label": "slow"}},
                               headers=call_headers())
            await problem(r, 504, "provider_timeout")
    provider.behaviour = answer if case == "consumer_timeout" else Provider().behaviour
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    assert r.status == 200, await r.text()


async def test_breakers_are_per_provider(make_hub: HubFactory, provider: Provider,
                                         start_provider: Any) -> None:
    other = await start_provider()

    async def broken(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.json_response({}, status=500)

    provider.behaviour = broken
    hub = await make_hub(breaker=BREAKER, apps=[
        provider_manifest("provider-app", provider.url), provider_manifest("other-app", other.url),
        consumer_manifest(),
    ])
    for _ in range(4):
        await hub.post(CALL, json=GOOD, headers=call_headers())
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 503, "provider_overloaded")
    r = await hub.post(f"/v1/services/call/{ECHO}/other-app", json=GOOD, headers=call_headers())
    assert r.status == 200
