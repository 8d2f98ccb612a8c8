"""The validation seam: an engine compiles a JSON Schema once into a
`Validator`, a callable that returns the violations of an instance (empty
when it conforms). Engines are chosen by name (`[catalogue] validator`) in
engines.py.
"""

from __future__ import annotations

from collections.abc import Callable
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


class Engine(Protocol):
    """Checks and compiles schemas (drafts.check_schema first, always)."""

    name: str

    def compile(self, schema: Any) -> tuple[Validator, str]:
        """(validator, draft name), or SchemaError when the schema is refused."""
