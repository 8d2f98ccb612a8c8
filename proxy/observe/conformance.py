"""Provider conformance: how each provider answers each action version.

A `CallObserver` (types.py) told about every provider call. Per provider ×
action × version it counts calls, successes, invalid responses, timeouts
and errors, keeps an upstream-latency histogram and the last few response
violations (where and what, never the payload), and answers
`GET /admin/v1/conformance` on the admin listener (admin/conformance.py).

Counting rules (docs/contract.md, "Conformance"):

- every provider call ends in one outcome: `ok` → success,
  `invalid_provider_response` → invalid response, `provider_timeout` →
  timeout, anything else (unreachable, provider 5xx/4xx, overloaded) → error;
- in report mode a response that breaks the schema is relayed: it counts as
  a success *and* as an invalid response;
- request-side violations are the consumer's doing, not the provider's:
  they are logged and in `/metrics` (`apihub_validation_failures`), not here.

Memory is bounded whatever the traffic: counts live in time buckets (one
per minute for the last hour, one per hour for the last day, plus totals
since start), latencies in a log-scaled histogram (5 % wide buckets), and
at most `LAST_VIOLATIONS` violations per entry.

The figures are this process's (`instance`); with several workers or hub
instances each reports its own calls (README).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ..clock import rfc3339
from ..types import CLIPPED_CHARS, CallSite, Mode, Side, ValidationIssue
from .batch import Batch

LAST_VIOLATIONS = 5
MINUTE_S = 60
HOUR_S = 3600
MINUTES_KEPT = 60
HOURS_KEPT = 24

_BASE_MS = 0.05
_GROWTH = 1.05
_LOG_GROWTH = math.log(_GROWTH)

Key = tuple[str, str, int]  # provider, action, version
Clock = Callable[[], float]


# ---- latency ---------------------------------------------------------------

def _bucket(ms: float) -> int:
    """Histogram bucket i holds (BASE·G^(i-1), BASE·G^i] milliseconds."""
    if ms <= _BASE_MS:
        return 0
    return math.ceil(math.log(ms / _BASE_MS) / _LOG_GROWTH)


@dataclass(slots=True)
class Latency:
    """A sparse log-scaled histogram: relative error under 2.5 %, a few
    hundred buckets at most (50 µs … hours), exact min and max."""

    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    low: float = math.inf
    high: float = 0.0

    def add(self, ms: float, index: int) -> None:
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        if ms < self.low:
            self.low = ms
        if ms > self.high:
            self.high = ms

    def merge(self, other: Latency) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def percentile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                middle = _BASE_MS * math.pow(_GROWTH, index - 0.5)
                return round(min(max(middle, self.low), self.high), 2)
        return round(self.high, 2)  # pragma: no cover - rank <= count


# ---- counts ----------------------------------------------------------------

@dataclass(slots=True)
class Counts:
    calls: int = 0
    successes: int = 0
    invalid_responses: int = 0
    timeouts: int = 0
    errors: int = 0
    latency: Latency = field(default_factory=Latency)

    def merge(self, other: Counts) -> None:
        self.calls += other.calls
        self.successes += other.successes
        self.invalid_responses += other.invalid_responses
        self.timeouts += other.timeouts
        self.errors += other.errors
        self.latency.merge(other.latency)


def _apply_outcome(counts: Counts, outcome: str) -> None:
    counts.calls += 1
    if outcome == "ok":
        counts.successes += 1
    elif outcome == "invalid_provider_response":
        counts.invalid_responses += 1
    elif outcome == "provider_timeout":
        counts.timeouts += 1
    else:
        counts.errors += 1


def _floor(ts: float, width: int) -> int:
    return int(ts) // width * width


class _Ring:
    """Counts in fixed-width time buckets; only the newest `kept` survive."""

    __slots__ = ("buckets", "kept", "width")

    def __init__(self, width: int, kept: int) -> None:
        self.width = width
        self.kept = kept
        self.buckets: dict[int, Counts] = {}  # bucket start (unix s) -> counts, oldest first

    def at(self, now: float) -> Counts:
        start = _floor(now, self.width)
        counts = self.buckets.get(start)
        if counts is None:
            counts = self.buckets[start] = Counts()
            oldest = start - (self.kept - 1) * self.width
            for old in [s for s in self.buckets if s < oldest]:
                del self.buckets[old]
        return counts

    def since(self, start: int) -> Counts:
        total = Counts()
        for bucket_start, counts in self.buckets.items():
            if bucket_start >= start:
                total.merge(counts)
        return total


@dataclass(frozen=True, slots=True)
class Violation:
    at: float
    pointer: str
    message: str


class _Entry:
    """One provider × action × version.

    A call adds to `pending`, the counts of the current minute not yet in
    the totals and time buckets: one Counts to update per call instead of
    three. They are settled when a call arrives in another minute, before a
    report, and at each metrics flush."""

    __slots__ = ("_calls", "_invalid", "hours", "minutes", "pending", "pending_minute", "total", "violations")

    def __init__(self, calls: Callable[[str], None], invalid: Callable[[str], None]) -> None:
        self.total = Counts()
        self.minutes = _Ring(MINUTE_S, MINUTES_KEPT)
        self.hours = _Ring(HOUR_S, HOURS_KEPT)
        self.pending = Counts()
        self.pending_minute = 0
        self.violations: deque[Violation] = deque(maxlen=LAST_VIOLATIONS)
        self._calls = calls
        self._invalid = invalid

    def _current(self, now: float) -> Counts:
        minute = int(now) // MINUTE_S * MINUTE_S
        if minute != self.pending_minute:
            self.settle()
            self.pending_minute = minute
        return self.pending

    def settle(self) -> None:
        pending = self.pending
        if not pending.calls and not pending.invalid_responses and not pending.latency.count:
            return
        for counts in (self.total, self.minutes.at(self.pending_minute), self.hours.at(self.pending_minute)):
            counts.merge(pending)
        self.pending = Counts()

    def outcome(self, outcome: str, now: float) -> None:
        self._count(self._current(now), outcome)

    def reported(self, now: float) -> None:
        """A response relayed despite its violations (report mode)."""
        self._current(now).invalid_responses += 1
        self._invalid("report")

    def answered(self, ms: float, outcome: str, now: float) -> None:
        counts = self._current(now)  # one look-up for both: every answered call comes here
        counts.latency.add(ms, _bucket(ms))
        self._count(counts, outcome)

    def _count(self, counts: Counts, outcome: str) -> None:
        _apply_outcome(counts, outcome)
        self._calls(outcome)
        if outcome == "invalid_provider_response":
            self._invalid("strict")


# ---- the observer ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Window:
    """What a query covers: `since` is the start actually answered for
    (rounded down to the bucket width, or the process start)."""

    since: float
    counts: str  # "total", "minutes" or "hours"


class Conformance:
    """A CallObserver; one per hub (Hub.conformance), read by the admin API."""

    def __init__(self, registry: CollectorRegistry, batch: Batch | None = None, *,
                 clock: Clock = time.time) -> None:
        """`batch`: the metrics' (observe/batch.py); its flushes settle the counts too."""
        self._clock = clock
        self.started = clock()
        self._entries: dict[Key, _Entry] = {}
        batch = batch or Batch()
        self._calls = batch.counter(Counter(
            "apihub_provider_calls",
            "Provider calls by provider, action, version and outcome (ok or the error code)",
            ("provider", "action", "version", "outcome"), registry=registry))
        self._invalid = batch.counter(Counter(
            "apihub_provider_invalid_responses",
            "Provider answers that broke the action's response schema or were not JSON; "
            "mode=report ones were relayed (and are also outcome=ok calls)",
            ("provider", "action", "version", "mode"), registry=registry))
        self._batch = batch
        batch.on_flush(self.settle)

    def settle(self) -> None:
        for entry in self._entries.values():
            entry.settle()

    def _entry(self, site: CallSite) -> _Entry:
        key = (site.provider, site.action, site.version)
        entry = self._entries.get(key)
        if entry is None:
            provider, action, version = key[0], key[1], str(key[2])
            calls, invalid = self._calls, self._invalid
            entry = self._entries[key] = _Entry(
                lambda outcome: calls.inc((provider, action, version, outcome)),
                lambda mode: invalid.inc((provider, action, version, mode)))
        return entry

    # CallObserver
    def outcome(self, site: CallSite, outcome: str) -> None:
        self._entry(site).outcome(outcome, self._clock())

    def answered(self, site: CallSite, ms: float, outcome: str) -> None:
        self._entry(site).answered(ms, outcome, self._clock())

    def violation(self, site: CallSite, side: Side, mode: Mode, issues: tuple[ValidationIssue, ...],
                  request_id: str) -> None:
        if side != "response":
            return
        now = self._clock()
        entry = self._entry(site)
        for issue in issues[-LAST_VIOLATIONS:]:
            issue = issue.clipped(CLIPPED_CHARS)  # a provider's key, of any length
            entry.violations.append(Violation(now, issue.pointer, issue.message))
        if mode == "report":
            # Strict ones are counted by their invalid_provider_response outcome.
            entry.reported(now)

    # Queries
    def window(self, since: float | None) -> Window:
        if since is None:
            return Window(self.started, "total")
        now = self._clock()
        if _floor(since, MINUTE_S) >= _floor(now, MINUTE_S) - (MINUTES_KEPT - 1) * MINUTE_S:
            start, counts = _floor(since, MINUTE_S), "minutes"
        else:  # older than the minute buckets: hour resolution, at most a day back
            oldest = _floor(now, HOUR_S) - (HOURS_KEPT - 1) * HOUR_S
            start, counts = max(_floor(since, HOUR_S), oldest), "hours"
        if start <= self.started:
            # Every bucket since the process started: the totals say the same, exactly.
            return Window(self.started, "total")
        return Window(start, counts)

    def report(self, since: float | None = None) -> tuple[float, list[dict[str, Any]]]:
        """(the start actually covered, the entries), sorted by provider, action, version."""
        self._batch.flush()
        window = self.window(since)
        entries = []
        for key in sorted(self._entries):
            entry = self._entries[key]
            if window.counts == "total":
                counts = entry.total
            else:
                ring = entry.minutes if window.counts == "minutes" else entry.hours
                counts = ring.since(int(window.since))
            violations = [v for v in entry.violations if v.at >= window.since]
            if not counts.calls and not counts.invalid_responses and not violations:
                continue
            entries.append({
                "provider": key[0],
                "action": key[1],
                "version": key[2],
                "calls": counts.calls,
                "successes": counts.successes,
                "invalidResponses": counts.invalid_responses,
                "timeouts": counts.timeouts,
                "errors": counts.errors,
                "p50Ms": counts.latency.percentile(0.50),
                "p99Ms": counts.latency.percentile(0.99),
                "lastViolations": [
                    {"at": rfc3339(v.at), "pointer": v.pointer, "message": v.message}
                    for v in violations
                ],
            })
        return window.since, entries
