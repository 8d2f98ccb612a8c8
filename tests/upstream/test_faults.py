"""The fault suite: misbehaving providers and consumers over real sockets.

Each provider fault must give its documented code quickly (or at the
deadline), leave the hub serving, and leave no body or secret in the logs.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import HubFactory, LogSink, Provider
from tests.faults import (
    ANSWER_MARKER,
    BODY_MARKER,
    assert_clean_logs,
    exchange,
    http_answer,
    raw_provider,
    read_request,
    request_bytes,
    reset,
    served_hub,
    stop_process,
    vm_kib,
)
from tests.support import (
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    make_config,
    provider_manifest,
    start_hub_process,
    wait_ready,
    write_catalogue,
    write_config_file,
)
from tests.support import problem

CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": BODY_MARKER}}
GOOD_ANSWER = orjson.dumps({"data": {"echo": ANSWER_MARKER}})


async def hub_for(make_hub: HubFactory, url: str, **sections: Any) -> Any:
    return await make_hub(apps=[provider_manifest("provider-app", url), consumer_manifest()], **sections)


async def still_serving(hub: Any) -> None:
    r = await hub.get("/healthz")
    assert r.status == 200


# ---- provider faults ------------------------------------------------------

async def test_provider_hangs_after_accepting(make_hub: HubFactory, log_sink: LogSink) -> None:
    mark = log_sink.mark()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with raw_provider(hang) as p:
        hub = await hub_for(make_hub, p.url)
        started = time.monotonic()
        r = await hub.post(CALL + "?timeout=400", json=GOOD, headers=call_headers())
        elapsed = time.monotonic() - started
        await problem(r, 504, "provider_timeout")
        assert 0.39 <= elapsed < 2.5
        await still_serving(hub)
    assert_clean_logs(orjson.dumps(log_sink.since(mark)).decode())


async def test_provider_accepts_but_never_reads(make_hub: HubFactory) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with raw_provider(mute) as p:
        hub = await hub_for(make_hub, p.url, upstream={"timeout_ms": 400})
        started = time.monotonic()
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        await problem(r, 504, "provider_timeout")
        assert time.monotonic() - started < 2.5


async def test_provider_refuses_connections(make_hub: HubFactory) -> None:
    hub = await hub_for(make_hub, f"http://127.0.0.1:{free_port()}/action")
    started = time.monotonic()
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    doc = await problem(r, 502, "provider_unreachable")
    assert "refused" in doc["detail"].lower() or "connect" in doc["detail"].lower()
    assert time.monotonic() - started < 2.5
    await still_serving(hub)


async def test_provider_closes_without_answering(make_hub: HubFactory) -> None:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with raw_provider(close) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        await problem(r, 502, "provider_unreachable")
        assert p.connections == 1  # not retried: the action is not idempotent


async def test_provider_resets_mid_body(make_hub: HubFactory) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     + b'{"data": {"echo": "' + b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with raw_provider(cut) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "provider_unreachable")
        assert "x" * 20 not in doc["detail"]
        await still_serving(hub)


async def test_provider_closes_mid_chunked_body(make_hub: HubFactory) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"data\": {\"echo\"\r\n")
        await writer.drain()

    async with raw_provider(cut) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        await problem(r, 502, "provider_unreachable")


@pytest.mark.parametrize("answer", [
    b"{not json", b'{"data": {"echo": 1}', b"\xff\xfe\x00garbage", b'{"data": NaN}',
    orjson.dumps({"data": {"nope": ANSWER_MARKER}}),
])
async def test_provider_sends_invalid_json(make_hub: HubFactory, log_sink: LogSink, answer: bytes) -> None:
    mark = log_sink.mark()

    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(answer))
        await writer.drain()

    async with raw_provider(bad) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "invalid_provider_response")
        assert ANSWER_MARKER not in orjson.dumps(doc).decode()
    assert_clean_logs(orjson.dumps(log_sink.since(mark)).decode())


async def test_provider_sends_garbage_not_http(make_hub: HubFactory) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6 " + ANSWER_MARKER.encode() + b"\r\n\r\n")
        await writer.drain()

    async with raw_provider(garbage) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "invalid_provider_response")
        assert ANSWER_MARKER not in doc["detail"]


async def test_provider_sends_huge_header(make_hub: HubFactory) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(GOOD_ANSWER, extra=b"X-Junk: " + b"j" * 200_000 + b"\r\n"))
        await writer.drain()

    async with raw_provider(huge) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        await problem(r, 502, "invalid_provider_response")


@pytest.mark.parametrize("status", [500, 503, 302])
async def test_provider_answers_error_status(make_hub: HubFactory, status: int) -> None:
    async def fail(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(b'{"oops": "' + ANSWER_MARKER.encode() + b'"}', f"{status} Whatever",
                                 extra=b"Location: http://127.0.0.1:1/elsewhere\r\n"))
        await writer.drain()

    async with raw_provider(fail) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "provider_error")
        assert str(status) in doc["detail"]
        assert doc["providerStatus"] == status
        assert ANSWER_MARKER not in orjson.dumps(doc).decode()
        assert p.connections == 1  # a redirect is not followed


async def test_provider_gzip_bomb_is_cut_at_the_limit(make_hub: HubFactory) -> None:
    """A small compressed answer that inflates past the limit: counted as it inflates."""
    bomb = gzip.compress(b'{"data": {"echo": "' + b"0" * 5_000_000 + b'"}}')
    assert len(bomb) < 10_000

    async def inflate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(bomb, extra=b"Content-Encoding: gzip\r\n"))
        await writer.drain()

    async with raw_provider(inflate) as p:
        hub = await hub_for(make_hub, p.url, limits={"max_response_bytes": 100_000})
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "invalid_provider_response")
        assert "limit" in doc["detail"]


def trickler(body: bytes, *, pause_s: float) -> Any:
    """A provider that sends its head at once, then the body a byte at a time."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(body)[: -len(body)])
        for i in range(len(body)):
            writer.write(body[i:i + 1])
            await writer.drain()
            await asyncio.sleep(pause_s)

    return trickle


