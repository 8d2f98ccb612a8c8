"""Provider deadlines on one shared timer per client.

A timer of the event loop's own per call (call_later, then cancel) costs
about 5,600 instructions under uvloop: a libuv timer allocated, started,
stopped and closed, and the close handled on a later turn of the loop.
Nearly every call ends long before its deadline, so that work is almost
always thrown away. Here deadlines are put in buckets of `STEP_S` and one
timer is kept, set for the earliest bucket that still holds one: adding
and withdrawing a deadline is a set insertion and removal.

A deadline fires at its time or up to one step and a millisecond (6 ms)
later, never before (by the loop's clock).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable

STEP_S = 0.005
# uvloop's clock counts whole milliseconds and truncates a timer's delay to
# them, so a timer set for a bucket's time can fire just before it and be set
# again at once, over and over until the clock turns: one millisecond more
# makes its first firing the one that finds the bucket due.
_CLOCK_S = 0.001

Fire = Callable[[], None]


class Deadlines:
    """`add` a callback to fire after a delay; `discard` it from the set
    `add` returned to withdraw it. One instance serves one event loop."""

    __slots__ = ("_armed", "_due", "_step", "_ticks", "_timer")

    def __init__(self, step_s: float = STEP_S) -> None:
        self._step = step_s
        self._due: dict[int, set[Fire]] = {}  # bucket number → what fires then
        self._ticks: list[int] = []  # heap of the bucket numbers in _due
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0  # the bucket the timer is set for

    def add(self, loop: asyncio.AbstractEventLoop, delay_s: float, fire: Fire) -> set[Fire]:
        """`fire` is called once `delay_s` has passed, unless it is discarded
        first from the set returned."""
        tick = math.ceil((loop.time() + delay_s) / self._step)
        bucket = self._due.get(tick)
        if bucket is None:
            bucket = self._due[tick] = set()
            heapq.heappush(self._ticks, tick)
            if self._timer is None or tick < self._armed:
                self._arm(loop, tick)
        bucket.add(fire)
        return bucket

    def __len__(self) -> int:
        """Deadlines still pending."""
        return sum(map(len, self._due.values()))

    def close(self) -> None:
        """Stop the timer; nothing pending fires any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        self._ticks.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = tick
        self._timer = loop.call_at(tick * self._step + _CLOCK_S, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        ticks, due = self._ticks, self._due
        while ticks:
            tick = ticks[0]
            bucket = due[tick]
            passed = tick * self._step <= now
            if bucket and not passed:
                self._arm(loop, tick)  # the earliest deadline still pending
                return
            # Passed, or emptied by withdrawals: a later add for the same
            # bucket number makes a new one.
            heapq.heappop(ticks)
            del due[tick]
            if passed:
                for fire in list(bucket):
                    try:
                        fire()
                    except Exception as exc:  # one failing must not keep the others from firing
                        loop.call_exception_handler({"message": "a deadline's callback failed", "exception": exc})
                bucket.clear()
