"""The operator console on the admin listener: `GET /admin/` (a static page,
public like any HTML, that asks for the admin token and sends it on every
data call) and `GET /admin/v1/status`, the one JSON document it polls.

The status is this process's view (`instance`): with several workers the
admin listener runs in worker 0, so calls, breakers and bulkheads are
worker 0's; the page says which instance answered. Counters are cumulative
since start; the page derives calls/s, error rate and p99 from the
difference between two samples, so the hub keeps no extra state for it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..web.handlers import health_of
from ..web.middleware import Route
from ..web.pages import STATIC, StaticFiles
from ..web.state import HUB, Hub

CONSOLE_STATIC = Path(__file__).parent / "static"
# The routes the admin token does not guard: the page and its assets, nothing with data.
PUBLIC_ROUTES = frozenset({"console_page", "console_asset"})
# What the chart counts as a call: the consumer-facing relay routes.
_CALL_ROUTES = frozenset({"call", "fanout"})


def _samples(hub: Hub, name: str) -> Iterable[tuple[dict[str, str], float]]:
    for metric in hub.metrics.collect():
        for sample in metric.samples:
            if sample.name == name:
                yield sample.labels, sample.value


def traffic(hub: Hub) -> dict[str, Any]:
    """Cumulative call and error counts, and the call-latency histogram."""
    calls = errors = 0
    codes: dict[str, dict[str, int]] = defaultdict(dict)
    for labels, value in _samples(hub, "apihub_requests_total"):
        if labels["route"] not in _CALL_ROUTES:
            continue
        n = int(value)
        calls += n
        if labels["outcome"] != "ok":
            errors += n
            if labels["provider"]:
                per = codes[labels["provider"]]
                per[labels["outcome"]] = per.get(labels["outcome"], 0) + n
    buckets: dict[float, int] = defaultdict(int)
    for labels, value in _samples(hub, "apihub_request_duration_seconds_bucket"):
        if labels["route"] in _CALL_ROUTES:
            buckets[float(labels["le"])] += int(value)
    return {
        "calls": calls,
        "errors": errors,
        # [upper bound in ms (null for +Inf), cumulative count]
        "latencyBuckets": [[None if le == float("inf") else le * 1000, n] for le, n in sorted(buckets.items())],
        "errorCodes": codes,
    }


def _violations(hub: Hub) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for labels, value in _samples(hub, "apihub_validation_failures_total"):
        counts[labels["action"], labels["side"]] += int(value)
    return counts


async def status_of(hub: Hub) -> dict[str, Any]:
    health = health_of(hub)
    registry = hub.snapshot.registry
    manifests = await registry.manifests()
    moved = traffic(hub)
    breakers = {b.key: b for b in hub.guards.breakers()}
    bulkheads: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bulkhead in hub.guards.bulkheads():
        provider, _, action = bulkhead.key.partition(" ")
        bulkheads[provider].append({"action": action or None, "inFlight": bulkhead.in_flight,
                                    "limit": bulkhead.limit})
    provider_ids = sorted({str(m["id"]) for m in manifests if m.get("provides")} | set(breakers))
    names = {str(m["id"]): str(m.get("displayName", m["id"])) for m in manifests}
    providers = []
    for pid in provider_ids:
        breaker = breakers.get(pid)
        providers.append({
            "id": pid,
            "displayName": names.get(pid, pid),
            "breaker": breaker.state.value if breaker else "closed",
            "consecutiveFailures": breaker.failures if breaker else 0,
            "bulkheads": bulkheads.get(pid) or [{"action": None, "inFlight": 0,
                                                 "limit": hub.config.upstream.max_concurrency}],
            "errorCodes": moved["errorCodes"].get(pid, {}),
        })
    violations = _violations(hub)
    actions = [{
        "name": action.name,
        "title": action.title,
        "versions": [{"version": n, "enforceRequest": v.enforce_request, "enforceResponse": v.enforce_response}
                     for n, v in sorted(action.versions.items())],
        "violations": {"request": violations.get((action.name, "request"), 0),
                       "response": violations.get((action.name, "response"), 0)},
    } for action in sorted(hub.catalogue.actions.values(), key=lambda a: a.name)]
    communities: dict[str, list[str]] = defaultdict(list)
    for manifest in manifests:
        for community in manifest.get("communities", []):
            communities[str(community)].append(str(manifest["id"]))
    _, conformance = hub.conformance.report()
    return {
        "instance": hub.instance,
        "time": time.time(),
        "status": health["status"],
        "catalogue": health["catalogue"],
        "registry": {"backend": registry.name, **(health.get("registry") or {})},
        "traffic": {k: v for k, v in moved.items() if k != "errorCodes"},
        "providers": providers,
        "conformance": conformance,
        "actions": actions,
        "communities": [{"community": c, "apps": sorted(apps)} for c, apps in sorted(communities.items())],
    }


async def status(request: web.Request) -> web.StreamResponse:
    body = await status_of(request.app[HUB])
    return web.Response(body=orjson.dumps(body), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        *StaticFiles(STATIC, CONSOLE_STATIC).routes("/admin/", "console.html", "/admin/static/", "console"),
        ("GET", "/admin/v1/status", status, "admin_status"),
    ]
