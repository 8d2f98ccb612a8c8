"""The rate-limit step's cost per call, side by side in one run: no limit
configured (the step only looks: `call_checks` and the branch call() takes),
a `local` limit (shared-memory table, fcntl lock), and a `redis` limit (one
EVALSHA of the GCRA script to a private redis-server on 127.0.0.1). Writes
its section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/ratelimit.py
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

from proxy.config import RegistryConfig
from proxy.pipeline.limits import RateLimits, call_checks, spend
from proxy.ratelimit.local import LocalLimiter
from proxy.ratelimit.redis import RedisLimiter
from proxy.registry import parse_manifest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import sections  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = sections.markers("ratelimit")
ACTION = "@layers:Calendar:getRelated"
CALLS = 20_000


def apps(limited: bool) -> tuple[object, object]:
    consumer = {"id": "consumer", "tokens": [], "communities": ["c"], "consumes": [ACTION]}
    if limited:  # high enough never to refuse during the run: the cost of counting alone
        consumer["limits"] = {"*": {"rate": "1000000/s", "quota": "1000000000/day"}}
    provider = parse_manifest({"id": "provider", "secret": "s", "provides": {
        ACTION: {"url": "http://127.0.0.1:1/", **({"maxRate": "1000000/s"} if limited else {})}}})
    return parse_manifest(consumer), provider


def step_us_no_limits() -> float:
    consumer, provider = apps(False)
    limits = RateLimits(LocalLimiter(), None, lambda *a: None)
    provision = provider.provides[ACTION]  # type: ignore[attr-defined]

    def step() -> None:  # what call() runs when nothing is limited
        if limits is not None and call_checks(limits, consumer, "c", ACTION, provider, provision):  # type: ignore[arg-type]
            raise AssertionError

    runs = timeit.repeat(step, number=100_000, repeat=7)
    return min(runs) / 100_000 * 1e6


async def step_us(limits: RateLimits) -> tuple[float, float]:
    """(mean µs per call, p50 µs) of the whole step: checks built and spent."""
    consumer, provider = apps(True)
    provision = provider.provides[ACTION]  # type: ignore[attr-defined]
    samples = []
    started = time.perf_counter()
    for _ in range(CALLS):
        t = time.perf_counter()
        checks = call_checks(limits, consumer, "c", ACTION, provider, provision)  # type: ignore[arg-type]
        await spend(limits, checks, "consumer", ACTION)
        samples.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return total / CALLS * 1e6, statistics.median(samples) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure() -> dict[str, tuple[float, float]]:
    figures = {"no limit configured": (step_us_no_limits(), float("nan"))}
    folder = tempfile.mkdtemp(prefix="apihub-rl-bench-")
    local = LocalLimiter(os.path.join(folder, "slots"))  # the file-backed table workers share
    await local.start()
    figures["local limit (3 counters)"] = await step_us(RateLimits(local, None, lambda *a: None))
    await local.close()
    binary = shutil.which("redis-server")
    if binary:
        port = free_port()
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.02)
            redis = RedisLimiter(RegistryConfig(url=f"redis://127.0.0.1:{port}/0"))
            await redis.start()
            figures["redis limit (3 counters, 1 round trip)"] = await step_us(RateLimits(redis, None,
                                                                                          lambda *a: None))
            await redis.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)
    return figures


def section(figures: dict[str, tuple[float, float]]) -> str:
    base = figures["no limit configured"][0]
    rows = [f"| {name} | {mean:.2f} | {'–' if p50 != p50 else f'{p50:.2f}'} | {1e6 / mean:,.0f} | "
            f"{mean / base:,.0f}× |" for name, (mean, p50) in figures.items()]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join([
        BEGIN,
        "## Rate limits (the limit step alone)",
        "",
        f"Written by `.venv/bin/python benchmarks/ratelimit.py` (not by `make bench`) on "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; Python {platform.python_version()}, "
        f"load average {load}. No limit: `timeit`, best of 7 × 100,000. Limited: {CALLS:,} calls in a "
        "row, each timed; a consumer rate + quota and a provider protection rate (3 counters), limits "
        "high enough never to refuse. The p50 is what the step adds to a call's latency.",
        "",
        "| configuration | µs per call | p50 µs | steps/s | × no limit |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        END,
    ])


def main() -> None:
    figures = asyncio.run(measure())
    text = section(figures)
    print(text)
    sections.put(RESULTS, text.split("\n"))


if __name__ == "__main__":
    main()
