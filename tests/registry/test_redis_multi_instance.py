"""Two real hub processes on one redis-server: a change made through A's
admin API is seen by B within a second (pub/sub, not the TTL); with Redis
stopped B keeps serving what it has cached, answers 503 fast for the rest,
and recovers by itself when Redis is back on the same port."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    OTHER_TOKEN,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
    start_hub_process,
    thread_provider,
    wait_ready,
    write_catalogue,
    write_config_file,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]



ADMIN_TOKEN = "adm-multi-7e6d5c4b3a"
CALL = f"/v1/services/call/{ECHO}/provider-app"


@pytest.fixture
def echo_provider() -> Iterator[str]:
    with thread_provider() as url:
        yield url


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
            timeout: float = 5) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def call(base: str, token: str = CONSUMER_TOKEN) -> tuple[int, Any]:
    return request("POST", base + CALL, {"data": {"value": 1, "label": "x"}}, {
        "Authorization": f"Bearer {token}", "community-id": "colegio-teste"})


def within(seconds: float, check: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true within {seconds}s")
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.fixture
def two_hubs(tmp_path: Path, redis_server: RedisServer) -> Iterator[dict[str, str]]:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()], [])
    registry = {"backend": "redis", "url": redis_server.url, "prefix": "multi", "cache_ttl_s": 30}
    port_a, port_b, admin_port = free_port(), free_port(), free_port()
    admin = {"enabled": True, "port": admin_port,
             "token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
    config_a = write_config_file(tmp_path / "a.toml", root, port_a, registry=registry, admin=admin)
    config_b = write_config_file(tmp_path / "b.toml", root, port_b, registry=registry)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(start_hub_process(config_a, tmp_path / "a.log"))
        procs.append(start_hub_process(config_b, tmp_path / "b.log"))
        hubs = {"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}",
                "admin": f"http://127.0.0.1:{admin_port}"}
        wait_ready(hubs["a"] + "/healthz", procs[0])
        wait_ready(hubs["b"] + "/healthz", procs[1])
        within(10.0, lambda: _answers(hubs["admin"] + "/admin/v1/apps"))
        yield hubs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        logs = "".join(p.read_text() for p in tmp_path.glob("*.log") if p.name in ("a.log", "b.log"))
        assert ADMIN_TOKEN not in logs and CONSUMER_TOKEN not in logs and OTHER_TOKEN not in logs


def _answers(url: str) -> bool:
    try:
        request("GET", url, timeout=1)
    except OSError:
        return False
    return True


def admin(hubs: dict[str, str], method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return request(method, hubs["admin"] + path, body, {"Authorization": f"Bearer {ADMIN_TOKEN}"})


def test_change_through_a_seen_by_b_within_a_second(two_hubs: dict[str, str], echo_provider: str) -> None:
    hubs = two_hubs
    assert admin(hubs, "PUT", "/admin/v1/apps/consumer-app", consumer_manifest())[0] == 201
    # B now knows the consumer, and caches that there is no provider-app (TTL 30 s).
    within(1.0, lambda: call(hubs["b"])[0] == 404)
    assert call(hubs["b"])[1]["code"] == "unknown_provider"

    status, _ = admin(hubs, "PUT", "/admin/v1/apps/provider-app",
                      provider_manifest("provider-app", echo_provider))
    assert status == 201
    took = within(1.0, lambda: call(hubs["b"])[0] == 200)
    assert call(hubs["b"])[1] == {"data": {"echo": {"value": 1, "label": "x"}}}

    assert admin(hubs, "DELETE", "/admin/v1/apps/provider-app")[0] == 204
    took = max(took, within(1.0, lambda: call(hubs["b"])[0] == 404))
    assert call(hubs["b"])[1]["code"] == "unknown_provider"
    print(f"B saw A's changes within {took * 1000:.0f} ms")


def test_redis_outage_and_recovery(two_hubs: dict[str, str], echo_provider: str,
                                   redis_server: RedisServer) -> None:
    hubs = two_hubs
    admin(hubs, "PUT", "/admin/v1/apps/provider-app", provider_manifest("provider-app", echo_provider))
    admin(hubs, "PUT", "/admin/v1/apps/consumer-app", consumer_manifest())
    admin(hubs, "PUT", "/admin/v1/apps/other-app", consumer_manifest("other-app", OTHER_TOKEN))
    within(1.0, lambda: call(hubs["b"])[0] == 200)  # B has the consumer and provider cached

    redis_server.stop(save=True)
    assert call(hubs["b"])[0] == 200
    started = time.monotonic()
    status, body = call(hubs["b"], OTHER_TOKEN)  # B never looked this token up
    assert time.monotonic() - started < 1.0
    assert status == 503 and body["code"] == "registry_unavailable"
    within(2.0, lambda: request("GET", hubs["b"] + "/healthz")[1]["registry"]["status"] == "unavailable")
    assert admin(hubs, "GET", "/admin/v1/apps")[0] == 503
    assert call(hubs["b"])[0] == 200  # still, from the cache

    redis_server.start()  # same port; the saved data is back
    within(5.0, lambda: call(hubs["b"], OTHER_TOKEN)[0] == 200)
    within(3.0, lambda: request("GET", hubs["b"] + "/healthz")[1]["registry"]["status"] == "ok")
    # B re-subscribed by itself: A's next change reaches it within a second again.
    within(3.0, lambda: request("GET", hubs["b"] + "/healthz")[1]["registry"]["subscribed"])
    assert admin(hubs, "DELETE", "/admin/v1/apps/provider-app")[0] == 204
    within(1.0, lambda: call(hubs["b"])[0] == 404)
