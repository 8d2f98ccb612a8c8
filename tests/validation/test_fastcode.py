"""The trimmed fastjsonschema code decides exactly as the untrimmed one, and
builds no message paths on the success path."""

from __future__ import annotations

import ast
import re
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from proxy.validation.fastcode import _Trim, compile_trimmed

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


# Schemas whose code reads an object's key set after the known keys are
# removed (additional and pattern properties): that set must stay.
KEY_SET_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string"}},
    {"type": "object", "properties": {"a": {}}, "patternProperties": {"^x": {"type": "boolean"}},
     "additionalProperties": False},
    {"type": "object", "properties": {"a": {}}, "dependencies": {"a": ["b"]}, "required": ["c"]},
    {"type": "object", "properties": {"a": {"properties": {"b": {}}, "additionalProperties": False}}},
]
KEY_SET_INSTANCES: list[Any] = [
    {}, {"a": 1}, {"a": "1"}, {"a": 1, "b": "x"}, {"a": 1, "b": 2}, {"x1": True}, {"x1": 1},
    {"a": 1, "c": 0}, {"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, {"c": 1, "x": False}, [],
]


def _both(schema: Any) -> tuple[Any, Any]:
    source = fastjsonschema.compile_to_code({"$schema": "http://json-schema.org/draft-07/schema#", **schema},
                                            use_default=False, detailed_exceptions=True)
    return _validate(compile(source, "<schema>", "exec")), _validate(compile_trimmed(source))


@pytest.mark.parametrize("instance", INSTANCES)
def test_trimmed_code_gives_the_same_verdicts(instance: Any) -> None:
    untrimmed, trimmed = _both(SCHEMA)
    assert _verdict(trimmed, instance) == _verdict(untrimmed, instance)


@pytest.mark.parametrize("schema", KEY_SET_SCHEMAS)
def test_key_sets_still_read_are_kept(schema: dict[str, Any]) -> None:
    untrimmed, trimmed = _both(schema)
    verdicts = [_verdict(untrimmed, instance) for instance in KEY_SET_INSTANCES]
    assert [_verdict(trimmed, instance) for instance in KEY_SET_INSTANCES] == verdicts
    assert True in verdicts and False in verdicts  # the instances tell the verdicts apart


def test_key_sets_nothing_reads_are_not_made() -> None:
    source = fastjsonschema.compile_to_code(SCHEMA, use_default=False, detailed_exceptions=True)
    assert "set(data.keys())" in source
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(source), namespace)  # noqa: S102
    names = {name for value in namespace.values() if callable(value) and hasattr(value, "__code__")
             for name in value.__code__.co_names}
    assert "set" not in names and "remove" not in names


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


def _checks(source: str) -> int:
    return sum(1 for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance")


KNOWN_TYPE = '''
class E(Exception):
    pass

def validate(v, custom_formats={}, name_prefix=None):
    if not isinstance(v, str):
        raise E("")
    v_is_str = isinstance(v, str)
    if isinstance(v, str):
        if v_is_str:
            out = "checked once"
    return out
'''

REASSIGNED = '''
class E(Exception):
    pass

def validate(v, custom_formats={}, name_prefix=None):
    if not isinstance(v, str):
        raise E("")
    v = len(v)
    if isinstance(v, str):
        return "never: v is an int now"
    return "kept the check"
'''


def test_a_type_checked_by_a_raise_is_not_checked_again() -> None:
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(KNOWN_TYPE), namespace)  # noqa: S102
    assert namespace["validate"]("x") == "checked once"
    with pytest.raises(namespace["E"]):
        namespace["validate"](1)
    assert _checks(KNOWN_TYPE) == 3
    assert _checks(_trimmed_source(KNOWN_TYPE)) == 1  # the raise's: the `if` and the flag nothing reads went
    assert "if v_is_str" not in _trimmed_source(KNOWN_TYPE)  # the raise's check and the assignment's, not the two ifs


def test_a_type_check_after_the_value_changed_is_kept() -> None:
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(REASSIGNED), namespace)  # noqa: S102
    assert namespace["validate"]("abc") == "kept the check"
    assert _checks(_trimmed_source(REASSIGNED)) == 2


def _trimmed_source(source: str) -> str:
    return ast.unparse(ast.fix_missing_locations(_Trim().visit(ast.parse(source))))


