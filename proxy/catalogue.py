"""The catalogue: every action's versions, schemas compiled once.

Loading is two stages. Sources (action files here, OpenAPI documents in
openapi.py) produce plain `ActionSpec`s; `build_catalogue` then rejects
duplicates and compiles every schema. Any error rejects the whole load, so
a reload either swaps in a complete new catalogue or keeps the old one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from .codecache import CodeCache
from .config import CatalogueConfig
from .schemas import SchemaError, Validator, compile_schema

Mode = Literal["strict", "report"]
MODES: tuple[Mode, ...] = ("strict", "report")


@dataclass(frozen=True, slots=True)
class Problem:
    """An error or warning about one place in the catalogue."""

    source: str
    pointer: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}#{self.pointer}" if self.pointer else self.source
        return f"{where}: {self.message}"


class CatalogueError(Exception):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)))


@dataclass(frozen=True, slots=True)
class VersionSpec:
    request: Any
    response: Any
    enforce_request: Mode = "strict"
    enforce_response: Mode = "strict"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action as a source describes it, before compilation."""

    name: str
    source: str  # file, or file#pointer inside an OpenAPI document
    versions: Mapping[int, VersionSpec]
    title: str = ""
    description: str = ""
    idempotent: bool = False


@dataclass(frozen=True, slots=True)
class ActionVersion:
    version: int
    request_schema: Any
    response_schema: Any
    validate_request: Validator
    validate_response: Validator
    draft: str
    enforce_request: Mode = "strict"
    enforce_response: Mode = "strict"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    title: str
    description: str
    source: str
    versions: Mapping[int, ActionVersion]
    idempotent: bool = False

    def best_version(self, offered: Iterable[int]) -> int | None:
        """The highest version both this catalogue and `offered` have."""
        best = None
        for version in offered:  # on every call: no intermediate sets
            if version in self.versions and (best is None or version > best):
                best = version
        return best


@dataclass(frozen=True, slots=True)
class Catalogue:
    actions: Mapping[str, Action]
    generation: int = 0
    loaded_at: str = ""
    warnings: tuple[Problem, ...] = ()
    load_seconds: float = 0.0


class SchemaCompiler:
    """Compiles schemas, reusing the result for a schema seen before.

    Identical schemas are common (shared envelopes, generated catalogues),
    and a reload recompiles only what changed. Entries unused by the last
    load are dropped so the memo cannot grow without bound.
    """

    def __init__(self, engine: str = "fastjsonschema", code_cache: CodeCache | None = None) -> None:
        self.engine = engine  # [catalogue] validator
        self._code_cache = code_cache  # [catalogue] cache_dir
        self._memo: dict[bytes, tuple[Validator, str]] = {}
        self._used: dict[bytes, tuple[Validator, str]] = {}

    def compile(self, schema: Any) -> tuple[Validator, str]:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        hit = self._used.get(key) or self._memo.get(key)
        if hit is None:
            hit = compile_schema(schema, self.engine, self._code_cache)
        self._used[key] = hit
        return hit

    def commit(self) -> None:
        self._memo, self._used = self._used, {}

    def discard(self) -> None:
        self._used = {}


def compiler_for(config: CatalogueConfig) -> SchemaCompiler:
    cache = CodeCache(Path(config.cache_dir)) if config.cache_dir else None
    return SchemaCompiler(config.validator, cache)


def now_rfc3339() -> str:
    """The current UTC time, e.g. 2026-03-01T12:00:00.123Z (on every call: kept cheap)."""
    now = time.time()
    seconds = int(now)
    return f"{_utc_seconds(seconds)}.{int((now - seconds) * 1000):03d}Z"


@functools.lru_cache(maxsize=2)
def _utc_seconds(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


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
        actions = build_actions(specs, compiler)
    except CatalogueError:
        compiler.discard()
        raise
    compiler.commit()
    return Catalogue(
        actions=actions,
        generation=generation,
        loaded_at=now_rfc3339(),
        warnings=tuple(warnings),
        load_seconds=time.perf_counter() - started,
    )


def read_sources(root: Path) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    """All ActionSpecs of a catalogue folder, with errors and warnings."""
    from . import openapi  # the OpenAPI importer is optional to the file format

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


def build_actions(specs: Iterable[ActionSpec], compiler: SchemaCompiler) -> dict[str, Action]:
    problems: list[Problem] = []
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
            compiled: dict[str, tuple[Validator, str]] = {}
            for side in ("request", "response"):
                schema = getattr(version, side)
                try:
                    compiled[side] = compiler.compile(schema)
                except SchemaError as exc:
                    problems.append(Problem(
                        spec.source, f"/versions/{number}/{side}{exc.pointer}",
                        f"{name} v{number} {side} schema: {exc.message}",
                    ))
            if len(compiled) == 2:
                versions[number] = ActionVersion(
                    version=number,
                    request_schema=version.request,
                    response_schema=version.response,
                    validate_request=compiled["request"][0],
                    validate_response=compiled["response"][0],
                    draft=compiled["request"][1],
                    enforce_request=version.enforce_request,
                    enforce_response=version.enforce_response,
                )
        actions[name] = Action(
            name=name, title=spec.title, description=spec.description, source=spec.source,
            versions=versions, idempotent=spec.idempotent,
        )
    if problems:
        raise CatalogueError(problems)
    return actions


def read_action_file(path: Path) -> ActionSpec:
    """One catalogue/actions/*.json file: {"action", "title", "versions": {...}}."""
    source = str(path)
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CatalogueError([Problem(source, "", f"cannot read: {exc.strerror}")]) from None
    except orjson.JSONDecodeError as exc:
        raise CatalogueError([Problem(source, "", f"not valid JSON: {exc}")]) from None
    return parse_action(doc, source)


_ACTION_KEYS = {"action", "title", "description", "versions", "idempotent", "$comment"}
_VERSION_KEYS = {"request", "response", "enforce", "$comment"}


def parse_action(doc: Any, source: str) -> ActionSpec:
    def fail(pointer: str, message: str) -> CatalogueError:
        return CatalogueError([Problem(source, pointer, message)])

    if not isinstance(doc, dict):
        raise fail("", "an action file must be a JSON object")
    for key in doc:
        if key not in _ACTION_KEYS:
            raise fail(f"/{key}", f"unknown key (expected {', '.join(sorted(_ACTION_KEYS))})")
    name = doc.get("action")
    if not isinstance(name, str) or not name.strip():
        raise fail("/action", "must be a non-empty string naming the action")
    if any(c in name for c in "/?#") or name != name.strip():
        raise fail("/action", "must not contain '/', '?', '#' or surrounding spaces")
    for key in ("title", "description"):
        if not isinstance(doc.get(key, ""), str):
            raise fail(f"/{key}", "must be a string")
    if not isinstance(doc.get("idempotent", False), bool):
        raise fail("/idempotent", "must be true or false")
    raw_versions = doc.get("versions")
    if not isinstance(raw_versions, dict) or not raw_versions:
        raise fail("/versions", "must be a non-empty object of version number -> {request, response}")
    versions: dict[int, VersionSpec] = {}
    for key, body in raw_versions.items():
        where = f"/versions/{key}"
        number = parse_version_key(key)
        if number is None:
            raise fail(where, "version keys must be positive integers")
        versions[number] = parse_version(body, fail, where)
    return ActionSpec(
        name=name,
        source=source,
        versions=versions,
        title=doc.get("title", ""),
        description=doc.get("description", ""),
        idempotent=doc.get("idempotent", False),
    )


def parse_version_key(key: str) -> int | None:
    if not key.isascii() or not key.isdigit() or key.startswith("0"):
        return None
    return int(key)


def parse_version(body: Any, fail: Any, where: str) -> VersionSpec:
    if not isinstance(body, dict):
        raise fail(where, "must be an object with 'request' and 'response' schemas")
    for key in body:
        if key not in _VERSION_KEYS:
            raise fail(f"{where}/{key}", f"unknown key (expected {', '.join(sorted(_VERSION_KEYS))})")
    for side in ("request", "response"):
        if side not in body:
            raise fail(f"{where}/{side}", "is required (a JSON Schema)")
    request_mode, response_mode = parse_enforce(body.get("enforce"), fail, f"{where}/enforce")
    return VersionSpec(
        request=body["request"],
        response=body["response"],
        enforce_request=request_mode,
        enforce_response=response_mode,
    )


def parse_enforce(value: Any, fail: Any, where: str) -> tuple[Mode, Mode]:
    if value is None:
        return "strict", "strict"
    if not isinstance(value, dict) or not set(value) <= {"request", "response"}:
        raise fail(where, "must be an object with 'request' and/or 'response'")
    modes = []
    for side in ("request", "response"):
        mode = value.get(side, "strict")
        if mode not in MODES:
            raise fail(f"{where}/{side}", "must be 'strict' or 'report'")
        modes.append(mode)
    return modes[0], modes[1]


def summary(catalogue: Catalogue) -> list[dict[str, Any]]:
    return [
        {"action": a.name, "versions": sorted(a.versions), "source": a.source}
        for a in sorted(catalogue.actions.values(), key=lambda a: a.name)
    ]

