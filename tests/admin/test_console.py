"""The console's data and actions over real sockets, without a browser:
GET /admin/v1/status, POST /admin/v1/reload, which routes the admin token
guards, and the pages' headers (tests/web/test_pages.py drives the pages)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.admin.app import create_admin_app
from proxy.admin.console import CONSOLE_STATIC
from proxy.web.app import create_app
from proxy.web.pages import CSP, STATIC
from proxy.web.state import HUB
from tests.conftest import Provider
from tests.support import (
    COMMUNITY,
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    problem,
    provider_manifest,
    write_catalogue,
)

ADMIN_TOKEN = "adm-status-4e5f6a7b8c"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def hubs(tmp_path: Path, aiohttp_client: Any, provider: Provider) -> tuple[TestClient, TestClient]:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    config = make_config(root, admin={"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()})
    hub = await aiohttp_client(create_app(config))
    return hub, await aiohttp_client(create_admin_app(hub.app[HUB]))


async def test_the_page_is_public_and_the_data_needs_the_token(hubs: Any) -> None:
    _, admin = hubs
    for path in ("/admin/", "/admin/static/console.js", "/admin/static/pages.css"):
        r = await admin.get(path)
        assert r.status == 200, path
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    await problem(await admin.get("/admin/static/secrets.txt"), 404, "not_found")
    await problem(await admin.get("/admin/v1/status"), 401, "unauthenticated")
    await problem(await admin.post("/admin/v1/reload"), 401, "unauthenticated")
    await problem(await admin.post("/admin/v1/reload", headers={"Authorization": "Bearer wrong"}),
                  401, "unauthenticated")


async def test_docs_page_is_served_with_a_strict_policy(hubs: Any) -> None:
    hub, _ = hubs
    r = await hub.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    assert r.headers["Content-Security-Policy"] == CSP
    assert "<script src=\"/docs/static/docs.js\"" in await r.text()
    assert (await hub.get("/docs/static/docs.js")).content_type == "text/javascript"
    await problem(await hub.get("/docs/static/nope.js"), 404, "not_found")


async def test_status_reports_traffic_providers_actions_and_communities(hubs: Any) -> None:
    hub, admin = hubs
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1, "label": "x"}},
                       headers=call_headers())
    assert r.status == 200
    await problem(await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {}},
                                 headers=call_headers()), 400, "invalid_request")
    r = await admin.get("/admin/v1/status", headers=AUTH)
    assert r.status == 200
    status = orjson.loads(await r.read())
    assert status["instance"] == hub.app[HUB].instance
    assert status["catalogue"]["generation"] == 1 and status["catalogue"]["lastReloadError"] is None
    assert status["registry"]["backend"] == "file"
    assert status["traffic"]["calls"] == 2 and status["traffic"]["errors"] == 1
    buckets = status["traffic"]["latencyBuckets"]
    assert buckets[-1] == [None, 2]
    [provider] = status["providers"]
    assert provider["id"] == "provider-app" and provider["breaker"] == "closed"
    assert provider["bulkheads"] == [{"action": None, "inFlight": 0, "limit": 100}]
    assert provider["errorCodes"] == {"invalid_request": 1}
    [entry] = status["conformance"]
    assert entry["provider"] == "provider-app" and entry["calls"] == 1 and entry["p99Ms"] is not None
    [action] = status["actions"]
    assert action["name"] == ECHO
    assert [v["version"] for v in action["versions"]] == [1, 2]
    assert action["versions"][0]["enforceRequest"] == "strict"
    assert action["violations"] == {"request": 1, "response": 0}
    assert status["communities"] == [{"community": COMMUNITY, "apps": ["consumer-app", "provider-app"]}]


async def test_status_without_providers(tmp_path: Path, aiohttp_client: Any) -> None:
    root = write_catalogue(tmp_path / "catalogue", [], [])
    config = make_config(root, admin={"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()})
    hub = await aiohttp_client(create_app(config))
    admin = await aiohttp_client(create_admin_app(hub.app[HUB]))
    status = orjson.loads(await (await admin.get("/admin/v1/status", headers=AUTH)).read())
    assert (status["providers"], status["actions"], status["communities"]) == ([], [], [])
    assert status["traffic"]["calls"] == 0


async def test_reload_is_sighup_over_http(hubs: Any, tmp_path: Path) -> None:
    hub, admin = hubs
    root = tmp_path / "catalogue"
    write_catalogue(root, [echo_action("@test:Later:added")], [])
    r = await admin.post("/admin/v1/reload", headers=AUTH)
    assert r.status == 200
    body = orjson.loads(await r.read())
    assert body["reloaded"] is True and body["instance"] == hub.app[HUB].instance
    assert body["catalogue"]["generation"] == 2 and body["catalogue"]["actions"] == 2

    (root / "actions" / "broken.json").write_text("{not json")
    r = await admin.post("/admin/v1/reload", headers=AUTH)
    assert r.status == 200  # a broken catalogue is an answer, not an error
    body = orjson.loads(await r.read())
    assert body["reloaded"] is False
    assert "broken.json" in body["catalogue"]["lastReloadError"]
    assert body["catalogue"]["generation"] == 2
    assert hub.app[HUB].catalogue.generation == 2


def test_no_page_asset_reaches_outside() -> None:
    """No absolute URL in the shipped pages: everything is asked of the hub itself."""
    for folder in (STATIC, CONSOLE_STATIC):
        for path in folder.iterdir():
            text = path.read_text()
            assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
