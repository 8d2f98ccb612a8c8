"""`Expect: 100-continue` over raw sockets: the hub invites the body only
once it wants it, after authentication and the size check (docs/contract.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from tests.conftest import Provider
from tests.faults import parse_answer, served_hub
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
)

CALL = f"/v1/services/call/{ECHO}/provider-app"
BODY = orjson.dumps({"data": {"value": 1, "label": "x"}})


def head(token: str = CONSUMER_TOKEN, length: int = len(BODY)) -> bytes:
    lines = [f"POST {CALL} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in call_headers(token).items()),
             f"Content-Length: {length}", "Expect: 100-continue", "Connection: close"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n"


async def first_line_after_head(port: int, request_head: bytes) -> tuple[bytes, asyncio.StreamReader,
                                                                        asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_head)
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), 5), reader, writer


@pytest.mark.parametrize(("token", "length", "status"), [
    (CONSUMER_TOKEN + "-wrong", len(BODY), 401),
    (CONSUMER_TOKEN, 5_000_000, 413),
], ids=["bad token", "over the limit"])
async def test_a_refused_request_is_never_invited_to_send_its_body(
        tmp_path: Path, provider: Provider, token: str, length: int, status: int) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        line, _, writer = await first_line_after_head(hub.port, head(token, length))
        writer.close()
    assert line.startswith(b"HTTP/1.1 %d " % status), line
    assert provider.received == []


async def test_an_accepted_request_gets_100_then_its_answer(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        line, reader, writer = await first_line_after_head(hub.port, head())
        assert line == b"HTTP/1.1 100 Continue\r\n"
        assert await reader.readline() == b"\r\n"
        writer.write(BODY)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 200, raw[:300]
    assert provider.last_body()["data"] == {"value": 1, "label": "x"}
