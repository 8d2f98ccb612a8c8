"""The validator seam: schemas checked before compiling, every violation
reported with an exact JSON Pointer, messages that never echo values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import ValidationIssue
from proxy.validation import SchemaError, compile_schema


def issues(schema: Any, instance: Any) -> list[tuple[str, str]]:
    validate, _ = compile_schema(schema)
    return [(i.pointer, i.message) for i in validate(instance)]


def test_all_errors_with_pointers_even_for_odd_keys() -> None:
    schema = {
        "type": "object",
        "required": ["a.b", "x/y"],
        "properties": {
            "a.b": {"type": "integer"},
            "c[0]": {"type": "string"},
            "x/y": {"type": "object", "properties": {"~t": {"maximum": 3}}},
        },
    }
    assert issues(schema, {"a.b": "1", "c[0]": 5, "x/y": {"~t": 4}}) == [
        ("/a.b", "must be of type integer"),
        ("/c[0]", "must be of type string"),
        ("/x~1y/~0t", "must be <= 3"),
    ]
    assert issues(schema, {}) == [("/a.b", "is required"), ("/x~1y", "is required")]


def test_arrays_and_nested_refs() -> None:
    schema = {
        "definitions": {"Item": {"type": "object", "required": ["id"],
                                 "properties": {"id": {"type": "string", "minLength": 2}}}},
        "type": "array", "items": {"$ref": "#/definitions/Item"}, "maxItems": 3,
    }
    assert issues(schema, [{"id": "ok"}, {"id": "x"}, {}]) == [("/1/id", "must be at least 2 characters long"),
                                                              ("/2/id", "is required")]
    assert issues(schema, [{"id": "ok"}] * 4) == [("", "must have at most 3 items")]


def test_formats_are_checked() -> None:
    schema = {"properties": {"at": {"type": "string", "format": "date-time"},
                             "day": {"type": "string", "format": "date"},
                             "mail": {"type": "string", "format": "email"}}}
    assert issues(schema, {"at": "2026-01-02T03:04:05Z", "day": "2026-01-02", "mail": "a@b.org"}) == []
    assert issues(schema, {"at": "2026-01-02 03:04", "day": "02/01/2026", "mail": "nope"}) == [
        ("/at", "must be a valid date-time"), ("/day", "must be a valid date"), ("/mail", "must be a valid email"),
    ]


def test_messages_never_echo_the_instance() -> None:
    secret = "s3cr3t-value-xyz"
    schema = {"properties": {"p": {"enum": ["a", "b"]}, "q": {"pattern": "^[0-9]+$"},
                             "r": {"const": 1}, "s": {"type": "integer"}},
              "additionalProperties": False}
    found = issues(schema, {"p": secret, "q": secret, "r": secret, "s": secret, secret: secret})
    assert len(found) == 5
    assert all(secret not in message for _, message in found)
    assert (f"/{secret}", "is not allowed here") in found  # the pointer names the key, by necessity


def test_defaults_are_not_injected() -> None:
    validate, _ = compile_schema({"properties": {"limit": {"type": "integer", "default": 10}}})
    body: dict[str, Any] = {}
    assert validate(body) == ()
    assert body == {}


@pytest.mark.parametrize(("schema", "pointer", "needle"), [
    ({"type": "integer", "exclusiveMinimum": True}, "/exclusiveMinimum", "draft-07"),
    ({"type": "strnig"}, "/type", "draft-07"),
    ({"properties": {"a": {"$ref": "http://example.org/s.json"}}}, "/properties/a/$ref", "remote reference"),
    ({"$ref": "other.json#/x"}, "/$ref", "remote reference"),
    ({"prefixItems": [{"type": "string"}]}, "/prefixItems", "does not exist in draft-07"),
    ({"properties": {"a": {"dependentRequired": {"x": ["y"]}}}}, "/properties/a/dependentRequired",
     "does not exist"),
    ({"unevaluatedProperties": False}, "/unevaluatedProperties", "does not exist"),
    ({"$schema": "http://example.org/my-draft"}, "/$schema", "unknown JSON Schema draft"),
    # A $ref loop that never descends into the instance: every validation would recurse forever.
    ({"$ref": "#/definitions/A", "definitions": {"A": {"$ref": "#/definitions/A"}}}, "/definitions/A", "$ref loop"),
    ({"properties": {"x": {"$ref": "#/definitions/A"}},
      "definitions": {"A": {"oneOf": [{"type": "null"}, {"$ref": "#/definitions/B"}]}, "B": {"$ref": "#/definitions/A"}}},
     "/definitions/A", "$ref loop"),
    ({"$schema": "https://json-schema.org/draft/2020-12/schema", "allOf": [{"$ref": "#"}]}, "/allOf/0", "$ref loop"),
])
def test_refused_schemas(schema: Any, pointer: str, needle: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema)
    assert caught.value.pointer == pointer
    assert needle in caught.value.message


def test_enum_values_are_not_mistaken_for_refs() -> None:
    validate, _ = compile_schema({"enum": [{"$ref": "#/definitions/x"}], "definitions": {"x": {}}})
    assert validate({"$ref": "#/definitions/x"}) == ()
    # fastjsonschema resolves refs even inside data to describe errors: it
    # refuses to compile a remote one there (nothing is fetched), and the
    # other engine validates that schema instead.
    validate, _ = compile_schema({"enum": [{"$ref": "http://example.org/x"}]})
    assert validate({"$ref": "http://example.org/x"}) == ()
    assert validate({"$ref": "http://example.org/y"})


def test_draft04_boolean_exclusive_minimum_is_honoured() -> None:
    schema = {"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 3, "exclusiveMinimum": True}
    validate, draft = compile_schema(schema)
    assert draft == "draft-04"
    assert validate(4) == ()
    assert validate(3)


def test_2020_12_keywords_work_when_declared() -> None:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
              "items": False}
    validate, draft = compile_schema(schema)
    assert draft == "2020-12"
    assert validate(["a", 1]) == ()
    assert [i.pointer for i in validate([1, "a"])] == ["/0", "/1"]
    assert validate(["a", 1, 2])


def test_recursive_schema_and_deep_instance() -> None:
    schema = {"definitions": {"n": {"type": "object", "properties": {"c": {"$ref": "#/definitions/n"}}}},
              "$ref": "#/definitions/n"}
    validate, _ = compile_schema(schema)
    deep: Any = {}
    for _ in range(3000):
        deep = {"c": deep}
    # Either conforms or reports; never raises.
    assert isinstance(validate(deep), tuple)


@settings(max_examples=150, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12,
))
def test_engines_agree(instance: Any) -> None:
    """The deciding engine and the explaining one must agree on every instance."""
    schema = {"type": "object", "required": ["a"],
              "properties": {"a": {"type": ["integer", "string"], "minimum": 0, "maxLength": 3},
                             "b": {"type": "array", "items": {"type": "boolean"}}},
              "additionalProperties": {"type": ["null", "object"]}}
    import jsonschema

    validate, _ = compile_schema(schema)
    found = validate(instance)
    reference = list(jsonschema.Draft7Validator(schema).iter_errors(instance))
    assert bool(found) == bool(reference)
    assert all(isinstance(i, ValidationIssue) for i in found)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"child": {"$ref": "#"}}},  # recursion through the instance's contents
    {"$ref": "#/definitions/N", "definitions": {"N": {"type": "array", "items": {"$ref": "#/definitions/N"}}}},
    {"$ref": "#/definitions/A", "allOf": [{"$ref": "#"}], "definitions": {"A": {}}},  # draft-07: siblings ignored
    {"type": "object", "definitions": {"Unused": {"$ref": "#/definitions/Unused"}}},  # never applied
    {"anyOf": [{"type": "object"}, {"$ref": "#"}]},  # an earlier branch may decide first
    {"if": {"type": "object"}, "else": {"$ref": "#"}},  # applied on a condition
    # `#` inside an embedded resource names that resource: no loop.
    {"$id": "http://example.org/root.json", "allOf": [{"$ref": "#/definitions/B"}], "definitions": {"B": {
        "$id": "http://example.org/b.json", "allOf": [{"$ref": "#/definitions/B"}],
        "definitions": {"B": {"type": "object"}}}}},
])
def test_recursive_schemas_that_terminate(schema: Any) -> None:
    validate, _ = compile_schema(schema)
    assert validate({}) == () or validate([]) == ()
