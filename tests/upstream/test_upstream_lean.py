"""The provider-fault suite again, with `[upstream] client = "lean"`.

The fault tests of tests/upstream/test_faults.py are collected here a second time
(imported by name), with `make_hub` overridden to select the lean client:
every provider fault must give the same code through either client. Below
them, what only a connection pool shows: keep-alive reuse, a provider that
closes idle connections, `Connection: close`, chunked answers, the cap.
"""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import HubFactory
from tests.faults import http_answer, raw_provider, read_request
from tests.support import call_headers, consumer_manifest, echo_action, provider_manifest
from tests.support import problem
from .test_faults import (  # noqa: F401  (collected again here, against the lean client)
    CALL,
    GOOD,
    GOOD_ANSWER,
    test_idempotent_action_is_not_retried_on_timeout,
    test_idempotent_action_retries_once_after_a_dropped_connection,
    test_provider_accepts_but_never_reads,
    test_provider_answers_error_status,
    test_provider_closes_mid_chunked_body,
    test_provider_closes_without_answering,
    test_provider_hangs_after_accepting,
    test_provider_refuses_connections,
    test_provider_resets_mid_body,
    test_provider_sends_garbage_not_http,
    test_provider_sends_huge_header,
    test_provider_sends_invalid_json,
    test_provider_trickles_past_the_deadline,
    test_provider_trickles_within_the_deadline,
)

CLIENTS = ["aiohttp", "lean"]


@pytest.fixture
def make_hub(make_hub: HubFactory) -> HubFactory:
    """The conftest factory, with the lean client unless a test names one."""

    async def make(**sections: Any) -> Any:
        upstream = {"client": "lean", **sections.pop("upstream", {})}
        return await make_hub(upstream=upstream, **sections)

    return make


async def hub_with(make_hub: HubFactory, url: str, client: str, **sections: Any) -> Any:
    upstream = {"client": client, **sections.pop("upstream", {})}
    return await make_hub(apps=[provider_manifest("provider-app", url), consumer_manifest()],
                          upstream=upstream, **sections)


def answers(*parts: bytes) -> Any:
    """A provider that answers every request on a connection with the next part, in turn."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(parts[0])
            await writer.drain()

    return serve


# ---- what differs from aiohttp's client, on purpose -----------------------

@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib.compress),
])
async def test_compressed_answer_is_inflated(make_hub: HubFactory, coding: str,
                                             encode: Callable[[bytes], bytes]) -> None:
    """The hub asks for identity; a provider that compresses anyway is inflated (as aiohttp's client does)."""

    async def compressed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(encode(GOOD_ANSWER), extra=f"Content-Encoding: {coding}\r\n".encode()))
        await writer.drain()

    async with raw_provider(compressed) as p:
        hub = await hub_with(make_hub, p.url, "lean")
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == GOOD_ANSWER


@pytest.mark.parametrize(("coding", "body"), [("br", b"\x8b\x02\x80"), ("gzip", b"not gzip at all"),
                                              ("gzip", gzip.compress(GOOD_ANSWER)[:-12])])
async def test_undecodable_compressed_answer_is_a_clear_502(make_hub: HubFactory, coding: str, body: bytes) -> None:
    async def compressed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(body, extra=f"Content-Encoding: {coding}\r\n".encode()))
        await writer.drain()

    async with raw_provider(compressed) as p:
        hub = await hub_with(make_hub, p.url, "lean")
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        doc = await problem(r, 502, "invalid_provider_response")
        assert "compressed" in doc["detail"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_answer_over_the_limit_is_cut(make_hub: HubFactory, client: str) -> None:
    big = b'{"data": {"echo": "' + b"0" * 300_000 + b'"}}'

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        chunked = p.connections % 2 == 0
        if chunked:  # no Content-Length to refuse it by: counted as it streams
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(big), 16_384):
                part = big[i:i + 16_384]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(http_answer(big))
        await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_with(make_hub, p.url, client, limits={"max_response_bytes": 100_000})
        for _ in range(2):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            doc = await problem(r, 502, "invalid_provider_response")
            assert "limit" in doc["detail"]
        assert p.connections == 2  # a cut connection is never reused


