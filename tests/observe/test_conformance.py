"""Provider conformance: GET /admin/v1/conformance on the admin app reflects
the calls made (fan-out to a fine, a slow and an off-protocol provider, and
report-mode calls), `since` windows, the admin token, /metrics, and the
observer's bounded bookkeeping on its own (with a clock the test drives)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from proxy.admin.app import create_admin_app
from proxy.observe.conformance import LAST_VIOLATIONS, MINUTES_KEPT, Conformance, Latency, _bucket
from proxy.types import CallSite, ValidationIssue
from proxy.web.state import HUB

from tests.conftest import HubFactory
from tests.support import ECHO, call_headers, consumer_manifest, echo_action, provider_manifest
from tests.support import problem
from tests.pipeline.test_fanout import FANOUT, GOOD, StartProvider, apps_for, three_providers

ADMIN_TOKEN = "adm-token-5e6f7a8b9c"
ADMIN = {"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
CONFORMANCE = "/admin/v1/conformance"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def admin_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def admin_for(hub: TestClient, aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_admin_app(hub.server.app[HUB]))  # type: ignore[no-any-return]


async def conformance(admin: TestClient, query: str = "") -> dict[str, Any]:
    r = await admin.get(CONFORMANCE + query, headers=admin_headers())
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


def without_latency(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("p50Ms", "p99Ms", "lastViolations")}


async def test_conformance_reflects_fanout_exactly(
        make_hub: HubFactory, start_provider: StartProvider, aiohttp_client: Any) -> None:
    providers = await three_providers(start_provider)
    hub = await make_hub(apps=apps_for(providers), admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    assert (await conformance(admin))["entries"] == []
    for _ in range(2):
        r = await hub.post(FANOUT + "?timeout=800", json=GOOD, headers=call_headers())
        assert r.status == 200
    doc = await conformance(admin)
    assert doc["instance"] == hub.server.app[HUB].instance
    assert RFC3339_MS.match(doc["since"])
    entries = doc["entries"]
    counts = {"calls": 2, "successes": 0, "invalidResponses": 0, "timeouts": 0, "errors": 0}
    assert [without_latency(e) for e in entries] == [
        {"provider": "alpha-slow", "action": ECHO, "version": 2, **counts, "timeouts": 2},
        {"provider": "mid-off", "action": ECHO, "version": 2, **counts, "invalidResponses": 2},
        {"provider": "zeta-fine", "action": ECHO, "version": 2, **counts, "successes": 2},
    ]
    slow, off, fine = entries
    # Latency is that of answers received: none from the slow one.
    assert slow["p50Ms"] is None and slow["p99Ms"] is None
    assert 0 < fine["p50Ms"] <= fine["p99Ms"] < 2000
    assert 0 < off["p50Ms"] <= off["p99Ms"] < 2000
    assert slow["lastViolations"] == [] and fine["lastViolations"] == []
    assert [(v["pointer"], v["message"]) for v in off["lastViolations"]] == [("/data/echo", "is required")] * 2
    assert all(RFC3339_MS.match(v["at"]) for v in off["lastViolations"])
    # Never the payload.
    assert b"private-value-991" not in orjson.dumps(doc)


async def test_report_mode_counts_as_success_and_invalid(
        make_hub: HubFactory, start_provider: StartProvider, aiohttp_client: Any) -> None:
    from tests.pipeline.test_fanout import off_protocol

    p = await start_provider(off_protocol)
    hub = await make_hub(actions=[echo_action(enforce={"response": "report"})],
                         apps=[provider_manifest("lax", p.url), consumer_manifest()], admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    for _ in range(3):
        r = await hub.post(f"/v1/services/call/{ECHO}/lax?version=1", json=GOOD, headers=call_headers())
        assert r.status == 200
    (entry,) = (await conformance(admin))["entries"]
    assert without_latency(entry) == {
        "provider": "lax", "action": ECHO, "version": 1, "calls": 3, "successes": 3,
        "invalidResponses": 3, "timeouts": 0, "errors": 0,
    }
    assert [v["pointer"] for v in entry["lastViolations"]] == ["/data/echo"] * 3
    metrics = await (await hub.get("/metrics")).text()
    assert f'apihub_provider_calls_total{{action="{ECHO}",outcome="ok",provider="lax",version="1"}} 3.0' \
        in metrics
    assert f'apihub_provider_invalid_responses_total{{action="{ECHO}",mode="report",provider="lax",version="1"}} 3.0' \
        in metrics


async def test_metrics_carry_the_same_counts(
        make_hub: HubFactory, start_provider: StartProvider, aiohttp_client: Any) -> None:
    providers = await three_providers(start_provider)
    hub = await make_hub(apps=apps_for(providers))
    r = await hub.post(FANOUT + "?timeout=800", json=GOOD, headers=call_headers())
    assert r.status == 200
    metrics = await (await hub.get("/metrics")).text()
    for provider, outcome in [("alpha-slow", "provider_timeout"), ("mid-off", "invalid_provider_response"),
                              ("zeta-fine", "ok")]:
        line = (f'apihub_provider_calls_total{{action="{ECHO}",outcome="{outcome}",'
                f'provider="{provider}",version="2"}} 1.0')
        assert line in metrics
    assert (f'apihub_provider_invalid_responses_total{{action="{ECHO}",mode="strict",'
            f'provider="mid-off",version="2"}} 1.0') in metrics


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer ", ADMIN_TOKEN + "x"])
async def test_admin_token_required(make_hub: HubFactory, aiohttp_client: Any, auth: str | None) -> None:
    hub = await make_hub(admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    headers = {} if auth is None else {"Authorization": auth}
    await problem(await admin.get(CONFORMANCE, headers=headers), 401, "unauthenticated")


async def test_consumer_token_is_not_an_admin_token(make_hub: HubFactory, aiohttp_client: Any) -> None:
    hub = await make_hub(admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    await problem(await admin.get(CONFORMANCE, headers=call_headers()), 401, "unauthenticated")
    # ... and the hub's own listener has no admin routes.
    await problem(await hub.get(CONFORMANCE, headers=admin_headers()), 404, "not_found")


async def test_since(make_hub: HubFactory, aiohttp_client: Any) -> None:
    hub = await make_hub(admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=GOOD, headers=call_headers())
    assert r.status == 200
    everything = await conformance(admin)
    assert len(everything["entries"]) == 1
    past = (datetime.now(UTC) - timedelta(days=3)).isoformat().replace("+00:00", "Z")
    assert await conformance(admin, f"?since={past}") == everything
    future = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    # A '+' sent unescaped arrives as a space; both spellings work.
    for query in (f"?since={future}", "?since=" + future.replace("+", "%2B")):
        doc = await conformance(admin, query)
        assert doc["entries"] == []
        assert doc["since"] == future.replace("+00:00", ".000Z")[:17] + "00.000Z"


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00Z", "2026-03-01T08:00:00"])
async def test_bad_since(make_hub: HubFactory, aiohttp_client: Any, since: str) -> None:
    hub = await make_hub(admin=ADMIN)
    admin = await admin_for(hub, aiohttp_client)
    r = await admin.get(CONFORMANCE, params={"since": since}, headers=admin_headers())
    await problem(r, 400, "invalid_parameter")


# ---- the observer on its own, with a clock the test drives ------------------

def target(provider: str = "p", version: int = 1) -> CallSite:
    return CallSite(provider, "@a:B:c", version)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC).timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_since_uses_minute_then_hour_buckets() -> None:
    clock = Clock(T0 + 5)
    c = Conformance(CollectorRegistry(), clock=clock)
    t = target()
    c.outcome(t, "ok")                      # 08:00:05
    clock.now = T0 + 30 * 60 + 10
    c.outcome(t, "provider_timeout")        # 08:30:10
    clock.now = T0 + 3 * 3600 + 20
    c.outcome(t, "provider_error")          # 11:00:20
    c.answered(t, 12.0, "ok")               # 11:00:20, timed

    def calls(since: float | None) -> tuple[str, int]:
        start, entries = c.report(since)
        return iso(start), (entries[0]["calls"] if entries else 0)

    assert calls(None) == (iso(T0 + 5), 4)
    assert calls(T0 - 100) == (iso(T0 + 5), 4)
    # Within the last hour: minute resolution, rounded down to the minute.
    assert calls(T0 + 3 * 3600 + 10) == (iso(T0 + 3 * 3600), 2)
    assert calls(T0 + 3 * 3600 + 30) == (iso(T0 + 3 * 3600), 2)
    # Older than the minute buckets: rounded down to the hour.
    assert calls(T0 + 30 * 60) == (iso(T0 + 5), 4)        # 08:00 bucket ≤ start: the totals
    assert calls(T0 + 3600 + 1) == (iso(T0 + 3600), 2)   # 09:00 onwards: only 11:00's calls
    _, (entry,) = c.report(T0 + 3 * 3600)
    assert entry["errors"] == 1 and entry["timeouts"] == 0 and entry["p50Ms"] == 12.0


def test_minute_buckets_stay_bounded() -> None:
    clock = Clock(T0)
    c = Conformance(CollectorRegistry(), clock=clock)
    t = target()
    for minute in range(5 * MINUTES_KEPT):
        clock.now = T0 + minute * 60
        c.answered(t, float(minute + 1), "ok")
    (entry,) = c._entries.values()
    assert len(entry.minutes.buckets) <= MINUTES_KEPT
    assert len(entry.hours.buckets) <= 24
    assert c.report()[1][0]["calls"] == 5 * MINUTES_KEPT


def test_last_violations_are_bounded_and_request_side_ignored() -> None:
    clock = Clock(T0)
    c = Conformance(CollectorRegistry(), clock=clock)
    t = target()
    for i in range(LAST_VIOLATIONS + 3):
        clock.now = T0 + i
        c.violation(t, "response", "report", (ValidationIssue(f"/data/{i}", "is required"),), "rid")
        c.outcome(t, "ok")
    c.violation(t, "request", "report", (ValidationIssue("/data/value", "must be >= 0"),), "rid")
    (entry,) = c.report()[1]
    assert entry["calls"] == entry["successes"] == entry["invalidResponses"] == LAST_VIOLATIONS + 3
    assert [v["pointer"] for v in entry["lastViolations"]] == [
        f"/data/{i}" for i in range(3, LAST_VIOLATIONS + 3)]


def test_strict_violation_counted_once() -> None:
    c = Conformance(CollectorRegistry(), clock=Clock(T0))
    t = target()
    c.violation(t, "response", "strict", (ValidationIssue("/data", "is required"), ValidationIssue("/x", "bad")),
                "rid")
    c.outcome(t, "invalid_provider_response")
    (entry,) = c.report()[1]
    assert (entry["calls"], entry["successes"], entry["invalidResponses"]) == (1, 0, 1)
    assert len(entry["lastViolations"]) == 2


def test_latency_percentiles_are_close() -> None:
    h = Latency()
    for ms in range(1, 1001):
        h.add(float(ms), _bucket(float(ms)))
    p50, p99 = h.percentile(0.5), h.percentile(0.99)
    assert p50 is not None and p99 is not None
    assert abs(p50 - 500) / 500 < 0.03
    assert abs(p99 - 990) / 990 < 0.03
    assert len(h.buckets) < 150
    one = Latency()
    one.add(7.25, _bucket(7.25))
    assert one.percentile(0.5) == one.percentile(0.99) == 7.25
