"""The admin API for apps (docs/contract.md, "Admin API") over a real socket
and a real redis-server, the file backend's read-only answers, and the
`apihub apps push|list|rm` CLI that writes the same data model."""

from __future__ import annotations

import json

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from proxy.admin.app import create_admin_app
from proxy.web.app import create_app
from proxy.run.cli import main
from proxy.web.state import HUB
from proxy.registry import open_registry

from tests.conftest import Provider
from tests.redis_server import RedisServer
from tests.support import (
    problem,
    COMMUNITY,
    ECHO,
    PROVIDER_SECRET,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
    write_config_file,
)

pytestmark = pytest.mark.redis



ADMIN_TOKEN = "adm-tok-51f0e2d3c4b5"
ADMIN = {"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": "x"}}

Hubs = tuple[TestClient, TestClient]


@pytest.fixture
def start_hubs(tmp_path: Path, aiohttp_client: Any, redis_server: RedisServer) -> Callable[..., Awaitable[Hubs]]:
    """The hub and its admin listener on one Hub; redis backend unless `file_apps` are given."""

    async def start(file_apps: list[dict[str, Any]] | None = None) -> Hubs:
        root = write_catalogue(tmp_path / "catalogue", [echo_action()], file_apps or [])
        if file_apps is None:
            config = make_config(root, admin=ADMIN,
                                 registry={"backend": "redis", "url": redis_server.url, "prefix": "adm"})
        else:
            config = make_config(root, admin=ADMIN)
        hub = await aiohttp_client(create_app(config, registry=open_registry(config)))
        admin = await aiohttp_client(create_admin_app(hub.app[HUB]))
        return hub, admin

    return start




async def call_status(hub: TestClient) -> int:
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    await r.read()
    return r.status


async def test_admin_token_required(start_hubs: Any) -> None:
    _, admin = await start_hubs()
    await problem(await admin.get("/admin/v1/apps"), 401, "unauthenticated")
    await problem(await admin.get("/admin/v1/apps", headers={"Authorization": "Bearer nope"}),
                  401, "unauthenticated")
    await problem(await admin.put("/admin/v1/apps/x", json={"id": "x"}), 401, "unauthenticated")
    assert (await admin.get("/admin/v1/apps", headers=AUTH)).status == 200


async def test_put_get_list_delete(start_hubs: Any, provider: Provider, log_sink: Any) -> None:
    hub, admin = await start_hubs()
    mark = log_sink.mark()
    r = await admin.put("/admin/v1/apps/provider-app", headers=AUTH,
                        json=provider_manifest("provider-app", provider.url))
    assert r.status == 201, await r.text()
    assert (await r.json())["secret"] == "***"
    r = await admin.put("/admin/v1/apps/consumer-app", headers=AUTH, json=consumer_manifest())
    assert r.status == 201
    assert await call_status(hub) == 200  # the writing instance sees its own write at once
    assert provider.last_body()["secret"] == PROVIDER_SECRET

    r = await admin.put("/admin/v1/apps/provider-app", headers=AUTH,
                        json=provider_manifest("provider-app", provider.url, actions={ECHO: [1]}))
    assert r.status == 200
    r = await admin.get("/admin/v1/apps/provider-app", headers=AUTH)
    doc = await r.json()
    assert doc["secret"] == "***" and doc["provides"][ECHO]["versions"] == [1]
    r = await admin.get("/admin/v1/apps", headers=AUTH)
    listing = await r.json()
    assert listing["backend"] == "redis"
    assert [a["id"] for a in listing["apps"]] == ["consumer-app", "provider-app"]
    assert PROVIDER_SECRET.encode() not in orjson.dumps(listing)

    r = await admin.delete("/admin/v1/apps/provider-app", headers=AUTH)
    assert r.status == 204
    await problem(await admin.get("/admin/v1/apps/provider-app", headers=AUTH), 404, "not_found")
    await problem(await admin.delete("/admin/v1/apps/provider-app", headers=AUTH), 404, "not_found")
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 404, "unknown_provider")
    text = orjson.dumps(log_sink.since(mark)).decode()
    assert PROVIDER_SECRET not in text and ADMIN_TOKEN not in text


async def test_env_secret_stored_as_written(start_hubs: Any, provider: Provider) -> None:
    _, admin = await start_hubs()
    manifest = provider_manifest("provider-app", provider.url, secret={"env": "ONLY_ON_THE_HUBS"})
    r = await admin.put("/admin/v1/apps/provider-app", headers=AUTH, json=manifest)
    assert r.status == 201, await r.text()
    r = await admin.get("/admin/v1/apps/provider-app", headers=AUTH)
    assert (await r.json())["secret"] == {"env": "ONLY_ON_THE_HUBS"}


