"""Limiters by name (`[ratelimit] backend`). A new limiter is one module
implementing base.Limiter plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config, ConfigError
from ..observe.metrics import Metrics
from .base import Limiter
from .local import LocalLimiter
from .redis import RedisLimiter

LIMITERS: dict[str, Callable[[Config, Metrics], Limiter]] = {
    LocalLimiter.name: LocalLimiter.open,
    RedisLimiter.name: RedisLimiter.open,
}


def limiter_name(config: Config) -> str:
    """`[ratelimit] backend`, or by default the one that goes with the registry:
    counters shared as widely as the apps are."""
    if config.ratelimit.backend:
        return config.ratelimit.backend
    return RedisLimiter.name if config.registry.backend == "redis" else LocalLimiter.name


def open_limiter(config: Config, metrics: Metrics) -> Limiter:
    """The limiter the config names, not started yet (Limiter.start)."""
    name = limiter_name(config)
    open_backend = LIMITERS.get(name)
    if open_backend is None:
        known = ", ".join(map(repr, LIMITERS))
        raise ConfigError(f"[ratelimit] backend: expected one of {known}, got {name!r}")
    return open_backend(config, metrics)
