"""The hub's shared state: the catalogue and registry in use, and the
services every handler needs, held in the aiohttp app under one AppKey.

The catalogue and the file registry are replaced together, in one
assignment, by a reload; a handler reads them once at its start, so a call
in flight finishes on the snapshot it began with.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from . import heap
from .catalogue import Catalogue, CatalogueError, Problem, SchemaCompiler, load_catalogue
from .config import Config
from .forward import ProviderClient
from .guards import Guards
from .logs import get_logger
from .metrics import Metrics
from .registry import Registry
from .registry.file import FileRegistry, read_apps_folder

if TYPE_CHECKING:
    from .call import Target
    from .errors import ValidationIssue

log = get_logger("apihub.reload")
violation_log = get_logger("apihub.validation")


class CallObserver(Protocol):
    """Told about every provider call (conformance keeps its counts this way)."""

    def outcome(self, target: Target, outcome: str) -> None: ...

    def upstream(self, target: Target, ms: float) -> None: ...

    def violation(self, target: Target, side: str, issues: tuple[ValidationIssue, ...]) -> None: ...


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Snapshot:
    catalogue: Catalogue
    registry: Registry


def load_snapshot(
    config: Config,
    *,
    generation: int,
    compiler: SchemaCompiler,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Snapshot:
    """Load and compile the catalogue (and the file registry, unless a shared
    registry is given). Raises CatalogueError with every problem found."""
    root = config.catalogue.path
    problems: list[Problem] = []
    try:
        catalogue = load_catalogue(root, generation=generation, compiler=compiler)
    except CatalogueError as exc:
        problems.extend(exc.problems)
    if registry is None:
        try:
            registry = FileRegistry(read_apps_folder(Path(root) / "apps", environ))
        except CatalogueError as exc:
            problems.extend(exc.problems)
    if problems:
        raise CatalogueError(problems)
    return Snapshot(catalogue, registry)  # type: ignore[arg-type]  # both set when no problems


@dataclass(eq=False)
class Hub:
    config: Config
    snapshot: Snapshot
    metrics: Metrics
    guards: Guards
    compiler: SchemaCompiler
    # Set by the cleanup context once the ClientSession exists.
    upstream: ProviderClient | None = None
    shared_registry: bool = False
    # Set by a serving process: keep the catalogue out of the GC's walks (heap.py).
    freeze_heap: bool = False
    last_reload_error: str | None = None
    instance: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    observers: list[CallObserver] = field(default_factory=list)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def catalogue(self) -> Catalogue:
        return self.snapshot.catalogue

    def observe_outcome(self, target: Target, outcome: str) -> None:
        for observer in self.observers:
            observer.outcome(target, outcome)

    def observe_upstream(self, target: Target, ms: float) -> None:
        for observer in self.observers:
            observer.upstream(target, ms)

    def observe_violation(self, target: Target, side: str, issues: tuple[ValidationIssue, ...],
                          request_id: str) -> None:
        # Where and what, never the payload: it may hold personal data or the secret.
        mode = target.version.enforce_request if side == "request" else target.version.enforce_response
        self.metrics.violation(target.action.name, target.provider.id, side, mode)
        violation_log.warning(
            "validation_failed", requestId=request_id, action=target.action.name,
            version=target.version.version, provider=target.provider.id, side=side, mode=mode,
            violations=[issue.as_json() for issue in issues],
        )
        for observer in self.observers:
            observer.violation(target, side, issues)

    async def reload(self) -> bool:
        """Recompile off the event loop, then swap in one assignment."""
        async with self._reload_lock:
            generation = self.catalogue.generation + 1
            shared = self.snapshot.registry if self.shared_registry else None
            try:
                snapshot = await asyncio.to_thread(
                    load_snapshot, self.config, generation=generation, compiler=self.compiler,
                    registry=shared,
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
                heap.refreeze_after(replaced, asyncio.get_running_loop())
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
