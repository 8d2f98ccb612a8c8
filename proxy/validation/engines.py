"""Validation engines by name (`[catalogue] validator`). A new engine is one
module implementing base.Engine plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import ConfigError
from .base import Engine, Validator
from .codecache import CodeCache
from .fast import FastEngine
from .rs import RsEngine

ENGINES: dict[str, Callable[[CodeCache | None], Engine]] = {
    FastEngine.name: FastEngine,
    RsEngine.name: RsEngine,
}

DEFAULT_ENGINE = FastEngine.name


def engine_for(name: str, code_cache: CodeCache | None = None) -> Engine:
    """The engine called `name`; ConfigError naming the key when there is none."""
    make = ENGINES.get(name)
    if make is None:
        known = ", ".join(map(repr, ENGINES))
        raise ConfigError(f"[catalogue] validator: expected one of {known}, got {name!r}")
    return make(code_cache)


def compile_schema(schema: Any, engine: str = DEFAULT_ENGINE,
                   code_cache: CodeCache | None = None) -> tuple[Validator, str]:
    """Check and compile one schema with the named engine: (validator, draft name)."""
    return engine_for(engine, code_cache).compile(schema)
