"""SIGTERM while a call is stuck on a provider that never answers: at the end
of `[server] shutdown_grace_s` the consumer gets 503 `shutting_down` with
`Connection: close`, the call has its access line, and the process exits 0
within grace + 1 s."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

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


def call(port: int) -> tuple[int, str | None, dict[str, Any]]:
    """Status, Connection header and body of one call, on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", f"/v1/services/call/{ECHO}/provider-app",
                           body=json.dumps({"data": {"value": 1, "label": "x"}}), headers=call_headers())
        answer = connection.getresponse()
        return answer.status, answer.getheader("Connection"), json.loads(answer.read())
    finally:
        connection.close()

GRACE_S = 1.0


def test_sigterm_answers_calls_stuck_on_a_hung_provider(tmp_path: Path) -> None:
    asked = threading.Event()
    release = threading.Event()

    def hang(body: dict[str, Any]) -> bytes:
        asked.set()
        release.wait(30)  # never answers while the hub is up
        return b'{"data": {}}'

    with thread_provider(hang) as url:
        root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                               [provider_manifest("provider-app", url), consumer_manifest()])
        port = free_port()
        config = write_config_file(tmp_path / "config.toml", root, port,
                                   server={"shutdown_grace_s": GRACE_S})
        log = tmp_path / "hub.log"
        proc = start_hub_process(config, log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base + "/healthz", proc)
            result: dict[str, Any] = {}
            consumer = threading.Thread(
                target=lambda: result.setdefault("answer", call(port)))
            consumer.start()
            assert asked.wait(10), "the call never reached the provider"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=GRACE_S + 1) == 0
            consumer.join(timeout=5)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    status, connection, body = result["answer"]
    assert status == 503 and body["code"] == "shutting_down", body
    assert connection == "close"  # the hub is going: the consumer must not reuse the connection
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "access" and line.get("route") != "healthz"]
    assert [(a["status"], a["code"], a["requestId"]) for a in access] == [
        (503, "shutting_down", body["requestId"])]
    assert any(line.get("event") == "calls_cut_at_shutdown" and line["calls"] == 1 for line in lines)
