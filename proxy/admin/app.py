"""The admin listener: a second aiohttp app on `[admin] host, port`
(127.0.0.1 by default), every call authenticated with the admin token,
whose SHA-256 alone is configured. Feature modules add their routes in
`create_admin_app`.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..errors import Unauthenticated
from ..tokens import bearer_token, hash_token
from ..web.middleware import add_routes, make_middleware
from ..web.state import HUB, Hub
from . import apps, conformance, console, reload


def admin_auth(token_sha256: str, public: frozenset[str] = frozenset()) -> Middleware:
    """Every route needs the token except those named in `public` (pages without data)."""
    @web.middleware
    async def check_admin_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.route.name in public:
            return await handler(request)
        token = bearer_token(request.headers.get("Authorization", ""))
        if not token_sha256:
            raise Unauthenticated("the admin API is disabled: no admin token is configured "
                                  "([admin] token_sha256 or APIHUB_ADMIN_TOKEN_SHA256)")
        digest = hash_token(token)
        if not token or not hmac.compare_digest(digest, token_sha256):
            raise Unauthenticated("missing or wrong admin token")
        return await handler(request)

    return check_admin_token


def create_admin_app(hub: Hub) -> web.Application:
    # The hub middleware comes first so auth failures are problem+json too.
    app = web.Application(
        middlewares=[make_middleware(hub.metrics, hub.access),
                     admin_auth(hub.config.admin.token_sha256, console.PUBLIC_ROUTES)],
        client_max_size=hub.config.limits.max_request_bytes,
    )
    app[HUB] = hub
    add_routes(app, [
        *apps.routes(),
        *conformance.routes(),
        *console.routes(),
        *reload.routes(),
    ])
    return app