async def test_provider_trickles_past_the_deadline(make_hub: HubFactory) -> None:
    """Headers at once, then the body a byte every 50 ms: the deadline covers
    the whole answer, not just its first byte."""
    async with raw_provider(trickler(GOOD_ANSWER, pause_s=0.05)) as p:
        hub = await hub_for(make_hub, p.url)
        started = time.monotonic()
        r = await hub.post(CALL + "?timeout=600", json=GOOD, headers=call_headers())
        elapsed = time.monotonic() - started
        await problem(r, 504, "provider_timeout")
        assert 0.59 <= elapsed < 2.5


async def test_provider_trickles_within_the_deadline(make_hub: HubFactory) -> None:
    """The same trickle inside the deadline is a slow but valid answer: 200, bytes unchanged."""
    body = b'{"data": {"echo": 1}}'
    async with raw_provider(trickler(body, pause_s=0.01)) as p:
        hub = await hub_for(make_hub, p.url)
        r = await hub.post(CALL + "?timeout=5000", json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == body


# ---- idempotent actions: one retry on connection failure --------------------

async def test_idempotent_action_retries_once_after_a_dropped_connection(make_hub: HubFactory) -> None:
    async def flaky(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if p.connections == 1:
            return  # closes without answering
        writer.write(http_answer(GOOD_ANSWER))
        await writer.drain()

    async with raw_provider(flaky) as p:
        hub = await make_hub(actions=[{**echo_action(), "idempotent": True}],
                             apps=[provider_manifest("provider-app", p.url), consumer_manifest()])
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert p.connections == 2


async def test_idempotent_action_is_not_retried_on_timeout(make_hub: HubFactory) -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with raw_provider(hang) as p:
        hub = await make_hub(actions=[{**echo_action(), "idempotent": True}],
                             apps=[provider_manifest("provider-app", p.url), consumer_manifest()])
        r = await hub.post(CALL + "?timeout=300", json=GOOD, headers=call_headers())
        await problem(r, 504, "provider_timeout")
        assert p.connections == 1


# ---- bulkheads: a hung provider cannot starve the others --------------------

async def test_500_calls_to_a_hung_provider_leave_others_served(
    tmp_path: Path, provider: Provider, log_sink: LogSink,
) -> None:
    limit, hung_ms = 40, 4000
    seen = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if hung.connections >= limit:
            seen.set()
        await asyncio.sleep(30)

    async with raw_provider(hang) as hung:
        root = write_catalogue(tmp_path / "catalogue", [echo_action()], [
            provider_manifest("hung-app", hung.url, timeoutMs=hung_ms, maxConcurrency=limit),
            provider_manifest("provider-app", provider.url),
            consumer_manifest(),
        ])
        config = make_config(root)  # the healthy provider keeps the default limit (100)
        async with served_hub(config) as hub, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
        ) as session:

            async def call(provider_id: str) -> tuple[int, str, float]:
                started = time.monotonic()
                async with session.post(f"{hub.url}/v1/services/call/{ECHO}/{provider_id}",
                                        json=GOOD, headers=call_headers()) as r:
                    body = await r.read()
                    code = orjson.loads(body).get("code", "ok") if r.status != 200 else "ok"
                    return r.status, code, time.monotonic() - started

            hung_calls = [asyncio.create_task(call("hung-app")) for _ in range(500)]
            async with asyncio.timeout(hung_ms / 1000):
                await seen.wait()  # the hung provider holds `limit` calls
            healthy = await asyncio.gather(*(call("provider-app") for _ in range(50)))
            results = await asyncio.gather(*hung_calls)

    assert [s for s, _, _ in healthy if s != 200] == [], [h for h in healthy if h[0] != 200]
    # Served meanwhile with normal latency: far below the hung provider's deadline.
    assert max(elapsed for _, _, elapsed in healthy) < 2.0
    codes = [code for _, code, _ in results]
    assert codes.count("provider_timeout") == limit
    assert codes.count("provider_overloaded") == 500 - limit
    overloaded = [elapsed for _, code, elapsed in results if code == "provider_overloaded"]
    assert max(overloaded) < hung_ms / 1000 * 0.75  # refused at once, not at the deadline
    assert hung.connections == limit  # the provider never saw more than its limit


async def test_manifest_max_concurrency_overrides_config(make_hub: HubFactory) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if p.connections == 2:
            entered.set()
        await release.wait()
        writer.write(http_answer(GOOD_ANSWER))
        await writer.drain()

    async with raw_provider(slow) as p:
        hub = await make_hub(apps=[provider_manifest("provider-app", p.url, maxConcurrency=2),
                                   consumer_manifest()])
        first = [asyncio.create_task(hub.post(CALL, json=GOOD, headers=call_headers())) for _ in range(2)]
        await asyncio.wait_for(entered.wait(), 5)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 503, "provider_overloaded")
        assert "limit (2" in doc["detail"]
        release.set()
        for task in first:
            assert (await task).status == 200
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200


