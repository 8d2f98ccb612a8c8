"""Provider connections: an answer reaches only the call that asked for it.

Raw asyncio providers that misbehave exactly (a second answer after the
real one, an unasked answer on an idle connection, a tail after a complete
answer, idle closes, two provider apps on one host:port), against both
provider clients. The echo action is not idempotent, so every retry seen
here is one the "provably never received" rule allows.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from proxy.config import LimitsConfig, UpstreamConfig
from proxy.errors import ProviderTimeout
from proxy.upstream.lean import LeanClient
from tests.conftest import HubFactory
from tests.faults import http_answer, raw_provider, read_request
from tests.support import ECHO, call_headers, consumer_manifest, problem, provider_manifest

CLIENTS = ["aiohttp", "lean"]
GOOD = {"data": {"value": 3, "label": "x"}}


def answer_of(name: str) -> bytes:
    return http_answer(orjson.dumps({"data": {"echo": name}}))


def call(app: str = "provider-app") -> str:
    return f"/v1/services/call/{ECHO}/{app}"


async def echoed(r: Any) -> str:
    assert r.status == 200, await r.text()
    return str(orjson.loads(await r.read())["data"]["echo"])


async def hub_for(make_hub: HubFactory, client: str, providers: dict[str, str], **sections: Any) -> Any:
    upstream = {"client": client, **sections.pop("upstream", {})}
    apps = [provider_manifest(app, url) for app, url in providers.items()]
    return await make_hub(apps=[*apps, consumer_manifest()], upstream=upstream, **sections)


@pytest.mark.parametrize("client", CLIENTS)
async def test_late_answer_never_reaches_another_app_on_the_same_host_port(
        make_hub: HubFactory, client: str) -> None:
    """App A's provider writes a second, late answer after each real one; app B
    is served from the same host:port. B never reads A's bytes, A's next call
    gets its own answer."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            app = "a" if b"POST /a " in request else "b"
            writer.write(answer_of(app))
            await writer.drain()
            if app == "a":
                await asyncio.sleep(0.03)
                writer.write(answer_of("a-late"))
                await writer.drain()

    async with raw_provider(serve) as p:
        base = p.url.rsplit("/", 1)[0]
        hub = await hub_for(make_hub, client, {"app-a": base + "/a", "app-b": base + "/b"})
        for _ in range(5):
            assert await echoed(await hub.post(call("app-a"), json=GOOD, headers=call_headers())) == "a"
            # Sent while A's late answer is still on its way.
            assert await echoed(await hub.post(call("app-b"), json=GOOD, headers=call_headers())) == "b"
            await asyncio.sleep(0.06)  # the late answer lands on A's idle connection: it is closed
        assert p.connections >= 6  # B on its own connection, A's never reused after a late answer


@pytest.mark.parametrize("client", CLIENTS)
async def test_unasked_answer_on_an_idle_connection_is_never_read(make_hub: HubFactory, client: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer_of("asked"))
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(answer_of("unasked"))
            await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})
        for _ in range(4):
            assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "asked"
            await asyncio.sleep(0.08)
        assert p.connections == 4


TAILS = {
    "garbage": b"garbage\r\n",
    "second answer": answer_of("second"),
    "second answer head": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
}


@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("client", CLIENTS)
async def test_bytes_after_a_complete_answer_fail_only_that_call(
        make_hub: HubFactory, client: str, tail: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await read_request(reader)
            if b'"value":1' in request:
                writer.write(answer_of("with tail") + TAILS[tail])  # one write: one read, as a rule
            else:
                writer.write(answer_of("clean"))
            await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})
        assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "clean"
        r = await hub.post(call(), json={"data": {"value": 1, "label": "x"}}, headers=call_headers())
        doc = await problem(r, 502, "invalid_provider_response")
        assert "after" in doc["detail"] or "not valid HTTP" in doc["detail"]
        for _ in range(3):
            assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "clean"