# ---- keep-alive, both clients ----------------------------------------------

@pytest.mark.parametrize("client", CLIENTS)
async def test_keepalive_connection_is_reused(make_hub: HubFactory, client: str) -> None:
    async with raw_provider(answers(http_answer(GOOD_ANSWER))) as p:
        hub = await hub_with(make_hub, p.url, client)
        for _ in range(5):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            assert r.status == 200, await r.text()
            assert await r.read() == GOOD_ANSWER
        assert p.connections == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_chunked_answer_over_keepalive(make_hub: HubFactory, client: str) -> None:
    half = len(GOOD_ANSWER) // 2
    chunked = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (half, GOOD_ANSWER[:half])
               + b"%x\r\n%s\r\n" % (len(GOOD_ANSWER) - half, GOOD_ANSWER[half:]) + b"0\r\n\r\n")
    async with raw_provider(answers(chunked)) as p:
        hub = await hub_with(make_hub, p.url, client)
        for _ in range(3):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            assert r.status == 200, await r.text()
            assert await r.read() == GOOD_ANSWER
        assert p.connections == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_connection_close_answer_is_not_reused(make_hub: HubFactory, client: str) -> None:
    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(GOOD_ANSWER, extra=b"Connection: close\r\n"))
        await writer.drain()
        await asyncio.sleep(5)  # the hub must not wait for this close, nor reuse the connection

    async with raw_provider(close_each) as p:
        hub = await hub_with(make_hub, p.url, client)
        for _ in range(3):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            assert r.status == 200, await r.text()
        assert p.connections == 3


@pytest.mark.parametrize("client", CLIENTS)
async def test_answer_delimited_by_close(make_hub: HubFactory, client: str) -> None:
    """No Content-Length, not chunked: the answer ends with the connection."""

    async def until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + GOOD_ANSWER)
        await writer.drain()

    async with raw_provider(until_eof) as p:
        hub = await hub_with(make_hub, p.url, client)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == GOOD_ANSWER


@pytest.mark.parametrize("client", CLIENTS)
async def test_provider_closing_idle_connections(make_hub: HubFactory, client: str) -> None:
    """A provider that closes each keep-alive connection shortly after answering:
    the next call opens a fresh one instead of failing on the dead one."""

    async def short_idle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(GOOD_ANSWER))
        await writer.drain()
        await asyncio.sleep(0.05)  # then the handler returns: the connection closes

    async with raw_provider(short_idle) as p:
        hub = await hub_with(make_hub, p.url, client)
        for _ in range(3):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            assert r.status == 200, await r.text()
            await asyncio.sleep(0.2)
        assert p.connections == 3


async def test_idle_connections_expire(make_hub: HubFactory) -> None:
    async with raw_provider(answers(http_answer(GOOD_ANSWER))) as p:
        hub = await hub_with(make_hub, p.url, "lean", upstream={"keepalive_timeout_s": 0.2})
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200
        await asyncio.sleep(0.5)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200
        assert p.connections == 2


async def test_pool_size_caps_open_connections(make_hub: HubFactory) -> None:
    """pool_size = 2: ten calls at once share two connections, none fails."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.02)
            writer.write(http_answer(GOOD_ANSWER))
            await writer.drain()

    async with raw_provider(slow) as p:
        hub = await hub_with(make_hub, p.url, "lean", upstream={"pool_size": 2})
        rs = await asyncio.gather(*(hub.post(CALL, json=GOOD, headers=call_headers()) for _ in range(10)))
        assert [r.status for r in rs] == [200] * 10
        assert p.connections == 2


async def test_cancelled_exchange_never_returns_to_the_pool(make_hub: HubFactory) -> None:
    """A deadline in the middle of an answer: that connection is closed, the
    next call gets a fresh one and a clean answer (not the stale bytes)."""

    async def first_slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            if p.connections == 1:
                writer.write(http_answer(GOOD_ANSWER)[:-5])
                await writer.drain()
                await asyncio.sleep(1)
                writer.write(GOOD_ANSWER[-5:])
            else:
                writer.write(http_answer(GOOD_ANSWER))
            await writer.drain()

    async with raw_provider(first_slow) as p:
        hub = await hub_with(make_hub, p.url, "lean")
        r = await hub.post(CALL + "?timeout=200", json=GOOD, headers=call_headers())
        await problem(r, 504, "provider_timeout")
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == GOOD_ANSWER
        assert p.connections == 2


async def test_dns_failure_is_unreachable(make_hub: HubFactory) -> None:
    hub = await hub_with(make_hub, "http://no-such-host.invalid/action", "lean")
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    await problem(r, 502, "provider_unreachable")


async def test_echo_action_passes(make_hub: HubFactory) -> None:
    """The fixture's real aiohttp provider, through lean: signature and request id arrive."""
    hub = await make_hub(actions=[echo_action()])
    r = await hub.post(CALL, json=GOOD, headers={**call_headers(), "X-Request-Id": "lean-req-1"})
    assert r.status == 200, await r.text()
    assert r.headers["X-Request-Id"] == "lean-req-1"


