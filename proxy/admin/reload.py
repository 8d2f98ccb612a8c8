"""`POST /admin/v1/reload`: what SIGHUP does, asked over HTTP (docs/contract.md).

A broken catalogue is an answer, not an error: 200 with `reloaded: false`
and the reason in `catalogue.lastReloadError`; the old catalogue keeps serving.
The reload reaches the process that answers (worker 0 with several workers);
SIGHUP to the main process reaches them all.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from ..web.handlers import health_of
from ..web.middleware import Route
from ..web.state import HUB


async def reload(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    reloaded = await hub.reload()
    body = {"reloaded": reloaded, "instance": hub.instance, "catalogue": health_of(hub)["catalogue"]}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def routes() -> list[Route]:
    return [("POST", "/admin/v1/reload", reload, "admin_reload")]
