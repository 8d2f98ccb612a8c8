"""/healthz reports the catalogue; /metrics is Prometheus text with the
call counters by action, provider and outcome."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from proxy.web.state import HUB

from tests.support import ECHO, call_headers

CALL = f"/v1/services/call/{ECHO}/provider-app"


async def test_healthz(hub: Any) -> None:
    r = await hub.get("/healthz")
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "ok"
    catalogue = body["catalogue"]
    assert catalogue["generation"] == 1
    assert catalogue["actions"] == 1
    assert catalogue["loadedAt"].endswith("Z")
    assert catalogue["lastReloadError"] is None
    assert "registry" not in body  # the file backend has nothing to report


async def test_reload_in_process_bumps_generation(hub: Any) -> None:
    assert await hub.app[HUB].reload()
    body = await (await hub.get("/healthz")).json()
    assert body["catalogue"]["generation"] == 2


async def test_metrics_count_calls_by_outcome(hub: Any) -> None:
    await hub.post(CALL, json={"data": {"value": 1, "label": "a"}}, headers=call_headers())
    await hub.post(CALL, json={"data": {"value": -1, "label": "a"}}, headers=call_headers())
    await hub.post("/v1/services/call/@junk:a:b/x", json={}, headers=call_headers())
    r = await hub.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await r.text())
        for s in family.samples
    }

    def count(action: str, provider: str, outcome: str) -> float:
        key = ("apihub_requests_total", (("action", action), ("outcome", outcome),
                                         ("provider", provider), ("route", "call")))
        return samples.get(key, 0)

    assert count(ECHO, "provider-app", "ok") == 1
    assert count(ECHO, "provider-app", "invalid_request") == 1
    # What a consumer typed never becomes a label.
    assert count("", "", "unknown_action") == 1
    assert not any("@junk" in str(key) for key in samples)
    assert any(name == "apihub_upstream_duration_seconds_count" for name, _ in samples)
    assert samples[("apihub_validation_failures_total",
                    (("action", ECHO), ("mode", "strict"), ("provider", "provider-app"),
                     ("side", "request")))] == 1
