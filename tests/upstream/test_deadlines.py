"""The shared deadline timer: nothing fires early, everything due fires
within a step, a withdrawn deadline never fires, and the timer is set again
for a deadline shorter than the one it waits for."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from proxy.upstream.deadlines import Deadlines


async def _fired_at(deadlines: Deadlines, delays: list[float]) -> dict[int, float]:
    """When each deadline fired, by its index (loop time since it was added)."""
    loop = asyncio.get_running_loop()
    fired: dict[int, float] = {}
    added: dict[int, float] = {}
    for index, delay in enumerate(delays):
        added[index] = loop.time()
        deadlines.add(loop, delay, lambda index=index: fired.__setitem__(index, loop.time() - added[index]))
    await asyncio.sleep(max(delays) + 0.1)
    return fired


async def test_deadlines_fire_at_their_time_or_within_a_step_after_never_before() -> None:
    deadlines = Deadlines(step_ms=5)
    delays = [random.uniform(0.0, 0.15) for _ in range(200)]
    fired = await _fired_at(deadlines, delays)
    assert sorted(fired) == list(range(len(delays)))
    for index, delay in enumerate(delays):
        assert delay <= fired[index] < delay + 0.05, (delay, fired[index])  # a step, a ms, and a machine's lag
    assert len(deadlines) == 0


async def test_a_shorter_deadline_added_later_sets_the_timer_earlier() -> None:
    deadlines = Deadlines(step_ms=5)
    loop = asyncio.get_running_loop()
    order: list[str] = []
    deadlines.add(loop, 5.0, lambda: order.append("long"))
    deadlines.add(loop, 0.02, lambda: order.append("short"))
    await asyncio.sleep(0.1)
    assert order == ["short"]
    assert len(deadlines) == 1
    deadlines.close()


async def test_a_withdrawn_deadline_never_fires_and_the_rest_still_do() -> None:
    deadlines = Deadlines(step_ms=5)
    loop = asyncio.get_running_loop()
    fired: list[int] = []
    handles = []
    for index in range(50):
        def fire(index: int = index) -> None:
            fired.append(index)
        handles.append((deadlines.add(loop, 0.02, fire), fire))
    for pending, fire in handles[::2]:
        pending.discard(fire)  # every other one withdrawn
    await asyncio.sleep(0.1)
    assert sorted(fired) == list(range(1, 50, 2))


async def test_a_bucket_emptied_by_withdrawals_does_not_stop_later_deadlines() -> None:
    """The timer set for a bucket that emptied moves on to the next one."""
    deadlines = Deadlines(step_ms=5)
    loop = asyncio.get_running_loop()
    fired: list[str] = []

    def early() -> None:
        fired.append("early")

    deadlines.add(loop, 0.01, early).discard(early)
    deadlines.add(loop, 0.05, lambda: fired.append("late"))
    await asyncio.sleep(0.03)
    assert fired == []
    await asyncio.sleep(0.1)
    assert fired == ["late"]
    # and the same bucket numbers are usable again once passed
    deadlines.add(loop, 0.01, lambda: fired.append("again"))
    await asyncio.sleep(0.05)
    assert fired == ["late", "again"]


async def test_close_stops_everything() -> None:
    deadlines = Deadlines(step_ms=5)
    loop = asyncio.get_running_loop()
    fired: list[int] = []
    deadlines.add(loop, 0.01, lambda: fired.append(1))
    deadlines.close()
    await asyncio.sleep(0.05)
    assert fired == []
    assert len(deadlines) == 0


class _Counting(Deadlines):
    """Counts the timer's firings (the timer is the thing under test; its callbacks are the test's)."""

    __slots__ = ("firings",)

    def __init__(self) -> None:
        super().__init__()
        self.firings = 0

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.firings += 1
        super()._fire(loop)


def test_on_uvloop_the_timer_fires_once_or_twice_a_bucket_never_in_a_spin_nor_early() -> None:
    """On uvloop (the hub's loop), whose clock is whole milliseconds as a
    float, read once a turn: compared as floats, a bucket's time was not yet
    "passed" at its very millisecond, so the timer was set again at once, a
    dozen times a bucket, until the clock turned; and counted from that
    clock, a deadline could end up to a millisecond early by the wall clock.
    Lateness is one step and the clock's granularity (the median, which a
    busy machine does not move)."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[dict[int, float], list[float], int]:
        deadlines = _Counting()
        loop = asyncio.get_running_loop()
        fired: dict[int, float] = {}
        delays = [0.0013 + index * 0.005 for index in range(40)] + [random.uniform(0, 0.2) for _ in range(60)]
        added = time.monotonic()  # the wall clock: uvloop's own lags it by up to a millisecond
        for index, delay in enumerate(delays):
            deadlines.add(loop, delay, lambda index=index: fired.__setitem__(index, time.monotonic() - added))
        await asyncio.sleep(0.35)
        return fired, delays, deadlines.firings

    fired, delays, firings = uvloop.run(scenario())
    assert sorted(fired) == list(range(len(delays)))
    late = [fired[index] - delay for index, delay in enumerate(delays)]
    assert min(late) >= 0  # never before
    assert sorted(late)[len(late) // 2] <= 0.005 + 0.002
    assert firings <= 2 * 45  # at most two firings for each of ~45 distinct buckets


def test_a_client_used_from_a_second_loop_still_times_out() -> None:
    """A timer armed in a loop that has since closed would never fire: the
    deadlines start afresh in the new loop."""
    deadlines = Deadlines()

    async def first() -> None:
        def fire() -> None:
            pass

        deadlines.add(asyncio.get_running_loop(), 0.01, fire).discard(fire)

    async def second() -> list[int]:
        fired: list[int] = []
        deadlines.add(asyncio.get_running_loop(), 0.02, lambda: fired.append(1))
        await asyncio.sleep(0.2)
        return fired

    asyncio.run(first())
    assert asyncio.run(second()) == [1]


class _Handle:
    def __init__(self, callback: Any, args: tuple[Any, ...]) -> None:
        self.callback, self.args, self.cancelled = callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class _MillisecondLoop:
    """uvloop's timer semantics, with a clock the test holds still: time()
    is whole milliseconds / 1000, and call_at rounds the delay to whole
    milliseconds, running a delay of 0 on the next turn (call_soon)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.soon: list[_Handle] = []
        self.timers: list[tuple[int, _Handle]] = []

    def time(self) -> float:
        return self.now_ms / 1000

    def call_at(self, when: float, callback: Any, *args: Any) -> _Handle:
        delay_ms = round((when - self.time()) * 1000)
        handle = _Handle(callback, args)
        if delay_ms <= 0:
            self.soon.append(handle)
        else:
            self.timers.append((self.now_ms + delay_ms, handle))
        return handle


@pytest.mark.parametrize("uptime_ms", [3_600_000, 100 * 86_400_000, 2**25 * 1000 + 3_600_000, 10**13])
def test_a_bucket_is_due_at_its_very_millisecond_whatever_the_uptime(uptime_ms: int) -> None:
    """Past 2**25 s of uptime, loop.time() * 1000 falls short of the whole
    millisecond by more than any small tolerance for about a quarter of the
    buckets: compared that way, a bucket was "not yet due" when its timer
    fired, and the timer ran again and again within that millisecond.
    Compared as the timer was set, each is due at once."""
    start = max(uptime_ms, int(time.monotonic() * 1000) + 1)  # the hub counts from the later clock
    for offset in range(0, 2_000, 3):  # hundreds of buckets
        loop = _MillisecondLoop(start + offset)
        deadlines = Deadlines()
        fired: list[int] = []
        deadlines.add(loop, 0.030, lambda: fired.append(loop.now_ms))  # type: ignore[arg-type]
        ((due_ms, handle),) = loop.timers
        loop.now_ms = due_ms  # libuv runs the timer at its very millisecond; the clock holds still
        turns = 0
        pending = [handle]
        while pending and turns < 100:
            current = pending.pop(0)
            if not current.cancelled:
                current.callback(*current.args)
                turns += 1
            pending += loop.soon
            loop.soon.clear()
        assert fired == [due_ms] and turns == 1, (start + offset, turns)
