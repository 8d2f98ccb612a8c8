"""The official JSON Schema Test Suite (vendored in jsonschema_suite/, see
its README) run through the hub's own load path, one engine at a time.

A test passes when the hub gives the suite's verdict. A schema the hub
refuses at load fails every test of its group, except where resolving it
would need a fetch (refRemote, a custom `$schema` served from
localhost:1234): there the refusal is the verdict the hub promises. Which
groups need a fetch is decided apart from the hub, by the reference
`jsonschema` validator with a registry of the standard meta-schemas only.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import referencing.exceptions
from jsonschema_specifications import REGISTRY as META_SCHEMAS

from proxy.validation import SchemaError

SUITE = Path(__file__).parent / "jsonschema_suite"
# The suite's folder, the hub's draft name, the URI a catalogue author declares
DRAFTS = {
    "draft4": ("draft-04", "http://json-schema.org/draft-04/schema#"),
    "draft6": ("draft-06", "http://json-schema.org/draft-06/schema#"),
    "draft7": ("draft-07", "http://json-schema.org/draft-07/schema#"),
    "draft2019-09": ("2019-09", "https://json-schema.org/draft/2019-09/schema"),
    "draft2020-12": ("2020-12", "https://json-schema.org/draft/2020-12/schema"),
}
TARGET = 99.5  # per cent of each draft's required tests, on each engine
REMOTE_HOST, REMOTE_PORT = "127.0.0.1", 1234  # where refRemote's schemas would be fetched from
_REFUSED_AS_REMOTE = ("nothing is fetched", "remote reference")

Compile = Callable[[Any], Callable[[Any], Any]]  # schema -> validator (falsy: conforms)


@dataclass(frozen=True)
class Group:
    file: str
    description: str
    schema: Any  # with the draft's `$schema` added where the suite leaves it implicit
    tests: tuple[tuple[str, Any, bool], ...]  # (description, instance, valid)
    needs_fetch: bool


@dataclass
class Score:
    passed: int = 0
    total: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return 100.0 * self.passed / self.total if self.total else 100.0


def declared(schema: Any, uri: str) -> Any:
    """The suite's schemas leave the draft implicit; catalogue authors declare it."""
    if isinstance(schema, dict) and "$schema" not in schema:
        return {"$schema": uri, **schema}
    return schema


@functools.cache
def groups(folder: str) -> tuple[Group, ...]:
    """The required tests of one draft (not optional/), in file order."""
    _, uri = DRAFTS[folder]
    found = []
    for path in sorted((SUITE / "tests" / folder).glob("*.json")):
        for raw in orjson.loads(path.read_bytes()):
            schema = declared(raw["schema"], uri)
            tests = tuple((t["description"], t["data"], t["valid"]) for t in raw["tests"])
            found.append(Group(path.stem, raw["description"], schema, tests, _needs_fetch(schema, tests)))
    return tuple(found)


def _needs_fetch(schema: Any, tests: tuple[tuple[str, Any, bool], ...]) -> bool:
    if isinstance(schema, dict) and schema.get("$schema") not in META_SCHEMAS:
        return True  # a custom meta-schema, served by the suite's remote server
    validator = jsonschema.validators.validator_for(schema)(schema, registry=META_SCHEMAS)
    try:
        for _, instance, _ in tests:
            validator.is_valid(instance)
    except referencing.exceptions.Unresolvable:
        return True
    return False


def run(folder: str, compile_schema: Compile) -> Score:
    score = Score()
    for group in groups(folder):
        count = len(group.tests)
        score.total += count
        try:
            validate = compile_schema(group.schema)
        except SchemaError as exc:
            if group.needs_fetch and any(words in exc.message for words in _REFUSED_AS_REMOTE):
                score.passed += count
            else:
                score.failures[f"{group.file}: refused: {exc}"] += count
            continue
        if group.needs_fetch:
            score.failures[f"{group.file}: {group.description}: loaded, though it needs a fetch"] += count
            continue
        for description, instance, valid in group.tests:
            if (not validate(instance)) == valid:
                score.passed += 1
            else:
                score.failures[f"{group.file}: {group.description}: {description}"] += 1
    return score


def table(scores: dict[tuple[str, str], Score], engines: tuple[str, ...]) -> Iterator[str]:
    """A markdown table: pass rate (passed/total) per engine and draft."""
    yield "| engine | " + " | ".join(DRAFTS[folder][0] for folder in DRAFTS) + " |"
    yield "|---|" + "---|" * len(DRAFTS)
    for engine in engines:
        cells = []
        for folder in DRAFTS:
            score = scores[(engine, folder)]
            cells.append(f"{score.rate:.1f} % ({score.passed}/{score.total})")
        yield f"| {engine} | " + " | ".join(cells) + " |"
