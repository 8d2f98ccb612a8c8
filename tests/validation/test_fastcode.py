"""The trimmed fastjsonschema code decides exactly as the untrimmed one, and
builds no message paths on the success path."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import pytest

from proxy.validation.fastcode import compile_trimmed

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {"type": "array", "items": {"$ref": "#/definitions/item"}},
        "kind": {"anyOf": [{"const": "a"}, {"type": "integer", "minimum": 3}]},
    },
    "definitions": {"item": {"type": "object", "required": ["id"],
                             "properties": {"id": {"type": "string", "format": "date"}}}},
}

INSTANCES: list[Any] = [
    {"items": []},
    {"items": [{"id": "2026-01-02"}, {"id": "2026-02-03"}]},
    {"items": [{"id": "2026-01-02"}, {"id": "not a date"}]},
    {"items": [{"id": 3}]},
    {"items": [{}]},
    {"items": [], "kind": "a"},
    {"items": [], "kind": 4},
    {"items": [], "kind": 2},
    {"items": [], "kind": "b"},
    {},
    [],
    "text",
]


def _validate(code: Any) -> Any:
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - code generated from the schema above
    return namespace["validate"]


def _verdict(validate: Any, instance: Any) -> bool:
    try:
        validate(instance)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@pytest.mark.parametrize("instance", INSTANCES)
def test_trimmed_code_gives_the_same_verdicts(instance: Any) -> None:
    source = fastjsonschema.compile_to_code(SCHEMA, use_default=False, detailed_exceptions=True)
    untrimmed = _validate(compile(source, "<schema>", "exec"))
    trimmed = _validate(compile_trimmed(source))
    assert _verdict(trimmed, instance) == _verdict(untrimmed, instance)


def test_no_message_paths_are_built_on_the_success_path() -> None:
    """Calls between generated functions pass no path: no `locals()` per array item."""
    source = fastjsonschema.compile_to_code(SCHEMA, use_default=False, detailed_exceptions=True)
    assert "format(**locals())" in source  # what fastjsonschema writes, and the trim removes
    seen: list[Any] = []
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(source), namespace)  # noqa: S102
    inner = next(v for k, v in namespace.items() if k.startswith("validate_") and callable(v))
    namespace[inner.__name__] = lambda data, formats, prefix: seen.append(prefix)
    namespace["validate"]({"items": [{"id": "2026-01-02"}] * 3})
    assert seen == [None, None, None]
