"""Shared fixtures: real provider servers on 127.0.0.1, a hub driven over a
real socket, and a log sink that the whole suite's logs go through (and
that is searched for secrets at the end of the session)."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from proxy.web.app import create_app
from proxy.config import LogConfig
from proxy.observe.logs import configure_logging

from .faults import ANSWER_MARKER, BODY_MARKER
from .redis_server import RedisServer, private_redis
from .support import (
    CONSUMER_TOKEN,
    ECHO,
    OTHER_TOKEN,
    PROVIDER_SECRET,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
)


class LogSink(io.TextIOBase):
    """Collects every log line the hub writes during the test session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: list[str] = []

    def write(self, text: str) -> int:
        with self._lock:
            self._chunks.append(text)
        return len(text)

    def isatty(self) -> bool:
        return False

    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def mark(self) -> int:
        with self._lock:
            return len(self._chunks)

    def since(self, mark: int) -> list[dict[str, Any]]:
        with self._lock:
            text = "".join(self._chunks[mark:])
        return [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]


SINK = LogSink()
# Never to appear in any log line, in any test: checked when the session ends.
# The fault suite's body markers too (tests/faults.py; hub processes' logs are
# checked by the tests that start them).
SECRETS = [CONSUMER_TOKEN, OTHER_TOKEN, PROVIDER_SECRET, BODY_MARKER, ANSWER_MARKER]


@pytest.fixture(scope="session", autouse=True)
def hub_logs() -> Iterator[LogSink]:
    configure_logging(LogConfig(level="debug", format="json"), stream=SINK)  # type: ignore[arg-type]
    yield SINK
    text = SINK.text()
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets or tokens found in the hub's logs: {leaked}"


@pytest.fixture
def log_sink() -> LogSink:
    return SINK


Behaviour = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


async def echo_behaviour(request: web.Request, raw: bytes) -> web.StreamResponse:
    body = orjson.loads(raw)
    return web.Response(body=orjson.dumps({"data": {"echo": body.get("data")}}),
                        content_type="application/json")


@dataclass
class Provider:
    """A real provider on 127.0.0.1 whose answers a test scripts."""

    behaviour: Behaviour = echo_behaviour
    received: list[tuple[Any, bytes]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/action"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append((request.headers.copy(), raw))
        return await self.behaviour(request, raw)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/action", self._handle)
        return app

    def last_body(self) -> dict[str, Any]:
        return orjson.loads(self.received[-1][1])  # type: ignore[no-any-return]


@pytest.fixture
async def provider(aiohttp_server: Any) -> Provider:
    p = Provider()
    p.server = await aiohttp_server(p.app())
    return p


@pytest.fixture
def start_provider(aiohttp_server: Any) -> Callable[[Behaviour], Awaitable[Provider]]:
    async def start(behaviour: Behaviour = echo_behaviour) -> Provider:
        p = Provider(behaviour=behaviour)
        p.server = await aiohttp_server(p.app())
        return p

    return start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port (skipped, or failed under
    APIHUB_REQUIRE_REDIS=1, when the binary is missing)."""
    yield from private_redis(tmp_path)


HubFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def make_hub(tmp_path: Path, aiohttp_client: Any, provider: Provider) -> HubFactory:
    """Build a hub on a temp catalogue and drive it over a real socket.

    By default: the echo action (v1, v2), the fixture's provider as
    `provider-app` serving both, and `consumer-app` allowed to call it.
    """

    async def make(
        *,
        actions: list[dict[str, Any]] | None = None,
        apps: list[dict[str, Any]] | None = None,
        **config_sections: dict[str, Any],
    ) -> TestClient:
        root = tmp_path / "catalogue"
        write_catalogue(
            root,
            actions if actions is not None else [echo_action()],
            apps if apps is not None else [provider_manifest("provider-app", provider.url),
                                           consumer_manifest()],
        )
        app = create_app(make_config(root, **config_sections))
        return await aiohttp_client(app)  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def hub(make_hub: HubFactory) -> AsyncIterator[TestClient]:
    yield await make_hub()


__all__ = ["ECHO", "Provider", "HubFactory"]
