"""The hub's shared state: the catalogue and registry in use, and the
services every handler needs, held in the aiohttp app under one AppKey.

The catalogue and the file registry are replaced together, in one
assignment, by a reload; a handler reads them once at its start, so a call
in flight finishes on the snapshot it began with.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from aiohttp import web

from ..catalogue import Catalogue, SchemaCompiler, compiler_for, load_catalogue
from ..config import Config, LimitsConfig
from ..errors import CatalogueError, Problem
from ..observe.access import AccessLog
from ..observe.conformance import Conformance
from ..observe.logs import get_logger
from ..observe.metrics import Metrics
from ..pipeline.limits import RateLimits
from ..registry import Registry
from ..upstream import Guards
from . import heap
from .budget import Budget

log = get_logger("apihub.reload")


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Snapshot:
    catalogue: Catalogue
    registry: Registry


def load_snapshot(config: Config, *, generation: int, compiler: SchemaCompiler, registry: Registry,
                  reread: bool = False) -> Snapshot:
    """Load and compile the catalogue; with `reread`, the registry's own
    reload too (Registry.reread). Raises CatalogueError with every problem found."""
    problems: list[Problem] = []
    catalogue: Catalogue | None = None
    try:
        catalogue = load_catalogue(config.catalogue.path, generation=generation, compiler=compiler)
    except CatalogueError as exc:
        problems.extend(exc.problems)
    if reread:
        try:
            registry = registry.reread()
        except CatalogueError as exc:
            problems.extend(exc.problems)
    if problems or catalogue is None:
        raise CatalogueError(problems)
    return Snapshot(catalogue, registry)


class InFlight:
    """The tasks handling calls right now (the middleware adds and removes
    them), so a shutdown can cut those still running when its grace ends:
    each is cancelled with `cutting` set, and the middleware answers it 503
    `shutting_down` instead of letting the cancellation through."""

    __slots__ = ("cutting", "tasks")

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()
        self.cutting = False

    def cut(self) -> int:
        self.cutting = True
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        return len(tasks)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A catalogue and registry loaded before the app exists: by the
    supervisor once before it forks its workers, so N workers do not load
    and check the catalogue N times (they share its pages until written)."""

    snapshot: Snapshot
    compiler: SchemaCompiler


def load(config: Config, registry: Registry) -> Loaded:
    """The first load (generation 1). Raises CatalogueError with every problem found."""
    compiler = compiler_for(config.catalogue)
    return Loaded(load_snapshot(config, generation=1, compiler=compiler, registry=registry, reread=True), compiler)


@dataclass(eq=False)
class Hub:
    config: Config
    snapshot: Snapshot
    metrics: Metrics
    guards: Guards
    compiler: SchemaCompiler
    conformance: Conformance
    limits: RateLimits | None = None
    # Set by a serving process: keep the catalogue out of the GC's walks (heap.py).
    freeze_heap: bool = False
    refreezer: heap.Refreezer = field(default_factory=heap.Refreezer)
    last_reload_error: str | None = None
    calls: InFlight = field(default_factory=InFlight)
    access: AccessLog = field(default_factory=lambda: AccessLog(debug=False))
    budget: Budget = field(default_factory=lambda: Budget(LimitsConfig().max_buffered_bytes))
    instance: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def catalogue(self) -> Catalogue:
        return self.snapshot.catalogue

    async def reload(self) -> bool:
        """Recompile off the event loop, then swap in one assignment."""
        async with self._reload_lock:
            generation = self.catalogue.generation + 1
            try:
                snapshot = await asyncio.to_thread(
                    load_snapshot, self.config, generation=generation, compiler=self.compiler,
                    registry=self.snapshot.registry, reread=True,
                )
            except CatalogueError as exc:
                self.last_reload_error = str(exc)
                self.metrics.reloaded(False)
                log.error("catalogue_reload_failed", generation=self.catalogue.generation,
                          problems=[str(p) for p in exc.problems])
                return False
            except Exception as exc:  # a bug must not kill the worker that serves
                self.last_reload_error = f"unexpected error: {type(exc).__name__}: {exc}"
                self.metrics.reloaded(False)
                log.exception("catalogue_reload_crashed")
                return False
            replaced, self.snapshot = self.snapshot, snapshot
            if self.freeze_heap:
                self.refreezer.after(replaced.catalogue.actions, snapshot.catalogue.actions, replaced,
                                     asyncio.get_running_loop())
            del replaced
            self.last_reload_error = None
            self.metrics.reloaded(True)
            self.metrics.catalogue_generation.set(generation)
            self.metrics.catalogue_actions.set(len(snapshot.catalogue.actions))
            log.info("catalogue_reloaded", generation=generation,
                     actions=len(snapshot.catalogue.actions),
                     seconds=round(snapshot.catalogue.load_seconds, 3),
                     warnings=[str(w) for w in snapshot.catalogue.warnings])
            return True


HUB = web.AppKey("hub", Hub)
