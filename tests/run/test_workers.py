"""`[server] workers = 2` as real processes: every worker answers on the one
port, SIGHUP to the main process reloads every worker, a killed worker is
replaced while calls keep working, SIGTERM drains and exits 0, and a broken
catalogue stops start-up before any worker is forked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.config import ServerConfig
from proxy.run.supervisor import worker_count
from tests.support import (
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
    start_hub_process,
    thread_provider,
    wait_for,
    wait_ready,
    write_catalogue,
    write_config_file,
)

pytestmark = pytest.mark.slow

WORKERS = 2


@pytest.fixture
def echo_provider() -> Iterator[str]:
    with thread_provider() as url:
        yield url


def _catalogue(tmp_path: Path, provider_url: str) -> Path:
    return write_catalogue(
        tmp_path / "catalogue", [echo_action()],
        [provider_manifest("provider-app", provider_url), consumer_manifest()],
    )


@pytest.fixture
def hub_workers(tmp_path: Path, echo_provider: str) -> Iterator[dict[str, Any]]:
    root = _catalogue(tmp_path, echo_provider)
    port = free_port()
    config = write_config_file(tmp_path / "config.toml", root, port,
                               server={"workers": WORKERS, "shutdown_grace_s": 5})
    log = tmp_path / "hub.log"
    proc = start_hub_process(config, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/healthz", proc)
        yield {"proc": proc, "base": base, "log": log}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        # Workers whose main process was killed exit when they see it gone;
        # make sure none outlives the test.
        for pid in _workers_in_log(log):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _workers_in_log(log: Path) -> list[int]:
    pids = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "worker_started":
                pids.append(int(record["pid"]))
    return pids


def health(base: str) -> dict[str, Any]:
    # urllib opens a new connection per request, so the kernel picks a worker each time.
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def call_echo(base: str, value: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/v1/services/call/{ECHO}/provider-app",
        data=json.dumps({"data": {"value": value, "label": "w"}}).encode(),
        headers=call_headers(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def generations(base: str, want: int, timeout_s: float = 15.0) -> dict[str, int]:
    """Poll /healthz until `want` distinct workers were seen; their latest generations."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = health(base)
        seen[doc["instance"]] = doc["catalogue"]["generation"]
        if len(seen) >= want:
            return seen
    raise AssertionError(f"saw only {sorted(seen)} within {timeout_s}s")


def pid_of(instance: str) -> int:
    return int(instance.rsplit(":", 1)[1])




def test_worker_count_zero_means_one_per_cpu() -> None:
    assert worker_count(3) == 3
    assert worker_count(0) == len(os.sched_getaffinity(0))
    assert ServerConfig().workers == 0


def test_sighup_reaches_every_worker_and_a_killed_worker_is_replaced(hub_workers: dict[str, Any]) -> None:
    base, proc = hub_workers["base"], hub_workers["proc"]
    before = generations(base, WORKERS)
    assert set(before.values()) == {1}
    assert all(pid_of(instance) != proc.pid for instance in before)

    proc.send_signal(signal.SIGHUP)

    # Every worker seen before now serves generation 2 (each polled on fresh connections).
    deadline = time.monotonic() + 15
    reloaded: dict[str, int] = {}
    while time.monotonic() < deadline and not all(reloaded.get(i) == 2 for i in before):
        doc = health(base)
        reloaded[doc["instance"]] = doc["catalogue"]["generation"]
    assert {i: reloaded.get(i) for i in before} == {i: 2 for i in before}

    victim = pid_of(sorted(before)[0])
    os.kill(victim, signal.SIGKILL)

    def replacement() -> str | None:
        try:
            doc = health(base)
        except OSError:
            # Connections already queued on the killed worker's socket are reset
            # by the kernel (SO_REUSEPORT keeps one accept queue per worker).
            return None
        return doc["instance"] if doc["instance"] not in before else None

    new_instance = wait_for(replacement, 15.0)
    assert pid_of(new_instance) != victim
    # The replacement is a fresh process: it loaded the catalogue once.
    assert health_generation_of(base, new_instance) == 1
    for value in range(6):
        status, body = call_echo(base, value)
        assert status == 200, body
        assert body == {"data": {"echo": {"value": value, "label": "w"}}}
    assert proc.poll() is None

    records = [json.loads(line) for line in hub_workers["log"].read_text().splitlines()
               if line.startswith("{")]
    died = [r for r in records if r.get("event") == "worker_died"]
    assert died and died[0]["pid"] == victim and died[0]["reason"] == "signal SIGKILL"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    for pid in _workers_in_log(hub_workers["log"]):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def health_generation_of(base: str, instance: str, timeout_s: float = 15.0) -> int:
    def found() -> int | None:
        doc = health(base)
        return doc["catalogue"]["generation"] if doc["instance"] == instance else None

    return wait_for(found, timeout_s)  # type: ignore[no-any-return]


