"""Transfer-Encoding over raw sockets (docs/contract.md §4 `bad_request`,
`payload_too_large`): only `chunked` alone is read; a chunked body counts on
the wire, chunk extensions included, against `[limits] max_request_bytes`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from tests.conftest import LogSink, Provider
from tests.faults import parse_answer, served_hub
from tests.support import ECHO, call_headers, consumer_manifest, echo_action, make_config, provider_manifest, write_catalogue

CALL = f"/v1/services/call/{ECHO}/provider-app"
BODY = orjson.dumps({"data": {"value": 1, "label": "x"}})


def head(transfer_encoding: list[str]) -> bytes:
    lines = [f"POST {CALL} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in call_headers().items()),
             *(f"Transfer-Encoding: {te}" for te in transfer_encoding), "Connection: close"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n"


def chunked(body: bytes, extension: bytes = b"") -> bytes:
    return b"%x" % len(body) + extension + b"\r\n" + body + b"\r\n0\r\n\r\n"


async def exchange(port: int, *parts: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)  # the head parsed on its own read
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("codings", [["gzip, chunked"], ["identity, chunked"], ["gzip", "chunked"],
                                     ["chunked, chunked"], ["deflate,chunked"]])
async def test_codings_other_than_chunked_are_400(tmp_path: Path, provider: Provider, codings: list[str]) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        raw = await exchange(hub.port, head(codings) + chunked(BODY))
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 400
    assert answer.problem()["code"] == "bad_request"
    assert provider.received == []


@pytest.mark.parametrize("codings", [["chunked"], ["Chunked"], [" chunked "]])
async def test_chunked_alone_is_read(tmp_path: Path, provider: Provider, codings: list[str]) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        raw = await exchange(hub.port, head(codings), chunked(BODY, b";name=value"))
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 200, raw[:300]
    assert provider.last_body()["data"] == {"value": 1, "label": "x"}


async def test_chunk_extensions_count_against_the_size_limit(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, head(["chunked"]), chunked(BODY, b";x=" + b"e" * 5000))
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 413, raw[:300]
    assert answer.problem()["code"] == "payload_too_large"
    assert provider.received == []


def keep_alive_call(body: bytes = BODY) -> bytes:
    lines = [f"POST {CALL} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in call_headers().items()),
             f"Content-Length: {len(body)}"]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@pytest.mark.parametrize("count", [2, 33, 100])
async def test_pipelined_calls_after_a_late_body_are_all_answered(
        tmp_path: Path, provider: Provider, count: int) -> None:
    """aiohttp's parser stops between messages once it counts 32 in flight
    (a count a request taken before its body arrived leaves one too high)
    and keeps the rest of the write aside; the body reader's resume_reading
    parses it again, so the server must never skip that call."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            first = keep_alive_call()
            writer.write(first[:-5])  # the first body's last bytes come late
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(first[-5:] + b"".join(keep_alive_call() for _ in range(count - 1)))
            await writer.drain()
            # Answers run together (a JSON body ends without a newline): count status lines.
            received = b""
            while received.count(b"HTTP/1.1 200 ") < count:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 10)
                except TimeoutError:
                    break
                if not chunk:
                    break
                received += chunk
            answered = received.count(b"HTTP/1.1 200 ")
            assert received.count(b"HTTP/1.1 ") == answered, received[-300:]
        finally:
            writer.close()
    assert answered == count


async def test_chunked_body_in_the_head_read_is_counted(tmp_path: Path, provider: Provider) -> None:
    """Head and body in one write (so mostly one read): the body's framing counts from its first byte."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, head(["chunked"]) + chunked(BODY, b";x=" + b"e" * 5000))
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 413, raw[:300]
    assert provider.received == []


def get_healthz_chunked() -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("rest", ["over the limit", "bad chunk size"])
async def test_a_body_refused_after_the_answer_logs_no_error(
        tmp_path: Path, provider: Provider, log_sink: LogSink, rest: str) -> None:
    """A handler answered without reading the body (/healthz takes none);
    aiohttp then drains it. A body over the limit, or one that turns
    malformed, ends the connection there: no error line, no traceback."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    tail = b"1000\r\n" + b" " * 4096 + b"\r\n0\r\n\r\n" if rest == "over the limit" else b"zz\r\n"
    mark = log_sink.mark()
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, get_healthz_chunked() + b"5\r\nhello\r\n", tail)
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:300]
    errors = [r for r in log_sink.since(mark) if r.get("level") in ("error", "critical")]
    assert errors == [], errors


@pytest.mark.parametrize("cut", [2, 3, 1], ids=["between the CRLFs", "inside the first CRLF", "before the last LF"])
async def test_chunked_body_after_a_head_split_at_its_end_is_counted(
        tmp_path: Path, provider: Provider, cut: int) -> None:
    """The head's last bytes share a read with the body: the body still counts from its first byte."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    request = head(["chunked"])
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, request[:-cut], request[-cut:] + chunked(BODY, b";x=" + b"e" * 5000))
    answer = parse_answer(raw)
    assert answer is not None and answer.status == 413, raw[:300]
    assert provider.received == []


UPGRADE = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


@pytest.mark.parametrize("behind", ["chunked call", "HTTP/2.0"])
async def test_nothing_pipelined_behind_an_upgrade_request_is_served(
        tmp_path: Path, provider: Provider, behind: str) -> None:
    """aiohttp parses what follows an upgrade request from a tail that skips
    the hub's checks (version, chunked size): the upgrade request is answered
    as HTTP/1.1, then the connection closes."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    after = (head(["chunked"]) + chunked(BODY, b";x=" + b"e" * 5000) if behind == "chunked call"
             else b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n")
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, UPGRADE + after)
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.count(b"HTTP/") == 1, raw[:300]
    assert provider.received == []


async def test_chunked_body_parsed_after_a_full_queue_is_counted(tmp_path: Path, provider: Provider) -> None:
    """aiohttp holds back what follows 32 queued requests and parses it again
    later, with no read: a chunked body in those bytes still counts (over
    the limit, the connection closes and nothing is forwarded)."""
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    gets = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 40
    async with served_hub(make_config(root, limits={"max_request_bytes": 1000})) as hub:
        raw = await exchange(hub.port, gets + head(["chunked"]) + chunked(BODY, b";x=" + b"e" * 5000))
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert provider.received == []
