"""Prometheus metrics, in a registry owned by the app.

With several worker processes on one port a scrape reaches any one of
them, so the supervisor turns on prometheus-client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR): each worker writes its values to files there and
/metrics, whichever worker answers, sums them all (gauges per their
`multiprocess_mode`). A single worker keeps plain in-memory values.

What every call updates (calls, latencies, calls in flight) is batched
per worker (batch.py): a call costs a few dict lookups and additions, no
lock. Labels only ever hold names the catalogue or the registry already
know, never what a consumer typed, so cardinality stays bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ..types import BreakerState
from .batch import Batch

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BREAKER_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batch = batch = Batch()
        self._requests = batch.counter(Counter(
            "apihub_requests", "Calls answered, by action, provider and outcome (ok or the error code)",
            ("route", "action", "provider", "outcome"), registry=r))
        self._latency = batch.histogram(Histogram(
            "apihub_request_duration_seconds", "Time from request to answer, in the hub",
            ("route", "action", "provider"), buckets=_BUCKETS, registry=r), _BUCKETS)
        self._upstream = batch.histogram(Histogram(
            "apihub_upstream_duration_seconds", "Time the provider took to answer",
            ("action", "provider"), buckets=_BUCKETS, registry=r), _BUCKETS)
        self._violations = Counter(
            "apihub_validation_failures", "Payloads that failed their schema",
            ("action", "provider", "side", "mode"), registry=r)
        self._breaker = Gauge(
            "apihub_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open "
            "(with several workers: the worst of them)",
            ("provider",), registry=r, multiprocess_mode="livemax")
        self._transitions = Counter(
            "apihub_breaker_transitions", "Circuit breaker state changes", ("provider", "to"), registry=r)
        # Requests being handled now, kept by the middleware; told to the gauge at each flush.
        self.in_flight = 0
        in_flight = Gauge("apihub_in_flight_requests", "Requests being handled", registry=r,
                          multiprocess_mode="livesum")
        batch.on_flush(lambda: in_flight.set(self.in_flight))
        self.catalogue_generation = Gauge(
            "apihub_catalogue_generation", "Generation of the catalogue in use (per worker pid with several)",
            registry=r, multiprocess_mode="liveall")
        self.catalogue_actions = Gauge("apihub_catalogue_actions", "Actions in the catalogue", registry=r,
                                       multiprocess_mode="liveall")
        self._reloads = Counter("apihub_reloads", "Catalogue reloads by result", ("result",), registry=r)
        self._hub_overloaded = Counter(
            "apihub_hub_overloaded", "Calls refused 503 hub_overloaded, by the resource that ran out",
            ("reason",), registry=r)
        self._limited = Counter(
            "apihub_rate_limited", "Calls refused 429 rate_limited, by consumer, action and limit kind "
            "(rate, quota, provider, unavailable)", ("consumer", "action", "kind"), registry=r)
        self._limiter_errors = Counter(
            "apihub_ratelimit_redis_errors", "Limited calls decided without Redis (it could not be reached), "
            "by [ratelimit] on_redis_error", ("on_error",), registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_call(self, route: str, action: str, provider: str, outcome: str, seconds: float) -> None:
        self._requests.inc((route, action, provider, outcome))
        self._latency.observe((route, action, provider), seconds)

    def observe_upstream(self, action: str, provider: str, seconds: float) -> None:
        self._upstream.observe((action, provider), seconds)

    def violation(self, action: str, provider: str, side: str, mode: str) -> None:
        self._child(self._violations, action, provider, side, mode).inc()

    def breaker_changed(self, provider: str, new: BreakerState) -> None:
        self._child(self._breaker, provider).set(_BREAKER_VALUE[new])
        self._child(self._transitions, provider, new.value).inc()

    def hub_overloaded(self, reason: str) -> None:
        self._child(self._hub_overloaded, reason).inc()

    def rate_limited(self, consumer: str, action: str, kind: str) -> None:
        self._child(self._limited, consumer, action, kind).inc()

    def ratelimit_redis_error(self, on_error: str) -> None:
        self._child(self._limiter_errors, on_error).inc()

    def reloaded(self, ok: bool) -> None:
        self._child(self._reloads, "ok" if ok else "error").inc()

    def collect(self) -> Iterable[Metric]:
        """This worker's metric families, batched updates included."""
        self.batch.flush()
        return self.registry.collect()

    def render(self) -> bytes:
        self.batch.flush()
        if MULTIPROC_ENV in os.environ:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # every worker's files
            return generate_latest(merged)
        return generate_latest(self.registry)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def use_shared_values() -> None:
    """In a forked worker: store values in PROMETHEUS_MULTIPROC_DIR from now on
    (prometheus-client chose its value class when it was first imported)."""
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