def test_broken_catalogue_stops_start_up_before_forking(tmp_path: Path, echo_provider: str) -> None:
    root = _catalogue(tmp_path, echo_provider)
    bad = root / "actions" / "broken.json"
    bad.write_text('{"action": "@test:Broken:run", "versions": {"1": {"request": {"type": "nope"}, '
                   '"response": {}}}}')
    config = write_config_file(tmp_path / "config.toml", root, free_port(), server={"workers": WORKERS})
    log = tmp_path / "hub.log"
    proc = start_hub_process(config, log)
    try:
        assert proc.wait(timeout=20) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "broken.json" in text and "catalogue error" in text
    assert "worker_started" not in text


@pytest.mark.parametrize(("workers", "taken"), [(WORKERS, "server"), (WORKERS, "admin"), (1, "server"), (1, "admin")])
def test_port_in_use_stops_start_up(tmp_path: Path, echo_provider: str, workers: int, taken: str) -> None:
    """One line naming the address, no traceback, exit 1: the public port or
    the admin's, with one worker or several."""
    import socket

    root = _catalogue(tmp_path, echo_provider)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        free = free_port()
        server_port, admin_port = (port, free) if taken == "server" else (free, port)
        config = write_config_file(tmp_path / "config.toml", root, server_port, server={"workers": workers},
                                   admin={"enabled": True, "host": "127.0.0.1", "port": admin_port})
        proc = subprocess.run(
            [*start_args(config)], capture_output=True, timeout=20, cwd=str(Path(__file__).parent.parent),
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}".encode() in proc.stderr
    assert b"Traceback" not in proc.stderr


def start_args(config: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "proxy", "serve", "--config", str(config)]


def test_metrics_add_up_every_worker(hub_workers: dict[str, Any]) -> None:
    """Whichever worker answers a scrape, it reports the calls of all of them
    (at most a second late), and a killed worker's counts handed over do not
    vanish (counters never go back)."""
    from prometheus_client.parser import text_string_to_metric_families

    base = hub_workers["base"]
    seen = generations(base, WORKERS)  # new connections: both workers served some
    calls = 12
    for value in range(calls):
        assert call_echo(base, value)[0] == 200

    def ok_calls() -> float:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "apihub_requests_total" and sample.labels.get("route") == "call"
                   and sample.labels.get("outcome") == "ok")

    # Each worker hands its counts over at least once a second (observe/batch.py).
    wait_for(lambda: ok_calls() == calls, 5.0)
    scrapes = {ok_calls() for _ in range(6)}
    assert scrapes == {calls}, scrapes
    victim = pid_of(next(iter(seen)))
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        try:  # connections queued on the dead worker's socket are reset
            return victim not in {pid_of(i) for i in generations(base, WORKERS)}
        except OSError:
            return False

    wait_for(replaced, 15.0)
    assert ok_calls() == calls
