"""Provider clients by name (`[upstream] client`). A new client is one
module implementing base.ProviderClient plus one line here."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Config, ConfigError, LimitsConfig, UpstreamConfig
from .aiohttp_client import AiohttpClient
from .base import ProviderClient
from .lean import LeanClient

CLIENTS: dict[str, Callable[[UpstreamConfig, LimitsConfig], ProviderClient]] = {
    AiohttpClient.name: AiohttpClient,
    LeanClient.name: LeanClient,
}


def check_client(name: str) -> None:
    if name not in CLIENTS:
        known = ", ".join(map(repr, CLIENTS))
        raise ConfigError(f"[upstream] client: expected one of {known}, got {name!r}")


def open_client(config: Config) -> ProviderClient:
    """The configured client (connections are opened on first use)."""
    check_client(config.upstream.client)
    return CLIENTS[config.upstream.client](config.upstream, config.limits)