# ---- consumer faults, against the production runner --------------------------

async def test_slowloris_is_cut_off_while_others_are_served(
    tmp_path: Path, provider: Provider, log_sink: LogSink,
) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    config = make_config(root, server={"header_timeout_ms": 600})
    head = request_bytes("POST", CALL, call_headers(), orjson.dumps(GOOD))

    async with served_hub(config) as hub:
        async def slowloris() -> tuple[bytes, float]:
            reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
            started = time.monotonic()
            answer = asyncio.create_task(reader.read())  # returns when the hub closes
            try:
                for i in range(len(head)):
                    if answer.done():
                        break
                    writer.write(head[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.05)
            except ConnectionError:
                pass
            try:
                got = await asyncio.wait_for(answer, 5)
            except ConnectionError:
                got = b""  # reset: the 408 was lost with it
            finally:
                writer.close()
            return got, time.monotonic() - started

        attackers = [asyncio.create_task(slowloris()) for _ in range(20)]
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as session:
            for _ in range(10):
                async with session.post(hub.url + CALL, json=GOOD, headers=call_headers()) as r:
                    assert r.status == 200
        results = await asyncio.gather(*attackers)

    for got, elapsed in results:
        # Cut at the header timeout, long before the 75 s keep-alive timer.
        assert 0.5 < elapsed < 3.0, elapsed
        if got:  # 408 problem+json, or the connection closed under our feet
            assert got.startswith(b"HTTP/1.1 408 "), got[:100]
            assert b"application/problem+json" in got and b"request_timeout" in got
    assert any(got for got, _ in results)


async def test_silent_connection_is_closed_at_the_header_timeout(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root, server={"header_timeout_ms": 300})) as hub:
        started = time.monotonic()
        answer = await exchange(hub.port, b"", timeout_s=5)
        assert answer is None  # closed without a word
        assert time.monotonic() - started < 2.5


async def test_keepalive_connection_gets_a_header_timeout_per_request(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root, server={"header_timeout_ms": 400})) as hub:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            # Two quick requests on one connection, idle in between longer
            # than the header timeout: an idle keep-alive is not a slow head.
            for _ in range(2):
                writer.write(request_bytes("GET", "/healthz", {}, close=False))
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(0.6)
            # Then a head that starts and stalls.
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            started = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), 5)
            assert time.monotonic() - started < 2.5
            assert rest.startswith(b"HTTP/1.1 408 ")
        finally:
            writer.close()


async def test_slow_body_gets_408_and_the_connection_closes(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root, server={"body_timeout_ms": 400})) as hub:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            data = request_bytes("POST", CALL, call_headers(), orjson.dumps(GOOD), close=False)
            writer.write(data[:-10])  # the head and most of the body; the rest never comes
            await writer.drain()
            started = time.monotonic()
            got = await asyncio.wait_for(reader.read(), 5)  # read() returns at EOF: the hub closed
            assert time.monotonic() - started < 2.5
        finally:
            writer.close()
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"request_timeout" in got


