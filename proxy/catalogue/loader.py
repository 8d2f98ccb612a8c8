"""Loading a catalogue folder: read every source, then compile every schema.

Any error rejects the whole load, so a reload either swaps in a complete
new catalogue or keeps the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from ..clock import now_rfc3339
from ..config import CatalogueConfig
from ..errors import CatalogueError, Problem
from ..types import ValidationIssue
from ..validation import DEFAULT_ENGINE, CodeCache, Compiled, Engine, SchemaError, engine_for
from . import openapi
from .files import action_files, read_action_file
from .hubkeys import refused_hub_key
from .model import Action, ActionSpec, ActionVersion, Catalogue
from .sharing import Sharing

K = TypeVar("K")
V = TypeVar("V")


class _Memo(Generic[K, V]):
    """What the last load made, kept for the next: entries the next load does
    not use are dropped at its commit, so the memo cannot grow without bound."""

    def __init__(self, key_of: Callable[[V], K] | None = None) -> None:
        self._kept: dict[K, V] = {}
        self._used: dict[K, V] = {}
        # The key a value was put with: a hit keeps that key object, not the equal one
        # looked up with (10,000 stamps of a reload would otherwise be kept twice).
        self._key_of = key_of

    def get(self, key: K) -> V | None:
        hit = self._used.get(key)
        if hit is None:
            hit = self._kept.get(key)
            if hit is not None:
                self._used[key if self._key_of is None else self._key_of(hit)] = hit
        return hit

    def put(self, key: K, value: V) -> None:
        self._used[key] = value

    def commit(self) -> None:
        self._kept, self._used = self._used, {}

    def discard(self) -> None:
        self._used = {}


class SchemaCompiler:
    """Compiles schemas, reusing what the last load made.

    Identical schemas are common (shared envelopes, generated catalogues),
    and a reload redoes only what changed: an action file whose stamp (size,
    mtime) is unchanged is neither parsed nor built again, and a schema seen
    before is not compiled again.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or engine_for(DEFAULT_ENGINE)  # [catalogue] validator
        self._schemas: _Memo[bytes, Compiled] = _Memo()
        self.specs: _Memo[tuple[str, int, int], ActionSpec] = _Memo(_stamp_of)
        self.actions: _Memo[tuple[str, int, int], tuple[Action, list[Problem]]] = _Memo()

    def compile(self, schema: Any) -> Compiled:
        # A digest, not the encoded schema itself: 20,000 schemas' bytes were tens of MB kept.
        try:
            encoded = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # deeper than orjson encodes (254 levels)
            raise SchemaError("", "nested too deeply (at most 254 levels)") from None
        key = hashlib.blake2b(encoded, digest_size=16).digest()
        hit = self._schemas.get(key)
        if hit is None:
            hit = self.engine.compile(schema)
            self._schemas.put(key, hit)
        return hit

    def commit(self) -> None:
        for memo in (self._schemas, self.specs, self.actions):
            memo.commit()

    def discard(self) -> None:
        for memo in (self._schemas, self.specs, self.actions):
            memo.discard()


def _stamp_of(spec: ActionSpec) -> tuple[str, int, int]:
    assert spec.stamp is not None  # only action files' specs are memoised
    return spec.stamp


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
    compiler = compiler or SchemaCompiler()
    specs, problems, warnings = read_sources(root, compiler.specs)
    if problems:
        compiler.discard()
        raise CatalogueError(problems)
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


def read_sources(root: Path, memo: _Memo[tuple[str, int, int], ActionSpec] | None = None,
                 ) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    """All ActionSpecs of a catalogue folder, with errors and warnings; an
    action file unchanged since the load `memo` remembers is not read again."""
    if not root.is_dir():
        return [], [Problem(str(root), "", "catalogue folder does not exist")], []
    specs: list[ActionSpec] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    actions_dir = root / "actions"
    if actions_dir.is_dir():
        sharing = Sharing()  # for this read only: its table would keep replaced files' parts
        for path in action_files(actions_dir):
            try:
                specs.append(_action_file(path, memo, sharing))
            except CatalogueError as exc:
                problems.extend(exc.problems)
    openapi_dir = root / "openapi"
    if openapi_dir.is_dir():
        o_specs, o_problems, o_warnings = openapi.read_folder(openapi_dir)
        specs.extend(o_specs)
        problems.extend(o_problems)
        warnings.extend(o_warnings)
    return specs, problems, warnings


def _action_file(path: str, memo: _Memo[tuple[str, int, int], ActionSpec] | None,
                 sharing: Sharing) -> ActionSpec:
    try:
        info = os.stat(path)
    except OSError:
        return read_action_file(Path(path))  # says why it cannot be read
    spec = memo.get((path, info.st_mtime_ns, info.st_size)) if memo is not None else None
    if spec is None:
        spec = read_action_file(Path(path), sharing)
        spec = dataclasses.replace(spec, stamp=(spec.source, info.st_mtime_ns, info.st_size))
        if memo is not None:
            memo.put(spec.stamp, spec)  # type: ignore[arg-type]  # just set
    return spec


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
        built = compiler.actions.get(spec.stamp) if spec.stamp is not None else None
        if built is None:
            built = _build_action(spec, compiler, problems)
            if built is None:
                continue
            if spec.stamp is not None:
                compiler.actions.put(spec.stamp, built)
        actions[name] = built[0]
        warnings.extend(built[1])
    if problems:
        raise CatalogueError(problems)
    return actions, warnings


def _build_action(spec: ActionSpec, compiler: SchemaCompiler,
                  problems: list[Problem]) -> tuple[Action, list[Problem]] | None:
    """The action and its fallback warnings; None (with `problems` added to) if a schema is refused."""
    name = spec.name
    warnings: list[Problem] = []
    failed = len(problems)
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
        refuses = refused_hub_key(version.request) if "request" in compiled else None
        if refuses is not None:
            warnings.append(Problem(spec.source, f"/versions/{number}/request",
                                    f"{name} v{number} request schema {refuses}: every call will be "
                                    "refused (400 invalid_request)"))
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
                refuses_calls=refuses or "",
                request_ready=compiled["request"].ready,
                response_ready=compiled["response"].ready,
            )
    action = Action(
        name=name, title=spec.title, description=spec.description, source=spec.source,
        versions=versions, idempotent=spec.idempotent,
    )
    return None if len(problems) > failed else (action, warnings)


def _any_answer(instance: Any) -> tuple[ValidationIssue, ...]:
    return ()


# An answer no schema describes: whatever JSON the provider sends is relayed.
UNDESCRIBED = Compiled(_any_answer, draft="", engine="")
