"""Rate limits through a hub driven over real sockets (file registry, the
`local` limiter): the manifest keys, the 429 answer and its headers, the
order of checks, provider protection across consumers, fan-out counting,
the admin usage view and /healthz."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from proxy.admin.app import create_admin_app
from proxy.config import ConfigError
from proxy.observe.metrics import Metrics
from proxy.ratelimit import open_limiter
from proxy.ratelimit.base import Check
from proxy.ratelimit.local import LocalLimiter
from proxy.registry import ManifestError, parse_manifest
from proxy.run.apps_cli import declared_limits
from proxy.types import Rate
from proxy.web.state import HUB
from tests.conftest import HubFactory, Provider
from tests.support import (
    ECHO,
    OTHER_TOKEN,
    call_headers,
    consumer_manifest,
    make_config,
    problem,
    provider_manifest,
)

CALL = f"/v1/services/call/{ECHO}/provider-app"
BODY = {"data": {"value": 1, "label": "x"}}


def limited_consumer(limits: dict[str, Any], app_id: str = "consumer-app", **kw: Any) -> dict[str, Any]:
    return {**consumer_manifest(app_id, **kw), "limits": limits}


async def test_consumer_rate_headers_then_429_before_the_body_is_read(make_hub: HubFactory,
                                                                       provider: Provider) -> None:
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url),
                               limited_consumer({"*": {"rate": "2/min"}})])
    for remaining in (1, 0):
        r = await hub.post(CALL, json=BODY, headers=call_headers())
        assert r.status == 200, await r.text()
        assert r.headers["RateLimit-Policy"] == '"rate";q=2;w=60'
        assert r.headers["RateLimit"].startswith(f'"rate";r={remaining};t=')
    # Not JSON, wrong media type: the rate limit still decides first (§4 step 8).
    r = await hub.post(CALL, data=b"{not json", headers={**call_headers(), "Content-Type": "text/plain"})
    doc = await problem(r, 429, "rate_limited")
    assert doc["limit"] == {"kind": "rate", "limit": 2, "window": 60}
    assert "2/min" in doc["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 30
    assert r.headers["RateLimit"].startswith('"rate";r=0;t=')
    assert len(provider.received) == 2


async def test_action_entry_overrides_star_and_quota_is_a_second_policy(make_hub: HubFactory,
                                                                        provider: Provider) -> None:
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url),
                               limited_consumer({"*": {"rate": "1/min"},
                                                 ECHO: {"rate": "100/s", "quota": "2/day"}})])
    r = await hub.post(CALL, json=BODY, headers=call_headers())
    assert r.headers["RateLimit-Policy"] == '"rate";q=100;w=1, "quota";q=2;w=86400'
    assert (await hub.post(CALL, json=BODY, headers=call_headers())).status == 200
    r = await hub.post(CALL, json=BODY, headers=call_headers())
    doc = await problem(r, 429, "rate_limited")
    assert doc["limit"] == {"kind": "quota", "limit": 2, "window": 86400}


async def test_no_limit_no_headers_and_defaults_apply_to_apps_declaring_none(make_hub: HubFactory) -> None:
    hub = await make_hub()
    r = await hub.post(CALL, json=BODY, headers=call_headers())
    assert r.status == 200 and "RateLimit" not in r.headers and "RateLimit-Policy" not in r.headers
    hub = await make_hub(ratelimit={"default_rate": "1/h"})
    assert (await hub.post(CALL, json=BODY, headers=call_headers())).headers["RateLimit-Policy"] == \
        '"rate";q=1;w=3600'
    await problem(await hub.post(CALL, json=BODY, headers=call_headers()), 429, "rate_limited")


async def test_provider_protection_holds_across_consumers(make_hub: HubFactory, provider: Provider) -> None:
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url, maxRate="3/min"),
                               consumer_manifest(), consumer_manifest("other-app", OTHER_TOKEN)])
    statuses = []
    for token in ("tok-consumer-7f3a9c1e5b", OTHER_TOKEN) * 3:
        r = await hub.post(CALL, json=BODY, headers=call_headers(token))
        statuses.append(r.status)
        if r.status == 429:
            doc = orjson.loads(await r.read())
            assert doc["limit"]["kind"] == "provider"
            assert r.headers["RateLimit-Policy"] == '"provider";q=3;w=60'
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert len(provider.received) == 3
    metrics = (await (await hub.get("/metrics")).read()).decode()
    assert 'apihub_rate_limited_total{action="@test:Echo:run",consumer="other-app",kind="provider"} 2.0' \
        in metrics


async def test_fanout_counts_once_for_the_consumer_and_per_provider(make_hub: HubFactory,
                                                                    provider: Provider) -> None:
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url, maxRate="1/min"),
                               provider_manifest("second-app", provider.url),
                               limited_consumer({ECHO: {"rate": "2/min"}})])
    r = await hub.post(f"/v1/services/call/{ECHO}", json=BODY, headers=call_headers())
    assert r.status == 200 and r.headers["RateLimit"].startswith('"rate";r=1;')
    assert [e["status"] for e in (await r.json())["results"]] == ["ok", "ok"]
    r = await hub.post(f"/v1/services/call/{ECHO}", json=BODY, headers=call_headers())
    results = (await r.json())["results"]
    assert r.status == 200 and r.headers["RateLimit"].startswith('"rate";r=0;')
    assert results[0]["provider"]["id"] == "provider-app" and results[0]["error"]["code"] == "rate_limited"
    assert results[1]["status"] == "ok"
    await problem(await hub.post(f"/v1/services/call/{ECHO}", json=BODY, headers=call_headers()),
                  429, "rate_limited")


async def test_admin_usage_and_healthz(make_hub: HubFactory, provider: Provider, aiohttp_client: Any) -> None:
    # Per minute, not per second: at 10/s one call's use is gone 100 ms later, which a loaded
    # machine can take between the call and the usage query (CI once read 0 there).
    hub = await make_hub(apps=[provider_manifest("provider-app", provider.url, maxRate="10/min"),
                               limited_consumer({"*": {"rate": "5/min", "quota": "100/day"}})],
                         admin={"token_sha256": hashlib.sha256(b"adm").hexdigest()})
    await hub.post(CALL, json=BODY, headers=call_headers())
    health = await (await hub.get("/healthz")).json()
    assert health["ratelimit"] == {"backend": "local", "status": "ok", "sharedByWorkers": False}
    admin = await aiohttp_client(create_admin_app(hub.server.app[HUB]))
    r = await admin.get("/admin/v1/apps/consumer-app/usage", headers={"Authorization": "Bearer adm"})
    doc = await r.json()
    assert doc["backend"] == "local"
    by_kind = {u["kind"]: u for u in doc["limits"]}
    assert by_kind["rate"]["used"] == 1 and by_kind["rate"]["remaining"] == 4
    assert by_kind["quota"] == {**by_kind["quota"], "used": 1, "limit": 100, "window": 86400,
                                "community": "colegio-teste", "action": ECHO}
    r = await admin.get("/admin/v1/apps/provider-app/usage", headers={"Authorization": "Bearer adm"})
    assert [(u["kind"], u["used"]) for u in (await r.json())["limits"]] == [("provider", 1)]
    r = await admin.get("/admin/v1/apps/nope/usage", headers={"Authorization": "Bearer adm"})
    await problem(r, 404, "not_found")


@pytest.mark.parametrize(("limits", "field"), [
    ({"*": {"rate": "10/day"}}, "/limits/*/rate"),
    ({"*": {"quota": "10/s"}}, "/limits/*/quota"),
    ({"*": {"rate": "0/s"}}, "/limits/*/rate"),
    ({"*": {"rate": 10}}, "/limits/*/rate"),
    ({"*": {"burst": 3}}, "/limits/*/burst"),
    # Counts are bounded where a structured header's integer is (15 digits).
    ({"*": {"rate": "99999999999999999999/s"}}, "/limits/*/rate"),
    ({"*": {"quota": "1000000000000000/day"}}, "/limits/*/quota"),
    ({"*": {"rate": "1" + "0" * 5000 + "/s"}}, "/limits/*/rate"),
    ({"a/b": []}, "/limits/a~1b"),
    ([], "/limits"),
])
def test_invalid_limits_name_the_field(limits: Any, field: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(limited_consumer(limits))
    assert caught.value.field == field


def test_invalid_max_rate_names_the_field() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(provider_manifest("p", "http://127.0.0.1:1/x", maxRate="5/fortnight"))
    assert caught.value.field == f"/provides/{ECHO}/maxRate"


def test_quota_resets_at_the_utc_day() -> None:
    now = [86400.0 * 20_000 - 2]  # two seconds before a UTC midnight
    limiter = LocalLimiter(clock=lambda: now[0])
    quota = [Check("quota", "c:a:b:x", Rate(2, 86400))]
    assert [limiter.hit_now(quota).refused is None for _ in range(3)] == [True, True, False]
    refused = limiter.hit_now(quota).refused
    assert refused is not None and refused.retry_s == pytest.approx(2.0)
    now[0] += 2.0
    verdict = limiter.hit_now(quota)
    assert verdict.refused is None and verdict.outcomes[0].remaining == 1


def test_a_refused_call_leaves_what_remains_of_the_other_limits() -> None:
    """All or none: the quota beside a refusing rate says what remains without the refused call."""
    limiter = LocalLimiter(clock=lambda: 1000.0)
    both = [Check("rate", "c:a:b:y", Rate(1, 60)), Check("quota", "c:a:b:y", Rate(5, 86400))]
    assert [o.remaining for o in limiter.hit_now(both).outcomes] == [0, 4]
    verdict = limiter.hit_now(both)
    assert verdict.refused is not None and verdict.refused.check.kind == "rate"
    assert verdict.outcomes[1].remaining == 4


def test_rate_admits_a_burst_then_one_per_interval() -> None:
    now = [1000.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    rate = [Check("rate", "c:a:b:x", Rate(4, 1))]
    assert [limiter.hit_now(rate).refused is None for _ in range(5)] == [True] * 4 + [False]
    now[0] += 0.25
    assert [limiter.hit_now(rate).refused is None for _ in range(2)] == [True, False]


def test_apps_list_shows_declared_limits() -> None:
    doc = {**limited_consumer({"*": {"rate": "100/s"}, ECHO: {"rate": "10/s", "quota": "5/day"}}),
           "provides": {"@x:Y:z": {"url": "http://127.0.0.1:1/", "maxRate": "200/s"}}}
    assert declared_limits(doc) == f"*=100/s;{ECHO}=10/s+5/day;@x:Y:z@provider=200/s"
    assert declared_limits(consumer_manifest()) == ""


@pytest.mark.parametrize(("key", "value"), [("default_rate", "5/day"), ("default_quota", "5/s"),
                                            ("default_rate", "-1/s"), ("backend", "memcached")])
def test_bad_ratelimit_config_names_the_key(tmp_path: Any, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key if key != "backend" else r"\[ratelimit\] backend"):
        open_limiter(make_config(tmp_path, ratelimit={key: value}), Metrics())
