"""config.toml, parsed once into small frozen value objects.

Nothing downstream reads raw dicts or the environment: every key is typed,
defaulted and checked here, and an unknown key is an error (a typo in a
production config must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .types import QUOTA_UNITS, RATE_UNITS, Rate, parse_rate

DEFAULT_PORT = 8080
DEFAULT_ADMIN_PORT = 8081
MiB = 1024 * 1024


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # 0 means one worker per CPU (run/supervisor.py).
    workers: int = 0
    shutdown_grace_s: float = 30.0
    header_timeout_ms: int = 10_000
    body_timeout_ms: int = 30_000
    keepalive_timeout_s: float = 75.0
    max_header_bytes: int = 8190
    # A consumer that takes no byte of its answer for this long is cut off.
    write_timeout_ms: int = 30_000


@dataclass(frozen=True, kw_only=True, slots=True)
class CatalogueConfig:
    path: Path = Path("catalogue")
    # An engine name of validation/engines.py; checked there.
    validator: str = "fastjsonschema"
    # `format` in 2019-09 and 2020-12 schemas: an annotation (as those drafts
    # say) unless true; draft-04/06/07 always assert it.
    assert_formats: bool = False
    # Compiled validators kept between runs (validation/codecache.py); "" = off. Relative
    # to the config file; must be writable only by the hub's user.
    cache_dir: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RegistryConfig:
    # A backend name of registry/backends.py; checked there.
    backend: str = "file"
    # May hold a password: kept out of reprs (and health, logs: see registry/redis.py).
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    prefix: str = "apihub"
    cache_ttl_s: float = 30.0
    stale_max_s: float = 300.0
    timeout_ms: int = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class LimitsConfig:
    max_request_bytes: int = 1 * MiB
    max_response_bytes: int = 10 * MiB
    # Answer bytes held for consumers, hub-wide (web/budget.py).
    max_buffered_bytes: int = 256 * MiB
    # Arrays/objects nested, the top-level value being depth 1. Capped where
    # orjson can still encode what was read (it refuses past 254 levels).
    max_json_depth: int = 64


@dataclass(frozen=True, kw_only=True, slots=True)
class UpstreamConfig:
    connect_timeout_ms: int = 2_000
    timeout_ms: int = 10_000
    max_concurrency: int = 100
    # Pool size of the one ClientSession shared by all providers.
    pool_size: int = 1_000
    keepalive_timeout_s: float = 30.0
    # The HTTP client for provider calls: the hub's own keep-alive HTTP/1.1
    # client (proxy/upstream/lean.py, the default: a third of a call's CPU was
    # aiohttp's client), or "aiohttp" (its ClientSession).
    # A client name of upstream/clients.py; checked there.
    client: str = "lean"


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    cooldown_ms: int = 10_000


@dataclass(frozen=True, kw_only=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


@dataclass(frozen=True, kw_only=True, slots=True)
class AdminConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = DEFAULT_ADMIN_PORT
    token_sha256: str = field(default="", repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimitConfig:
    # A limiter name of ratelimit/backends.py, or "" for the one that goes with
    # the registry backend (redis -> "redis", file -> "local"); checked there.
    backend: str = ""
    # For apps whose manifest has no `limits`: "N/s|min|h" and "N/day"; "" = none.
    default_rate: str = ""
    default_quota: str = ""
    on_redis_error: Literal["open", "closed"] = "open"

    @property
    def default(self) -> tuple[Rate | None, Rate | None]:
        """(rate, quota) of the hub-wide default, checked by parse_config."""
        rate = parse_rate(self.default_rate, RATE_UNITS) if self.default_rate else None
        quota = parse_rate(self.default_quota, QUOTA_UNITS) if self.default_quota else None
        return rate, quota


@dataclass(frozen=True, kw_only=True, slots=True)
class TracingConfig:
    """[tracing]: spans exported over OTLP/HTTP (observe/tracing.py); off by default."""

    enabled: bool = False
    # The collector's OTLP/HTTP traces URL; may carry credentials, so kept out of reprs.
    endpoint: str = field(default="http://127.0.0.1:4318/v1/traces", repr=False)
    service_name: str = "apihub"
    # Of the traces the hub starts; a consumer's sampled flag decides for its own.
    sample_ratio: float = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    server: ServerConfig = ServerConfig()
    catalogue: CatalogueConfig = CatalogueConfig()
    registry: RegistryConfig = RegistryConfig()
    limits: LimitsConfig = LimitsConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    breaker: BreakerConfig = BreakerConfig()
    log: LogConfig = LogConfig()
    admin: AdminConfig = AdminConfig()
    ratelimit: RateLimitConfig = RateLimitConfig()
    tracing: TracingConfig = TracingConfig()


_POSITIVE = {
    "port", "workers", "header_timeout_ms", "body_timeout_ms", "max_request_bytes",
    "max_response_bytes", "connect_timeout_ms", "timeout_ms", "max_concurrency", "pool_size",
    "failure_threshold", "cooldown_ms", "max_header_bytes", "write_timeout_ms", "max_buffered_bytes",
    "max_json_depth",
}
MAX_JSON_DEPTH = 250
_NON_NEGATIVE = {"workers", "shutdown_grace_s", "keepalive_timeout_s", "cache_ttl_s", "stale_max_s"}


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read a config file; None gives the defaults (paths relative to the cwd)."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, base_dir=path.resolve().parent, source=str(path))


def parse_config(raw: dict[str, Any], *, base_dir: Path, source: str = "config") -> Config:
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    for name, value in raw.items():
        if name not in hints:
            raise ConfigError(f"{source}: unknown section [{name}]")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{name}] must be a table")
        sections[name] = _build(hints[name], value, f"{source}: [{name}]")
    config = Config(**sections)
    for key, units in (("default_rate", RATE_UNITS), ("default_quota", QUOTA_UNITS)):
        value = getattr(config.ratelimit, key)
        try:
            if value:
                parse_rate(value, units)
        except ValueError as exc:
            raise ConfigError(f"{source}: [ratelimit] {key}: {exc}") from None
    catalogue_path = config.catalogue.path
    if not catalogue_path.is_absolute():
        catalogue_path = base_dir / catalogue_path
    admin = config.admin
    if not admin.token_sha256 and os.environ.get("APIHUB_ADMIN_TOKEN_SHA256"):
        admin = dataclasses.replace(admin, token_sha256=os.environ["APIHUB_ADMIN_TOKEN_SHA256"])
    if admin.token_sha256 and not _is_sha256_hex(admin.token_sha256):
        raise ConfigError(f"{source}: [admin] token_sha256: expected 64 lowercase hex digits")
    ratio = config.tracing.sample_ratio
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{source}: [tracing] sample_ratio: must be between 0 and 1, got {ratio!r}")
    if not config.tracing.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: [tracing] endpoint: expected an http:// or https:// URL")
    return dataclasses.replace(
        config,
        catalogue=dataclasses.replace(
            config.catalogue, path=catalogue_path,
            cache_dir=str(base_dir / config.catalogue.cache_dir) if config.catalogue.cache_dir else "",
        ),
        admin=admin,
    )


def _is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise ConfigError(f"{where} {key}: unknown key (known: {known})")
        kwargs[key] = _coerce(hints[key], value, f"{where} {key}")
        if key in _POSITIVE and kwargs[key] <= 0 and not (key == "workers" and kwargs[key] == 0):
            raise ConfigError(f"{where} {key}: must be positive, got {value!r}")
        if key == "max_json_depth" and kwargs[key] > MAX_JSON_DEPTH:
            raise ConfigError(f"{where} {key}: at most {MAX_JSON_DEPTH}, got {value!r}")
        if key in _NON_NEGATIVE and kwargs[key] < 0:
            raise ConfigError(f"{where} {key}: must not be negative, got {value!r}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    raise ConfigError(f"{where}: unsupported type {hint!r}")  # pragma: no cover
