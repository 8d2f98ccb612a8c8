"""The floor reference: a bare aiohttp + uvloop pass-through proxy.

Per call it does the work any JSON-aware proxy must do and nothing more:
parse the consumer's JSON, add a key, serialise, forward over a pooled
keep-alive connection, parse the answer, relay the provider's bytes. No
auth, no registry, no validation, no logging, no metrics.

Same URL shape as the hub, so the load generator sends the same requests:
`POST /v1/services/call/{action}/{provider}` goes to `UPSTREAM/{provider}`
with the `bench-` prefix dropped (`bench-small` → `/small`).

    python benchmarks/bare_proxy.py PORT UPSTREAM
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def call(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    body["secret"] = "bench-secret"
    url = f"{request.app[UPSTREAM]}/{request.match_info['provider'].removeprefix('bench-')}"
    async with request.app[SESSION].post(
        url, data=orjson.dumps(body), headers={"Content-Type": "application/json"},
    ) as answer:
        raw = await answer.read()
    orjson.loads(raw)
    return web.Response(body=raw, content_type="application/json")


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=30)
    app[SESSION] = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    yield
    await app[SESSION].close()


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/services/call/{action}/{provider}", call)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    import uvloop

    uvloop.install()
    web.run_app(create_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None, backlog=1024)


if __name__ == "__main__":
    main()
