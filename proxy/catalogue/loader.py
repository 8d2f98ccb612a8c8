"""Loading a catalogue folder: read every source, then compile every schema.

Any error rejects the whole load, so a reload either swaps in a complete
new catalogue or keeps the old one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from ..clock import now_rfc3339
from ..config import CatalogueConfig
from ..errors import CatalogueError, Problem
from ..types import ValidationIssue
from ..validation import DEFAULT_ENGINE, CodeCache, Compiled, Engine, SchemaError, engine_for
from . import openapi
from .files import read_action_file
from .model import Action, ActionSpec, ActionVersion, Catalogue


class SchemaCompiler:
    """Compiles schemas, reusing the result for a schema seen before.

    Identical schemas are common (shared envelopes, generated catalogues),
    and a reload recompiles only what changed. Entries unused by the last
    load are dropped so the memo cannot grow without bound.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or engine_for(DEFAULT_ENGINE)  # [catalogue] validator
        self._memo: dict[bytes, Compiled] = {}
        self._used: dict[bytes, Compiled] = {}

    def compile(self, schema: Any) -> Compiled:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        hit = self._used.get(key) or self._memo.get(key)
        if hit is None:
            hit = self.engine.compile(schema)
        self._used[key] = hit
        return hit

    def commit(self) -> None:
        self._memo, self._used = self._used, {}

    def discard(self) -> None:
        self._used = {}


def compiler_for(config: CatalogueConfig) -> SchemaCompiler:
    cache = CodeCache(Path(config.cache_dir)) if config.cache_dir else None
    return SchemaCompiler(engine_for(config.validator, cache, assert_formats=config.assert_formats))


def load_catalogue(
    root: Path,
    *,
    generation: int = 1,
    compiler: SchemaCompiler | None = None,
) -> Catalogue:
    """Read and compile everything under `root` (actions/ and openapi/)."""
    started = time.perf_counter()
    specs, problems, warnings = read_sources(root)
    if problems:
        raise CatalogueError(problems)
    compiler = compiler or SchemaCompiler()
    try:
        actions, fallbacks = build_actions(specs, compiler)
    except CatalogueError:
        compiler.discard()
        raise
    compiler.commit()
    return Catalogue(
        actions=actions,
        generation=generation,
        loaded_at=now_rfc3339(),
        warnings=(*warnings, *fallbacks),
        load_seconds=time.perf_counter() - started,
    )


def read_sources(root: Path) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    """All ActionSpecs of a catalogue folder, with errors and warnings."""
    if not root.is_dir():
        return [], [Problem(str(root), "", "catalogue folder does not exist")], []
    specs: list[ActionSpec] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    actions_dir = root / "actions"
    if actions_dir.is_dir():
        for path in sorted(actions_dir.rglob("*.json")):
            try:
                specs.append(read_action_file(path))
            except CatalogueError as exc:
                problems.extend(exc.problems)
    openapi_dir = root / "openapi"
    if openapi_dir.is_dir():
        o_specs, o_problems, o_warnings = openapi.read_folder(openapi_dir)
        specs.extend(o_specs)
        problems.extend(o_problems)
        warnings.extend(o_warnings)
    return specs, problems, warnings


def build_actions(specs: Iterable[ActionSpec],
                  compiler: SchemaCompiler) -> tuple[dict[str, Action], list[Problem]]:
    """The compiled actions, and a warning for each schema that another
    engine validates than the configured one (Compiled.fallback)."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    by_name: dict[str, ActionSpec] = {}
    for spec in specs:
        first = by_name.get(spec.name)
        if first is not None:
            problems.append(Problem(
                spec.source, "",
                f"action {spec.name!r} is defined twice: here and in {first.source}",
            ))
            continue
        by_name[spec.name] = spec
    actions: dict[str, Action] = {}
    for name, spec in by_name.items():
        versions: dict[int, ActionVersion] = {}
        for number, version in sorted(spec.versions.items()):
            compiled: dict[str, Compiled] = {}
            for side in ("request", "response"):
                schema = getattr(version, side)
                if schema is None:
                    compiled[side] = UNDESCRIBED
                    continue
                try:
                    compiled[side] = compiler.compile(schema)
                except SchemaError as exc:
                    problems.append(Problem(
                        spec.source, f"/versions/{number}/{side}{exc.pointer}",
                        f"{name} v{number} {side} schema: {exc.message}",
                    ))
                    continue
                if compiled[side].fallback:
                    warnings.append(Problem(spec.source, f"/versions/{number}/{side}",
                                            f"{name} v{number} {side} schema: {compiled[side].fallback}"))
            if len(compiled) == 2:
                versions[number] = ActionVersion(
                    version=number,
                    request_schema=version.request,
                    response_schema=version.response,
                    validate_request=compiled["request"].validate,
                    validate_response=compiled["response"].validate,
                    draft=compiled["request"].draft,
                    enforce_request=version.enforce_request,
                    enforce_response=version.enforce_response,
                    engines=(compiled["request"].engine, compiled["response"].engine),
                )
        actions[name] = Action(
            name=name, title=spec.title, description=spec.description, source=spec.source,
            versions=versions, idempotent=spec.idempotent,
        )
    if problems:
        raise CatalogueError(problems)
    return actions, warnings


def _any_answer(instance: Any) -> tuple[ValidationIssue, ...]:
    return ()


# An answer no schema describes: whatever JSON the provider sends is relayed.
UNDESCRIBED = Compiled(_any_answer, draft="", engine="")
