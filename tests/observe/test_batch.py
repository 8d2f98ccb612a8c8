"""Batched metrics write what prometheus-client's own per-call updates
would have written, and only when flushed."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.observe import batch as batch_module
from proxy.observe.batch import Batch

BUCKETS = (0.001, 0.01, 0.1, 1.0)
VALUES = (0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.7, 1.0, 3.0, 250.0)


def _exposition(registry: CollectorRegistry) -> list[str]:
    # `_created` lines hold the time each child was made: the only difference allowed.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def _pair() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    return (registry, Counter("calls", "calls", ("route", "outcome"), registry=registry),
            Histogram("seconds", "seconds", ("route",), buckets=BUCKETS, registry=registry))


def test_a_flush_writes_what_observe_and_inc_write() -> None:
    direct_registry, direct_calls, direct_seconds = _pair()
    batched_registry, calls_metric, seconds_metric = _pair()
    batch = Batch()
    calls = batch.counter(calls_metric)
    seconds = batch.histogram(seconds_metric, BUCKETS)
    for i, value in enumerate(VALUES):
        route, outcome = ("call" if i % 3 else "fanout"), ("ok" if i % 2 else "provider_timeout")
        direct_calls.labels(route, outcome).inc()
        direct_seconds.labels(route).observe(value)
        calls.inc((route, outcome))
        seconds.observe((route,), value)
    assert not [line for line in _exposition(batched_registry) if not line.startswith("#")]  # nothing until flushed
    batch.flush()
    assert _exposition(batched_registry) == _exposition(direct_registry)
    batch.flush()  # a second flush adds nothing
    assert _exposition(batched_registry) == _exposition(direct_registry)
    # and later calls add to what was flushed
    direct_calls.labels("call", "ok").inc()
    direct_seconds.labels("call").observe(0.02)
    calls.inc(("call", "ok"))
    seconds.observe(("call",), 0.02)
    batch.flush()
    assert _exposition(batched_registry) == _exposition(direct_registry)


async def test_the_app_flushes_every_second_and_at_its_end() -> None:
    registry, counter_metric, _ = _pair()
    batch = Batch()
    calls = batch.counter(counter_metric)
    flushed: list[int] = []
    batch.on_flush(lambda: flushed.append(1))
    setattr(batch_module, "FLUSH_S", 0.05)  # noqa: B010 - the module's period, shortened for the test
    try:
        context = batch.flushing()
        await context.__anext__()
        calls.inc(("call", "ok"))
        await asyncio.sleep(0.2)
        assert len(flushed) >= 2
        assert 'calls_total{outcome="ok",route="call"} 1.0' in generate_latest(registry).decode()
        calls.inc(("call", "ok"))
        try:
            await context.__anext__()
        except StopAsyncIteration:
            pass
        assert 'calls_total{outcome="ok",route="call"} 2.0' in generate_latest(registry).decode()
    finally:
        setattr(batch_module, "FLUSH_S", 1.0)  # noqa: B010