ENUM_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["kind", "id"],
    "properties": {"kind": {"enum": ["class", "exam", "é"]}, "mixed": {"enum": ["1", 1, True, None]}},
}
ENUM_INSTANCES: list[Any] = [
    {"kind": "class", "id": 1}, {"kind": "exam", "id": 1}, {"kind": "é", "id": 1}, {"kind": "Class", "id": 1},
    {"kind": 1, "id": 1}, {"kind": ["class"], "id": 1}, {"kind": "class"}, {"id": 1}, {},
    {"kind": "class", "id": 1, "mixed": "1"}, {"kind": "class", "id": 1, "mixed": 1},
    {"kind": "class", "id": 1, "mixed": 1.0}, {"kind": "class", "id": 1, "mixed": False},
    {"kind": "class", "id": 1, "mixed": None}, {"kind": "class", "id": 1, "mixed": "2"},
]


def _same_verdicts(schema: dict[str, Any], instances: list[Any]) -> str:
    """Checks the trimmed code decides `instances` (some valid, some not) as
    the untrimmed one does; the trimmed source."""
    untrimmed, trimmed = _both(schema)
    verdicts = [_verdict(untrimmed, instance) for instance in instances]
    assert [_verdict(trimmed, instance) for instance in instances] == verdicts
    assert True in verdicts and False in verdicts
    return _trimmed_source(fastjsonschema.compile_to_code(
        {"$schema": "http://json-schema.org/draft-07/schema#", **schema},
        use_default=False, detailed_exceptions=True))


def test_string_enums_and_required_keys_are_set_lookups_with_the_same_verdicts() -> None:
    source = _same_verdicts(ENUM_SCHEMA, ENUM_INSTANCES)
    assert "in _ENUM_" in source and ".keys() >= _REQUIRED_" in source


REQUIRED_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["a", "list"],
    "properties": {"a": {"type": "string", "minLength": 2}, "b": {"type": "integer"},
                   "list": {"type": "array", "items": {"type": "object", "required": ["x"],
                                                       "properties": {"x": {"type": "boolean"}}}}},
}
REQUIRED_INSTANCES: list[Any] = [
    {"a": "ab", "list": []}, {"a": "ab", "list": [{"x": True}, {"x": False}]}, {"a": "a", "list": []},
    {"a": 1, "list": []}, {"list": []}, {"a": "ab"}, {"a": "ab", "list": [{}]},
    {"a": "ab", "list": [{"x": 1}]}, {"a": "ab", "list": [], "b": 1}, {"a": "ab", "list": [], "b": "1"},
    {"a": "ab", "list": ({"x": True},)}, {"a": "ab", "list": [3]}, [], None,
]


def test_required_keys_are_not_asked_again_and_unread_indexes_are_not_made() -> None:
    source = _same_verdicts(REQUIRED_SCHEMA, REQUIRED_INSTANCES)
    # Required: read without asking; optional: still asked.
    assert "if 'a' in data" not in source and "if 'list' in data" not in source and "'x' in" not in source
    assert "if 'b' in data" in source
    assert "enumerate(" not in source and "data__list_len" not in source


REASKED = '''
class E(Exception):
    pass

def validate(v):
    missing = set(['k']) - v.keys()
    if missing:
        raise E("")
    v = {}
    if 'k' in v:
        return "asked again"
    return "kept the check"
'''


def test_a_key_check_after_the_object_changed_is_kept() -> None:
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(REASKED), namespace)  # noqa: S102
    assert namespace["validate"]({"k": 1}) == "kept the check"
    trimmed = _trimmed_source(REASKED)
    assert "v.keys() >= _REQUIRED_" in trimmed and "if 'k' in v" in trimmed


CLOSED_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["entity"], "additionalProperties": False,
    "properties": {
        "entity": {"type": "object", "required": ["id"], "additionalProperties": False,
                   "properties": {"id": {"type": "string"}, "kind": {"enum": ["a", "b"]}}},
        "rows": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                            "properties": {"n": {"type": "integer"}}}},
        "open": {"type": "object", "properties": {"x": {}}},
    },
}
CLOSED_INSTANCES: list[Any] = [
    {"entity": {"id": "1"}}, {"entity": {"id": "1", "kind": "a"}}, {"entity": {"id": "1", "kind": "c"}},
    {"entity": {"id": "1", "extra": 1}}, {"entity": {"id": "1"}, "extra": 1}, {"entity": {}},
    {"entity": {"id": "1"}, "rows": [{"n": 1}, {}]}, {"entity": {"id": "1"}, "rows": [{"n": 1, "m": 2}]},
    {"entity": {"id": "1"}, "rows": [{"n": "1"}]}, {"entity": {"id": "1"}, "open": {"x": 1, "y": 2}},
    {"entity": {"id": "1"}, "rows": [], "open": {}}, {"rows": []}, {}, [],
]


