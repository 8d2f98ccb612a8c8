"""Timestamps: the access line's cached formatting says what datetime says."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

from proxy.clock import MicroStamps, rfc3339


def _reference(ts: float) -> str:
    """The float's exact value, truncated to the microsecond (Decimal holds it exactly)."""
    exact = Decimal(ts)
    whole = int(exact)
    micro = int((exact - whole) * 1_000_000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}Z"


def test_micro_stamps_match_datetime_across_seconds_and_back_in_time() -> None:
    stamps = MicroStamps()
    rng = random.Random(7)
    base = 1_765_000_000.0
    times = [base + rng.uniform(0, 3) for _ in range(2_000)]  # many within one second, some crossing
    times += [rng.uniform(0, 4_000_000_000) for _ in range(2_000)]  # anywhere, in no order
    times += [base, base + 0.999_999, base + 1.0, base - 0.000_001]
    for ts in times:
        assert stamps(ts) == _reference(ts), ts


def test_millisecond_stamps() -> None:
    assert rfc3339(1_765_000_000.123_9) == "2025-12-06T05:46:40.123Z"
