"""What every schema goes through before an engine compiles it: its draft
(from `$schema`; none means draft-07), a check against that draft's
meta-schema, and refusal of what an engine would compile wrongly or
dangerously (remote references, keywords the draft does not have).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.exceptions
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.draft06 import CodeGeneratorDraft06
from fastjsonschema.draft07 import CodeGeneratorDraft07

from ..jsonpointer import pointer
from .base import SchemaError

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


@dataclass(frozen=True, slots=True)
class Draft:
    name: str
    meta: type[jsonschema.protocols.Validator]
    generator: type[CodeGeneratorDraft04] | None  # None: jsonschema validates alone
    # Keywords that exist only in later drafts: silently ignored by this draft.
    foreign: frozenset[str]


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
    "2019-09": Draft("2019-09", jsonschema.Draft201909Validator, None,
                      frozenset({"prefixItems", "$dynamicRef", "$dynamicAnchor"})),
    "2020-12": Draft("2020-12", jsonschema.Draft202012Validator, None,
                      frozenset({"$recursiveRef", "$recursiveAnchor"})),
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
    for marker, draft in (("draft-04", "draft-04"), ("draft-06", "draft-06"),
                          ("draft-07", "draft-07"), ("2019-09", "2019-09"),
                          ("2020-12", "2020-12")):
        if marker in declared:
            return _DRAFTS[draft]
    raise SchemaError("/$schema", f"unknown JSON Schema draft {declared!r}")


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


def check_schema(schema: Any) -> Draft:
    """Refuse what fastjsonschema would compile wrongly or dangerously."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("", "a schema must be a JSON object or a boolean")
    draft = draft_of(schema)
    best = jsonschema.exceptions.best_match(draft.meta(draft.meta.META_SCHEMA).iter_errors(schema))
    if best is not None:
        raise SchemaError(
            pointer(best.absolute_path),
            f"not a valid {draft.name} schema: {short(best.message)}",
        )
    for at, sub in _walk(schema):
        ref = sub.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise SchemaError(pointer((*at, "$ref")),
                              f"remote reference {ref!r} refused: only local '#...' references are allowed")
        sub_id = sub.get("$id", sub.get("id")) if at else None
        if isinstance(sub_id, str) and not sub_id.startswith("#"):
            raise SchemaError(pointer((*at, "$id")),
                              "nested $id changes the base of references; inline the schema instead")
        for keyword in draft.foreign.intersection(sub):
            raise SchemaError(
                pointer((*at, keyword)),
                f"keyword {keyword!r} does not exist in {draft.name} and would be silently ignored; "
                "declare the draft that has it in \"$schema\" or remove it",
            )
    return draft


def short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


