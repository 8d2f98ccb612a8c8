"""Test helpers: write catalogues and manifests to a temp folder, build
configs, and hold the tokens and secrets the tests use.

Everything here is plain data and functions; fixtures live in conftest.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from proxy.config import Config, parse_config

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


def make_config(catalogue: Path, **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {"catalogue": {"path": str(catalogue)}, "log": {"format": "json", "level": "info"}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(copy.deepcopy(raw), base_dir=catalogue.parent)


def call_headers(token: str = CONSUMER_TOKEN, community: str = COMMUNITY, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "community-id": community,
               "Content-Type": "application/json"}
    headers.update(extra)
    return headers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config_file(path: Path, catalogue: Path, port: int, **sections: dict[str, Any]) -> Path:
    """A config.toml for a subprocess hub (TOML written by hand: no writer in stdlib)."""
    raw: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "shutdown_grace_s": 10},
        "catalogue": {"path": str(catalogue)},
        "log": {"format": "json", "level": "info"},
        "admin": {"enabled": False},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    lines = []
    for name, values in raw.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
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
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout_s}s")
