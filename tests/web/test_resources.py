"""Consumers that never read their answers, over real sockets through the
production runner: past `[limits] max_buffered_bytes` new calls get 503
`hub_overloaded` (Retry-After, the provider never asked), the hub recovers
when the bytes go, and `[server] write_timeout_ms` cuts a stalled reader."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from proxy.web.state import HUB
from tests.conftest import Provider
from tests.faults import exchange, request_bytes, served_hub
from tests.support import (
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
)

MiB = 1024 * 1024
CALL = f"/v1/services/call/{ECHO}/provider-app"


def kernel_send_buffer_max() -> int:
    """The most a consumer socket's kernel send buffer takes (Linux
    autotuning, net.ipv4.tcp_wmem): that part of an unread answer leaves the
    hub; only the rest is held in the hub, where the budget counts it."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * MiB


# Bigger than the kernel takes, so 2 MiB of each answer stays in the hub.
STALLED_ANSWER = kernel_send_buffer_max() + 2 * MiB


async def sized_answer(request: web.Request, raw: bytes) -> web.StreamResponse:
    """An answer of about `data.value` bytes."""
    size = orjson.loads(raw)["data"]["value"]
    return web.Response(body=orjson.dumps({"data": {"echo": "x" * size}}), content_type="application/json")


def call_bytes(size: int, *, close: bool = True) -> bytes:
    body = orjson.dumps({"data": {"value": size}})
    headers = {**call_headers(), "Content-Type": "application/json"}
    return request_bytes("POST", CALL, headers, body, close=close)


async def stalled_reader(port: int, size: int) -> socket.socket:
    """A consumer that asks for an answer and never reads it (a small receive
    buffer, so the answer stays in the hub rather than in the kernel)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    await asyncio.get_running_loop().sock_sendall(sock, call_bytes(size))
    return sock


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not true in time"
        await asyncio.sleep(0.02)


Starter = Callable[..., Awaitable[Provider]]


async def start(tmp_path: Path, start_provider: Starter, **sections: dict[str, Any]) -> tuple[Any, Provider]:
    provider = await start_provider(sized_answer)
    root = write_catalogue(tmp_path / "catalogue", [echo_action(versions=(1,))],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    return served_hub(make_config(root, **sections)), provider


async def test_buffer_budget_refuses_new_calls_then_recovers(
        tmp_path: Path, start_provider: Starter) -> None:
    hub_cm, provider = await start(
        tmp_path, start_provider, server={"write_timeout_ms": 60_000},
        limits={"max_buffered_bytes": 8 * MiB, "max_response_bytes": STALLED_ANSWER + MiB})
    async with hub_cm as hub:
        budget = hub.app[HUB].budget
        stalled = [await stalled_reader(hub.port, STALLED_ANSWER) for _ in range(8)]
        try:
            await eventually(lambda: budget.over)
            asked = len(provider.received)
            answer = await exchange(hub.port, call_bytes(10))
            assert answer is not None and answer.status == 503
            assert answer.problem()["code"] == "hub_overloaded"
            assert answer.headers["retry-after"] == "1"
            assert len(provider.received) == asked  # refused before the provider
        finally:
            for sock in stalled:
                sock.close()
        await eventually(lambda: budget.held == 0)
        answer = await exchange(hub.port, call_bytes(MiB))
        assert answer is not None and answer.status == 200
        assert len(orjson.loads(answer.body)["data"]["echo"]) == MiB


async def test_write_timeout_cuts_a_reader_that_takes_nothing(
        tmp_path: Path, start_provider: Starter, log_sink: Any) -> None:
    hub_cm, _ = await start(tmp_path, start_provider, server={"write_timeout_ms": 200},
                            limits={"max_response_bytes": STALLED_ANSWER + MiB})
    async with hub_cm as hub:
        budget = hub.app[HUB].budget
        sock = await stalled_reader(hub.port, STALLED_ANSWER)
        try:
            await eventually(lambda: budget.held > 0)
            await eventually(lambda: budget.held == 0)  # cut: nothing held for it any more
            assert any(r.get("event") == "consumer_write_timeout" for r in log_sink.records())
            # The consumer finds its connection closed before the whole answer came.
            loop = asyncio.get_running_loop()
            received = 0
            try:
                async with asyncio.timeout(5):
                    while chunk := await loop.sock_recv(sock, 65536):
                        received += len(chunk)
            except ConnectionResetError:
                pass
            assert received < STALLED_ANSWER
        finally:
            sock.close()
        # Others are served as usual.
        answer = await exchange(hub.port, call_bytes(10))
        assert answer is not None and answer.status == 200
