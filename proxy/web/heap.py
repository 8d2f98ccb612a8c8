"""Keeping the cyclic garbage collector off the catalogue.

A catalogue is a large, long-lived heap (schemas, generated validators,
manifests: ~300 MB for 10,000 actions). Every full collection walks all of it,
while what a call allocates dies young; so the per-call cost grew with the
catalogue's size. After a load the serving process moves everything it has
into the collector's permanent generation (`gc.freeze()`), which no
collection walks. Tests and tools that never serve leave the heap alone.

A reload freezes again what it made, once nothing uses the replaced
catalogue any more (calls in flight still may). It does not unfreeze the
rest first: a frozen object is still freed when its last reference goes,
so what the reload replaced goes without the collector; only garbage in
reference cycles (a generated validator and its module namespace) stays
until a full collection. Walking the whole heap for that took ~0.85 s at
10,000 actions, with the event loop stopped, and wrote to every object's
header, unsharing the pages a forked worker shares with its parent; so a
full collection waits until reloads have replaced a quarter of the
catalogue (as CPython's own oldest generation waits for a quarter of new
survivors), which bounds what cycles can hold.

A serving process also collects its youngest generation less often. With
the default threshold (700 net allocations) a collection ran every ~20
calls and walked every call in flight (their coroutines, frames and
requests: ~900 objects at 50 connections), ~15 µs per call in all, 7 % of
a small call's CPU. At 10,000 it runs every thousand calls or so, ~2 ms
each; the garbage it finds (reference cycles) is a fraction of an object per
call, and holds no answer: 300 refused 2 MiB answers in a row left RSS at
107 MiB.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Mapping

YOUNG_THRESHOLD = 10_000


def collect_young_less_often() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze() -> None:
    """Collect what is garbage now among the unfrozen objects, then exempt all that survives."""
    gc.collect()
    gc.freeze()


class Refreezer:
    """When a reload's replaced catalogue is gone, freeze what replaced it;
    collects the frozen heap too once enough of it may be garbage."""

    __slots__ = ("_full_pending", "replaced")

    # A full collection once reloads have replaced this share of the catalogue.
    FULL_SHARE = 0.25

    def __init__(self) -> None:
        self.replaced = 0  # entries replaced or removed since the last full collection
        # Full collections scheduled and not run yet: until the last has run,
        # no freeze may run, or it would freeze the garbage it is waiting for.
        self._full_pending = 0

    def after(self, old: Mapping[str, object], new: Mapping[str, object], replaced: object,
              loop: asyncio.AbstractEventLoop) -> bool:
        """Schedule the freeze for when `replaced` (what holds `old`) is freed;
        True when that will be a full collection."""
        self.replaced += sum(1 for name, entry in old.items() if new.get(name) is not entry)
        full = self.replaced > self.FULL_SHARE * max(len(old), len(new))
        if full:
            gc.unfreeze()  # the replaced catalogue too is walked, and its cycles collected
            self.replaced = 0
            self._full_pending += 1
        weakref.finalize(replaced, loop.call_soon_threadsafe, self._freed, full)
        return full

    def _freed(self, full: bool) -> None:
        if full:
            self._full_pending -= 1
        if not self._full_pending:
            freeze()
