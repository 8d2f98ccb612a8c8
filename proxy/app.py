"""The aiohttp application: routes, middleware and the lifetimes of shared
resources (client session, shared registry), all reached through HUB."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from aiohttp import web

from . import call, export, fanout
from .catalogue import compiler_for
from .config import Config
from .conformance import Conformance
from .forward import Upstream
from .guards import BreakerState, Guards
from .hub import HUB, Hub, load_snapshot
from .logs import get_logger
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .middleware import add_routes, make_middleware
from .registry import Registry
from .upstream_lean import LeanUpstream

log = get_logger("apihub.app")


def create_app(
    config: Config,
    *,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> web.Application:
    """Load the catalogue (raising CatalogueError) and wire the app.

    `registry` is a shared registry (redis); without it apps come from
    catalogue/apps/ and are reloaded with the catalogue.
    """
    metrics = Metrics()
    compiler = compiler_for(config.catalogue)
    snapshot = load_snapshot(config, generation=1, compiler=compiler, registry=registry, environ=environ)

    def breaker_changed(provider: str, old: BreakerState, new: BreakerState) -> None:
        metrics.breaker_changed(provider, new)
        log.warning("breaker_state_changed", provider=provider, **{"from": old.value, "to": new.value})

    hub = Hub(
        config=config,
        snapshot=snapshot,
        metrics=metrics,
        guards=Guards(config.breaker, config.upstream.max_concurrency, breaker_changed),
        compiler=compiler,
        shared_registry=registry is not None,
    )
    hub.observers.append(Conformance(metrics.registry))
    metrics.catalogue_generation.set(snapshot.catalogue.generation)
    metrics.catalogue_actions.set(len(snapshot.catalogue.actions))
    for warning in snapshot.catalogue.warnings:
        log.warning("catalogue_warning", problem=str(warning))

    app = web.Application(
        middlewares=[make_middleware(metrics)],
        client_max_size=config.limits.max_request_bytes,
    )
    app[HUB] = hub
    app.cleanup_ctx.append(_upstream_ctx)
    # A shared registry (redis) opens its connection pool and subscriber here.
    registry_lifetime = getattr(registry, "cleanup_ctx", None)
    if registry_lifetime is not None:
        app.cleanup_ctx.append(registry_lifetime)
    app[export.OPENAPI_CACHE] = export.OpenApiCache()
    add_routes(app, [
        ("POST", "/v1/services/call/{action}/{provider}", call.call, "call"),
        ("POST", "/v1/services/call/{action}", fanout.fanout, "fanout"),
        ("GET", "/v1/services/discover/{action}", call.discover, "discover"),
        ("GET", "/healthz", healthz, "healthz"),
        ("GET", "/metrics", metrics_handler, "metrics"),
        ("GET", "/v1/openapi.json", export.openapi_json, "openapi"),
    ])
    return app


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    if hub.config.upstream.client == "lean":
        lean = LeanUpstream(hub.config.upstream, hub.config.limits)
        hub.upstream = lean
        try:
            yield
        finally:
            hub.upstream = None
            await lean.close()
        return
    session = Upstream.make_session(hub.config.upstream)
    hub.upstream = Upstream(session, hub.config.upstream, hub.config.limits)
    try:
        yield
    finally:
        hub.upstream = None
        await session.close()


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
    return body


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(body=orjson.dumps(health_of(request.app[HUB])), content_type="application/json")


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    body = request.app[HUB].metrics.render()
    return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})