def test_closed_objects_are_one_subset_test_with_the_same_verdicts() -> None:
    source = _same_verdicts(CLOSED_SCHEMA, CLOSED_INSTANCES)
    assert source.count(".keys() <= _KNOWN_") == 3  # the root, entity and each row
    assert not re.search(r"\bset\(", source) and ".remove(" not in source
    assert "if 'entity' in data" not in source and "if 'id' in" not in source  # required: not asked again


UNUSUAL_KEY_SETS = '''
class E(Exception):
    pass

def closed(v):
    s = set(v.keys())
    if 'a' in s:
        s.remove('a')
    if s:
        raise E("")
    return "ok"

def unguarded(v):
    s = set(v.keys())
    if 'a' in v:
        s.remove('a')
    if s:
        raise E("")
    return "ok"

def elsewhere(v, flag):
    s = set(v.keys())
    if flag:
        if 'a' in s:
            s.remove('a')
    if s:
        raise E("")
    return "ok"

def reread(v):
    s = set(v.keys())
    if 'a' in s:
        s.remove('a')
    n = len(s)
    if s:
        raise E("")
    return n
'''


def test_a_key_set_closed_otherwise_than_fastjsonschema_does_is_kept() -> None:
    """Only the exact shape becomes a subset test: a remove guarded by
    another test, a remove in a nested block, or another reading of the set
    keeps the set."""
    trimmed = _trimmed_source(UNUSUAL_KEY_SETS)
    assert trimmed.count("<= _KNOWN_") == 1  # `closed` alone
    namespace: dict[str, Any] = {}
    exec(compile_trimmed(UNUSUAL_KEY_SETS), namespace)  # noqa: S102
    assert namespace["closed"]({"a": 1}) == "ok"
    with pytest.raises(namespace["E"]):
        namespace["closed"]({"a": 1, "b": 2})
    assert namespace["elsewhere"]({"a": 1}, True) == "ok"
    with pytest.raises(namespace["E"]):
        namespace["elsewhere"]({"a": 1}, False)
    assert namespace["reread"]({"a": 1}) == 0


_NAMES = st.sampled_from(["a", "b", "c", "x1", "x2"])
_LEAF = st.sampled_from([{}, {"type": "integer"}, {"type": "string"}, {"enum": ["a", 1]}, False, True])


@st.composite
def _object_schemas(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    inner = _object_schemas(depth + 1) if depth < 2 else _LEAF
    schema: dict[str, Any] = {"type": "object"}
    if draw(st.booleans()):
        schema["properties"] = draw(st.dictionaries(_NAMES, st.one_of(_LEAF, inner), max_size=4))
    if draw(st.booleans()):
        schema["required"] = sorted(draw(st.sets(_NAMES, max_size=3)))
    choice = draw(st.integers(0, 3))
    if choice == 1:
        schema["additionalProperties"] = False
    elif choice == 2:
        schema["additionalProperties"] = draw(_LEAF)
    if draw(st.integers(0, 4)) == 0:
        schema["patternProperties"] = {"^x": draw(_LEAF)}
    return schema


_VALUES = st.recursive(st.one_of(st.integers(-3, 3), st.sampled_from(["a", "", "x"]), st.none(), st.booleans()),
                       lambda inner: st.dictionaries(_NAMES, inner, max_size=4), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_object_schemas(), st.lists(st.dictionaries(_NAMES, _VALUES, max_size=5), min_size=1, max_size=12))
def test_object_keywords_decide_as_untrimmed(schema: dict[str, Any], instances: list[Any]) -> None:
    """properties, required, additionalProperties (false, a schema) and
    patternProperties, nested: the trimmed code's verdicts are fastjsonschema's."""
    try:
        untrimmed, trimmed = _both(schema)
    except fastjsonschema.JsonSchemaDefinitionException:  # e.g. a required key additionalProperties forbids
        assume(False)
    for instance in instances:
        assert _verdict(trimmed, instance) == _verdict(untrimmed, instance), (schema, instance)
