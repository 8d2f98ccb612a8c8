"""Answer bytes held for consumers, hub-wide, and giving the memory back.

A consumer that stops reading leaves its answer in the hub: in the write
that waits for it to drain, then in the transport's buffer. Each connection
(httpserver.HubRequestHandler) reports what it holds: the answer being
written, then whatever is left unsent after the write. `Budget.held` is the
sum, kept as plain integer updates on the write path (no scan). Past
`[limits] max_buffered_bytes`, new calls get 503 `hub_overloaded` before any
provider is called (handlers.check_budget).

Memory: glibc raises its mmap threshold after freeing a large mmapped block
(dynamic threshold), so after a burst of multi-megabyte answers the next
ones land in the heap arenas, and freeing them leaves the pages mapped: a
process that held 2 GB for stalled readers kept it with no connection left.
The budget calls `malloc_trim(0)` once held bytes fall back after a burst
(one trim `TRIM_DELAY_S` after the fall), which gives back the free pages
of every arena. The thresholds stay glibc's own: pinned at 128 KiB, every
large answer and orjson's working buffer for it (~12× the answer) was a
fresh mapping, faulted in page by page on every call, about a quarter of
the CPU of a ~200 KB answer. A no-op off glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import time

from ..observe.logs import get_logger

log = get_logger("apihub.server")

# A trim is worth it after a burst of at least this many held bytes...
TRIM_AFTER_BYTES = 32 * 1024 * 1024
# ...once held bytes are back below a quarter of the peak, this long after
# (the rest of the burst usually goes meanwhile: one trim, not one per close).
TRIM_DELAY_S = 1.0


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def malloc_trim() -> bool:
    """Give free heap pages back to the system. True if glibc released some."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


class Budget:
    """Answer bytes held for consumers, against `[limits] max_buffered_bytes`."""

    __slots__ = ("_peak", "_trim", "held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._peak = 0  # highest `held` since the last trim
        self._trim: asyncio.TimerHandle | None = None

    @property
    def over(self) -> bool:
        return self.held >= self.limit

    def change(self, delta: int) -> None:
        """A connection holds `delta` more (or, negative, fewer) bytes."""
        held = self.held = self.held + delta
        if delta > 0:
            if held > self._peak:
                self._peak = held
        elif self._peak >= TRIM_AFTER_BYTES and held * 4 <= self._peak and self._trim is None:
            self._trim = asyncio.get_running_loop().call_later(TRIM_DELAY_S, self._trimmed)

    def _trimmed(self) -> None:
        self._trim = None
        peak, self._peak = self._peak, self.held
        started = time.perf_counter()
        released = malloc_trim()
        log.info("memory_trimmed", peakHeldBytes=peak, heldBytes=self.held, released=released,
                 ms=round((time.perf_counter() - started) * 1000, 2))
