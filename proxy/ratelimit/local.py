"""The `local` limiter: counters shared by every worker of one machine.

With several workers the supervisor gives them one temporary folder
(PROMETHEUS_MULTIPROC_DIR, see observe/metrics.py); the counters are a
table of fixed slots in a file there, mapped into every worker's memory and
changed under an fcntl lock, so a limit holds for the machine as a whole,
not per worker. One process alone keeps the same table in anonymous memory.

A slot holds (fingerprint of the counter's name, expiry, two numbers: see
gcra.py). A name is looked for in `_PROBES` slots from its hash; an expired
slot is free again. Should all of them be live (more live counters than the
table is meant for), the one expiring first is taken over: that counter
starts again from nothing, which can only admit more, never refuse wrongly.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import mmap
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..config import Config
from ..observe.metrics import MULTIPROC_ENV, Metrics
from .base import Check, Outcome, Verdict, counted
from .gcra import gcra, gcra_peek, window, window_peek

FILE_NAME = "apihub-ratelimit.slots"
_SLOT = struct.Struct("<Qddd")  # fingerprint, expires at, a, b
_SLOTS = 1 << 16  # 2 MiB of counters
_PROBES = 8


def _fingerprint(check: Check) -> int:
    return _fingerprint_of(check.kind, check.scope)


@functools.lru_cache(maxsize=4096)
def _fingerprint_of(kind: str, scope: str) -> int:
    # Stable across processes (unlike hash()): every worker finds the same slot.
    digest = hashlib.blake2b(f"{kind}:{scope}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1  # 0 marks an empty slot


class Slots:
    """The table of counters, in a shared file or in this process's memory."""

    def __init__(self, path: str | None, slots: int = _SLOTS) -> None:
        self.path = path
        self._slots = slots
        size = slots * _SLOT.size
        self._fd: int | None = None
        if path is None:
            self._map = mmap.mmap(-1, size)
            return
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self.locked():
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)  # zeroes: every slot empty
        self._map = mmap.mmap(self._fd, size)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        if self._fd is None:  # one process, one thread: nothing else can interleave
            yield
            return
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def find(self, fingerprint: int, now: float) -> tuple[int, float, float]:
        """(offset, a, b) of the counter's slot; a fresh slot reads (0, 0)."""
        first = fingerprint % self._slots
        victim, victim_expiry = -1, float("inf")
        for probe in range(_PROBES):
            offset = ((first + probe) % self._slots) * _SLOT.size
            owner, expires, a, b = _SLOT.unpack_from(self._map, offset)
            if owner == fingerprint:
                return offset, a, b
            if owner == 0 or expires <= now:
                expires = -1.0  # free: preferred to any live slot
            if expires < victim_expiry:
                victim, victim_expiry = offset, expires
        return victim, 0.0, 0.0

    def write(self, offset: int, fingerprint: int, expires: float, a: float, b: float) -> None:
        _SLOT.pack_into(self._map, offset, fingerprint, expires, a, b)

    def close(self) -> None:
        self._map.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LocalLimiter:
    name = "local"

    def __init__(self, path: str | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._slots: Slots | None = None

    @classmethod
    def open(cls, config: Config, metrics: Metrics) -> LocalLimiter:
        shared = os.environ.get(MULTIPROC_ENV)
        return cls(os.path.join(shared, FILE_NAME) if shared else None)

    @property
    def slots(self) -> Slots:
        if self._slots is None:
            self._slots = Slots(self._path)
        return self._slots

    def hit_now(self, checks: Sequence[Check]) -> Verdict:
        """`hit` without the coroutine: the redis limiter's fallback calls it too."""
        slots, now = self.slots, self._clock()
        outcomes = []
        writes = []
        with slots.locked():
            for check in checks:
                fingerprint = _fingerprint(check)
                offset, a, b = slots.find(fingerprint, now)
                if check.fixed_window:
                    allowed, start, used, remaining, reset, retry = window(a, b, now, check.rate)
                    writes.append((offset, fingerprint, start + check.rate.window_s, start, used))
                else:
                    allowed, tat, remaining, reset, retry = gcra(a, now, check.rate)
                    writes.append((offset, fingerprint, tat, tat, 0.0))
                outcomes.append(Outcome(check, allowed, remaining, reset, retry))
            if all(o.allowed for o in outcomes):
                for write in writes:
                    slots.write(*write)
        return counted(tuple(outcomes))

    async def hit(self, checks: Sequence[Check]) -> Verdict:
        return self.hit_now(checks)

    async def peek(self, checks: Sequence[Check]) -> tuple[Outcome, ...]:
        slots, now = self.slots, self._clock()
        outcomes = []
        with slots.locked():
            for check in checks:
                _, a, b = slots.find(_fingerprint(check), now)
                if check.fixed_window:
                    remaining, reset = window_peek(a, b, now, check.rate)
                else:
                    remaining, reset = gcra_peek(a, now, check.rate)
                outcomes.append(Outcome(check, remaining > 0, remaining, reset, 0.0))
        return tuple(outcomes)

    def health(self) -> dict[str, Any]:
        return {"backend": self.name, "status": "ok", "sharedByWorkers": self._path is not None}

    async def start(self) -> None:
        self.slots  # noqa: B018  # map the table now, not on the first limited call

    async def close(self) -> None:
        if self._slots is not None:
            self._slots.close()
            self._slots = None

