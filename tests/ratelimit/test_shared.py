"""Limits shared between processes, as real hub processes over real sockets:
two hubs on one redis-server hold one declared rate between them, and the
file backend's `local` limiter holds one limit across two workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from tests.support import (
    ECHO,
    call_headers,
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

pytestmark = pytest.mark.slow

CALL = f"/v1/services/call/{ECHO}/provider-app"
BODY = json.dumps({"data": {"value": 1, "label": "x"}}).encode()
HEADERS = call_headers()
RATE = 10  # per second, declared
WINDOW_S = 10.0


def _catalogue(tmp_path: Path, provider_url: str, limits: dict[str, Any]) -> Path:
    return write_catalogue(tmp_path / "catalogue", [echo_action()], [
        provider_manifest("provider-app", provider_url),
        {**consumer_manifest(), "limits": limits},
    ])


def _stop(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for log in logs:  # workers outliving a killed main process
        for pid in _pids(log, "worker_started"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _pids(log: Path, event: str) -> list[int]:
    pids = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                pids.append(int(record["pid"]))
    return pids


def _drain(base: str) -> None:
    """Call from a few connections at once until a 429: the burst is spent."""
    limited = threading.Event()

    def calls() -> None:
        host, port = base.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for _ in range(10 * RATE):
                if limited.is_set():
                    return
                connection.request("POST", CALL, BODY, HEADERS)
                response = connection.getresponse()
                response.read()
                if response.status == 429:
                    limited.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert limited.is_set(), "never limited"


def _paced(base: str, per_second: float, start: float, stop: float, admitted: list[int]) -> None:
    """Calls at `per_second`, on one keep-alive connection, from `start` to `stop`
    (monotonic); late calls catch up at once, so the rate offered holds on average."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    sent = ok = 0
    try:
        while (due := start + sent / per_second) < stop:
            time.sleep(max(0.0, due - time.monotonic()))
            connection.request("POST", CALL, BODY, HEADERS)
            response = connection.getresponse()
            response.read()
            ok += response.status == 200
            sent += 1
    finally:
        connection.close()
        admitted.append(ok)


@pytest.mark.redis
def test_two_hubs_on_one_redis_admit_the_declared_rate_in_total(tmp_path: Path,
                                                                 redis_server: RedisServer) -> None:
    with thread_provider() as provider_url:
        root = _catalogue(tmp_path, provider_url, {"*": {"rate": f"{RATE}/s"}})
        ports = [free_port(), free_port()]
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        procs = []
        try:
            for name, port, log in zip("ab", ports, logs, strict=True):
                config = write_config_file(tmp_path / f"{name}.toml", root, port,
                                           registry={"url": redis_server.url},
                                           ratelimit={"backend": "redis"})
                procs.append(start_hub_process(config, log))
            bases = [f"http://127.0.0.1:{port}" for port in ports]
            for base, proc in zip(bases, procs, strict=True):
                wait_ready(base + "/healthz", proc)
            # Spend the burst first (up to RATE calls at once): the window then
            # measures the sustained rate alone.
            _drain(bases[0])
            admitted: list[int] = []
            start = time.monotonic() + 0.05
            # Each hub offered the whole declared rate: twice the limit in total.
            threads = [threading.Thread(target=_paced, args=(base, RATE, start, start + WINDOW_S, admitted))
                       for base in bases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=WINDOW_S + 30)
        finally:
            _stop(procs, logs)
    expected = RATE * WINDOW_S
    print(f"admitted {admitted} of {expected:.0f} declared")
    assert len(admitted) == 2 and min(admitted) > 0, admitted
    assert abs(sum(admitted) - expected) <= 0.05 * expected, (admitted, expected)


def test_file_backend_limit_holds_across_two_workers(tmp_path: Path) -> None:
    with thread_provider() as provider_url:
        root = _catalogue(tmp_path, provider_url, {"*": {"rate": "10/h"}})
        port = free_port()
        log = tmp_path / "hub.log"
        config = write_config_file(tmp_path / "config.toml", root, port, server={"workers": 2})
        proc = start_hub_process(config, log)
        statuses = []
        workers: dict[str, Any] = {}
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base + "/healthz", proc)
            for _ in range(40):  # a new connection each: the kernel picks a worker each time
                with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
                    doc = json.loads(response.read())
                    workers[doc["instance"]] = doc["ratelimit"]
                request = urllib.request.Request(base + CALL, BODY, HEADERS, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)
                    exc.read()
        finally:
            _stop([proc], [log])
    # Counted per worker, 10/h would have admitted up to 20.
    assert statuses.count(200) == 10 and statuses.count(429) == 30
    assert len(workers) == 2, "both workers should have answered"
    assert all(health == {"backend": "local", "status": "ok", "sharedByWorkers": True}
               for health in workers.values())