# ---- the seam itself under uvloop (the loop `apihub serve` runs) ------------

async def _uvloop_scenarios() -> None:
    from proxy.config import LimitsConfig, UpstreamConfig
    from proxy.errors import InvalidProviderResponse, ProviderTimeout, ProviderUnreachable
    from proxy.upstream.lean import LeanClient

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if b"/cut" in request:
                writer.write(http_answer(GOOD_ANSWER)[:-3])
                await writer.drain()
                return
            if b"/big" in request:
                writer.write(http_answer(b"x" * 5_000))
            elif b"/hang" in request:
                await asyncio.sleep(5)
            else:
                writer.write(http_answer(GOOD_ANSWER))
            await writer.drain()

    lean = LeanClient(UpstreamConfig(), LimitsConfig(max_response_bytes=1_000))
    try:
        async with raw_provider(serve) as p:
            base = p.url.rsplit("/", 1)[0]
            for _ in range(3):
                answer = await lean.post(base + "/ok", b"{}", pool="p", secret="s", request_id="r", deadline_s=2)
                assert answer.body == GOOD_ANSWER and answer.upstream_ms > 0
            assert p.connections == 1
            for path, error in (("/cut", ProviderUnreachable), ("/big", InvalidProviderResponse),
                                ("/hang", ProviderTimeout)):
                with pytest.raises(error):
                    await lean.post(base + path, b"{}", pool="p", secret="s", request_id="r", deadline_s=0.3)
            answer = await lean.post(base + "/ok", b"{}", pool="p", secret="s", request_id="r", deadline_s=2)
            assert answer.body == GOOD_ANSWER
    finally:
        await lean.close()


def test_lean_client_under_uvloop() -> None:
    import uvloop

    uvloop.run(_uvloop_scenarios())


@pytest.mark.parametrize("client", CLIENTS)
async def test_interim_100_continue_is_skipped(make_hub: HubFactory, client: str) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + http_answer(GOOD_ANSWER)
    async with raw_provider(answers(interim)) as p:
        hub = await hub_with(make_hub, p.url, client)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == GOOD_ANSWER


# ---- https: TLS with the provider's host name verified ----------------------

async def test_https_provider(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider behind TLS with a certificate for 127.0.0.1 that the system
    trusts (SSL_CERT_FILE names it): answered; the same server without that
    trust: provider_unreachable, not a silent downgrade."""
    import shutil
    import ssl
    import subprocess

    from proxy.config import LimitsConfig, UpstreamConfig
    from proxy.errors import ProviderUnreachable
    from proxy.upstream.lean import LeanClient

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(GOOD_ANSWER))
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/action"
    try:
        untrusting = LeanClient(UpstreamConfig(), LimitsConfig())
        with pytest.raises(ProviderUnreachable):
            await untrusting.post(url, b"{}", pool="p", secret="s", request_id="r", deadline_s=5)
        await untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusting = LeanClient(UpstreamConfig(), LimitsConfig())
        answer = await trusting.post(url, b"{}", pool="p", secret="s", request_id="r", deadline_s=5)
        assert answer.body == GOOD_ANSWER
        await trusting.close()
    finally:
        server.close()
        await server.wait_closed()