@pytest.mark.parametrize("client", CLIENTS)
async def test_idle_closes_by_the_provider_cost_no_call(make_hub: HubFactory, client: str) -> None:
    """The provider closes a keep-alive connection 50 ms after its last answer;
    200 calls spaced around that moment, none fails."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(0.05):
                    await read_request(reader)
            except TimeoutError:
                return  # idle for 50 ms: close
            writer.write(answer_of("ok"))
            await writer.drain()

    rng = random.Random(7)
    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})

        async def caller() -> list[str]:
            statuses = []
            for _ in range(20):
                r = await hub.post(call(), json=GOOD, headers=call_headers())
                body = await r.read()
                statuses.append("ok" if r.status == 200 else body.decode())
                await asyncio.sleep(rng.uniform(0.04, 0.06))
            return statuses

        results = await asyncio.gather(*(caller() for _ in range(10)))
    assert [s for statuses in results for s in statuses if s != "ok"] == []


@pytest.mark.parametrize("client", CLIENTS)
async def test_reused_connection_closed_before_answering_is_sent_again(make_hub: HubFactory, client: str) -> None:
    """The close crosses the second request on a kept-alive connection: no
    byte of an answer came back, so the POST goes again on a new connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer_of("ok"))
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # the next request arrives: close without a byte

    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})
        for _ in range(3):
            assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "ok"
        assert p.connections == 3


@pytest.mark.parametrize("client", CLIENTS)
async def test_answer_started_then_closed_is_never_sent_again(make_hub: HubFactory, client: str) -> None:
    """Part of an answer came back on a reused connection: the provider got the
    request, so a non-idempotent call fails instead of being sent twice."""
    seen = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer_of("ok"))
        await writer.drain()
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
        await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})
        assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "ok"
        r = await hub.post(call(), json=GOOD, headers=call_headers())
        assert r.status == 502, await r.text()
        assert len(seen) == 1 and p.connections == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_timed_out_exchange_is_never_reused(make_hub: HubFactory, client: str) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            if p.connections == 1:
                await asyncio.sleep(0.3)  # after the caller's deadline: an answer nobody waits for
            writer.write(answer_of(f"conn {p.connections}"))
            await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url})
        r = await hub.post(call() + "?timeout=100", json=GOOD, headers=call_headers())
        await problem(r, 504, "provider_timeout")
        await asyncio.sleep(0.4)
        assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "conn 2"


async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        await asyncio.sleep(0.03)
        writer.write(answer_of("ok"))
        await writer.drain()


async def test_lean_pool_pressure_never_500_and_never_leaks() -> None:
    """pool_size = 2, 40 calls at once with short deadlines to a slow provider:
    each one answers or times out (no ValueError from the waiter list), then
    a normal call succeeds and every slot comes back."""

    async with raw_provider(slow) as p:
        lean = LeanClient(UpstreamConfig(pool_size=2), LimitsConfig())
        rng = random.Random(3)

        async def one() -> str:
            try:
                await lean.post(p.url, b"{}", pool="p", secret="s", request_id="r",
                                deadline_s=rng.uniform(0.01, 0.12))
                return "ok"
            except ProviderTimeout:
                return "timeout"

        for _ in range(3):
            outcomes = await asyncio.gather(*(one() for _ in range(40)))
            assert set(outcomes) <= {"ok", "timeout"} and "timeout" in outcomes
        answer = await lean.post(p.url, b"{}", pool="p", secret="s", request_id="r", deadline_s=5)
        assert orjson.loads(answer.body) == {"data": {"echo": "ok"}}
        await lean.close()
        for _ in range(10):
            await asyncio.sleep(0)
        assert lean._pool._open == 0 and not lean._pool._waiters


@pytest.mark.parametrize("client", CLIENTS)
async def test_pool_pressure_through_the_hub_gives_no_500(make_hub: HubFactory, client: str) -> None:
    async with raw_provider(slow) as p:
        hub = await hub_for(make_hub, client, {"provider-app": p.url}, upstream={"pool_size": 2})
        rs = await asyncio.gather(*(
            hub.post(call() + f"?timeout={20 + 10 * (i % 8)}", json=GOOD, headers=call_headers())
            for i in range(40)))
        assert {r.status for r in rs} <= {200, 504}
        assert await echoed(await hub.post(call(), json=GOOD, headers=call_headers())) == "ok"
