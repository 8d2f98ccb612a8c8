"""The catalogue's model: actions, their versions and compiled schemas.

Sources (action files, OpenAPI documents) produce plain `ActionSpec`s;
the loader compiles them into `Action`s, frozen for the life of a catalogue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Problem
from ..types import Mode
from ..validation import Readiness, Validator, ready_now

MODES: tuple[Mode, ...] = ("strict", "report")


@dataclass(frozen=True, slots=True)
class VersionSpec:
    request: Any
    response: Any  # None: the answer is not described (an OpenAPI response without a body schema)
    enforce_request: Mode = "strict"
    enforce_response: Mode = "strict"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action as a source describes it, before compilation."""

    name: str
    source: str  # file, or file#pointer inside an OpenAPI document
    versions: Mapping[int, VersionSpec]
    title: str = ""
    description: str = ""
    idempotent: bool = False
    # (file, mtime_ns, size) of an action file: a reload reuses what it built
    # from a file that has not changed since. None for other sources.
    stamp: tuple[str, int, int] | None = None


@dataclass(frozen=True, slots=True)
class ActionVersion:
    version: int
    request_schema: Any
    response_schema: Any  # None: not described; the relay passes an empty or any JSON answer
    validate_request: Validator
    validate_response: Validator
    draft: str
    enforce_request: Mode = "strict"
    enforce_response: Mode = "strict"
    # The engine validating each side ("" for an undescribed answer)
    engines: tuple[str, str] = ("", "")
    # Why the request schema refuses every forwarded body (catalogue/hubkeys.py), or "".
    refuses_calls: str = ""
    # What to await before validating each side, if anything (validation/base.Readiness).
    request_ready: Readiness = ready_now
    response_ready: Readiness = ready_now

    @property
    def answer_described(self) -> bool:
        return self.response_schema is not None


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    title: str
    description: str
    source: str
    versions: Mapping[int, ActionVersion]
    idempotent: bool = False

    def best_version(self, offered: Iterable[int]) -> int | None:
        """The highest version both this catalogue and `offered` have."""
        best = None
        for version in offered:  # on every call: no intermediate sets
            if version in self.versions and (best is None or version > best):
                best = version
        return best


@dataclass(frozen=True, slots=True)
class Catalogue:
    actions: Mapping[str, Action]
    generation: int = 0
    loaded_at: str = ""
    warnings: tuple[Problem, ...] = ()
    load_seconds: float = 0.0


def summary(catalogue: Catalogue) -> list[dict[str, Any]]:
    return [
        {"action": a.name, "versions": sorted(a.versions), "source": a.source}
        for a in sorted(catalogue.actions.values(), key=lambda a: a.name)
    ]

