"""The limiter seam: count one call against a few named counters, all or
none, and say what remains.

A backend implements `Limiter` whole; backends.py names it. The pipeline
builds the `Check`s (which counters, which limits) and only ever sees this
Protocol; the algorithms every backend shares are in gcra.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..types import Rate

# "rate" and "quota" are the consumer's, "provider" the provider's protection.
Kind = Literal["rate", "quota", "provider"]


@dataclass(frozen=True, slots=True)
class Check:
    """One counter and its limit. `scope` names what is counted, e.g.
    "c:<consumer>:<community>:<action>" or "p:<provider>:<action>"; the
    counters of one scope live together (one Redis Cluster slot)."""

    kind: Kind
    scope: str
    rate: Rate

    @property
    def fixed_window(self) -> bool:
        # Quotas reset at the window's edge (the UTC day); rates are smooth (GCRA).
        return self.kind == "quota"


@dataclass(frozen=True, slots=True)
class Outcome:
    check: Check
    allowed: bool
    remaining: int  # calls still admitted now, after this one
    reset_s: float  # until the counter is back to its whole limit
    retry_s: float  # when refused: until one call would be admitted


@dataclass(frozen=True, slots=True)
class Verdict:
    outcomes: tuple[Outcome, ...]
    # True when the counters could not be consulted and on_redis_error is "closed".
    unavailable: bool = False

    @property
    def refused(self) -> Outcome | None:
        """The outcome that refused the call (the longest wait), or None."""
        refused = [o for o in self.outcomes if not o.allowed]
        return max(refused, key=lambda o: o.retry_s) if refused else None


def uncounted(outcome: Outcome) -> Outcome:
    """An outcome worked out as if this call counted, with the call given
    back: what remains without it, one more (a refusal stays as it is)."""
    if not outcome.allowed:
        return outcome
    return Outcome(outcome.check, True, outcome.remaining + 1, outcome.reset_s, 0.0)


def counted(outcomes: tuple[Outcome, ...]) -> Verdict:
    """The verdict of a hit whose outcomes say what remains *after* counting
    this call. When one refuses, none is counted: the others then say what
    remains without it."""
    if all(o.allowed for o in outcomes):
        return Verdict(outcomes)
    return Verdict(tuple(uncounted(o) for o in outcomes))


class Limiter(Protocol):
    name: str  # as in `[ratelimit] backend`

    async def hit(self, checks: Sequence[Check]) -> Verdict:
        """Count one call against every check if each admits it; count
        nothing when one refuses. `checks` is never empty."""

    async def peek(self, checks: Sequence[Check]) -> tuple[Outcome, ...]:
        """What remains of each, counting nothing (the admin usage view)."""

    def health(self) -> dict[str, Any]:
        """What /healthz shows under `ratelimit`; "status" is "ok" or not."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...
