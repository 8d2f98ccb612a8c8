"""Answers whose HTTP framing is hostile or broken, against both provider
clients: each ends in its documented code at once (never at the deadline),
never relays a byte of a message that is not the 2xx answer, and leaves the
provider's other calls and the hub's memory as they were.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Any

import orjson
import pytest

from tests.conftest import HubFactory
from tests.faults import http_answer, raw_provider, read_request
from tests.support import ECHO, call_headers, consumer_manifest, problem, provider_manifest

CLIENTS = ["aiohttp", "lean"]
GOOD = {"data": {"value": 3, "label": "x"}}
CALL = f"/v1/services/call/{ECHO}/provider-app"


def body_of(name: str) -> bytes:
    return orjson.dumps({"data": {"echo": name}})


async def hub_with(make_hub: HubFactory, url: str, client: str, **sections: Any) -> Any:
    upstream = {"client": client, **sections.pop("upstream", {})}
    return await make_hub(apps=[provider_manifest("provider-app", url), consumer_manifest()],
                          upstream=upstream, **sections)


def once(answer: bytes, *, then: bytes = b"", pause_s: float = 0.0) -> Any:
    """Answers each request with `answer`, then (after `pause_s`) `then`, keeping the connection open."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            if then:
                await asyncio.sleep(pause_s)
                writer.write(then)
                await writer.drain()

    return serve


async def timed_call(hub: Any) -> tuple[Any, float]:
    started = time.monotonic()
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    await r.read()
    return r, time.monotonic() - started


@pytest.mark.parametrize("status", [b"000 Internal", b"099 Odd"])
@pytest.mark.parametrize("client", CLIENTS)
async def test_status_below_100_is_never_an_interim_answer(make_hub: HubFactory, client: str, status: bytes) -> None:
    """llhttp reads any three digits, and a body after a status under 100:
    that body must not be taken for (part of) the answer."""
    sneaked = body_of("from-bogus-status")
    bogus = b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(sneaked) + sneaked
    async with raw_provider(once(bogus + http_answer(b""))) as p:
        hub = await hub_with(make_hub, p.url, client)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 502
        assert b"from-bogus-status" not in await r.read()


