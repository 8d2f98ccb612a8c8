"""The public endpoints: each reads what the pipeline needs off the aiohttp
request (`Incoming`), runs it, and answers. Errors are raised, never
answered here: the middleware turns them into problem+json."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..catalogue import Catalogue
from ..errors import BadRequest, HubOverloaded, PayloadTooLarge, RequestTimeout
from ..pipeline.call import Incoming, Reply, call, discover
from ..pipeline.fanout import fanout
from ..pipeline.relay import Relay
from ..registry import Registry
from ..types import CallRecord
from .answer import JSON, JsonAnswer
from .middleware import RECORD, send_continue
from .state import HUB, Hub

if TYPE_CHECKING:  # aiohttp's header map (multidict comes with aiohttp)
    from multidict import CIMultiDictProxy

RELAY = web.AppKey("relay", Relay)
# call or fanout: both answer the bytes the consumer gets.
Pipeline = Callable[[Relay, Catalogue, Registry, Incoming, CallRecord], Awaitable[Reply]]


def incoming(request: web.Request, hub: Hub) -> Incoming:
    headers = request.headers
    limit = hub.config.limits.max_request_bytes
    timeout_s = hub.config.server.body_timeout_ms / 1000
    query = request.query if request.query_string else None  # most calls have none: not parsed
    return Incoming(
        action=request.match_info["action"],
        provider=request.match_info.get("provider", ""),
        authorization=headers.get("Authorization", ""),
        communities=communities_of(headers),
        version=query.get("version") if query else None,
        timeout=query.get("timeout") if query else None,
        content_type=headers.get("Content-Type"),
        read_body=lambda: read_body(request, limit, timeout_s),
    )


def communities_of(headers: CIMultiDictProxy[str]) -> Sequence[str]:
    """Every community-id and X-Community-Id value (the pipeline checks they agree)."""
    given = headers.getall("community-id", ())
    if "X-Community-Id" in headers:  # the alias, rarely sent: no second list otherwise
        return (*given, *headers.getall("X-Community-Id"))
    return given


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, refused as soon as it passes `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    size = 0
    try:
        if request.content.is_eof():
            # Small bodies arrive with the headers: all buffered already, no timer needed.
            raw = request.content.read_nowait()
            if len(raw) > limit:
                raise PayloadTooLarge(f"body is over the {limit}-byte limit")
            return raw
        await send_continue(request, limit)
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over the {limit}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        # Answer 408, then close: no lingering on the rest of a slow body.
        request.content.feed_eof()
        request.protocol.close()
        raise RequestTimeout("the request body was not received in time") from None
    except web.RequestPayloadError:
        raise BadRequest("the request body is malformed (bad chunked encoding or cut off)") from None
    except ConnectionError:
        raise BadRequest("the consumer closed the connection before sending the whole body") from None
    return b"".join(chunks)


def _json(body: bytes) -> web.Response:
    if not body:  # an acknowledgement the catalogue leaves undescribed: an empty 200
        return web.Response()
    return JsonAnswer(body=body, content_type=JSON)


def check_budget(hub: Hub) -> None:
    """Refuse a call while answers held for consumers fill the budget:
    before any provider is called, so the refusal costs it nothing."""
    budget = hub.budget
    if budget.over:
        raise HubOverloaded(
            f"the hub holds {budget.held} bytes of answers not yet read by their consumers "
            f"(limit {budget.limit}); retry shortly", headers={"Retry-After": "1"})


def _reply(reply: Reply) -> web.Response:
    response = _json(reply.body)
    if reply.headers:  # RateLimit headers, when a limit applies
        response.headers.update(reply.headers)
    return response


async def call_handler(request: web.Request) -> web.StreamResponse:
    return await _relayed(request, call)


async def fanout_handler(request: web.Request) -> web.StreamResponse:
    return await _relayed(request, fanout)


async def _relayed(request: web.Request, pipeline: Pipeline) -> web.StreamResponse:
    hub = request.app[HUB]
    check_budget(hub)
    snapshot = hub.snapshot  # read once: a reload mid-call does not change it
    reply = await pipeline(request.app[RELAY], snapshot.catalogue, snapshot.registry, incoming(request, hub),
                           request[RECORD])
    return _reply(reply)


async def discover_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    snapshot = hub.snapshot
    found = await discover(snapshot.catalogue, snapshot.registry, incoming(request, hub), request[RECORD])
    return _json(orjson.dumps(found))


def health_of(hub: Hub) -> dict[str, Any]:
    catalogue = hub.catalogue
    body: dict[str, Any] = {
        "status": "ok",
        "instance": hub.instance,
        "catalogue": {
            "generation": catalogue.generation,
            "actions": len(catalogue.actions),
            "loadedAt": catalogue.loaded_at,
            "lastReloadError": hub.last_reload_error,
        },
    }
    registry = hub.snapshot.registry.health()
    if registry is not None:
        body["registry"] = registry
        if registry.get("status") != "ok":
            body["status"] = "degraded"
    if hub.limits is not None:
        body["ratelimit"] = limiter = hub.limits.limiter.health()
        if limiter["status"] != "ok":
            body["status"] = "degraded"
    return body


async def healthz(request: web.Request) -> web.StreamResponse:
    return _json(orjson.dumps(health_of(request.app[HUB])))


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    return web.Response(body=hub.metrics.render(), headers={"Content-Type": hub.metrics.content_type})
