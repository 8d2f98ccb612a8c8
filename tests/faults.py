"""Helpers for the fault suite: misbehaving providers on raw sockets, a hub
served by the production runner (header timeout, problem+json rejections),
raw HTTP exchanges, and the log checks every fault test ends with."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from proxy.web.app import create_app
from proxy.config import Config
from proxy.run.serve import runner_for

from .support import CONSUMER_TOKEN, OTHER_TOKEN, PROVIDER_SECRET

# Strings put in request and answer bodies: no log line may ever hold one.
CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
BODY_MARKER = "body-marker-5f0c2e9a"
ANSWER_MARKER = "answer-marker-77d1b3c4"
NEVER_LOGGED = [CONSUMER_TOKEN, OTHER_TOKEN, PROVIDER_SECRET, BODY_MARKER, ANSWER_MARKER]

# Every code docs/contract.md documents, with its status.
DOCUMENTED = {
    "unauthenticated": 401, "forbidden": 403, "not_found": 404, "unknown_action": 404,
    "unsupported_version": 404, "unknown_provider": 404, "method_not_allowed": 405,
    "request_timeout": 408, "registry_read_only": 409, "payload_too_large": 413,
    "unsupported_media_type": 415, "bad_request": 400, "invalid_json": 400,
    "invalid_parameter": 400, "invalid_request": 400, "invalid_manifest": 400,
    "provider_unreachable": 502, "provider_error": 502, "invalid_provider_response": 502,
    "provider_timeout": 504, "provider_overloaded": 503, "registry_unavailable": 503,
    "hub_overloaded": 503, "shutting_down": 503,
}
DOCUMENTED_STATUS = {"request_too_large": (414, 431)}


def assert_clean_logs(text: str, extra: tuple[str, ...] = ()) -> None:
    leaked = [s for s in (*NEVER_LOGGED, *extra) if s in text]
    assert not leaked, f"found in the logs: {leaked}"


# ---- raw-socket providers -------------------------------------------------

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawProvider:
    """A TCP server on 127.0.0.1 that speaks whatever HTTP (or not) a test scripts."""

    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request with a Content-Length body (what the hub sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_provider(handler: RawHandler) -> AsyncIterator[RawProvider]:
    tasks: set[asyncio.Task[None]] = set()
    provider = RawProvider("")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        provider.connections += 1
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled: the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    provider.url = f"http://127.0.0.1:{port}/action"
    try:
        yield provider
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def http_answer(body: bytes, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode() + extra + b"\r\n" + body


# ---- a hub served by the production runner --------------------------------

@dataclass
class ServedHub:
    url: str
    port: int
    app: web.Application


@contextlib.asynccontextmanager
async def served_hub(config: Config) -> AsyncIterator[ServedHub]:
    """The hub on a free port through proxy.server.runner_for, as `apihub
    serve` runs it (aiohttp_client's TestServer has its own runner, without
    the header timeout or the problem+json HTTP-level rejections)."""
    app = create_app(config)
    runner = runner_for(app, config)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield ServedHub(f"http://127.0.0.1:{port}", port, app)
    finally:
        await runner.cleanup()


# ---- raw HTTP exchanges ---------------------------------------------------

@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, Any]:
        """Checks the answer is a documented problem+json and returns it."""
        assert self.headers.get("content-type", "").startswith("application/problem+json"), self
        doc = orjson.loads(self.body)
        assert doc["status"] == self.status, doc
        # The header echoes the consumer's valid X-Request-Id when one came, else the hub's id.
        echoed = self.headers["x-request-id"]
        assert doc["requestId"] == echoed or CORRELATION_ID.fullmatch(echoed), (doc, self.headers)
        code = doc["code"]
        if code in DOCUMENTED_STATUS:
            assert self.status in DOCUMENTED_STATUS[code], doc
        else:
            assert DOCUMENTED.get(code) == self.status, doc
        assert doc["title"] and doc["detail"]
        return doc  # type: ignore[no-any-return]


def parse_answer(raw: bytes) -> RawAnswer | None:
    """The first HTTP response in `raw` (None when the hub just closed)."""
    if not raw:
        return None
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"incomplete answer: {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawAnswer(status, headers, rest[:length])


async def exchange(port: int, data: bytes, *, timeout_s: float = 10.0) -> RawAnswer | None:
    """Send raw bytes, read until the hub closes; fails if it hangs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        async with asyncio.timeout(timeout_s):
            try:
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
            except ConnectionResetError:
                pass
        return parse_answer(b"".join(chunks))
    finally:
        writer.close()


def request_bytes(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]],
                  body: bytes = b"", *, close: bool = True) -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in items]
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# ---- subprocess hubs --------------------------------------------------------

def vm_kib(pid: int, field_name: str) -> int:
    """VmRSS / VmHWM of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field_name} for pid {pid}")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode
