"""What every schema goes through before an engine compiles it: its draft
(from `$schema`, one of the five standard meta-schema URIs; none means
draft-07), a check against that draft's meta-schema, and refusal of
keywords the draft does not have (an engine would silently ignore them).
References are resolved, and remote ones refused, by bundle.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.exceptions
import orjson
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.draft06 import CodeGeneratorDraft06
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.draft2019 import CodeGeneratorDraft2019

from ..jsonpointer import pointer, resolve_local
from ..types import CLIPPED_CHARS, clip
from .base import SchemaError

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


@dataclass(frozen=True, slots=True)
class Draft:
    name: str
    meta: type[jsonschema.protocols.Validator]
    # fastjsonschema's code generator; 2019-09 and 2020-12 reach it lowered to draft-07 (lower.py)
    generator: type[CodeGeneratorDraft04]
    # Keywords that exist only in later drafts: silently ignored by this draft.
    foreign: frozenset[str]
    # `format` asserts (draft-04/06/07) or only annotates (2019-09, 2020-12:
    # unless `[catalogue] assert_formats`)
    asserts_formats: bool = True
    # A `$ref` ignores the keywords beside it (draft-04/06/07); from 2019-09 they apply too.
    ref_alone: bool = True


_LATER_THAN_07 = frozenset({
    "prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
    "unevaluatedItems", "minContains", "maxContains", "$anchor", "$dynamicRef",
    "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "$vocabulary",
})
_LATER_THAN_04 = _LATER_THAN_07 | {"const", "contains", "propertyNames", "examples"}

_DRAFTS: dict[str, Draft] = {
    "draft-04": Draft("draft-04", jsonschema.Draft4Validator, CodeGeneratorDraft04, _LATER_THAN_04),
    "draft-06": Draft("draft-06", jsonschema.Draft6Validator, CodeGeneratorDraft06,
                       _LATER_THAN_07 | {"if", "then", "else"}),
    "draft-07": Draft("draft-07", jsonschema.Draft7Validator, CodeGeneratorDraft07, _LATER_THAN_07),
    "2019-09": Draft("2019-09", jsonschema.Draft201909Validator, CodeGeneratorDraft2019,
                     frozenset({"prefixItems", "$dynamicRef", "$dynamicAnchor"}), asserts_formats=False,
                     ref_alone=False),
    "2020-12": Draft("2020-12", jsonschema.Draft202012Validator, CodeGeneratorDraft2019,
                     frozenset({"$recursiveRef", "$recursiveAnchor"}), asserts_formats=False,
                     ref_alone=False),
}
# The meta-schema URIs `$schema` may name (without the empty fragment `#`,
# with http or https): anything else would be a custom meta-schema, which
# the hub would have to fetch.
_DIALECTS = {
    "json-schema.org/draft-04/schema": "draft-04",
    "json-schema.org/draft-06/schema": "draft-06",
    "json-schema.org/draft-07/schema": "draft-07",
    "json-schema.org/draft/2019-09/schema": "2019-09",
    "json-schema.org/draft/2020-12/schema": "2020-12",
}

# Where a schema keeps subschemas, by keyword: so the walk below visits
# schemas only, never instance data such as `enum`, `const` or `default`.
_SCHEMA_MAPS = {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"}
_SCHEMA_ONE = {
    "additionalProperties", "additionalItems", "items", "contains", "not", "if", "then", "else",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties",
}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}
_DATA_KEYWORDS = {"enum", "const", "default", "examples", "example"}


def draft_of(schema: Any) -> Draft:
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is None:
        return _DRAFTS["draft-07"]
    if not isinstance(declared, str):
        raise SchemaError("/$schema", "must be a string")
    scheme, _, rest = declared.partition("://")
    name = _DIALECTS.get(rest.removesuffix("#")) if scheme in ("http", "https") else None
    if name is None:
        raise SchemaError("/$schema", f"unknown JSON Schema draft {declared!r}: the hub knows the meta-schemas "
                                      "of draft-04, -06, -07, 2019-09 and 2020-12, and nothing is fetched")
    return _DRAFTS[name]


def _walk(schema: Any, at: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every subschema object with its location, skipping instance data."""
    if not isinstance(schema, dict):
        return
    yield at, schema
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*at, key, name))
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from _walk(sub, (*at, key, index))
        elif key in _SCHEMA_ONE:
            yield from _walk(value, (*at, key))
        elif key == "dependencies" and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*at, key, name))


# What applies a subschema to the same instance whatever it is: `anyOf` may
# stop at an earlier branch, `then`/`else` only apply on a condition.
_IN_PLACE_LISTS = ("allOf", "oneOf")
_IN_PLACE_ONE = ("not", "if")


def _embeds_resources(schema: Any, raw: bytes) -> bool:
    """Whether an `$id` (draft-04: a string `id`) below the root changes what
    `#` names there: the loop check, which reads `#` as the root, steps aside."""
    at_root = isinstance(schema, dict) and ("$id" in schema or isinstance(schema.get("id"), str))
    return raw.count(b'"$id":') + raw.count(b'"id":"') > int(at_root)


