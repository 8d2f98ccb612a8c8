"""The small value types and Protocols that every layer shares.

Nothing here imports from the rest of the package, so any module may use
these names without creating a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

Side = Literal["request", "response"]
Mode = Literal["strict", "report"]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One schema violation: where (a JSON Pointer) and what (no values)."""

    pointer: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.pointer, "message": self.message}


@dataclass(frozen=True, slots=True)
class CallSite:
    """Which provider, action and version a provider call went to."""

    provider: str
    action: str
    version: int


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's complete 2xx answer, as the provider client read it."""

    body: bytes
    upstream_ms: float


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CallObserver(Protocol):
    """Told about every provider call (metrics, logs and conformance keep
    their counts this way)."""

    def outcome(self, site: CallSite, outcome: str) -> None:
        """`ok` or the error code the call ended with."""

    def upstream(self, site: CallSite, ms: float) -> None:
        """How long the provider took to answer."""

    def violation(self, site: CallSite, side: Side, mode: Mode, issues: tuple[ValidationIssue, ...],
                  request_id: str) -> None:
        """A payload broke its schema (`mode` says whether it was refused)."""


@dataclass(slots=True)
class CallRecord:
    """What the access line says about one request; filled in step by step."""

    request_id: str
    route: str = "-"
    action: str = ""
    version: int | None = None
    provider: str = ""
    community: str = ""
    requester: str = ""
    bytes_in: int = 0
    upstream_ms: float | None = None
    trace_id: str = ""  # [tracing] on: the call's W3C trace id (32 hex digits)
