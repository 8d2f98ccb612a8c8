"""References resolved at load (bundle.py), 2019-09/2020-12 served by
fastjsonschema where a draft-07 rewrite exists (lower.py), per-schema
fallbacks that say why, and `format` by draft and `[catalogue]
assert_formats`. The JSON Schema Test Suite covers the verdicts at large
(test_jsonschema_suite.py); these pin the hub's own choices."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from proxy.catalogue import compiler_for
from proxy.config import CatalogueConfig, ConfigError, parse_config
from proxy.validation import Compiled, SchemaError, engine_for
from proxy.validation.bundle import bundle, needs_bundling

DRAFT2020 = "https://json-schema.org/draft/2020-12/schema"
DRAFT2019 = "https://json-schema.org/draft/2019-09/schema"
DRAFT07 = "http://json-schema.org/draft-07/schema#"
ENGINES = ("fastjsonschema", "jsonschema-rs")
NOW = "2026-03-01T10:00:00Z"


def compiled(schema: Any, engine: str = "fastjsonschema", *, assert_formats: bool = False) -> Compiled:
    return compiler_for(CatalogueConfig(validator=engine, assert_formats=assert_formats)).compile(schema)


def verdicts(result: Compiled, *instances: Any) -> list[bool]:
    return [result.validate(instance) == () for instance in instances]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("schema", "pointer"), [
    ({"properties": {"a": {"$ref": "http://example.org/s.json"}}}, "/properties/a/$ref"),
    ({"$id": "http://example.org/root.json", "items": {"$ref": "other.json#/x"}}, "/items/$ref"),
    ({"$defs": {"x": {"$id": "urn:example:x"}}, "$ref": "urn:example:y", "$schema": DRAFT2020}, "/$ref"),
    ({"$schema": DRAFT2020, "$dynamicRef": "http://localhost:1234/draft2020-12/tree.json"}, "/$dynamicRef"),
    ({"$ref": "#nowhere"}, "/$ref"),
])
def test_references_that_would_need_a_fetch_are_refused(engine: str, schema: Any, pointer: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compiled(schema, engine)
    assert caught.value.pointer == pointer
    assert "nothing is fetched" in caught.value.message


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unknown_meta_schema_is_refused_not_guessed(engine: str) -> None:
    # A custom meta-schema whose URI happens to contain a draft's name.
    with pytest.raises(SchemaError, match="unknown JSON Schema draft .* nothing is fetched"):
        compiled({"$schema": "http://localhost:1234/draft2020-12/metaschema-no-validation.json"}, engine)
    # The standard URIs, with or without the empty fragment, over http or https
    for declared in ("http://json-schema.org/draft-07/schema", "https://json-schema.org/draft-07/schema#",
                     "http://json-schema.org/draft/2020-12/schema"):
        assert compiled({"$schema": declared}, engine).draft in ("draft-07", "2020-12")


@pytest.mark.parametrize("engine", ENGINES)
def test_identifiers_anchors_and_meta_schemas_resolve_within(engine: str) -> None:
    schema = {
        "$id": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed",
        "type": "object",
        "properties": {
            "n": {"$ref": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed#/definitions/count"},
            "tag": {"$ref": "#tag"},
            "tree": {"$ref": "http://example.com/tree.json"},
            "schema": {"$ref": "http://json-schema.org/draft-07/schema#"},
        },
        "definitions": {
            "count": {"type": "integer", "minimum": 0},
            "tag": {"$id": "#tag", "type": "string", "maxLength": 3},
            "tree": {"$id": "http://example.com/tree.json", "type": "object",
                     "properties": {"kids": {"type": "array", "items": {"$ref": "tree.json"}}}},
        },
    }
    result = compiled(schema, engine)
    assert result.engine == engine and not result.fallback
    assert verdicts(result, {"n": 1, "tag": "abc", "tree": {"kids": [{"kids": []}]}, "schema": {"minLength": 1}},
                    {"n": -1}, {"tag": "abcd"}, {"tree": {"kids": [{"kids": 1}]}}, {"schema": {"minLength": -1}},
                    ) == [True, False, False, False, False]
    issues = result.validate({"tree": {"kids": [{"kids": 1}]}})
    assert [i.pointer for i in issues] == ["/tree/kids/0/kids"]


def test_bundling_leaves_the_schema_alone_and_removes_every_identifier() -> None:
    schema = {"$schema": DRAFT2020, "$id": "http://example.com/root.json",
              "$defs": {"a": {"$anchor": "a", "type": "integer"}}, "properties": {"x": {"$ref": "#a"}}}
    before = repr(schema)
    assert needs_bundling(schema) and not needs_bundling({"$ref": "#/definitions/x", "definitions": {"x": {}}})
    out = bundle(schema, "2020-12", lower=True, assert_formats=False)
    assert repr(schema) == before
    assert out.blockers == []
    assert out.schema["properties"]["x"] == {"$ref": "#/$defs/a"}
    assert "$id" not in out.schema and "$anchor" not in out.schema["$defs"]["a"]


def test_2020_12_runs_on_fastjsonschema_rewritten_to_draft_07() -> None:
    schema = {
        "$schema": DRAFT2020, "type": "object",
        "properties": {
            "pair": {"prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
            "card": {"dependentRequired": {"number": ["expiry"]}, "dependentSchemas": {"bonus": {"required": ["code"]}}},
            "kind": {"$ref": "#/$defs/kind", "maxLength": 2},  # siblings of $ref apply from 2019-09 on
            "at": {"type": "string", "format": "date"},
        },
        "$defs": {"kind": {"type": "string"}},
    }
    result = compiled(schema)
    assert (result.engine, result.fallback, result.draft) == ("fastjsonschema", "", "2020-12")
    assert verdicts(
        result, {"pair": ["a", 1]}, {"pair": ["a", 1, 2]}, {"pair": [1]}, {"card": {"number": 1}},
        {"card": {"number": 1, "expiry": 2}}, {"card": {"bonus": 1}}, {"kind": "ab"}, {"kind": "abc"},
        {"kind": 1}, {"at": "not a date"},
    ) == [True, False, False, False, True, False, True, False, False, True]
    assert [(i.pointer, i.message) for i in result.validate({"pair": ["a", 1, 2], "kind": "abc"})] == [
        ("/kind", "must be at most 2 characters long"), ("/pair/2", "is not allowed")]


@pytest.mark.parametrize(("schema", "what", "where"), [
    ({"$schema": DRAFT2020, "properties": {"a": {}}, "unevaluatedProperties": False},
     "keyword 'unevaluatedProperties'", "/"),
    ({"$schema": DRAFT2019, "$recursiveAnchor": True, "items": {"$recursiveRef": "#"}}, "keyword '$recursiveRef'",
     "/items"),
    ({"$schema": DRAFT2020, "contains": {"type": "integer"}, "minContains": 2}, "keyword 'minContains'", "/"),
    ({"$schema": DRAFT2020, "properties": {"s": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}},
     "keyword '$dynamicRef' of the meta-schema https://json-schema.org/draft/2020-12/meta/applicator",
     "/properties/s/$ref"),
])
def test_what_fastjsonschema_cannot_run_falls_back_and_says_why(schema: Any, what: str, where: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    instances = ({"a": 1}, {"b": 1}, [1, 2], [1], {"s": {"type": "string"}}, {"s": {"type": 1}}, [[1]])
    result = compiled(schema)
    assert result.engine == "jsonschema-rs"
    assert result.fallback == f"fastjsonschema cannot run {what} (at {where}): validated by jsonschema-rs"
    expected = verdicts(result, *instances)
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)
    without = compiled(schema)
    assert without.engine == "jsonschema" and without.fallback.endswith("validated by jsonschema")
    assert verdicts(without, *instances) == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_format_follows_the_draft_unless_assert_formats(engine: str) -> None:
    dated = {"type": "string", "format": "date-time"}
    for draft, asserted in ((DRAFT07, True), ("http://json-schema.org/draft-04/schema#", True),
                            (DRAFT2019, False), (DRAFT2020, False)):
        schema = {"$schema": draft, **dated}
        assert verdicts(compiled(schema, engine), NOW, "yesterday") == [True, not asserted], draft
        assert verdicts(compiled(schema, engine, assert_formats=True), NOW, "yesterday") == [True, False]
    # A fallback asserts formats by the same rule.
    closed = {"$schema": DRAFT2020, "properties": {"at": dated}, "unevaluatedProperties": False}
    assert verdicts(compiled(closed, engine), {"at": "yesterday"}, {"x": 1}) == [True, False]
    issues = compiled(closed, engine, assert_formats=True).validate({"at": "yesterday"})
    assert [(i.pointer, i.message) for i in issues] == [("/at", "must be a valid date-time")]


def test_assert_formats_is_a_config_key(tmp_path: Path) -> None:
    config = parse_config({"catalogue": {"assert_formats": True}}, base_dir=tmp_path)
    assert config.catalogue.assert_formats is True
    assert parse_config({}, base_dir=tmp_path).catalogue.assert_formats is False
    with pytest.raises(ConfigError, match="assert_formats: expected true or false"):
        parse_config({"catalogue": {"assert_formats": "yes"}}, base_dir=tmp_path)


def test_numbers_beside_format_regex_validate() -> None:
    # fastjsonschema 2.22 leaves `Decimal` out of the code of such a schema.
    validate = engine_for("fastjsonschema").compile(
        {"properties": {"p": {"type": "string", "format": "regex"}, "n": {"type": "number"}}}).validate
    assert validate({"n": 1.5, "p": "^a+$"}) == ()
    assert [i.pointer for i in validate({"n": "1.5", "p": "("})] == ["/n", "/p"]