def _bad(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = provider_manifest("provider-app", "http://127.0.0.1:1/a")
    change(doc)
    return doc


@pytest.mark.parametrize(("doc", "field"), [
    (_bad(lambda d: d["provides"][ECHO].update(url="ftp://x")), f"/provides/{ECHO}/url"),
    (_bad(lambda d: d["provides"][ECHO].update(versions=[0])), f"/provides/{ECHO}/versions"),
    (_bad(lambda d: d.update(tokens=["plain-token"])), "/tokens/0"),
    (_bad(lambda d: d.pop("secret")), "/secret"),
    (_bad(lambda d: d.update(colour="blue")), "/colour"),
    (_bad(lambda d: d.update(id="someone-else")), "/id"),
    (_bad(lambda d: d.update(communities="all")), "/communities"),
    ([1, 2], ""),
])
async def test_bad_manifest_names_the_field(start_hubs: Any, doc: Any, field: str) -> None:
    _, admin = await start_hubs()
    r = await admin.put("/admin/v1/apps/provider-app", headers=AUTH, json=doc)
    body = await problem(r, 400, "invalid_manifest")
    assert body["errors"][0]["path"] == field
    assert f"manifest field {field or '/'}" in body["detail"]
    await problem(await admin.get("/admin/v1/apps/provider-app", headers=AUTH), 404, "not_found")


async def test_body_must_be_json(start_hubs: Any) -> None:
    _, admin = await start_hubs()
    r = await admin.put("/admin/v1/apps/a", headers={**AUTH, "Content-Type": "application/json"},
                        data=b"{not json")
    await problem(r, 400, "invalid_json")
    r = await admin.put("/admin/v1/apps/a", headers={**AUTH, "Content-Type": "text/plain"}, data=b"{}")
    await problem(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("depth", [65, 254, 300, 900])
async def test_a_manifest_nested_too_deep_is_invalid_json(start_hubs: Any, depth: int) -> None:
    """The JSON rules of a call's body hold for a manifest: never a 500 where orjson cannot encode it back."""
    _, admin = await start_hubs()
    body = b'{"id": "a", "$comment": ' + b"[" * depth + b"]" * depth + b"}"
    r = await admin.put("/admin/v1/apps/a", headers={**AUTH, "Content-Type": "application/json"}, data=body)
    await problem(r, 400, "invalid_json")


async def test_a_manifest_with_an_integer_past_64_bits_is_stored(start_hubs: Any) -> None:
    _, admin = await start_hubs()
    manifest = {**consumer_manifest(), "id": "big", "tokens": [], "$comment": 10**30}
    r = await admin.put("/admin/v1/apps/big", headers={**AUTH, "Content-Type": "application/json"},
                        data=json.dumps(manifest).encode())
    assert r.status == 201, await r.text()


async def test_token_held_by_another_app(start_hubs: Any) -> None:
    _, admin = await start_hubs()
    assert (await admin.put("/admin/v1/apps/consumer-app", headers=AUTH, json=consumer_manifest())).status == 201
    r = await admin.put("/admin/v1/apps/twin", headers=AUTH, json=consumer_manifest("twin"))
    body = await problem(r, 400, "invalid_manifest")
    assert body["errors"][0]["path"] == "/tokens/0" and "consumer-app" in body["detail"]


async def test_install_and_uninstall(start_hubs: Any, provider: Provider) -> None:
    hub, admin = await start_hubs()
    await admin.put("/admin/v1/apps/provider-app", headers=AUTH, json=provider_manifest("provider-app", provider.url))
    await admin.put("/admin/v1/apps/consumer-app", headers=AUTH, json=consumer_manifest(communities=()))
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 403, "forbidden")
    r = await admin.put(f"/admin/v1/communities/{COMMUNITY}/apps/consumer-app", headers=AUTH)
    assert r.status == 200
    assert await r.json() == {"community": COMMUNITY, "app": "consumer-app", "installed": True}
    assert (await admin.put(f"/admin/v1/communities/{COMMUNITY}/apps/consumer-app", headers=AUTH)).status == 200
    assert await call_status(hub) == 200
    r = await admin.get("/admin/v1/apps/consumer-app", headers=AUTH)
    assert (await r.json())["communities"] == [COMMUNITY]
    r = await admin.delete(f"/admin/v1/communities/{COMMUNITY}/apps/provider-app", headers=AUTH)
    assert r.status == 204
    await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 404, "unknown_provider")
    await problem(await admin.put(f"/admin/v1/communities/{COMMUNITY}/apps/ghost", headers=AUTH),
                  404, "not_found")


async def test_registry_down_is_503(start_hubs: Any, redis_server: RedisServer) -> None:
    _, admin = await start_hubs()
    redis_server.stop()
    await problem(await admin.get("/admin/v1/apps", headers=AUTH), 503, "registry_unavailable")
    await problem(await admin.put("/admin/v1/apps/consumer-app", headers=AUTH, json=consumer_manifest()),
                  503, "registry_unavailable")


