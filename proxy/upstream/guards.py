"""Bulkheads and circuit breakers, per provider and per worker.

A hung or failing provider must not take the hub's capacity from the others:
past its concurrency limit, or while its breaker is open, calls to it answer
503 `provider_overloaded` at once, without touching the network.

The breaker counts consecutive failures (timeouts, connection errors, 5xx).
Consumer errors, provider 4xx and invalid answers show the provider is up,
so they count as successes. After `cooldown_ms` open, one probe goes through
(half-open); its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import BreakerConfig
from ..errors import ProviderOverloaded
from ..types import BreakerState

Transition = Callable[[str, BreakerState, BreakerState], None]


class Breaker:
    __slots__ = ("key", "state", "failures", "opened_at", "probing", "_threshold", "_cooldown_s",
                 "_on_change", "_clock")

    def __init__(self, key: str, config: BreakerConfig, on_change: Transition,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False
        self._threshold = config.failure_threshold
        self._cooldown_s = config.cooldown_ms / 1000
        self._on_change = on_change
        self._clock = clock

    def admit(self) -> bool:
        """May a call go through now? Returns True if it is the half-open probe."""
        if self.state is BreakerState.CLOSED:
            return False
        if self.state is BreakerState.OPEN:
            if self._clock() - self.opened_at < self._cooldown_s:
                raise ProviderOverloaded("provider's circuit breaker is open after repeated failures")
            self._move(BreakerState.HALF_OPEN)
        if self.probing:
            raise ProviderOverloaded("provider's circuit breaker is half-open and a probe is in flight")
        self.probing = True
        return True

    def record(self, *, failed: bool, probe: bool) -> None:
        if probe:
            self.probing = False
        if not failed:
            self.failures = 0
            if self.state is not BreakerState.CLOSED and probe:
                self._move(BreakerState.CLOSED)
            return
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN and probe or (
            self.state is BreakerState.CLOSED and self.failures >= self._threshold
        ):
            self.opened_at = self._clock()
            self._move(BreakerState.OPEN)

    def abandon(self, *, probe: bool) -> None:
        """A call admitted but never sent (e.g. the bulkhead was full)."""
        if probe:
            self.probing = False

    def _move(self, new: BreakerState) -> None:
        old, self.state = self.state, new
        self._on_change(self.key, old, new)


class Bulkhead:
    __slots__ = ("key", "limit", "in_flight")

    def __init__(self, key: str, limit: int) -> None:
        self.key = key
        self.limit = limit
        self.in_flight = 0

    def acquire(self) -> None:
        if self.in_flight >= self.limit:
            raise ProviderOverloaded(f"provider is at its concurrency limit ({self.limit} calls in flight)")
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1


class Guards:
    """The bulkheads and breakers of one worker, created on first use."""

    def __init__(self, breaker: BreakerConfig, default_limit: int, on_change: Transition) -> None:
        self._breaker_config = breaker
        self._default_limit = default_limit
        self._on_change = on_change
        self._breakers: dict[str, Breaker] = {}
        self._bulkheads: dict[str, Bulkhead] = {}

    def breaker(self, provider_id: str) -> Breaker:
        breaker = self._breakers.get(provider_id)
        if breaker is None:
            breaker = self._breakers[provider_id] = Breaker(provider_id, self._breaker_config, self._on_change)
        return breaker

    def bulkhead(self, provider_id: str, action: str, override: int | None) -> Bulkhead:
        """The provider's shared bulkhead, or the action's own when the manifest sets one."""
        key = provider_id if override is None else f"{provider_id} {action}"
        limit = override or self._default_limit
        bulkhead = self._bulkheads.get(key)
        if bulkhead is None:
            bulkhead = self._bulkheads[key] = Bulkhead(key, limit)
        bulkhead.limit = limit  # a reload may have changed it
        return bulkhead

    def states(self) -> dict[str, str]:
        return {key: b.state.value for key, b in self._breakers.items()}

    def breakers(self) -> list[Breaker]:
        return list(self._breakers.values())

    def bulkheads(self) -> list[Bulkhead]:
        """Keyed "<provider>" or "<provider> <action>" (a manifest's own limit)."""
        return list(self._bulkheads.values())
