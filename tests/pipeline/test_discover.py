"""Discover: the providers installed in the caller's community that serve
an action, with the versions both they and the catalogue have."""

from __future__ import annotations

from typing import Any

from tests.conftest import HubFactory, Provider
from tests.support import COMMUNITY, ECHO, call_headers, consumer_manifest, echo_action, provider_manifest
from tests.support import problem

DISCOVER = f"/v1/services/discover/{ECHO}"


def headers() -> dict[str, str]:
    h = call_headers()
    del h["Content-Type"]
    return h


async def discovering_hub(make_hub: HubFactory, provider: Provider) -> Any:
    return await make_hub(actions=[echo_action(versions=(1, 2))], apps=[
        provider_manifest("zeta-erp", provider.url, actions={ECHO: [1, 2, 3]}),
        provider_manifest("alpha-erp", provider.url, actions={ECHO: [1]}),
        provider_manifest("elsewhere-erp", provider.url, communities=("other-school",)),
        provider_manifest("future-erp", provider.url, actions={ECHO: [9]}),
        consumer_manifest(),
    ])


async def test_discover_filters_by_community_sorted(make_hub: HubFactory, provider: Provider) -> None:
    hub = await discovering_hub(make_hub, provider)
    r = await hub.get(DISCOVER, headers=headers())
    assert r.status == 200
    assert await r.json() == [
        {"id": "alpha-erp", "displayName": "Alpha Erp", "icon": "https://example.org/alpha-erp.png",
         "versions": [1]},
        {"id": "zeta-erp", "displayName": "Zeta Erp", "icon": "https://example.org/zeta-erp.png",
         "versions": [1, 2]},
    ]


async def test_discover_filters_by_version(make_hub: HubFactory, provider: Provider) -> None:
    hub = await discovering_hub(make_hub, provider)
    r = await hub.get(DISCOVER + "?version=2", headers=headers())
    assert [p["id"] for p in await r.json()] == ["zeta-erp"]
    r = await hub.get(DISCOVER + "?version=1", headers=headers())
    assert [p["id"] for p in await r.json()] == ["alpha-erp", "zeta-erp"]


async def test_discover_errors(make_hub: HubFactory, provider: Provider) -> None:
    hub = await discovering_hub(make_hub, provider)
    await problem(await hub.get("/v1/services/discover/@no:such:action", headers=headers()), 404,
                  "unknown_action")
    await problem(await hub.get(DISCOVER + "?version=7", headers=headers()), 404, "unsupported_version")
    await problem(await hub.get(DISCOVER + "?version=x", headers=headers()), 400, "invalid_parameter")
    await problem(await hub.get(DISCOVER, headers={"community-id": COMMUNITY}), 401, "unauthenticated")
    await problem(await hub.get(DISCOVER, headers=call_headers(community="nowhere")), 403, "forbidden")


async def test_discover_empty_list(make_hub: HubFactory, provider: Provider) -> None:
    hub = await make_hub(apps=[consumer_manifest()])
    r = await hub.get(DISCOVER, headers=headers())
    assert r.status == 200 and await r.json() == []