async def test_file_backend_is_read_only(start_hubs: Any, provider: Provider) -> None:
    hub, admin = await start_hubs(file_apps=[provider_manifest("provider-app", provider.url),
                                             consumer_manifest()])
    r = await admin.get("/admin/v1/apps", headers=AUTH)
    listing = await r.json()
    assert listing["backend"] == "file"
    assert [a["id"] for a in listing["apps"]] == ["consumer-app", "provider-app"]
    assert listing["apps"][1]["secret"] == "***"
    assert (await (await admin.get("/admin/v1/apps/provider-app", headers=AUTH)).json())["secret"] == "***"
    for method, path, body in [
        ("PUT", "/admin/v1/apps/provider-app", provider_manifest("provider-app", provider.url)),
        ("DELETE", "/admin/v1/apps/provider-app", None),
        ("PUT", f"/admin/v1/communities/{COMMUNITY}/apps/provider-app", None),
        ("DELETE", f"/admin/v1/communities/{COMMUNITY}/apps/provider-app", None),
    ]:
        r = await admin.request(method, path, headers=AUTH, json=body)
        doc = await problem(r, 409, "registry_read_only")
        assert "catalogue/apps" in doc["detail"]
    # Whatever the write carries: 409 comes before the body is read.
    for data, content_type in [(b"{nope", "application/json"), (b"x", "text/plain"), (b"[]", "application/json"),
                               (b"{}", "application/json;a*")]:
        r = await admin.put("/admin/v1/apps/provider-app", data=data,
                            headers={**AUTH, "Content-Type": content_type})
        await problem(r, 409, "registry_read_only")
    assert await call_status(hub) == 200


# ---- the CLI ------------------------------------------------------------------------

def _cli_config(tmp_path: Path, redis_url: str | None) -> Path:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()], [])
    registry = {"backend": "redis", "url": redis_url, "prefix": "adm"} if redis_url else {}
    return write_config_file(tmp_path / "config.toml", root, 1, registry=registry)


def test_cli_push_list_rm(tmp_path: Path, redis_server: RedisServer, capsys: Any) -> None:
    config = str(_cli_config(tmp_path, redis_server.url))
    apps = write_catalogue(tmp_path / "manifests", [], [
        provider_manifest("provider-app", "http://127.0.0.1:1/a"), consumer_manifest()]) / "apps"
    assert main(["apps", "push", str(apps), "--config", config]) == 0
    out = capsys.readouterr().out
    assert "created   consumer-app" in out and "created   provider-app" in out
    assert main(["apps", "push", str(apps), "--config", config]) == 0  # idempotent
    assert capsys.readouterr().out.count("unchanged") == 2

    assert main(["apps", "list", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["consumer-app", "provider-app"]
    assert main(["apps", "list", "--json", "--config", config]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert listed[1]["secret"] == "***" and PROVIDER_SECRET not in orjson.dumps(listed).decode()

    assert main(["apps", "rm", "provider-app", "--config", config]) == 0
    assert main(["apps", "rm", "provider-app", "--config", config]) == 1
    assert "no app 'provider-app'" in capsys.readouterr().err
    assert main(["apps", "list", "--config", config]) == 0
    assert capsys.readouterr().out.startswith("consumer-app\t")


def test_cli_push_refuses_bad_manifests_whole(tmp_path: Path, redis_server: RedisServer, capsys: Any) -> None:
    config = str(_cli_config(tmp_path, redis_server.url))
    bad = provider_manifest("bad-app", "not-a-url")
    apps = write_catalogue(tmp_path / "manifests", [], [consumer_manifest(), bad]) / "apps"
    assert main(["apps", "push", str(apps), "--config", config]) == 1
    err = capsys.readouterr().err
    assert f"bad-app.json: /provides/{ECHO}/url" in err and "nothing pushed" in err
    assert main(["apps", "list", "--config", config]) == 0
    assert capsys.readouterr().out == ""


def test_cli_needs_redis_backend_and_a_reachable_redis(tmp_path: Path, capsys: Any) -> None:
    config = str(_cli_config(tmp_path, None))
    assert main(["apps", "list", "--config", config]) == 2
    assert 'backend = "redis"' in capsys.readouterr().err
    (tmp_path / "config.toml").unlink()
    config = str(_cli_config(tmp_path, "redis://:pw-cli-secret@127.0.0.1:1/0"))
    assert main(["apps", "list", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "cannot use the registry" in err and "pw-cli-secret" not in err


@pytest.mark.parametrize(("length", "first"), [(5_000_000, b"HTTP/1.1 413 "), (200, b"HTTP/1.1 100 Continue")])
async def test_expect_continue_on_a_manifest_after_the_size_check(start_hubs: Any, length: int, first: bytes) -> None:
    """The admin's body reader invites a manifest only within the size limit."""
    import asyncio

    _, admin = await start_hubs()  # the Redis registry: writable
    reader, writer = await asyncio.open_connection("127.0.0.1", admin.server.port)
    try:
        writer.write(f"PUT /admin/v1/apps/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
                     .encode())
        await writer.drain()
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(first)
    finally:
        writer.close()
