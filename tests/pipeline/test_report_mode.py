"""Report-only rollout: with `enforce: report` a non-conforming payload is
relayed as if valid, the violation (pointer + message, never the payload)
is logged and counted; switching the action file to strict and reloading
(hub.reload(), and SIGHUP on a real `apihub serve`) makes the same call fail."""

from __future__ import annotations

import hashlib
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.web.state import HUB
from tests.conftest import HubFactory, LogSink, Provider
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    problem,
    provider_manifest,
    start_hub_process,
    thread_provider,
    wait_for,
    wait_ready,
    write_catalogue,
    write_config_file,
)

CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": "x"}}
PRIVATE = "private-value-4242"
OFF = b'{"data": {"nope": "' + PRIVATE.encode() + b'"}}'


def headers() -> dict[str, str]:
    return call_headers()


def violation_lines(sink: LogSink, mark: int) -> list[dict[str, Any]]:
    return [r for r in sink.since(mark) if r.get("event") == "validation_failed"]


async def off_protocol(request: web.Request, raw: bytes) -> web.StreamResponse:
    return web.Response(body=OFF, content_type="application/json")


async def test_report_response_relayed_then_strict_after_reload(
        make_hub: HubFactory, provider: Provider, tmp_path: Path, log_sink: LogSink) -> None:
    provider.behaviour = off_protocol
    hub = await make_hub(actions=[echo_action(enforce={"response": "report"})])
    mark = log_sink.mark()
    r = await hub.post(CALL, json=GOOD, headers=headers())
    assert r.status == 200
    assert await r.read() == OFF  # relayed as if valid, bytes unchanged
    (line,) = violation_lines(log_sink, mark)
    assert line["mode"] == "report" and line["side"] == "response"
    assert line["provider"] == "provider-app" and line["action"] == ECHO and line["version"] == 2
    assert line["requestId"] == r.headers["X-Request-Id"]
    assert line["violations"] == [{"path": "/data/echo", "message": "is required"}]
    assert PRIVATE not in log_sink.text()
    metrics = await (await hub.get("/metrics")).text()
    assert (f'apihub_validation_failures_total{{action="{ECHO}",mode="report",provider="provider-app",'
            f'side="response"}} 1.0') in metrics

    # The operator enforces it: edit the action file, reload.
    write_catalogue(tmp_path / "catalogue", [echo_action()], [])
    assert await hub.server.app[HUB].reload()
    mark = log_sink.mark()
    r = await hub.post(CALL, json=GOOD, headers=headers())
    doc = await problem(r, 502, "invalid_provider_response")
    assert doc["errors"] == [{"path": "/data/echo", "message": "is required"}]
    assert [line["mode"] for line in violation_lines(log_sink, mark)] == ["strict"]
    metrics = await (await hub.get("/metrics")).text()
    assert (f'apihub_validation_failures_total{{action="{ECHO}",mode="strict",provider="provider-app",'
            f'side="response"}} 1.0') in metrics


async def test_report_request_forwarded_then_strict_after_reload(
        make_hub: HubFactory, provider: Provider, tmp_path: Path, log_sink: LogSink) -> None:
    hub = await make_hub(actions=[echo_action(enforce={"request": "report", "response": "strict"})])
    bad = {"data": {"value": -5}}  # v2 wants a label and value >= 0
    mark = log_sink.mark()
    r = await hub.post(CALL, json=bad, headers=headers())
    assert r.status == 200, await r.text()
    assert provider.last_body()["data"] == {"value": -5}
    (line,) = violation_lines(log_sink, mark)
    assert (line["side"], line["mode"]) == ("request", "report")
    assert line["violations"] == [{"path": "/data/label", "message": "is required"},
                                  {"path": "/data/value", "message": "must be >= 0"}]
    metrics = await (await hub.get("/metrics")).text()
    assert (f'apihub_validation_failures_total{{action="{ECHO}",mode="report",provider="provider-app",'
            f'side="request"}} 1.0') in metrics

    write_catalogue(tmp_path / "catalogue", [echo_action()], [])
    assert await hub.server.app[HUB].reload()
    calls_before = len(provider.received)
    await problem(await hub.post(CALL, json=bad, headers=headers()), 400, "invalid_request")
    assert len(provider.received) == calls_before


async def test_enforce_per_version(make_hub: HubFactory, provider: Provider) -> None:
    """Only the version being tightened is in report mode; the others stay strict."""
    provider.behaviour = off_protocol
    action = echo_action()
    action["versions"]["2"]["enforce"] = {"response": "report"}
    hub = await make_hub(actions=[action])
    assert (await hub.post(CALL + "?version=2", json=GOOD, headers=headers())).status == 200
    await problem(await hub.post(CALL + "?version=1", json=GOOD, headers=headers()),
                  502, "invalid_provider_response")


async def test_not_json_is_never_relayed_in_report_mode(make_hub: HubFactory, provider: Provider) -> None:
    async def garbage(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.Response(body=b"<html>oops</html>", content_type="text/html")

    provider.behaviour = garbage
    hub = await make_hub(actions=[echo_action(enforce={"response": "report"})])
    await problem(await hub.post(CALL, json=GOOD, headers=headers()), 502, "invalid_provider_response")


# ---- a real `apihub serve`: SIGHUP flips report to strict ------------------------

ADMIN_TOKEN = "adm-token-sighup-31c2"


@pytest.fixture
def off_provider() -> Iterator[str]:
    with thread_provider(lambda body: OFF) as url:
        yield url


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_sighup_switches_report_to_strict(tmp_path: Path, off_provider: str) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action(enforce={"response": "report"})],
                           [provider_manifest("provider-app", off_provider), consumer_manifest()])
    port, admin_port = free_port(), free_port()
    config = write_config_file(tmp_path / "config.toml", root, port, admin={
        "enabled": True, "port": admin_port,
        "token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()})
    log = tmp_path / "hub.log"
    proc = start_hub_process(config, log)
    base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        wait_ready(base + "/healthz", proc)
        wait_for(lambda: get(admin + "/admin/v1/conformance")[0] == 401)
        assert post(base + CALL, GOOD) == (200, OFF)
        status, doc = get(admin + "/admin/v1/conformance", ADMIN_TOKEN)
        assert status == 200
        (entry,) = doc["entries"]
        assert (entry["calls"], entry["successes"], entry["invalidResponses"]) == (1, 1, 1)

        write_catalogue(root, [echo_action()], [])
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: get(base + "/healthz")[1]["catalogue"]["generation"] == 2)
        status, raw = post(base + CALL, GOOD)
        assert status == 502 and orjson.loads(raw)["code"] == "invalid_provider_response"
        (entry,) = get(admin + "/admin/v1/conformance", ADMIN_TOKEN)[1]["entries"]
        assert (entry["calls"], entry["successes"], entry["invalidResponses"]) == (2, 1, 2)
        assert [v["pointer"] for v in entry["lastViolations"]] == ["/data/echo", "/data/echo"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    text = log.read_text()
    modes = [json.loads(line)["mode"] for line in text.splitlines()
             if line.startswith("{") and '"validation_failed"' in line]
    assert modes == ["report", "strict"]
    assert PRIVATE not in text and ADMIN_TOKEN not in text and CONSUMER_TOKEN not in text
