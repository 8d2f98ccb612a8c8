"""Keeping the cyclic garbage collector off the catalogue.

A catalogue is a large, long-lived heap (schemas, generated validators,
manifests: ~1 GB for 10,000 actions). Every full collection walks all of it,
while what a call allocates dies young; so the per-call cost grew with the
catalogue's size. After a load the serving process moves everything it has
into the collector's permanent generation (`gc.freeze()`), which no
collection walks. A reload unfreezes first, so the catalogue it replaces can
be collected, and freezes again once nothing uses the old one any more
(calls in flight still may). Tests and tools that never serve leave the
heap alone.

A serving process also collects its youngest generation less often. With
the default threshold (700 net allocations) a collection ran every ~20
calls and walked every call in flight (their coroutines, frames and
requests: ~900 objects at 50 connections), ~15 µs per call in all, 7 % of
a small call's CPU. At 10,000 it runs every few thousand calls, ~2 ms each;
the garbage it finds (reference cycles) is a fraction of an object per call.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

YOUNG_THRESHOLD = 10_000


def collect_young_less_often() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze() -> None:
    """Collect what is garbage now, then exempt all that survives."""
    gc.collect()
    gc.freeze()


def refreeze_after(replaced: object, loop: asyncio.AbstractEventLoop) -> None:
    """Unfreeze now; freeze again on the loop once `replaced` is freed."""
    gc.unfreeze()
    weakref.finalize(replaced, loop.call_soon_threadsafe, freeze)
