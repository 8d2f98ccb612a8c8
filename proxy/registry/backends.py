"""Registry backends by name (`[registry] backend`). A new backend is one
module implementing base.Registry plus one line here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..config import Config, ConfigError
from .base import Registry
from .file import FileRegistry
from .redis import RedisRegistry

BACKENDS: dict[str, Callable[[Config, Mapping[str, str] | None], Registry]] = {
    FileRegistry.name: FileRegistry.open,
    RedisRegistry.name: RedisRegistry.open,
}


def open_registry(config: Config, environ: Mapping[str, str] | None = None) -> Registry:
    """The registry the config names, neither read (Registry.reread) nor
    started (Registry.start) yet. Raises ConfigError for an unknown backend
    or a bad URL."""
    open_backend = BACKENDS.get(config.registry.backend)
    if open_backend is None:
        known = ", ".join(map(repr, BACKENDS))
        raise ConfigError(f"[registry] backend: expected one of {known}, got {config.registry.backend!r}")
    return open_backend(config, environ)