@pytest.mark.parametrize("client", CLIENTS)
async def test_bad_chunk_after_the_head_fails_at_once(make_hub: HubFactory, client: str) -> None:
    """Bad chunk framing that arrives after the head: 502 at once, not the deadline."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with raw_provider(once(head + b"5\r\n{\"dat\r\n", then=b"zz\r\n", pause_s=0.05)) as p:
        hub = await hub_with(make_hub, p.url, client, upstream={"timeout_ms": 5_000})
        r, took = await timed_call(hub)
        assert r.status == 502 and (await r.json())["code"] == "invalid_provider_response"
        assert took < 2


GZIPPED = gzip.compress(body_of("whole"))


@pytest.mark.parametrize("client", CLIENTS)
async def test_gzip_members_are_all_inflated(make_hub: HubFactory, client: str) -> None:
    """A gzip body may be several members in a row: the answer is all of them."""
    whole = body_of("whole")
    members = gzip.compress(whole[:10]) + gzip.compress(whole[10:])
    answer = http_answer(members, extra=b"Content-Encoding: gzip\r\n")
    async with raw_provider(once(answer)) as p:
        hub = await hub_with(make_hub, p.url, client)
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        assert await r.read() == whole


@pytest.mark.parametrize("trailing", [b"garbage", gzip.compress(b'  , "x": 1')])
@pytest.mark.parametrize("client", CLIENTS)
async def test_bytes_after_the_compressed_answer_are_never_dropped(
        make_hub: HubFactory, client: str, trailing: bytes) -> None:
    """Bytes after the first gzip member are not dropped unread: garbage
    does not inflate (and is not counted against the provider's breaker),
    a second member is part of the document, here making it invalid JSON."""
    answer = http_answer(GZIPPED + trailing, extra=b"Content-Encoding: gzip\r\n")
    async with raw_provider(once(answer)) as p:
        hub = await hub_with(make_hub, p.url, client, breaker={"failure_threshold": 2})
        for _ in range(4):
            await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502,
                          "invalid_provider_response")


@pytest.mark.parametrize("client", CLIENTS)
async def test_corrupt_compressed_answer_is_invalid_not_unreachable(make_hub: HubFactory, client: str) -> None:
    answer = http_answer(body_of("not compressed"), extra=b"Content-Encoding: gzip\r\n")
    async with raw_provider(once(answer)) as p:
        hub = await hub_with(make_hub, p.url, client, breaker={"failure_threshold": 2})
        for _ in range(4):  # never provider_overloaded: the breaker counts unreachable providers only
            doc = await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502,
                                "invalid_provider_response")
            assert "inflate" in doc["detail"]


@pytest.mark.parametrize("coding", [b"identity", b"gzip", b"gzip, chunked"])
async def test_transfer_encoding_other_than_chunked_is_refused(make_hub: HubFactory, coding: bytes) -> None:
    """The lean client decodes no transfer coding but chunked: named in a 502, never read as cut off."""
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: " + coding
              + b"\r\nConnection: close\r\n\r\n" + body_of("te"))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    async with raw_provider(serve) as p:
        hub = await hub_with(make_hub, p.url, "lean", breaker={"failure_threshold": 2})
        for _ in range(3):
            doc = await problem(await hub.post(CALL, json=GOOD, headers=call_headers()), 502,
                                "invalid_provider_response")
            assert "Transfer-Encoding" in doc["detail"]


@pytest.mark.parametrize("endless", ["one trailer", "many trailers"])
async def test_trailer_flood_is_refused_like_a_head(make_hub: HubFactory, endless: str) -> None:
    """Trailers after the last chunk are bounded like a head: refused at once,
    never held whole (httptools keeps a header's value until it ends)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = body_of("trailed")
    start = head + b"%x\r\n" % len(data) + data + b"\r\n0\r\n"
    piece = b"a" * 16_384 if endless == "one trailer" else b"X-T: " + b"a" * 1_000 + b"\r\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(start + (b"X-Flood: " if endless == "one trailer" else b""))
        for _ in range(2_000):  # 32 MB or 2 MB, unless refused first
            writer.write(piece)
            await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_with(make_hub, p.url, "lean", upstream={"timeout_ms": 5_000})
        r, took = await timed_call(hub)
        assert r.status == 502 and "trailers" in (await r.json())["detail"]
        assert took < 2


@pytest.mark.parametrize("client", CLIENTS)
async def test_idle_connections_are_dropped_once_a_provider_sends_unasked_bytes(
        make_hub: HubFactory, client: str) -> None:
    """Four connections go idle; on its second request each writes a stale
    answer before the real one. Once the first stale answer shows what the
    provider does (its first is indistinguishable, docs/reliability.md), the
    other idle connections are dropped, not handed to the next calls."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while True:
            await read_request(reader)
            n += 1
            if n == 1:
                await asyncio.sleep(0.2)  # the first four calls overlap: four connections
            if n == 2:
                writer.write(http_answer(body_of("STALE")))
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(http_answer(body_of(f"fresh-{n}")))
            await writer.drain()

    async with raw_provider(serve) as p:
        hub = await hub_with(make_hub, p.url, client)
        first = await asyncio.gather(*(hub.post(CALL, json=GOOD, headers=call_headers()) for _ in range(4)))
        assert [r.status for r in first] == [200] * 4 and p.connections == 4
        answers = []
        for _ in range(4):
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            answers.append(orjson.loads(await r.read())["data"]["echo"])
            await asyncio.sleep(0.1)
        assert answers.count("STALE") == 1, answers
        assert p.connections == 7  # after the stale answer, a new connection per call
