"""The call route, dispatched without aiohttp's per-request router walk.

aiohttp's `Application._handle` resolves every request through the whole
router, builds (or looks up) the middleware chain and wraps the handler in
its own `_fix_request_current_app` middleware: about 5 µs of a small call's
CPU, for a hub whose traffic is nearly all one route. `CallDispatch` takes
its place as the application's request handler: a `POST` whose path the
call resource matches gets the same match info aiohttp would build (same
resource, same route, the app added and frozen) and goes straight to the
hub's middleware and the call handler. Anything else — another method or
path, or an `Expect` header (aiohttp runs the route's expect handler
first) — goes to aiohttp's own `_handle`, untouched.

Only one app is mounted (no sub-apps), so aiohttp's current-app middleware
would have nothing to change; the call resource is the only one whose
pattern matches two segments under /v1/services/call/, so the router would
pick it for the same paths (tests/web/test_dispatch.py checks both
against aiohttp's own resolution). aiohttp is pinned to 3.14.x
(pyproject.toml) because this reads its resource's `_match`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import ResourceRoute, UrlMappingMatchInfo

Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class CallDispatch:
    """The app's request handler: the call route direct, the rest through aiohttp."""

    __slots__ = ("_app", "_fallback", "_handler", "_match", "_middleware", "_route")

    def __init__(self, app: web.Application, route_name: str, middleware: Middleware,
                 fallback: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        resource = app.router[route_name]
        routes = [r for r in resource if isinstance(r, ResourceRoute) and r.method == hdrs.METH_POST]
        if len(routes) != 1 or not hasattr(resource, "_match"):
            raise RuntimeError(f"route {route_name!r} is not one POST route on a path pattern")
        self._app = app
        self._route = routes[0]
        self._handler: Handler = routes[0].handler
        self._match: Callable[[str], dict[str, str] | None] = resource._match
        self._middleware = middleware
        self._fallback = fallback

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.method == hdrs.METH_POST and not request.headers.get(hdrs.EXPECT):
            found = self._match(request.rel_url.path_safe)
            if found is not None:
                match_info = UrlMappingMatchInfo(found, self._route)
                match_info.add_app(self._app)
                match_info.freeze()
                request._match_info = match_info
                return await self._middleware(request, self._handler)
        return await self._fallback(request)