@pytest.mark.parametrize("data, status, code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400, "bad_request"),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request"),
    # aiohttp reads a request line without a version as HTTP/0.9, and answers 2.0 in kind.
    (b"GET /healthz\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"POST /v1/services/call/a/b HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400, "bad_request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"t" * 9000 + b"\r\n\r\n",
     431, "request_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n",
     431, "request_too_large"),
])
async def test_malformed_http_is_problem_json(
    tmp_path: Path, provider: Provider, log_sink: LogSink, data: bytes, status: int, code: str,
) -> None:
    mark = log_sink.mark()
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        answer = await exchange(hub.port, data)
        assert answer is not None
        assert answer.status == status
        assert answer.problem()["code"] == code
        # The hub still serves.
        ok = await exchange(hub.port, request_bytes("GET", "/healthz", {}))
        assert ok is not None and ok.status == 200
    lines = log_sink.since(mark)
    rejected = [line for line in lines if line["event"] == "http_rejected"]
    assert rejected and rejected[0]["code"] == code and rejected[0]["status"] == status
    assert b"t" * 50 not in orjson.dumps(lines)  # the header's bytes are not logged


async def test_malformed_chunked_body_is_400_at_once(tmp_path: Path, provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        try:
            headers = [*call_headers().items(), ("Transfer-Encoding", "chunked")]
            head = "\r\n".join([f"POST {CALL} HTTP/1.1", "Host: x", *(f"{k}: {v}" for k, v in headers)])
            writer.write(head.encode() + b"\r\n\r\n5\r\n{\"dat\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)  # the handler is now waiting for the rest
            writer.write(b"zz\r\nnot a chunk\r\n")
            started = time.monotonic()
            got = await asyncio.wait_for(reader.read(), 5)
            assert time.monotonic() - started < 2.0
        finally:
            writer.close()
    assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    assert b'"code":"bad_request"' in got
    assert got.count(b"HTTP/1.") == 1  # one answer, then the connection closes
    assert len(provider.received) == 0


async def test_consumer_disconnects_mid_body(tmp_path: Path, provider: Provider, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    async with served_hub(make_config(root)) as hub:
        _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        data = request_bytes("POST", CALL, call_headers(), orjson.dumps(GOOD))
        writer.write(data[:-10])
        await writer.drain()
        await asyncio.sleep(0.2)
        reset(writer)
        await asyncio.sleep(0.3)
        ok = await exchange(hub.port, request_bytes("GET", "/healthz", {}))
        assert ok is not None and ok.status == 200
    events = [line["event"] for line in log_sink.since(mark)]
    assert "unhandled_error" not in events
    assert len(provider.received) == 0


# ---- bounded memory, measured on a hub process ----------------------------

@pytest.mark.slow
async def test_50mb_answer_does_not_grow_hub_memory(tmp_path: Path) -> None:
    """50 MB from a provider, with and without a Content-Length: 502 while the
    hub's peak RSS grows by far less than 50 MB (the default 10 MiB limit)."""
    chunk = b"x" * 65536

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        chunked = b"chunked" in request
        prefix = b'{"data": {"echo": "'
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % (50 * 1024 * 1024 + len(prefix) + 3))
        writer.write(b"%x\r\n%s\r\n" % (len(prefix), prefix) if chunked else prefix)
        for _ in range(50 * 16):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()

    async with raw_provider(flood) as p:
        root = write_catalogue(tmp_path / "catalogue", [echo_action()], [
            provider_manifest("provider-app", p.url),
            consumer_manifest(),
        ])
        port = free_port()
        config = write_config_file(tmp_path / "config.toml", root, port)
        log_path = tmp_path / "hub.log"
        proc = start_hub_process(config, log_path)
        try:
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/healthz", proc)
            url = f"http://127.0.0.1:{port}{CALL}"
            async with aiohttp.ClientSession() as session:
                async with session.post(url, json=GOOD, headers=call_headers()) as r:  # warm up
                    await r.read()
                before = vm_kib(proc.pid, "VmRSS")
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
                for marker in ("chunked", "plain"):
                    body = {"data": {"value": 1, "label": marker}}
                    async with session.post(url, json=body, headers=call_headers()) as r:
                        doc = await r.json(content_type=None)
                        assert r.status == 502 and doc["code"] == "invalid_provider_response", doc
                        assert "limit" in doc["detail"], (marker, doc)
                peak = vm_kib(proc.pid, "VmHWM")
                async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                    assert r.status == 200
            assert proc.poll() is None
            growth_mib = (peak - before) / 1024
            print(f"hub VmRSS before {before / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
                  f"growth {growth_mib:.1f} MiB for 2 x 50 MiB answers")
            assert growth_mib < 25, growth_mib
        finally:
            assert stop_process(proc) == 0
        assert_clean_logs(log_path.read_text())
