"""`apihub serve` as a real process: SIGHUP reloads (good and broken
catalogues), SIGTERM drains a call in flight and exits 0, a broken catalogue
stops start-up with the file and reason, and the logs hold no secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    PROVIDER_SECRET,
    ROOT,
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


@pytest.fixture
def thread_provider_url() -> Iterator[str]:
    with thread_provider() as url:
        yield url


@pytest.fixture
def hub_process(tmp_path: Path, thread_provider_url: str) -> Iterator[dict[str, Any]]:
    root = write_catalogue(
        tmp_path / "catalogue",
        [echo_action()],
        [provider_manifest("provider-app", thread_provider_url, actions={ECHO: [1, 2], "@test:New:run": [1]}),
         consumer_manifest(consumes=(ECHO, "@test:New:run"))],
    )
    port = free_port()
    config = write_config_file(tmp_path / "config.toml", root, port, server={"shutdown_grace_s": 10})
    log = tmp_path / "hub.log"
    proc = start_hub_process(config, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/healthz", proc)
        yield {"proc": proc, "base": base, "root": root, "log": log}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def call(base: str, action: str, data: dict[str, Any], timeout: float = 10) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{base}/v1/services/call/{action}/provider-app",
        data=json.dumps({"data": data}).encode(),
        headers=call_headers(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_sighup_adds_action_and_rejects_broken_catalogue(hub_process: dict[str, Any]) -> None:
    base, proc, root = hub_process["base"], hub_process["proc"], hub_process["root"]
    assert call(base, ECHO, {"value": 1, "label": "a"})[0] == 200
    status, body = call(base, "@test:New:run", {"value": 1})
    assert status == 404 and body["code"] == "unknown_action"

    # A new action file + SIGHUP: callable without a restart.
    write_catalogue(root, [echo_action("@test:New:run", versions=(1,))], [])
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: health(base)["catalogue"]["generation"] == 2)
    assert call(base, "@test:New:run", {"value": 1}) == (200, {"data": {"echo": {"value": 1}}})

    # A broken schema + SIGHUP: the old catalogue keeps serving, healthz names file and reason.
    broken = root / "actions" / "broken.json"
    broken.write_text(json.dumps({
        "action": "@test:Broken:run",
        "versions": {"1": {"request": {"type": "object", "properties": {"n": {"type": "integer",
                                                                             "exclusiveMinimum": True}}},
                           "response": {}}},
    }))
    proc.send_signal(signal.SIGHUP)
    error = wait_for(lambda: health(base)["catalogue"]["lastReloadError"])
    assert "broken.json" in error
    assert "exclusiveMinimum" in error
    assert health(base)["catalogue"]["generation"] == 2
    assert call(base, "@test:New:run", {"value": 2})[0] == 200
    assert call(base, ECHO, {"value": 1, "label": "a"})[0] == 200

    # Fixed again: the error clears.
    broken.unlink()
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: health(base)["catalogue"]["generation"] == 3)
    assert health(base)["catalogue"]["lastReloadError"] is None


def test_sigterm_drains_call_in_flight(hub_process: dict[str, Any]) -> None:
    base, proc = hub_process["base"], hub_process["proc"]
    result: dict[str, Any] = {}

    def slow_call() -> None:
        result["answer"] = call(base, ECHO, {"value": 1, "label": "slow", "sleep": 1.5})

    thread = threading.Thread(target=slow_call)
    thread.start()
    time.sleep(0.5)  # the call is now waiting on the provider
    proc.send_signal(signal.SIGTERM)
    thread.join(timeout=15)
    assert result["answer"][0] == 200
    assert result["answer"][1]["data"]["echo"]["label"] == "slow"
    assert proc.wait(timeout=15) == 0
    # New connections are refused once it stopped.
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/healthz", timeout=2)


def test_logs_hold_no_token_secret_or_body(hub_process: dict[str, Any]) -> None:
    base, proc, log = hub_process["base"], hub_process["proc"], hub_process["log"]
    marker = "body-marker-4a7c9e"
    assert call(base, ECHO, {"value": 1, "label": marker})[0] == 200
    assert call(base, ECHO, {"value": -5, "label": marker})[0] == 400
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "access"]
    assert len(access) == 2, text
    assert {line["status"] for line in access} == {200, 400}
    for secret in (CONSUMER_TOKEN, PROVIDER_SECRET, marker):
        assert secret not in text


def test_broken_catalogue_stops_startup(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()], [consumer_manifest()])
    (root / "actions" / "bad.json").write_text("{not json")
    config = write_config_file(tmp_path / "config.toml", root, free_port())
    done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 2
    assert "bad.json" in done.stderr and "not valid JSON" in done.stderr


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = "eighty"\n')
    done = subprocess.run([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 2
    assert "[server] port" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1




def test_library_logs_are_json_lines_too(hub_process: dict[str, Any]) -> None:
    """aiohttp's own error records (here: a body that claims gzip and is not)
    come out as JSON lines like the hub's, never as plain tracebacks."""
    base, proc, log = hub_process["base"], hub_process["proc"], hub_process["log"]
    request = urllib.request.Request(
        f"{base}/v1/services/call/{ECHO}/provider-app", data=b"this is not gzip", method="POST",
        headers=call_headers(**{"Content-Encoding": "gzip"}))
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    caught.value.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        json.loads(line)  # every line, the libraries' included
    assert CONSUMER_TOKEN not in log.read_text()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("command", "signum"), [
    (("demo",), signal.SIGINT),
    (("demo",), signal.SIGTERM),
    (("serve",), signal.SIGINT),
])
def test_stop_signals_work_when_started_with_sigint_ignored(
    tmp_path: Path, command: tuple[str], signum: signal.Signals,
) -> None:
    """`apihub demo &` in a script inherits SIGINT as SIG_IGN; both signals still stop it,
    and the demo's example provider with it. The demo is signalled as soon as its
    provider answers: while the hub is still starting, before its event loop
    handles signals (where SIGINT used to be lost, and SIGTERM orphaned the provider)."""
    port, provider_port = free_port(), free_port()
    config = write_config_file(tmp_path / "config.toml", ROOT / "catalogue", port)
    args = [sys.executable, "-m", "proxy", command[0], "--config", str(config)]
    if command[0] == "demo":
        args += ["--provider-port", str(provider_port)]
    with open(tmp_path / "out.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "ERP_MODELO_SECRET": "test-only-secret"},
                                preexec_fn=_ignore_sigint)  # noqa: PLW1509 - the point of the test
    try:
        if command[0] == "demo":
            wait_ready(f"http://127.0.0.1:{provider_port}/healthz", proc)
        else:
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0, (tmp_path / "out.log").read_text()
        if command[0] == "demo":
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{provider_port}/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_demo_shows_a_real_call_through_the_hub(tmp_path: Path) -> None:
    """`make run` (apihub demo) makes the banner's call itself once the hub
    listens, and prints the provider's answer as relayed: a 200."""
    port, provider_port = free_port(), free_port()
    catalogue = tmp_path / "catalogue"
    shutil.copytree(ROOT / "catalogue", catalogue)
    manifest = catalogue / "apps" / "erp-modelo.json"
    manifest.write_text(manifest.read_text().replace("127.0.0.1:9001", f"127.0.0.1:{provider_port}"))
    config = write_config_file(tmp_path / "config.toml", catalogue, port)
    log_path = tmp_path / "out.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "demo", "--config", str(config), "--provider-port", str(provider_port)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "ERP_MODELO_SECRET": "test-only-secret"})
    try:
        wait_for(lambda: "A call through the hub" in log_path.read_text() and '"events"' in log_path.read_text(),
                 30.0)
        shown = log_path.read_text().split("A call through the hub", 1)[1]
        assert "HTTP/1.1 200" in shown or "HTTP 200" in shown, shown[:500]
        assert "X-Request-Id" in shown or "HTTP 200" in shown
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
