"""Fan-out (`POST /v1/services/call/{action}`, no provider) over real sockets:
three real providers (fine, slow past the deadline, off-protocol), bytes
embedded unchanged, stable order, version choice, concurrency, per-provider
errors, and the request-level errors that still fail the whole call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.types import CallSite
from proxy.web.handlers import RELAY

from tests.conftest import Behaviour, HubFactory, Provider
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    PROVIDER_SECRET,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
)
from tests.support import problem

FANOUT = f"/v1/services/call/{ECHO}"
GOOD = {"data": {"value": 3, "label": "x"}}
# Odd spacing, key order and number forms: re-serialising would change them.
ODD = b'{ "zeta" :1,\n  "data":{"echo" : [3, 2.50, "\\u00e9"] } ,"alpha":null }'

StartProvider = Callable[[Behaviour], Awaitable[Provider]]


async def fine(request: web.Request, raw: bytes) -> web.StreamResponse:
    return web.Response(body=ODD, content_type="application/json")


async def slow(request: web.Request, raw: bytes) -> web.StreamResponse:
    await asyncio.sleep(5)
    raise AssertionError("unreachable: the hub gave up before")  # pragma: no cover


async def off_protocol(request: web.Request, raw: bytes) -> web.StreamResponse:
    return web.Response(body=b'{"data": {"nope": "private-value-991"}}', content_type="application/json")


async def three_providers(start_provider: StartProvider) -> dict[str, Provider]:
    # Ids chosen so that id order differs from the order they are written in.
    return {
        "zeta-fine": await start_provider(fine),
        "alpha-slow": await start_provider(slow),
        "mid-off": await start_provider(off_protocol),
    }


def apps_for(providers: dict[str, Provider]) -> list[dict[str, Any]]:
    return [*(provider_manifest(pid, p.url) for pid, p in providers.items()), consumer_manifest()]


async def test_three_providers_one_ok_two_errors(make_hub: HubFactory, start_provider: StartProvider) -> None:
    providers = await three_providers(start_provider)
    hub = await make_hub(apps=apps_for(providers))
    started = time.monotonic()
    r = await hub.post(FANOUT + "?timeout=800", json=GOOD, headers=call_headers())
    elapsed = time.monotonic() - started
    raw = await r.read()
    assert r.status == 200, raw
    assert r.headers["Content-Type"].startswith("application/json")
    assert elapsed < 2.5  # the 800 ms deadline decides, not the slow provider's 5 s
    # The fine provider's bytes are in the answer exactly as it sent them.
    assert b'"data":' + ODD in raw
    request_id = r.headers["X-Request-Id"]
    results = orjson.loads(raw)["results"]
    assert [res["provider"]["id"] for res in results] == ["alpha-slow", "mid-off", "zeta-fine"]
    slow_r, off_r, fine_r = results
    assert fine_r == {
        "provider": {"id": "zeta-fine", "displayName": "Zeta Fine", "icon": "https://example.org/zeta-fine.png"},
        "version": 2, "status": "ok", "data": orjson.loads(ODD),
    }
    assert slow_r["status"] == "error" and slow_r["version"] == 2
    assert slow_r["error"]["code"] == "provider_timeout"
    assert slow_r["error"]["status"] == 504
    assert slow_r["error"]["requestId"] == request_id
    assert off_r["status"] == "error"
    assert off_r["error"]["code"] == "invalid_provider_response"
    assert off_r["error"]["status"] == 502
    assert off_r["error"]["errors"] == [{"path": "/data/echo", "message": "is required"}]
    assert b"private-value-991" not in raw
    # Each provider got the call, with its own secret and the same request id.
    for p in providers.values():
        headers, body = p.received[-1]
        assert headers["X-Request-Id"] == request_id
        assert orjson.loads(body)["secret"] == PROVIDER_SECRET


async def test_no_providers_is_an_empty_list(make_hub: HubFactory) -> None:
    hub = await make_hub(apps=[consumer_manifest()])
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    assert r.status == 200
    assert await r.read() == b'{"results":[]}'


async def test_no_providers_still_checks_the_body(make_hub: HubFactory) -> None:
    hub = await make_hub(apps=[consumer_manifest()])
    r = await hub.post(FANOUT, data=b"not json", headers=call_headers())
    await problem(r, 400, "invalid_json")


async def test_providers_elsewhere_or_without_shared_version_left_out(
        make_hub: HubFactory, start_provider: StartProvider) -> None:
    here = await start_provider(fine)
    elsewhere = await start_provider(fine)
    future = await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("here", here.url),
        provider_manifest("elsewhere", elsewhere.url, communities=("other-school",)),
        provider_manifest("future", future.url, actions={ECHO: [7]}),
        consumer_manifest(),
    ])
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    assert r.status == 200
    assert [res["provider"]["id"] for res in (await r.json())["results"]] == ["here"]
    assert not elsewhere.received and not future.received


async def test_each_provider_at_its_highest_shared_version(
        make_hub: HubFactory, start_provider: StartProvider) -> None:
    old, new = await start_provider(fine), await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("old", old.url, actions={ECHO: [1]}),
        provider_manifest("new", new.url, actions={ECHO: [1, 2, 3]}),
        consumer_manifest(),
    ])
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    results = (await r.json())["results"]
    assert [(res["provider"]["id"], res["version"], res["status"]) for res in results] == [
        ("new", 2, "ok"), ("old", 1, "ok")]
    assert new.last_body()["context"]["version"] == 2
    assert old.last_body()["context"]["version"] == 1


async def test_version_asked_leaves_out_providers_lacking_it(
        make_hub: HubFactory, start_provider: StartProvider) -> None:
    old, new = await start_provider(fine), await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("old", old.url, actions={ECHO: [1]}),
        provider_manifest("new", new.url, actions={ECHO: [1, 2]}),
        consumer_manifest(),
    ])
    r = await hub.post(FANOUT + "?version=2", json=GOOD, headers=call_headers())
    assert [(res["provider"]["id"], res["version"]) for res in (await r.json())["results"]] == [("new", 2)]
    assert not old.received
    r = await hub.post(FANOUT + "?version=1", json=GOOD, headers=call_headers())
    assert [(res["provider"]["id"], res["version"]) for res in (await r.json())["results"]] == [
        ("new", 1), ("old", 1)]


async def test_providers_are_called_concurrently(make_hub: HubFactory, start_provider: StartProvider) -> None:
    """Each provider waits until both have been called: only concurrent calls can both succeed."""
    both_called = asyncio.Event()
    arrived = 0

    async def barrier(request: web.Request, raw: bytes) -> web.StreamResponse:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_called.set()
        await asyncio.wait_for(both_called.wait(), 5)
        return web.json_response({"data": {"echo": True}})

    a, b = await start_provider(barrier), await start_provider(barrier)
    hub = await make_hub(apps=[provider_manifest("a", a.url), provider_manifest("b", b.url), consumer_manifest()])
    r = await hub.post(FANOUT + "?timeout=3000", json=GOOD, headers=call_headers())
    assert [res["status"] for res in (await r.json())["results"]] == ["ok", "ok"]


async def test_provider_errors_are_per_provider(make_hub: HubFactory, start_provider: StartProvider) -> None:
    async def failing(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.json_response({"error": "db down"}, status=503)

    ok, down = await start_provider(fine), await start_provider(failing)
    dead = f"http://127.0.0.1:{free_port()}/action"
    hub = await make_hub(apps=[
        provider_manifest("a-ok", ok.url), provider_manifest("b-down", down.url),
        provider_manifest("c-dead", dead), consumer_manifest(),
    ])
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    assert r.status == 200
    results = (await r.json())["results"]
    assert results[0]["status"] == "ok"
    assert results[1]["error"]["code"] == "provider_error"
    assert results[1]["error"]["providerStatus"] == 503
    assert "db down" not in orjson.dumps(results[1]).decode()
    assert results[2]["error"]["code"] == "provider_unreachable"


async def test_timeout_clamped_to_configured(make_hub: HubFactory, start_provider: StartProvider) -> None:
    p = await start_provider(slow)
    hub = await make_hub(apps=[provider_manifest("slow", p.url), consumer_manifest()],
                         upstream={"timeout_ms": 300})
    started = time.monotonic()
    r = await hub.post(FANOUT + "?timeout=60000", json=GOOD, headers=call_headers())
    assert r.status == 200
    assert time.monotonic() - started < 2.5
    assert (await r.json())["results"][0]["error"]["code"] == "provider_timeout"


async def test_manifest_timeout_per_provider(make_hub: HubFactory, start_provider: StartProvider) -> None:
    quick, late = await start_provider(fine), await start_provider(slow)
    hub = await make_hub(apps=[
        provider_manifest("quick", quick.url), provider_manifest("late", late.url, timeoutMs=300),
        consumer_manifest(),
    ])
    started = time.monotonic()
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    assert time.monotonic() - started < 2.5
    assert [res["status"] for res in (await r.json())["results"]] == ["error", "ok"]


async def test_bulkhead_per_provider(make_hub: HubFactory, start_provider: StartProvider) -> None:
    release = asyncio.Event()

    async def held(request: web.Request, raw: bytes) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 5)
        return web.json_response({"data": {"echo": 1}})

    busy, free = await start_provider(held), await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("busy", busy.url, maxConcurrency=1), provider_manifest("free", free.url),
        consumer_manifest(),
    ])
    first = asyncio.create_task(hub.post(FANOUT, json=GOOD, headers=call_headers()))
    while not busy.received:
        await asyncio.sleep(0.01)
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    results = (await r.json())["results"]
    assert results[0]["error"]["code"] == "provider_overloaded"
    assert results[1]["status"] == "ok"
    release.set()
    assert [res["status"] for res in (await (await first).json())["results"]] == ["ok", "ok"]


async def test_a_crash_in_one_leg_is_an_internal_error_entry(
        make_hub: HubFactory, start_provider: StartProvider, log_sink: Any) -> None:
    a, b = await start_provider(fine), await start_provider(fine)
    hub = await make_hub(apps=[provider_manifest("a", a.url), provider_manifest("b", b.url), consumer_manifest()])

    class Exploding:
        """An observer with a bug, for provider b only."""

        def outcome(self, site: CallSite, outcome: str) -> None:
            if site.provider == "b":
                raise RuntimeError("observer bug")

        def answered(self, site: CallSite, ms: float, outcome: str) -> None:
            self.outcome(site, outcome)

        def violation(self, site: CallSite, side: str, mode: str, issues: Any, request_id: str) -> None:
            pass

    app = hub.server.app
    relay = app[RELAY]
    # The app is frozen once started: swap the observer on the relay it holds.
    object.__setattr__(relay, "observer", Exploding())
    mark = log_sink.mark()
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers())
    assert r.status == 200
    results = (await r.json())["results"]
    assert results[0]["status"] == "ok"
    assert results[1]["status"] == "error"
    assert results[1]["error"]["code"] == "internal_error"
    assert results[1]["error"]["status"] == 500
    assert any(rec.get("event") == "fanout_leg_crashed" and rec.get("provider") == "b"
               for rec in log_sink.since(mark))


# ---- request validation ----------------------------------------------------

async def test_body_invalid_for_every_version_is_a_400(make_hub: HubFactory, start_provider: StartProvider) -> None:
    a, b = await start_provider(fine), await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("a", a.url, actions={ECHO: [1]}), provider_manifest("b", b.url), consumer_manifest(),
    ])
    r = await hub.post(FANOUT, json={"data": {"value": -1}}, headers=call_headers())
    doc = await problem(r, 400, "invalid_request")
    # v2's violations first (the highest version), then v1's new ones.
    assert doc["errors"] == [
        {"path": "/data/label", "message": "is required"},
        {"path": "/data/value", "message": "must be >= 0"},
    ]
    assert not a.received and not b.received


async def test_body_invalid_for_some_versions_fails_only_those(
        make_hub: HubFactory, start_provider: StartProvider) -> None:
    v1, v2 = await start_provider(fine), await start_provider(fine)
    hub = await make_hub(apps=[
        provider_manifest("v1-only", v1.url, actions={ECHO: [1]}), provider_manifest("v2-too", v2.url),
        consumer_manifest(),
    ])
    r = await hub.post(FANOUT, json={"data": {"value": 1}}, headers=call_headers())  # v2 needs a label
    assert r.status == 200
    one, two = (await r.json())["results"]
    assert one["status"] == "ok"
    assert two["error"]["code"] == "invalid_request"
    assert two["error"]["errors"] == [{"path": "/data/label", "message": "is required"}]
    assert not v2.received


async def test_report_mode_request_is_sent_anyway(make_hub: HubFactory, start_provider: StartProvider) -> None:
    p = await start_provider(fine)
    hub = await make_hub(actions=[echo_action(enforce={"request": "report"})],
                         apps=[provider_manifest("p", p.url), consumer_manifest()])
    r = await hub.post(FANOUT, json={"data": {"value": -1}}, headers=call_headers())
    assert r.status == 200
    assert (await r.json())["results"][0]["status"] == "ok"
    assert p.last_body()["data"] == {"value": -1}


# ---- request-level errors answer as usual ------------------------------------

@pytest.mark.parametrize(("query", "status", "code"), [
    ("?version=9", 404, "unsupported_version"),
    ("?version=abc", 400, "invalid_parameter"),
    ("?timeout=0", 400, "invalid_parameter"),
])
async def test_bad_query(hub: Any, query: str, status: int, code: str) -> None:
    r = await hub.post(FANOUT + query, json=GOOD, headers=call_headers())
    await problem(r, status, code)


async def test_request_level_errors(make_hub: HubFactory, provider: Provider) -> None:
    hub = await make_hub(limits={"max_request_bytes": 100}, apps=[
        provider_manifest("provider-app", provider.url), consumer_manifest(),
        consumer_manifest("idle-app", "tok-idle-0000000001", consumes=()),
    ])
    await problem(await hub.post(FANOUT, json=GOOD, headers=call_headers(token="wrong")), 401, "unauthenticated")
    headers = call_headers()
    del headers["community-id"]
    await problem(await hub.post(FANOUT, json=GOOD, headers=headers), 403, "forbidden")
    await problem(await hub.post("/v1/services/call/@no:Such:thing", json=GOOD, headers=call_headers()),
                  404, "unknown_action")
    await problem(await hub.post(FANOUT, json=GOOD, headers=call_headers(token="tok-idle-0000000001")),
                  403, "forbidden")
    await problem(await hub.post(FANOUT, data=b"{}", headers=call_headers(**{"Content-Type": "text/plain"})),
                  415, "unsupported_media_type")
    await problem(await hub.post(FANOUT, json={"data": {"x": "y" * 200}}, headers=call_headers()),
                  413, "payload_too_large")
    await problem(await hub.post(FANOUT, data=b"[1]", headers=call_headers()), 400, "invalid_json")
    assert not provider.received


async def test_access_line_and_metrics(hub: Any, log_sink: Any) -> None:
    mark = log_sink.mark()
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers(Authorization=CONSUMER_TOKEN))
    assert r.status == 200
    access = [rec for rec in log_sink.since(mark) if rec.get("event") == "access"]
    assert access and access[-1]["route"] == "fanout" and access[-1]["action"] == ECHO
    metrics = await (await hub.get("/metrics")).text()
    assert f'apihub_requests_total{{action="{ECHO}",outcome="ok",provider="",route="fanout"}} 1.0' in metrics
