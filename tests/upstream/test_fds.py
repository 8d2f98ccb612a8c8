"""Out of file descriptors: a call to a provider answers 503 hub_overloaded
(Retry-After), counted and logged, and never against the provider's breaker.
The limit is lowered in this process and restored by the test."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
from collections.abc import Iterator

import orjson
import pytest

from proxy.run.limits import raise_fd_limit
from tests.conftest import HubFactory, LogSink
from tests.faults import http_answer, raw_provider, read_request
from tests.support import ECHO, call_headers, consumer_manifest, problem, provider_manifest

CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": "x"}}


@contextlib.contextmanager
def no_fd_left() -> Iterator[None]:
    """Lower the soft RLIMIT_NOFILE just above the highest fd open, then take
    every number left below it, so the next socket() fails with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    try:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("client", ["aiohttp", "lean"])
async def test_out_of_fds_is_503_and_never_the_providers_fault(
        make_hub: HubFactory, log_sink: LogSink, client: str) -> None:
    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(http_answer(orjson.dumps({"data": {"echo": "ok"}}), extra=b"Connection: close\r\n"))
        await writer.drain()

    async with raw_provider(close_each) as p:
        hub = await make_hub(apps=[provider_manifest("provider-app", p.url), consumer_manifest()],
                             upstream={"client": client}, breaker={"failure_threshold": 1})
        r = await hub.post(CALL, json=GOOD, headers=call_headers())  # the consumer's connection is open
        assert r.status == 200, await r.text()
        await asyncio.sleep(0.05)  # the provider's close lands: each call needs a new connection
        mark = log_sink.mark()
        with no_fd_left():
            r = await hub.post(CALL, json=GOOD, headers=call_headers())
            body = await r.read()
        assert r.status == 503, body
        assert orjson.loads(body)["code"] == "hub_overloaded"
        assert r.headers["Retry-After"] == "1"
        assert any(line.get("event") == "hub_overloaded" for line in log_sink.since(mark))
        # The provider's breaker (threshold 1) stayed closed: served at once.
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
        metrics = await (await hub.get("/metrics")).text()
        assert 'apihub_hub_overloaded_total{reason="provider_connect"} 1.0' in metrics


def test_soft_fd_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        now, now_hard = raise_fd_limit()
        assert now_hard == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        assert now == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
