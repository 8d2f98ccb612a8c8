"""`GET /admin/v1/conformance[?since=<RFC 3339>]`: the hub's conformance
counts (observe/conformance.py) on the admin listener."""

from __future__ import annotations

from datetime import datetime

import orjson
from aiohttp import web

from ..clock import rfc3339
from ..errors import InvalidParameter
from ..web.middleware import Route
from ..web.state import HUB


def parse_since(raw: str | None) -> float | None:
    if raw is None:
        return None
    # A '+' in a query string arrives as a space unless it was sent as %2B.
    text = raw.strip().replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter("since must be an RFC 3339 date-time, e.g. 2026-03-01T08:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidParameter("since must carry a time zone (Z or ±hh:mm)")
    return moment.timestamp()


async def handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    start, entries = hub.conformance.report(parse_since(request.query.get("since")))
    body = {"since": rfc3339(start), "instance": hub.instance, "entries": entries}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def routes() -> list[Route]:
    return [("GET", "/admin/v1/conformance", handler, "conformance")]
