"""docs/contract.md §3 "Request ids" over real sockets: the hub always makes
its own request id (context.requestId, the X-Request-Id sent to providers,
problem bodies, the access line); the consumer's valid X-Request-Id is only
a correlation id (echoed back, context.correlationId, the access line)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from proxy.catalogue.loader import load_catalogue
from tests.conftest import HubFactory, LogSink, Provider
from tests.support import ECHO, ROOT, call_headers

CALL = f"/v1/services/call/{ECHO}/provider-app"
FANOUT = f"/v1/services/call/{ECHO}"
GOOD = {"data": {"value": 3, "label": "x"}}
HUB_ID = re.compile(r"[0-9a-f]{32}")
CLIENTS = ["aiohttp", "lean"]


def access_line(log_sink: LogSink, mark: int) -> dict[str, Any]:
    [line] = [rec for rec in log_sink.since(mark) if rec.get("event") == "access"]
    return line


@pytest.mark.parametrize("client", CLIENTS)
async def test_consumer_id_is_a_correlation_id_never_the_request_id(
        make_hub: HubFactory, provider: Provider, log_sink: LogSink, client: str) -> None:
    hub = await make_hub(upstream={"client": client})
    mark = log_sink.mark()
    r = await hub.post(CALL, json=GOOD, headers=call_headers(**{"X-Request-Id": "replayed-id.1"}))
    assert r.status == 200, await r.text()
    assert r.headers["X-Request-Id"] == "replayed-id.1"
    headers, raw = provider.received[-1]
    context = orjson.loads(raw)["context"]
    assert HUB_ID.fullmatch(context["requestId"])
    assert headers["X-Request-Id"] == context["requestId"]
    assert context["correlationId"] == "replayed-id.1"
    line = access_line(log_sink, mark)
    assert line["requestId"] == context["requestId"] and line["correlationId"] == "replayed-id.1"


async def test_the_same_consumer_id_twice_gives_two_request_ids(hub: Any, provider: Provider) -> None:
    for _ in range(2):
        r = await hub.post(CALL, json=GOOD, headers=call_headers(**{"X-Request-Id": "same"}))
        assert r.status == 200
    first, second = (orjson.loads(raw)["context"] for _, raw in provider.received)
    assert first["requestId"] != second["requestId"]
    assert first["correlationId"] == second["correlationId"] == "same"


async def test_without_consumer_id_the_hub_id_is_echoed(hub: Any, provider: Provider, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    assert r.status == 200
    context = provider.last_body()["context"]
    assert "correlationId" not in context
    assert r.headers["X-Request-Id"] == context["requestId"]
    line = access_line(log_sink, mark)
    assert line["requestId"] == context["requestId"] and line["correlationId"] is None


@pytest.mark.parametrize("given", ["x" * 129, "has space", "semi;colon", "é"])
async def test_invalid_consumer_id_is_ignored(hub: Any, provider: Provider, given: str) -> None:
    r = await hub.post(CALL, json=GOOD, headers=call_headers(**{"X-Request-Id": given}))
    assert r.status == 200
    context = provider.last_body()["context"]
    assert "correlationId" not in context
    assert r.headers["X-Request-Id"] == context["requestId"]


async def test_longest_valid_consumer_id_is_kept(hub: Any, provider: Provider) -> None:
    given = "A-z_0.9" * 18 + "ab"  # 128 characters
    r = await hub.post(CALL, json=GOOD, headers=call_headers(**{"X-Request-Id": given}))
    assert r.status == 200 and r.headers["X-Request-Id"] == given
    assert provider.last_body()["context"]["correlationId"] == given


async def test_problem_carries_the_hub_id_and_echoes_the_consumer_id(
        hub: Any, provider: Provider, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    r = await hub.post(CALL, data=b"not json", headers=call_headers(**{"X-Request-Id": "corr-7"}))
    assert r.status == 400
    assert r.headers["X-Request-Id"] == "corr-7"
    doc = await r.json(content_type=None)
    assert HUB_ID.fullmatch(doc["requestId"])
    line = access_line(log_sink, mark)
    assert line["requestId"] == doc["requestId"] and line["correlationId"] == "corr-7"


async def test_fanout_legs_share_the_hub_id_and_carry_the_correlation_id(hub: Any, provider: Provider) -> None:
    r = await hub.post(FANOUT, json=GOOD, headers=call_headers(**{"X-Request-Id": "fan-1"}))
    assert r.status == 200 and r.headers["X-Request-Id"] == "fan-1"
    headers, raw = provider.received[-1]
    context = orjson.loads(raw)["context"]
    assert HUB_ID.fullmatch(context["requestId"]) and headers["X-Request-Id"] == context["requestId"]
    assert context["correlationId"] == "fan-1"


def test_shipped_catalogue_accepts_a_correlation_id() -> None:
    """Providers built from the shipped schemas must take the new context field."""
    catalogue = load_catalogue(ROOT / "catalogue")
    for action in catalogue.actions.values():
        for version in action.versions.values():
            context = {"issuedAt": "2026-03-01T12:00:00.000Z", "action": action.name, "community": "c",
                       "version": version.version, "requester": "r", "requestId": "0" * 32}
            pointers = {issue.pointer for issue in version.validate_request({"context": context, "secret": "s"})}
            with_correlation = {**context, "correlationId": "corr-1"}
            assert {issue.pointer for issue in version.validate_request(
                {"context": with_correlation, "secret": "s"})} == pointers, (action.name, version.version)
