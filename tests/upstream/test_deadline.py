"""The provider clients' shared deadline: its own expiry becomes
ProviderTimeout, anyone else's cancellation goes on as a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from proxy.errors import ProviderTimeout, ProviderUnreachable
from proxy.types import Answer
from proxy.upstream.base import ConnectFailed, NeverReceived, within_deadline
from proxy.upstream.deadlines import Deadlines


async def _slow(fresh: bool) -> Answer:
    await asyncio.sleep(10)
    return Answer(b"late", 0.0)


async def test_the_deadline_passing_is_a_provider_timeout() -> None:
    with pytest.raises(ProviderTimeout, match="within 50 ms"):
        await within_deadline(_slow, 0.05, False, Deadlines())
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # nothing of ours left on the task


async def test_an_answer_in_time_cancels_the_timer() -> None:
    async def quick(fresh: bool) -> Answer:
        return Answer(b"ok", 1.0)

    assert (await within_deadline(quick, 0.05, False, Deadlines())).body == b"ok"
    await asyncio.sleep(0.1)  # the timer would have fired by now: nothing is cancelled
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_another_cancellation_is_not_a_timeout() -> None:
    call = asyncio.create_task(within_deadline(_slow, 5.0, False, Deadlines()))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_cancellation_arriving_with_the_deadline_still_cancels() -> None:
    """Both at once (a shutdown cutting a call whose deadline passes in the
    same turn of the loop): the other canceller's request is not swallowed."""
    deadlines = Deadlines(step_ms=1000)  # both land in one bucket, which fires in one turn
    call = asyncio.create_task(within_deadline(_slow, 0.0, False, deadlines))
    await asyncio.sleep(0)  # the call is waiting on its provider
    deadlines.add(asyncio.get_running_loop(), 0.0, call.cancel)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert call.cancelled()


async def test_one_retry_on_a_fresh_connection_when_never_received() -> None:
    tries: list[bool] = []

    async def flaky(fresh: bool) -> Answer:
        tries.append(fresh)
        if not fresh:
            raise NeverReceived("idle connection closed as it was reused")
        return Answer(b"ok", 1.0)

    assert (await within_deadline(flaky, 1.0, False, Deadlines())).body == b"ok"
    assert tries == [False, True]


async def test_no_retry_of_a_non_idempotent_call_the_provider_may_have_seen() -> None:
    async def closed(fresh: bool) -> Answer:
        raise ConnectFailed("provider closed the connection before answering")

    with pytest.raises(ProviderUnreachable):
        await within_deadline(closed, 1.0, False, Deadlines())


async def test_a_swallowed_cancellation_of_ours_is_taken_back() -> None:
    """Should an exchange swallow the deadline's cancellation, nothing of it
    stays on the task to surface in a later step as a bare cancellation."""
    async def stubborn(fresh: bool) -> Answer:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        return Answer(b"late but whole", 0.0)

    assert (await within_deadline(stubborn, 0.01, False, Deadlines())).body == b"late but whole"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # and the task goes on, uncancelled
