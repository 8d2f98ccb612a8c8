"""JSON Schema validation: schemas checked at load, compiled once, run per call."""

from .base import MAX_ISSUES, Compiled, Engine, Readiness, SchemaError, Validator, ready_now
from .codecache import CodeCache
from .drafts import check_schema
from .engines import DEFAULT_ENGINE, ENGINES, compile_schema, engine_for

__all__ = [
    "DEFAULT_ENGINE", "ENGINES", "MAX_ISSUES", "CodeCache", "Compiled", "Engine", "Readiness", "SchemaError",
    "Validator", "ready_now",
    "check_schema", "compile_schema", "engine_for",
]
