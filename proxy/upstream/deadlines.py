"""Provider deadlines on one shared timer per client.

A timer of the event loop's own per call (call_later, then cancel) costs
about 5,600 instructions under uvloop: a libuv timer allocated, started,
stopped and closed, and the close handled on a later turn of the loop.
Nearly every call ends long before its deadline, so that work is almost
always thrown away. Here deadlines are put in buckets of `step_ms` and one
timer is kept, set for the earliest bucket that still holds one: adding
and withdrawing a deadline is a set insertion and removal.

A deadline fires at its time or later, never before: up to one step
later, plus the loop's own timer granularity (uvloop's clock counts whole
milliseconds) and whatever keeps the loop busy; about 6 ms at most on an
idle loop.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Callable

STEP_MS = 5

Fire = Callable[[], None]


class Deadlines:
    """`add` a callback to fire after a delay; `discard` it from the set
    `add` returned to withdraw it. Serves one event loop at a time: added
    from another loop (a test's next loop), it starts afresh there."""

    __slots__ = ("_armed", "_due", "_loop", "_step_ms", "_ticks", "_timer")

    def __init__(self, step_ms: int = STEP_MS) -> None:
        self._step_ms = step_ms
        self._due: dict[int, set[Fire]] = {}  # bucket number → what fires then
        self._ticks: list[int] = []  # heap of the bucket numbers in _due
        self._timer: asyncio.TimerHandle | None = None
        self._armed = 0  # the bucket the timer is set for
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, loop: asyncio.AbstractEventLoop, delay_s: float, fire: Fire) -> set[Fire]:
        """`fire` is called once `delay_s` has passed, unless it is discarded
        first from the set returned."""
        if loop is not self._loop:
            self.close()  # what a closed loop had pending can never fire
            self._loop = loop
        # uvloop's clock is in whole milliseconds, rounded down: counted from
        # it, a deadline could end up to a millisecond early by the wall
        # clock. time.monotonic() is the clock it lags.
        now = max(loop.time(), time.monotonic())
        tick = math.ceil((now + delay_s) * 1000 / self._step_ms)
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
        """Stop the timer; nothing pending fires any more (the clients close
        it last, at the app's cleanup, once no call is in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        self._ticks.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = tick
        self._timer = loop.call_at(tick * self._step_ms / 1000, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        # Compared as the timer was set: uvloop's clock is whole milliseconds
        # divided by 1000, so at the bucket's very millisecond both sides are
        # the same float. Any other form of the comparison (0.005 * tick, or
        # loop.time() * 1000) is off by a rounding for some ticks, the bucket
        # is "not yet due" when its timer fires, and the timer is set again
        # at once, and again, until the clock turns.
        now = loop.time()
        step, ticks, due = self._step_ms, self._ticks, self._due
        while ticks:
            tick = ticks[0]
            bucket = due[tick]
            passed = tick * step / 1000 <= now
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
