"""The small value types and Protocols that every layer shares.

Nothing here imports from the rest of the package, so any module may use
these names without creating a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

Side = Literal["request", "response"]
# What a log line or a kept record holds of one consumer- or provider-chosen string.
CLIPPED_CHARS = 200
Mode = Literal["strict", "report"]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One schema violation: where (a JSON Pointer) and what (no values)."""

    pointer: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.pointer, "message": self.message}

    def clipped(self, chars: int) -> ValidationIssue:
        """Both fields cut to `chars` (a pointer names a consumer's key, of any length)."""
        if len(self.pointer) <= chars and len(self.message) <= chars:
            return self
        return ValidationIssue(clip(self.pointer, chars), clip(self.message, chars))


def clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
class CallSite:
    """Which provider, action and version a provider call went to."""

    provider: str
    action: str
    version: int


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
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
        """The error code of a call that got no 2xx answer from the provider."""

    def answered(self, site: CallSite, ms: float, outcome: str) -> None:
        """The provider answered in `ms`; `outcome` is `ok`, or the error the
        answer was refused with. Each call is told once: here or `outcome`."""

    def violation(self, site: CallSite, side: Side, mode: Mode, issues: tuple[ValidationIssue, ...],
                  request_id: str) -> None:
        """A payload broke its schema (`mode` says whether it was refused)."""


@dataclass(slots=True)
class CallRecord:
    """What the access line says about one request; filled in step by step."""

    request_id: str  # the hub's own, unique per call
    correlation_id: str | None = None  # the consumer's valid X-Request-Id
    route: str = "-"
    action: str = ""
    version: int | None = None
    provider: str = ""
    community: str = ""
    requester: str = ""
    bytes_in: int = 0
    upstream_ms: float | None = None
    trace_id: str = ""  # [tracing] on: the call's W3C trace id (32 hex digits)


_UNITS = {"s": 1, "min": 60, "h": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` calls per `window_s` seconds: a manifest's "10/s" or "5000/day"."""

    count: int
    window_s: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in _UNITS.items() if seconds == self.window_s)
        return f"{self.count}/{unit}"


def parse_rate(text: object, units: tuple[str, ...]) -> Rate:
    """"N/<unit>" with N a positive integer and the unit one of `units`;
    ValueError with a message fit for the field's error otherwise."""
    expected = " or ".join(f"'N/{unit}'" for unit in units)
    if not isinstance(text, str):
        raise ValueError(f"must be a string {expected}")
    count, _, unit = text.partition("/")
    if unit not in units or not count.isascii() or not count.isdigit() or len(count) > 15 or int(count) <= 0:
        raise ValueError(f"must be {expected} with N a positive integer of at most 15 digits "
                         f"(RateLimit headers carry no more), got {text[:60]!r}")
    return Rate(int(count), _UNITS[unit])


RATE_UNITS = ("s", "min", "h")
QUOTA_UNITS = ("day",)
