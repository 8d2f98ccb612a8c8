"""RFC 3339 UTC timestamps, written in one place."""

from __future__ import annotations

import functools
import time


def now_rfc3339() -> str:
    """The current UTC time, e.g. 2026-03-01T12:00:00.123Z (on every call: kept cheap)."""
    return rfc3339(time.time())


def rfc3339(ts: float) -> str:
    seconds = int(ts)
    return f"{utc_seconds(seconds)}.{int((ts - seconds) * 1000):03d}Z"


class MicroStamps:
    """As `rfc3339`, to the microsecond, for a caller on every call (the
    access line): the part to the second is formatted once a second."""

    __slots__ = ("_second", "_stamp")

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self, ts: float) -> str:
        second = int(ts)
        if second != self._second:
            self._second, self._stamp = second, utc_seconds(second)
        # %d truncates as int() does, without the call: a third cheaper than the f-string
        return "%s.%06dZ" % (self._stamp, (ts - second) * 1_000_000)  # noqa: UP031


@functools.lru_cache(maxsize=2)
def utc_seconds(seconds: int) -> str:
    """`seconds` since the epoch as YYYY-MM-DDTHH:MM:SS, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))

