"""At the file-descriptor limit the hub keeps serving: consumers beyond it are
turned away, and accepting resumes as soon as descriptors are free again
(issue: isolation, item "file descriptors"; the provider side is in
tests/upstream/test_fds.py)."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    ECHO,
    ROOT,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
    thread_provider,
    wait_for,
    wait_ready,
    write_catalogue,
    write_config_file,
)

pytestmark = pytest.mark.slow

NOFILE = 96  # room for the hub's own descriptors, and not many more


@pytest.fixture
def small_fd_hub(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    with thread_provider() as provider_url:
        root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                               [provider_manifest("provider-app", provider_url), consumer_manifest()])
        port = free_port()
        config = write_config_file(tmp_path / "config.toml", root, port)
        log = tmp_path / "hub.log"

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))

        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=limit)
        try:
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
            yield port, proc, log
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def call(port: int) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/services/call/{ECHO}/provider-app",
        data=json.dumps({"data": {"value": 1, "label": "x"}}).encode(), headers=call_headers(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except OSError:
        return 0


def test_accepting_resumes_once_descriptors_are_free(small_fd_hub: tuple[int, subprocess.Popen[bytes], Path]) -> None:
    port, proc, log = small_fd_hub
    assert call(port) == 200
    held = []
    try:
        for _ in range(2 * NOFILE):  # more consumers than the hub can hold descriptors for
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            held.append(s)
        # The hub accepted until it ran out of descriptors (the rest wait in the backlog).
        fds = Path(f"/proc/{proc.pid}/fd")
        wait_for(lambda: len(list(fds.iterdir())) >= NOFILE - 1, timeout_s=10.0)
    finally:
        for s in held:
            s.close()
    assert len(held) > NOFILE
    # Freed: calls succeed again, without a restart.
    wait_for(lambda: call(port) == 200, timeout_s=10.0)
    assert all(call(port) == 200 for _ in range(5))
    assert proc.poll() is None
    assert "Traceback" not in log.read_text()
