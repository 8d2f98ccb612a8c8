"""An action whose published OpenAPI document describes no answer (a `200`
with a description and no content: an acknowledgement), served end to end
by real providers over real sockets: an empty answer is an empty 200, any
JSON within the size limit is relayed as sent, anything else is 502
`invalid_provider_response`; the hub's own OpenAPI document says the
answer is undescribed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.web.app import create_app

from tests.catalogue.test_openapi_import import document, operation, write
from tests.conftest import Behaviour, Provider
from tests.support import call_headers, consumer_manifest, make_config, provider_manifest, write_catalogue

ACK = "@school:Notice:acknowledge"
StartProvider = Callable[[Behaviour], Awaitable[Provider]]


def answering(body: bytes, content_type: str = "application/json") -> Behaviour:
    async def behaviour(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    return behaviour


async def hub_for(tmp_path: Path, aiohttp_client: Any, *providers: tuple[str, Provider],
                  max_response_bytes: int | None = None) -> Any:
    op = operation({"type": "object"})
    op["responses"] = {"200": {"description": "The notice was acknowledged."}}
    root = write_catalogue(
        tmp_path / "catalogue", [],
        [*(provider_manifest(app_id, p.url, actions={ACK: [1]}) for app_id, p in providers),
         consumer_manifest(consumes=(ACK,))],
    )
    write(root, "notices.yaml", document({f"/{ACK}": {"post": op}}))
    limits = {"max_response_bytes": max_response_bytes} if max_response_bytes else {}
    return await aiohttp_client(create_app(make_config(root, limits=limits)))


@pytest.mark.parametrize(("sent", "status", "relayed"), [
    (b"", 200, b""),
    (b" \r\n", 200, b""),
    (b'{"seen": true, "at": "2026-03-01"}', 200, b'{"seen": true, "at": "2026-03-01"}'),
    (b"[1,2,3]", 200, b"[1,2,3]"),
    (b"null", 200, b"null"),
])
async def test_empty_or_any_json_is_relayed(tmp_path: Path, aiohttp_client: Any, start_provider: StartProvider,
                                            sent: bytes, status: int, relayed: bytes) -> None:
    provider = await start_provider(answering(sent))
    hub = await hub_for(tmp_path, aiohttp_client, ("provider-app", provider))
    r = await hub.post(f"/v1/services/call/{ACK}/provider-app", json={"data": {"notice": "n-1"}},
                       headers=call_headers())
    assert r.status == status
    assert await r.read() == relayed
    if relayed:
        assert r.headers["Content-Type"] == "application/json"
    else:
        assert r.headers["Content-Length"] == "0" and "Content-Type" not in r.headers
    assert provider.last_body()["data"] == {"notice": "n-1"}  # forwarded as any other call


@pytest.mark.parametrize("sent", [b"OK", b"<html>accepted</html>", b'{"half": '])
async def test_anything_else_is_an_invalid_provider_response(tmp_path: Path, aiohttp_client: Any,
                                                             start_provider: StartProvider, sent: bytes) -> None:
    provider = await start_provider(answering(sent, "text/plain"))
    hub = await hub_for(tmp_path, aiohttp_client, ("provider-app", provider))
    r = await hub.post(f"/v1/services/call/{ACK}/provider-app", json={"data": {}}, headers=call_headers())
    assert r.status == 502
    assert (await r.json())["code"] == "invalid_provider_response"


async def test_the_size_limit_still_holds(tmp_path: Path, aiohttp_client: Any,
                                          start_provider: StartProvider) -> None:
    provider = await start_provider(answering(orjson.dumps({"blob": "x" * 5000})))
    hub = await hub_for(tmp_path, aiohttp_client, ("provider-app", provider), max_response_bytes=1000)
    r = await hub.post(f"/v1/services/call/{ACK}/provider-app", json={"data": {}}, headers=call_headers())
    assert r.status == 502
    assert (await r.json())["code"] == "invalid_provider_response"


async def test_fanout_entry_without_data_for_an_empty_answer(tmp_path: Path, aiohttp_client: Any,
                                                             start_provider: StartProvider) -> None:
    silent = await start_provider(answering(b""))
    talkative = await start_provider(answering(b'{"seen": true}'))
    hub = await hub_for(tmp_path, aiohttp_client, ("a-silent", silent), ("b-talkative", talkative))
    r = await hub.post(f"/v1/services/call/{ACK}", json={"data": {}}, headers=call_headers())
    assert r.status == 200
    results = (await r.json())["results"]
    assert [(e["provider"]["id"], e["status"], e.get("data", "absent")) for e in results] == [
        ("a-silent", "ok", "absent"), ("b-talkative", "ok", {"seen": True})]


async def test_exported_openapi_says_the_answer_is_undescribed(tmp_path: Path, aiohttp_client: Any,
                                                               start_provider: StartProvider) -> None:
    provider = await start_provider(answering(b""))
    hub = await hub_for(tmp_path, aiohttp_client, ("provider-app", provider))
    doc = await (await hub.get("/v1/openapi.json")).json()
    operation_ = next(item["post"] for path, item in doc["paths"].items() if ACK in path and "{provider}" in path)
    answer = operation_["responses"]["200"]
    assert "Not described for version(s) 1" in answer["description"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema) == {"title", "description"}  # accepts any JSON
    assert "does not describe this answer" in schema["description"]