_LOCAL_REF = re.compile(rb'"\$ref":"(#[^"]*)"')


def _refs_reach_refs(schema: Any, raw: bytes) -> bool:
    """Whether some `$ref` within the document leads to a subschema holding
    another `$ref`: without that no loop can close (each `$ref` of a loop
    lies inside the target of the one before). The usual schema, whose
    references name definitions without references, is passed in C."""
    for ref in set(_LOCAL_REF.findall(raw)):
        try:
            target = resolve_local(schema, ref.decode())
        except UnicodeDecodeError:
            return True
        if isinstance(target, dict) and b'"$ref":' in orjson.dumps(target):
            return True
    return False


def _ref_loop(schema: Any, *, ref_alone: bool) -> str | None:
    """The pointer of a subschema that applies itself again to the same
    instance location, whatever the instance (through `$ref`s within the
    document and the applicators that always apply), or None (`ref_alone`:
    Draft.ref_alone)."""
    def applied(node: dict[str, Any]) -> list[dict[str, Any]]:
        ref = node.get("$ref")
        targets = []
        if isinstance(ref, str):
            target = resolve_local(schema, ref)
            if isinstance(target, dict):
                targets.append(target)
            if ref_alone:
                return targets
        for keyword in _IN_PLACE_LISTS:
            members = node.get(keyword)
            if isinstance(members, list):
                targets.extend(member for member in members if isinstance(member, dict))
        for keyword in _IN_PLACE_ONE:
            member = node.get(keyword)
            if isinstance(member, dict):
                targets.append(member)
        return targets

    done: set[int] = set()
    # Every loop passes through a `$ref` (applicators alone make a tree): start only there.
    for start in _used(schema):
        if "$ref" not in start or id(start) in done:
            continue
        on_path = {id(start)}
        stack = [(start, iter(applied(start)))]
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                on_path.discard(id(node))
                done.add(id(node))
            elif id(child) in on_path:
                return next((pointer(at) for at, sub in _walk(schema) if sub is child), "")
            elif id(child) not in done:
                on_path.add(id(child))
                stack.append((child, iter(applied(child))))
    return None


def _used(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The subschemas validation can reach from the root: through every
    keyword but the definitions, and through `$ref`s within the document."""
    seen: dict[int, dict[str, Any]] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        for key, value in node.items():
            if key in ("definitions", "$defs") or key in _DATA_KEYWORDS:
                continue
            if key == "$ref" and isinstance(value, str):
                target = resolve_local(schema, value)
                if isinstance(target, dict):
                    pending.append(target)
            elif key in _SCHEMA_MAPS or key == "dependencies":
                if isinstance(value, dict):
                    pending.extend(sub for sub in value.values() if isinstance(sub, dict))
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                pending.extend(sub for sub in value if isinstance(sub, dict))
            elif key in _SCHEMA_ONE and isinstance(value, dict):
                pending.append(value)
    return list(seen.values())


def check_schema(schema: Any) -> Draft:
    """Refuse what an engine would compile wrongly: an invalid schema, a
    keyword its draft does not have."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("", "a schema must be a JSON object or a boolean")
    draft = draft_of(schema)
    best = None
    if not _conforms(schema, draft):
        best = jsonschema.exceptions.best_match(draft.meta(draft.meta.META_SCHEMA).iter_errors(schema))
    if best is not None:
        raise SchemaError(
            pointer(best.absolute_path),
            f"not a valid {draft.name} schema: {short(best.message)}",
        )
    raw = orjson.dumps(schema)
    if b'"$ref":' in raw and not _embeds_resources(schema, raw) and _refs_reach_refs(schema, raw):
        loop = _ref_loop(schema, ref_alone=draft.ref_alone)
        if loop is not None:
            raise SchemaError(loop, "a $ref loop that never reaches the instance's contents: "
                                    "validating anything would recurse forever")
    # The walk only when a keyword of a later draft appears anywhere (C-speed look first).
    if not any(b'"%s":' % keyword.encode() in raw for keyword in draft.foreign):
        return draft
    for at, sub in _walk(schema):
        for keyword in draft.foreign.intersection(sub):
            raise SchemaError(
                pointer((*at, keyword)),
                f"keyword {keyword!r} does not exist in {draft.name} and would be silently ignored; "
                "declare the draft that has it in \"$schema\" or remove it",
            )
    return draft


def _conforms(schema: Any, draft: Draft) -> bool:
    """A quick yes from jsonschema-rs when installed (microseconds where
    jsonschema takes milliseconds: most of a large catalogue's load time);
    only a no needs jsonschema, whose errors say where."""
    try:
        import jsonschema_rs
    except ImportError:
        return False
    if isinstance(schema, dict) and "$schema" not in schema:
        schema = {"$schema": DRAFT_07, **schema}  # jsonschema-rs would assume 2020-12
    try:
        return bool(jsonschema_rs.meta.is_valid(schema))
    except Exception:  # noqa: BLE001 - any doubt goes to jsonschema
        return False


def short(message: str, limit: int = CLIPPED_CHARS) -> str:
    return clip(message, limit)


