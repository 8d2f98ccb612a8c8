"""RFC 3339 UTC timestamps, written in one place."""

from __future__ import annotations

import functools
import time


def now_rfc3339() -> str:
    """The current UTC time, e.g. 2026-03-01T12:00:00.123Z (on every call: kept cheap)."""
    return rfc3339(time.time())


def rfc3339(ts: float) -> str:
    seconds = int(ts)
    return f"{_utc_seconds(seconds)}.{int((ts - seconds) * 1000):03d}Z"


def rfc3339_micro(ts: float) -> str:
    """As `rfc3339`, to the microsecond (log timestamps)."""
    seconds = int(ts)
    return f"{_utc_seconds(seconds)}.{int((ts - seconds) * 1_000_000):06d}Z"


@functools.lru_cache(maxsize=2)
def _utc_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))

