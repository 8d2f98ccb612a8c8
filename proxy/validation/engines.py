"""Validation engines by name (`[catalogue] validator`). A new engine is one
module implementing base.Engine plus one line here."""

from __future__ import annotations

from typing import Any, Protocol

from ..config import ConfigError
from .base import Engine, Validator
from .codecache import CodeCache
from .fast import FastEngine
from .rs import RsEngine


class _MakeEngine(Protocol):
    def __call__(self, code_cache: CodeCache | None, *, assert_formats: bool) -> Engine: ...


ENGINES: dict[str, _MakeEngine] = {
    FastEngine.name: FastEngine,
    RsEngine.name: RsEngine,
}

DEFAULT_ENGINE = FastEngine.name


def engine_for(name: str, code_cache: CodeCache | None = None, *, assert_formats: bool = False) -> Engine:
    """The engine called `name`; ConfigError naming the key when there is none."""
    make = ENGINES.get(name)
    if make is None:
        known = ", ".join(map(repr, ENGINES))
        raise ConfigError(f"[catalogue] validator: expected one of {known}, got {name!r}")
    return make(code_cache, assert_formats=assert_formats)


def compile_schema(schema: Any, engine: str = DEFAULT_ENGINE,
                   code_cache: CodeCache | None = None) -> tuple[Validator, str]:
    """Check and compile one schema with the named engine: (validator, draft name)."""
    compiled = engine_for(engine, code_cache).compile(schema)
    return compiled.validate, compiled.draft
