"""A serving process keeps its catalogue out of the GC's walks, and a reload
lets the replaced catalogue be collected, then freezes the new one."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.web import heap
from proxy.web.state import HUB

from tests.support import ECHO, call_headers


@pytest.fixture
def frozen() -> Iterator[None]:
    heap.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the test session keeps a normal collector


async def test_reload_frees_the_old_catalogue_and_freezes_again(hub: Any, frozen: None) -> None:
    state = hub.server.app[HUB]
    state.freeze_heap = True
    assert gc.get_freeze_count() > 0
    old = weakref.ref(state.snapshot)
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1, "label": "x"}},
                       headers=call_headers())
    assert r.status == 200
    assert await state.reload()
    for _ in range(100):  # the old snapshot goes once nothing holds it; then a freeze is scheduled
        gc.collect()
        await asyncio.sleep(0.01)
        if old() is None and gc.get_freeze_count() > 0:
            break
    assert old() is None, "the replaced catalogue was never collected"
    assert gc.get_freeze_count() > 0
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1, "label": "x"}},
                       headers=call_headers())
    assert r.status == 200


class _Old:
    """Stands for a replaced snapshot (weakly referenceable, like Snapshot)."""


async def _frozen_again(count_before: int) -> None:
    for _ in range(100):
        await asyncio.sleep(0)
        if gc.get_freeze_count() > count_before:
            return
    raise AssertionError("no freeze after the replaced catalogue was freed")


async def test_a_small_reload_leaves_the_heap_frozen_and_freezes_what_it_made(frozen: None) -> None:
    loop = asyncio.get_running_loop()
    refreezer = heap.Refreezer()
    old = {f"a{i}": object() for i in range(10)}
    new = {**old, "a0": object()}
    replaced = _Old()
    frozen_before = gc.get_freeze_count()
    made = [[] for _ in range(1000)]  # what the reload made: not frozen yet
    assert refreezer.after(old, new, replaced, loop) is False
    assert gc.get_freeze_count() == frozen_before  # nothing unfrozen: no walk of the whole heap
    del replaced
    await _frozen_again(frozen_before)
    assert gc.get_freeze_count() >= frozen_before + len(made)
    assert refreezer.replaced == 1


async def test_reloads_that_replaced_a_quarter_of_the_catalogue_collect_it_all(frozen: None) -> None:
    loop = asyncio.get_running_loop()
    refreezer = heap.Refreezer()
    old = {f"a{i}": object() for i in range(10)}
    holder = _Old()
    holder.me = holder  # type: ignore[attr-defined]  # cyclic garbage, frozen: only a full collection frees it
    gone = weakref.ref(holder)
    del holder
    gc.freeze()
    assert gone() is not None
    middle = {**old, "a0": object(), "a1": object()}
    replaced = _Old()
    assert refreezer.after(old, middle, replaced, loop) is False  # 2 of 10
    del replaced
    await _frozen_again(0)
    assert gone() is not None  # still frozen
    replaced = _Old()
    newer = {**middle, "a2": object()}
    del newer["a3"]
    assert refreezer.after(middle, newer, replaced, loop) is True  # 2 + 2 of 10: over a quarter
    assert gc.get_freeze_count() == 0
    del replaced
    await _frozen_again(0)
    assert gone() is None, "the full collection did not free the frozen cycle"
    assert refreezer.replaced == 0


async def test_an_earlier_reload_freed_late_does_not_freeze_what_a_full_collection_awaits(frozen: None) -> None:
    """Reload 1 (small) and reload 2 (full) in a row, reload 1's catalogue
    freed last but one: its freeze must not freeze reload 2's garbage."""
    loop = asyncio.get_running_loop()
    refreezer = heap.Refreezer()
    old = {f"a{i}": object() for i in range(10)}
    first = _Old()
    assert refreezer.after(old, {**old, "a0": object()}, first, loop) is False
    second = _Old()
    second.me = second  # type: ignore[attr-defined]  # what the full collection is for: a cycle
    gone = weakref.ref(second)
    assert refreezer.after(old, {f"a{i}": object() for i in range(10)}, second, loop) is True
    del first  # reload 1's catalogue goes first, while reload 2's is still in use
    for _ in range(5):
        await asyncio.sleep(0)
    assert gc.get_freeze_count() == 0, "reload 1's freeze ran before the full collection"
    del second
    gc.collect()  # the cycle goes in a full collection; then reload 2's freeze runs
    await _frozen_again(0)
    assert gone() is None


def test_young_collections_are_rarer_but_cycles_are_still_collected() -> None:
    """A serving process collects its youngest generation every
    YOUNG_THRESHOLD net allocations: reference cycles still go, unprompted."""
    before = gc.get_threshold()
    collections: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop":
            collections.append(info["generation"])

    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.collect()
    heap.collect_young_less_often()
    gc.callbacks.append(seen)
    try:
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
        canary = Node()
        gone = weakref.ref(canary)
        del canary
        for _ in range(heap.YOUNG_THRESHOLD // 4):  # well under the threshold: no collection
            Node()
        assert not collections and gone() is not None
        for _ in range(heap.YOUNG_THRESHOLD):
            Node()
        assert collections, "no collection ran past the threshold"
        assert gone() is None, "the reference cycle was not collected"
    finally:
        gc.callbacks.remove(seen)
        gc.set_threshold(*before)
