"""The two counting rules, on plain floats (seconds). The redis backend runs
the same rules in Lua (redis.py); keep the two in step.

- A rate is a GCRA (generic cell rate algorithm): one stored number, the
  theoretical arrival time `tat`. A burst of up to `count` calls is admitted
  at once, then one every `window / count` seconds: over any long span the
  admitted calls approach `count` per `window`.
- A quota is a fixed window aligned to the epoch (for "N/day", the UTC day):
  two stored numbers, the window's start and the calls counted in it.
"""

from __future__ import annotations

import math

from ..types import Rate

# Float noise in `now - allow_at` must not refuse a call that is exactly on time.
_EPSILON = 1e-9


def gcra(tat: float, now: float, rate: Rate) -> tuple[bool, float, int, float, float]:
    """(allowed, new tat, remaining, reset_s, retry_s) for one call at `now`."""
    interval = rate.window_s / rate.count
    tat = max(tat, now)
    new_tat = tat + interval
    allow_at = new_tat - rate.window_s
    if now + _EPSILON < allow_at:
        return False, tat, 0, tat - now, allow_at - now
    remaining = int((now - allow_at) / interval + _EPSILON)
    return True, new_tat, remaining, new_tat - now, 0.0


def gcra_peek(tat: float, now: float, rate: Rate) -> tuple[int, float]:
    """(remaining, reset_s) without counting."""
    interval = rate.window_s / rate.count
    pending = max(tat, now) - now
    return min(rate.count, int((rate.window_s - pending) / interval + _EPSILON)), pending


def window(start: float, used: float, now: float, rate: Rate) -> tuple[bool, float, float, int, float, float]:
    """(allowed, window start, used after, remaining, reset_s, retry_s) for one call."""
    current = math.floor(now / rate.window_s) * rate.window_s
    if start != current:
        used = 0
    reset = current + rate.window_s - now
    if used >= rate.count:
        return False, current, used, 0, reset, reset
    used += 1
    return True, current, used, int(rate.count - used), reset, 0.0


def window_peek(start: float, used: float, now: float, rate: Rate) -> tuple[int, float]:
    current = math.floor(now / rate.window_s) * rate.window_s
    used = used if start == current else 0
    return int(max(0, rate.count - used)), current + rate.window_s - now
