"""The validation seam: an engine compiles a JSON Schema once into a
`Validator`, a callable that returns the violations of an instance (empty
when it conforms). Engines are chosen by name (`[catalogue] validator`) in
engines.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..types import ValidationIssue

# A validator returns the violations of an instance; () when it conforms.
Validator = Callable[[Any], tuple[ValidationIssue, ...]]

# Enough to fix a payload; more would only grow logs and problem bodies.
MAX_ISSUES = 50


class SchemaError(Exception):
    """A schema that the hub refuses to compile; `pointer` locates the problem."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


# None when `validate` can run at once; else what to await first (it never
# raises): a large schema's code being generated in a thread (fast.py).
Readiness = Callable[[], Awaitable[None] | None]


def ready_now() -> Awaitable[None] | None:
    return None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A schema ready to validate, and who validates it."""

    validate: Validator
    draft: str  # "draft-04" … "2020-12"
    engine: str  # what runs `validate`: the configured engine, or the one it fell back to
    fallback: str = ""  # why not the configured engine ("" when it is); the load reports it
    ready: Readiness = ready_now


class Engine(Protocol):
    """Checks and compiles schemas (drafts.check_schema first, always)."""

    name: str

    def compile(self, schema: Any) -> Compiled:
        """The compiled schema, or SchemaError when the schema is refused."""
