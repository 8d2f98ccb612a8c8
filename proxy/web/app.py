"""The aiohttp application: routes, middleware and the lifetimes of shared
resources (provider client, registry), each under a typed AppKey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from ..config import Config
from ..observe.access import AccessLog
from ..observe.calls import CallObservers
from ..observe.conformance import Conformance
from ..observe.logs import get_logger
from ..observe.metrics import Metrics
from ..observe.tracing import open_tracing
from ..pipeline.limits import RateLimits
from ..pipeline.relay import Relay
from ..ratelimit import open_limiter
from ..registry import Limits, Registry, open_registry
from ..types import BreakerState
from ..upstream import Guards, check_client, open_client
from . import openapi, pages
from .budget import Budget
from .dispatch import CallDispatch
from .handlers import RELAY, call_handler, discover_handler, fanout_handler, healthz, metrics_handler
from .middleware import add_routes, make_middleware
from .state import HUB, Hub, Loaded, load

log = get_logger("apihub.app")


def create_app(
    config: Config,
    *,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
    loaded: Loaded | None = None,
) -> web.Application:
    """Load the catalogue (raising CatalogueError, or ConfigError for a name
    no seam knows) unless it is `loaded` already, and wire the app.
    `registry` defaults to the one the config names; it is started and
    closed with the app."""
    check_client(config.upstream.client)
    metrics = Metrics()
    if loaded is None:
        loaded = load(config, registry or open_registry(config, environ))
    snapshot, compiler = loaded.snapshot, loaded.compiler

    def breaker_changed(provider: str, old: BreakerState, new: BreakerState) -> None:
        metrics.breaker_changed(provider, new)
        log.warning("breaker_state_changed", provider=provider, **{"from": old.value, "to": new.value})

    rate, quota = config.ratelimit.default
    limits = RateLimits(
        limiter=open_limiter(config, metrics),
        default=Limits(rate, quota) if rate or quota else None,
        on_limited=metrics.rate_limited,
    )
    hub = Hub(
        config=config,
        limits=limits,
        snapshot=snapshot,
        metrics=metrics,
        guards=Guards(config.breaker, config.upstream.max_concurrency, breaker_changed),
        compiler=compiler,
        conformance=Conformance(metrics.registry, metrics.batch),
        budget=Budget(config.limits.max_buffered_bytes),
        access=AccessLog(debug=config.log.level == "debug"),
    )
    metrics.catalogue_generation.set(snapshot.catalogue.generation)
    metrics.catalogue_actions.set(len(snapshot.catalogue.actions))
    for warning in snapshot.catalogue.warnings:
        log.warning("catalogue_warning", problem=str(warning))

    tracing = open_tracing(config.tracing)
    middleware = make_middleware(metrics, hub.access, hub.calls, tracing)
    app = web.Application(middlewares=[middleware], client_max_size=config.limits.max_request_bytes)
    app[HUB] = hub
    app[RELAY] = Relay(
        client=open_client(config),
        guards=hub.guards,
        observer=CallObservers(metrics, [hub.conformance]),
        timeout_ms=config.upstream.timeout_ms,
        max_json_depth=config.limits.max_json_depth,
        limits=limits,
        tracing=tracing,
    )
    app.cleanup_ctx.append(_tracing_ctx)
    app.cleanup_ctx.append(_metrics_ctx)
    app.cleanup_ctx.append(_access_ctx)
    app.cleanup_ctx.append(_registry_ctx)
    app.cleanup_ctx.append(_client_ctx)
    app.cleanup_ctx.append(_limiter_ctx)
    app[openapi.OPENAPI_CACHE] = openapi.OpenApiCache()
    add_routes(app, [
        ("POST", "/v1/services/call/{action}/{provider}", call_handler, "call"),
        ("POST", "/v1/services/call/{action}", fanout_handler, "fanout"),
        ("GET", "/v1/services/discover/{action}", discover_handler, "discover"),
        ("GET", "/healthz", healthz, "healthz"),
        ("GET", "/metrics", metrics_handler, "metrics"),
        ("GET", "/v1/openapi.json", openapi.openapi_json, "openapi"),
        *pages.routes(),
    ])
    # The call route skips aiohttp's router walk (web/dispatch.py); every runner reads `_handle`.
    # object.__setattr__: aiohttp's debug mode warns on any attribute set on an app.
    object.__setattr__(app, "_handle", CallDispatch(app, "call", middleware, app._handle))
    return app


async def _registry_ctx(app: web.Application) -> AsyncIterator[None]:
    # The registry in use at shutdown: a file registry may have been reread since.
    hub = app[HUB]
    await hub.snapshot.registry.start()
    try:
        yield
    finally:
        await hub.snapshot.registry.close()


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await app[RELAY].client.close()


async def _limiter_ctx(app: web.Application) -> AsyncIterator[None]:
    limits = app[HUB].limits
    assert limits is not None
    await limits.limiter.start()
    try:
        yield
    finally:
        await limits.limiter.close()


def _metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    # Calls still answering at shutdown are counted: cleaned up after the access log.
    return app[HUB].metrics.batch.flushing()


async def _access_ctx(app: web.Application) -> AsyncIterator[None]:
    # Every call has answered by the time cleanup runs: nothing written after.
    try:
        yield
    finally:
        app[HUB].access.close()


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    # First in, so cleaned up last, and always (even when a later context fails
    # to start): every call has ended, its spans are queued, by then.
    try:
        yield
    finally:
        tracing = app[RELAY].tracing
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown, app[HUB].config.server.shutdown_grace_s)
