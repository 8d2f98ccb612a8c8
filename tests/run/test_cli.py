"""The command line: tokens, and the demo's example provider answering
through the hub with the shipped catalogue."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from proxy.run import example_provider
from proxy.web.app import create_app
from proxy.config import parse_config

from tests.support import ROOT


def test_token_new_prints_token_and_its_hash() -> None:
    done = subprocess.run([sys.executable, "-m", "proxy", "token", "new"], capture_output=True,
                          text=True, timeout=30, cwd=ROOT)
    assert done.returncode == 0
    token = re.search(r"^token:\s+(\S+)$", done.stdout, re.M)
    line = re.search(r'"tokens": \["sha256:([0-9a-f]{64})"\]', done.stdout)
    assert token and line
    assert hashlib.sha256(token.group(1).encode()).hexdigest() == line.group(1)
    assert len(token.group(1)) >= 40


async def test_shipped_catalogue_through_example_provider(
    aiohttp_client: Any, monkeypatch: Any, tmp_path: Path,
) -> None:
    """The README's curl, in-process: shipped catalogue, manifests and provider
    (the manifests' port 9001 moved to wherever the provider listens)."""
    secret = "test-only-example-secret"
    monkeypatch.setenv("ERP_MODELO_SECRET", secret)
    provider = TestServer(example_provider.create_app(secret), host="127.0.0.1")
    await provider.start_server()
    catalogue = tmp_path / "catalogue"
    shutil.copytree(ROOT / "catalogue", catalogue)
    for manifest in (catalogue / "apps").glob("*.json"):
        manifest.write_text(manifest.read_text().replace("127.0.0.1:9001", f"127.0.0.1:{provider.port}"))
    try:
        config = parse_config({"catalogue": {"path": str(catalogue)}}, base_dir=tmp_path)
        hub = await aiohttp_client(create_app(config))
        headers = {"Authorization": "Bearer demo-grades-viewer-token", "community-id": "colegio-exemplo",
                   "Content-Type": "application/json"}
        calls = [
            ("@layers:Calendar:getRelated", "", {"entity": {"type": "student", "id": "s-1042"},
                                                 "from": "2026-03-01", "to": "2026-03-31"}),
            ("@layers:Calendar:getRelated", "?version=1", {"entity": {"type": "class", "id": "7A"},
                                                           "from": "2026-03-01", "to": "2026-03-07"}),
            ("@layers:Gradebook:getGrades", "", {"studentId": "s-1042", "schoolYear": "2026"}),
            ("@layers:Payables:list", "", {"guardianId": "g-77", "status": "open"}),
        ]
        for action, query, data in calls:
            r = await hub.post(f"/v1/services/call/{action}/erp-modelo{query}", json={"data": data},
                               headers=headers)
            assert r.status == 200, (action, await r.text())
            body = await r.json()
            assert body["data"]
        r = await hub.post("/v1/services/call/@layers:Calendar:getRelated/erp-modelo?version=1",
                           json={"data": calls[1][2]}, headers=headers)
        assert "category" in (await r.json())["data"]["events"][0]
    finally:
        await provider.close()


def test_example_provider_signature_check() -> None:
    body = b'{"a": 1}'
    secret = "s"
    import hmac

    sig = hmac.new(b"s", b"1000." + body, "sha256").hexdigest()
    assert example_provider.verify_signature(f"t=1000,v1={sig}", body, secret, now=1100)
    assert not example_provider.verify_signature(f"t=1000,v1={sig}", body, secret, now=1000 + 301)
    assert not example_provider.verify_signature(f"t=1000,v1={sig}", body + b" ", secret, now=1100)
    assert not example_provider.verify_signature("garbage", body, secret, now=1100)
    assert not example_provider.verify_signature(None, body, secret, now=1100)
