"""Test helpers: write catalogues and manifests to a temp folder, build
configs, and hold the tokens and secrets the tests use.

Everything here is plain data and functions; fixtures live in conftest.py.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import tomli_w

from proxy.config import Config, parse_config
from proxy.run.cli import wait_http

ROOT = Path(__file__).resolve().parent.parent

CONSUMER_TOKEN = "tok-consumer-7f3a9c1e5b"
OTHER_TOKEN = "tok-other-2d8e4b6a90"
PROVIDER_SECRET = "sec-provider-0b1c2d3e4f5a6978"
COMMUNITY = "colegio-teste"
ECHO = "@test:Echo:run"

CONTEXT_SCHEMA = {
    "type": "object",
    "required": ["issuedAt", "action", "community", "version", "requester", "requestId"],
    "properties": {
        "issuedAt": {"type": "string", "format": "date-time"},
        "action": {"type": "string"},
        "community": {"type": "string"},
        "version": {"type": "integer"},
        "requester": {"type": "string"},
        "requestId": {"type": "string"},
        "correlationId": {"type": "string"},
    },
}


def token_line(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def echo_action(name: str = ECHO, versions: tuple[int, ...] = (1, 2), **version_extra: Any) -> dict[str, Any]:
    """An action whose request needs data.value (an integer >= 0) and whose
    answer needs data.echo; v2 also requires data.label."""
    doc: dict[str, Any] = {"action": name, "title": "Echo", "versions": {}}
    for v in versions:
        data_props: dict[str, Any] = {"value": {"type": "integer", "minimum": 0}}
        required = ["value"]
        if v >= 2:
            data_props["label"] = {"type": "string"}
            required.append("label")
        doc["versions"][str(v)] = {
            "request": {
                "type": "object",
                "required": ["context", "secret", "data"],
                "properties": {
                    "context": {"$ref": "#/definitions/Context"},
                    "secret": {"type": "string"},
                    "data": {"type": "object", "required": required, "properties": data_props},
                },
                "definitions": {"Context": CONTEXT_SCHEMA},
            },
            "response": {
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "object", "required": ["echo"]}},
            },
            **version_extra,
        }
    return doc


def provider_manifest(
    app_id: str,
    url: str,
    *,
    actions: dict[str, list[int]] | None = None,
    communities: tuple[str, ...] = (COMMUNITY,),
    secret: Any = PROVIDER_SECRET,
    **provides_extra: Any,
) -> dict[str, Any]:
    actions = actions if actions is not None else {ECHO: [1, 2]}
    return {
        "id": app_id,
        "displayName": app_id.replace("-", " ").title(),
        "icon": f"https://example.org/{app_id}.png",
        "secret": secret,
        "tokens": [],
        "communities": list(communities),
        "provides": {a: {"url": url, "versions": v, **provides_extra} for a, v in actions.items()},
        "consumes": [],
    }


def consumer_manifest(
    app_id: str = "consumer-app",
    token: str = CONSUMER_TOKEN,
    *,
    consumes: tuple[str, ...] = (ECHO,),
    communities: tuple[str, ...] = (COMMUNITY,),
) -> dict[str, Any]:
    return {
        "id": app_id,
        "displayName": "Consumer App",
        "icon": "",
        "tokens": [token_line(token)],
        "communities": list(communities),
        "provides": {},
        "consumes": list(consumes),
    }


def write_catalogue(root: Path, actions: list[dict[str, Any]], apps: list[dict[str, Any]]) -> Path:
    (root / "actions").mkdir(parents=True, exist_ok=True)
    (root / "apps").mkdir(parents=True, exist_ok=True)
    for doc in actions:
        slug = doc["action"].strip("@").replace(":", "-").lower()
        (root / "actions" / f"{slug}.json").write_text(json.dumps(doc, indent=2))
    for doc in apps:
        (root / "apps" / f"{doc['id']}.json").write_text(json.dumps(doc, indent=2))
    return root


def make_config(root: Path, /, **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {"catalogue": {"path": str(root)}, "log": {"format": "json", "level": "info"}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(copy.deepcopy(raw), base_dir=root.parent)


def call_headers(token: str = CONSUMER_TOKEN, community: str = COMMUNITY, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "community-id": community,
               "Content-Type": "application/json"}
    headers.update(extra)
    return headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config_file(path: Path, catalogue: Path, port: int, /, **sections: dict[str, Any]) -> Path:
    """A config.toml for a subprocess hub."""
    raw: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "shutdown_grace_s": 10},
        "catalogue": {"path": str(catalogue)},
        "log": {"format": "json", "level": "info"},
        "admin": {"enabled": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    path.write_text(tomli_w.dumps(raw))
    return path


def start_hub_process(config_path: Path, log_path: Path, env: dict[str, str] | None = None,
                      args: tuple[str, ...] = ("serve",)) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {})}
    # The child keeps its own copy of the descriptor; ours closes at once.
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "proxy", *args, "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
        )


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 20.0) -> None:
    try:
        wait_http(url, proc, timeout_s)
    except RuntimeError as exc:
        raise AssertionError(str(exc)) from None


# ---- a provider for subprocess hubs ----------------------------------------------

def _echo_answer(body: dict[str, Any]) -> bytes:
    delay = (body.get("data") or {}).get("sleep", 0) if isinstance(body.get("data"), dict) else 0
    if delay:
        time.sleep(delay)  # a thread of the test's provider, never the hub's loop
    return json.dumps({"data": {"echo": body.get("data")}}).encode()


@contextlib.contextmanager
def thread_provider(answer: Callable[[dict[str, Any]], bytes] = _echo_answer) -> Iterator[str]:
    """A provider on 127.0.0.1 in threads of the test process (so a subprocess
    hub can reach it while the test blocks); yields its action URL. By
    default it echoes `data`, after sleeping `data.sleep` seconds if asked."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            payload = answer(json.loads(raw) if raw else {})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/action"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    body = await response.read()
    assert response.status == status, body
    assert response.headers["Content-Type"].startswith("application/problem+json")
    doc = orjson.loads(body)
    assert doc["code"] == code, doc
    assert doc["status"] == status
    assert doc["requestId"] == response.headers["X-Request-Id"]
    assert doc["title"] and doc["detail"]
    return doc  # type: ignore[no-any-return]
