"""OpenAPI 3.0 import: every construct the importer converts, repairs or
refuses, with the warning or error it must leave (file + JSON Pointer +
action), the compiled schemas' behaviour, conflicts, and one call served
end to end from a catalogue that has only an OpenAPI document."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.web.app import create_app
from proxy.catalogue import Catalogue, load_catalogue, read_sources
from proxy.errors import CatalogueError, Problem
from proxy.catalogue.openapi import import_document

from tests.conftest import Provider
from tests.support import (
    CONTEXT_SCHEMA,
    ROOT,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
)

ACTION = "@school:Roster:list"
P = "/paths/~1@school:Roster:list/post"
REQ = f"{P}/requestBody/content/application~1json/schema"
RES = f"{P}/responses/200/content/application~1json/schema"


def envelope_components() -> dict[str, Any]:
    return {
        "Context": CONTEXT_SCHEMA,
        "Envelope": {
            "type": "object",
            "required": ["context", "secret"],
            "properties": {"context": {"$ref": "#/components/schemas/Context"}, "secret": {"type": "string"}},
        },
    }


def operation(data: Any, answer: Any | None = None, **extra: Any) -> dict[str, Any]:
    """A POST whose body is allOf [Envelope, {data}] and whose 200 is {data: answer}."""
    return {
        "summary": "List",
        "requestBody": {"content": {"application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/Envelope"},
            {"type": "object", "required": ["data"], "properties": {"data": data}},
        ]}}}},
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
            "type": "object", "required": ["data"], "properties": {"data": answer or {"type": "object"}},
        }}}}},
        **extra,
    }


def document(paths: dict[str, Any], schemas: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "test", "version": "1"},
        "paths": paths,
        "components": {"schemas": {**envelope_components(), **(schemas or {})}},
        **top,
    }


def one(data: Any, answer: Any | None = None, schemas: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return document({f"/{ACTION}": {"post": operation(data, answer, **extra)}}, schemas)


def write(root: Path, name: str, doc: Any) -> Path:
    folder = root / "openapi"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False) if name.endswith((".yaml", ".yml")) else json.dumps(doc))
    return path


def imported(doc: Any) -> tuple[dict[str, Any], list[Problem], list[Problem]]:
    specs, errors, warnings = import_document(doc, "x.json")
    return {s.name: s for s in specs}, errors, warnings


def where(problems: list[Problem]) -> dict[str, str]:
    return {p.pointer: p.message for p in problems}


def compiled(tmp_path: Path, doc: Any, name: str = "x.json") -> Catalogue:
    root = tmp_path / "cat"
    write(root, name, doc)
    return load_catalogue(root)


def ok_body(data: Any) -> dict[str, Any]:
    return {
        "context": {"issuedAt": "2026-03-01T10:00:00Z", "action": ACTION, "community": "c", "version": 1,
                    "requester": "r", "requestId": "q"},
        "secret": "s",
        "data": data,
    }


# ---- the happy path: refs, allOf, nesting, recursion ---------------------------------------

def test_allof_context_with_nested_and_recursive_refs(tmp_path: Path) -> None:
    schemas = {
        "Node": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        }},
        "Tree": {"type": "object", "required": ["root"], "properties": {"root": {"$ref": "#/components/schemas/Node"}}},
        "Unused": {"type": "string"},
    }
    catalogue = compiled(tmp_path, one({"$ref": "#/components/schemas/Tree"}, schemas=schemas))
    action = catalogue.actions[ACTION]
    assert action.source.endswith(f"x.json#{P}")
    assert action.title == "List"
    version = action.versions[1]
    definitions = version.request_schema["definitions"]
    assert set(definitions) == {"Context", "Envelope", "Node", "Tree"}  # pruned to the reachable ones
    assert "components" not in json.dumps(version.request_schema)
    deep = {"root": {"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}}
    assert version.validate_request(ok_body(deep)) == ()
    bad = copy.deepcopy(deep)
    bad["root"]["children"][0]["children"][0]["name"] = ""
    issues = version.validate_request(ok_body(bad))
    assert [i.pointer for i in issues] == ["/data/root/children/0/children/0/name"]
    no_context = ok_body(deep)
    del no_context["context"]
    assert version.validate_request(no_context)
    assert catalogue.warnings == ()


def test_request_bodies_and_responses_refs_and_media_types(tmp_path: Path) -> None:
    doc = document({f"/{ACTION}": {"post": {
        "requestBody": {"$ref": "#/components/requestBodies/Body"},
        "responses": {"200": {"$ref": "#/components/responses/Answer"}},
    }}})
    doc["components"]["requestBodies"] = {"Body": {"content": {"application/json; charset=utf-8": {
        "schema": {"$ref": "#/components/schemas/Envelope"}}}}}
    doc["components"]["responses"] = {"Answer": {"description": "a", "content": {
        "application/problem+json": {"schema": {"type": "object", "required": ["ok"]}}}}}
    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert version.validate_request(ok_body(None)) == ()
    assert version.validate_response({"ok": 1}) == ()
    assert version.validate_response({})


# ---- OpenAPI 3.0 Schema Objects --------------------------------------------------------------

def test_nullable_forms(tmp_path: Path) -> None:
    data = {"type": "object", "properties": {
        "plain": {"type": "string", "nullable": True},
        "notNull": {"type": "string", "nullable": False},
        "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
        "ref": {"$ref": "#/components/schemas/Code", "nullable": True},
        "mixed": {"allOf": [{"$ref": "#/components/schemas/Code"}], "nullable": True},
        "swagger": {"type": "integer", "x-nullable": True},
    }}
    doc = one(data, schemas={"Code": {"type": "string", "pattern": "^[A-Z]+$"}})
    specs, errors, warnings = imported(doc)
    assert errors == []
    props = specs[ACTION].versions[1].request["allOf"][1]["properties"]["data"]["properties"]
    assert props["plain"]["type"] == ["string", "null"]
    assert props["notNull"] == {"type": "string"}
    assert props["kind"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert props["ref"] == {"anyOf": [{"$ref": "#/definitions/Code"}, {"type": "null"}]}
    assert props["swagger"]["type"] == ["integer", "null"]
    at = f"{REQ}/allOf/1/properties/data/properties"
    messages = where(warnings)
    assert "enum that lacks null" in messages[f"{at}/kind/nullable"]
    assert "beside $ref" in messages[f"{at}/ref/nullable"]
    assert "without type" in messages[f"{at}/mixed/nullable"]
    assert "Swagger 2.0" in messages[f"{at}/swagger/x-nullable"]
    assert f"{at}/plain/nullable" not in messages  # the plain form changes nothing: no warning
    assert all(w.message.startswith(ACTION + ": ") and w.source == "x.json" for w in warnings)

    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    for key in ("plain", "kind", "ref", "mixed", "swagger"):
        assert version.validate_request(ok_body({key: None})) == (), key
    assert version.validate_request(ok_body({"notNull": None}))
    assert version.validate_request(ok_body({"kind": "c"}))
    assert version.validate_request(ok_body({"ref": "abc"}))
    assert version.validate_request(ok_body({"mixed": "ABC"})) == ()


def test_nullable_must_be_boolean() -> None:
    _, errors, _ = imported(one({"type": "string", "nullable": "yes"}))
    assert where(errors) == {f"{REQ}/allOf/1/properties/data/nullable": f"{ACTION}: nullable must be true or false"}


def test_annotations_dropped_or_kept_without_warnings() -> None:
    data = {
        "type": "object", "example": {"a": 1}, "examples": {"one": {"value": {"a": 1}}},
        "xml": {"name": "d"}, "externalDocs": {"url": "https://example.org"}, "x-internal": True,
        "deprecated": True, "description": "d", "title": "t",
        "properties": {"a": {"type": "integer", "example": 3, "x-order": 1}},
    }
    specs, errors, warnings = imported(one(data))
    assert errors == [] and warnings == []
    out = specs[ACTION].versions[1].request["allOf"][1]["properties"]["data"]
    assert out == {"type": "object", "deprecated": True, "description": "d", "title": "t",
                   "properties": {"a": {"type": "integer", "examples": [3]}}, "examples": [{"a": 1}]}


def test_read_only_and_write_only_in_required(tmp_path: Path) -> None:
    schemas = {"Grade": {"type": "object", "required": ["id", "score", "pin"], "properties": {
        "id": {"type": "string", "readOnly": True},
        "score": {"type": "number"},
        "pin": {"$ref": "#/components/schemas/Pin"},
    }}, "Pin": {"type": "string", "writeOnly": True}}
    doc = one({"$ref": "#/components/schemas/Grade"}, {"$ref": "#/components/schemas/Grade"}, schemas=schemas)
    specs, errors, warnings = imported(doc)
    assert errors == [] and warnings == []
    version = specs[ACTION].versions[1]
    assert version.request["definitions"]["Grade"]["required"] == ["score", "pin"]  # readOnly: response only
    assert version.response["definitions"]["Grade"]["required"] == ["id", "score"]  # writeOnly: request only
    compiled_version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert compiled_version.validate_request(ok_body({"score": 7, "pin": "1234"})) == ()
    assert compiled_version.validate_response({"data": {"id": "g1", "score": 7}}) == ()
    assert compiled_version.validate_response({"data": {"score": 7}})


def test_number_formats(tmp_path: Path) -> None:
    data = {"type": "object", "properties": {
        "small": {"type": "integer", "format": "int32"},
        "big": {"type": "integer", "format": "int64", "minimum": 0},
        "count": {"type": "number", "format": "int32"},
        "ratio": {"type": "number", "format": "double"},
        "weight": {"type": "number", "format": "float"},
        "id": {"type": "string", "format": "uuid"},
        "blob": {"type": "string", "format": "byte"},
        "cpf": {"type": "string", "format": "cpf"},
        "when": {"type": "string", "format": "date-time"},
    }}
    doc = one(data)
    specs, errors, warnings = imported(doc)
    assert errors == []
    props = specs[ACTION].versions[1].request["allOf"][1]["properties"]["data"]["properties"]
    assert props["small"] == {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert props["big"]["minimum"] == 0 and props["big"]["maximum"] == 2**63 - 1
    assert props["count"]["type"] == "integer"
    assert props["ratio"] == {"type": "number", "format": "double"}
    at = f"{REQ}/allOf/1/properties/data/properties"
    assert set(where(warnings)) == {f"{at}/count/format", f"{at}/cpf/format"}
    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert version.validate_request(ok_body({"small": 2**31 - 1, "big": 2**40, "ratio": 0.5, "weight": 1})) == ()
    assert [i.pointer for i in version.validate_request(ok_body({"small": 2**31}))] == ["/data/small"]
    assert version.validate_request(ok_body({"count": 1.5}))
    assert version.validate_request(ok_body({"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "blob": "aGk="})) == ()
    assert version.validate_request(ok_body({"id": "nope"}))
    assert version.validate_request(ok_body({"blob": "not base64!"}))
    assert version.validate_request(ok_body({"cpf": "anything"})) == ()


def test_exclusive_bounds_and_property_required_flags(tmp_path: Path) -> None:
    data = {"type": "object", "properties": {
        "score": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 10,
                  "exclusiveMaximum": False},
        "name": {"type": "string", "required": True},
    }}
    doc = one(data)
    specs, errors, warnings = imported(doc)
    assert errors == []
    out = specs[ACTION].versions[1].request["allOf"][1]["properties"]["data"]
    assert out["properties"]["score"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 10}
    assert out["required"] == ["name"] and "required" not in out["properties"]["name"]
    assert set(where(warnings)) == {f"{REQ}/allOf/1/properties/data/properties/name/required"}
    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert version.validate_request(ok_body({"name": "x", "score": 10})) == ()
    assert version.validate_request(ok_body({"name": "x", "score": 0}))
    assert version.validate_request(ok_body({"score": 1}))


def test_discriminator(tmp_path: Path) -> None:
    schemas = {
        "Cat": {"type": "object", "required": ["kind", "meows"], "properties": {
            "kind": {"type": "string", "enum": ["cat"]}, "meows": {"type": "boolean"}}},
        "Dog": {"type": "object", "required": ["kind", "barks"], "properties": {
            "kind": {"type": "string", "enum": ["dog"]}, "barks": {"type": "boolean"}}},
        "Pet": {"type": "object", "discriminator": {"propertyName": "kind"}, "required": ["kind"],
                "properties": {"kind": {"type": "string"}}},
    }
    data = {"type": "object", "properties": {
        "pet": {"oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                "discriminator": {"propertyName": "kind", "mapping": {"cat": "#/components/schemas/Cat"}}},
        "base": {"$ref": "#/components/schemas/Pet"},
    }}
    doc = one(data, schemas=schemas)
    specs, errors, warnings = imported(doc)
    assert errors == []
    assert where(warnings) == {"/components/schemas/Pet/discriminator": (
        f"{ACTION}: discriminator without oneOf/anyOf is dropped: the subtypes it names are not checked")}
    assert "discriminator" not in json.dumps(specs[ACTION].versions[1].request)
    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert version.validate_request(ok_body({"pet": {"kind": "dog", "barks": True}})) == ()
    assert version.validate_request(ok_body({"pet": {"kind": "dog", "meows": True}}))


def test_tuple_items_and_unknown_types(tmp_path: Path) -> None:
    data = {"type": "object", "properties": {
        "one": {"type": "array", "items": [{"type": "string"}]},
        "two": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
        "count": {"type": "int"},
        "name": {"type": "String"},
    }}
    doc = one(data)
    specs, errors, warnings = imported(doc)
    assert errors == []
    at = f"{REQ}/allOf/1/properties/data/properties"
    messages = where(warnings)
    assert "read as the schema of every item" in messages[f"{at}/one/items"]
    assert "anyOf" in messages[f"{at}/two/items"]
    assert "read as 'integer'" in messages[f"{at}/count/type"]
    assert "read as 'string'" in messages[f"{at}/name/type"]
    version = compiled(tmp_path, doc).actions[ACTION].versions[1]
    assert version.validate_request(ok_body({"one": ["a", "b"], "two": ["a", 1], "count": 2, "name": "n"})) == ()
    assert [i.pointer for i in version.validate_request(ok_body({"one": ["a", 2]}))] == ["/data/one/1"]
    assert version.validate_request(ok_body({"two": [True]}))
    assert version.validate_request(ok_body({"count": "2"}))

    _, errors, _ = imported(one({"type": "datetime"}))
    assert where(errors) == {f"{REQ}/allOf/1/properties/data/type": (
        f"{ACTION}: unknown type 'datetime' (one of array, boolean, integer, null, number, object, string)")}


def test_unknown_keywords_and_ref_siblings_warn() -> None:
    data = {"type": "object", "properties": {
        "limit": {"type": "integer", "minimun": 1},
        "code": {"$ref": "#/components/schemas/Envelope", "maxLength": 3, "description": "kept"},
    }}
    specs, errors, warnings = imported(one(data))
    assert errors == []
    at = f"{REQ}/allOf/1/properties/data/properties"
    messages = where(warnings)
    assert "unknown keyword 'minimun'" in messages[f"{at}/limit/minimun"]
    assert "maxLength beside $ref ignored" in messages[f"{at}/code"]
    code = specs[ACTION].versions[1].request["allOf"][1]["properties"]["data"]["properties"]["code"]
    assert code == {"$ref": "#/definitions/Envelope"}


def test_shared_component_warning_names_every_action() -> None:
    schemas = {"Loose": {"type": "object", "properties": {"n": {"type": "int"}}}}
    paths = {f"/@a:B:{n}": {"post": operation({"$ref": "#/components/schemas/Loose"})} for n in ("one", "two")}
    _, errors, warnings = imported(document(paths, schemas))
    assert errors == []
    assert [str(w) for w in warnings] == [
        "x.json#/components/schemas/Loose/properties/n/type: @a:B:one, @a:B:two: type 'int' is not a JSON "
        "type: read as 'integer'"]


# ---- operations, versions, extensions ------------------------------------------------------

def test_versions_enforce_and_idempotent(tmp_path: Path) -> None:
    paths = {
        "/@a:B:many": {"post": operation({"type": "object"}, **{"x-versions": [2, 1],
                                                                   "x-enforce": {"response": "report"},
                                                                   "x-idempotent": True})},
        "/@a:B:single": {"post": operation({"type": "object"}, **{"x-version": 3})},
        "/@a:B:default": {"post": operation({"type": "object"})},
    }
    catalogue = compiled(tmp_path, document(paths, **{"x-version": 4}))
    many = catalogue.actions["@a:B:many"]
    assert sorted(many.versions) == [1, 2] and many.idempotent
    assert many.versions[2].enforce_response == "report" and many.versions[2].enforce_request == "strict"
    assert sorted(catalogue.actions["@a:B:single"].versions) == [3]
    assert sorted(catalogue.actions["@a:B:default"].versions) == [4]
    assert not catalogue.actions["@a:B:default"].idempotent


@pytest.mark.parametrize(("extra", "pointer", "message"), [
    ({"x-versions": [1, 0]}, f"{P}/x-versions", "must be a positive integer or a non-empty list of them"),
    ({"x-versions": [1, 1]}, f"{P}/x-versions", "lists a version twice"),
    ({"x-version": "2"}, f"{P}/x-version", "must be a positive integer or a non-empty list of them"),
    ({"x-enforce": {"request": "loose"}}, f"{P}/x-enforce/request", "must be 'strict' or 'report'"),
    ({"x-idempotent": "yes"}, f"{P}/x-idempotent", "must be true or false"),
])
def test_bad_extensions_are_errors(extra: dict[str, Any], pointer: str, message: str) -> None:
    specs, errors, _ = imported(one({"type": "object"}, **extra))
    assert specs == {}
    assert where(errors) == {pointer: f"{ACTION}: {message}"}


def test_operation_errors_name_action_and_pointer() -> None:
    external = operation({"$ref": "common.yaml#/components/schemas/Data"})
    missing = operation({"$ref": "#/components/schemas/Nope"})
    elsewhere = operation({"$ref": "#/paths/x"})
    paths = {f"/@a:B:{n}": {"post": o} for n, o in [("external", external), ("missing", missing),
                                                   ("elsewhere", elsewhere)]}
    specs, errors, _ = imported(document(paths))
    assert specs == {}
    data = "requestBody/content/application~1json/schema/allOf/1/properties/data/$ref"
    assert where(errors) == {
        f"/paths/~1@a:B:external/post/{data}": (
            "@a:B:external: external reference 'common.yaml#/components/schemas/Data' refused (nothing is "
            "fetched): copy the schema into components/schemas"),
        f"/paths/~1@a:B:missing/post/{data}": "@a:B:missing: no schema 'Nope' in components/schemas",
        f"/paths/~1@a:B:elsewhere/post/{data}": (
            "@a:B:elsewhere: reference '#/paths/x' refused: only #/components/schemas/... is supported in schemas"),
    }


def test_other_2xx_parameters_and_skipped_paths_warn() -> None:
    op = operation({"type": "object"}, parameters=[{"name": "q", "in": "query", "schema": {"type": "string"}}])
    op["responses"] = {"201": op["responses"]["200"]}
    paths = {
        f"/{ACTION}": {"post": op},
        "/health": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/users/{id}": {"post": operation({"type": "object"})},
    }
    specs, errors, warnings = imported(document(paths))
    assert errors == [] and list(specs) == [ACTION]
    assert where(warnings) == {
        f"{P}/parameters": f"{ACTION}: parameters are ignored: the hub forwards only the JSON body",
        f"{P}/responses/201": f"{ACTION}: no '200' response: the '201' one is used (the hub answers 200)",
        "/paths/~1health": "no POST operation (get): not an action, skipped",
        "/paths/~1users~1{id}": ("not of the form /{action}: skipped (an action name has no '/', '?', '#', "
                                 "'{' or surrounding spaces)"),
    }


@pytest.mark.parametrize(("doc", "pointer", "message"), [
    ({"swagger": "2.0", "paths": {}}, "/swagger", "Swagger 2.0 is not supported"),
    ({"openapi": "3.1.0", "paths": {}}, "/openapi", "must be an OpenAPI 3.0.x version string"),
    ({"openapi": "3.0.0"}, "/paths", "must be an object"),
    ([], "", "an OpenAPI document must be an object"),
])
def test_documents_refused(doc: Any, pointer: str, message: str) -> None:
    _, errors, _ = imported(doc)
    assert len(errors) == 1 and errors[0].pointer == pointer and message in errors[0].message


def test_invalid_converted_schema_points_into_the_document(tmp_path: Path) -> None:
    doc = one({"$ref": "#/components/schemas/Bad"}, schemas={"Bad": {"type": "string", "minLength": "3"}})
    root = tmp_path / "cat"
    write(root, "x.json", doc)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(root)
    [problem] = caught.value.problems
    assert problem.source == str(root / "openapi" / "x.json")
    assert problem.pointer == "/components/schemas/Bad/minLength"
    assert problem.message.startswith(f"{ACTION}: not a valid draft-07 schema")


# ---- files: YAML, conflicts, merging -------------------------------------------------------

def test_yaml_integer_keys_and_unquoted_dates(tmp_path: Path) -> None:
    text = f"""
openapi: 3.0.3
info: {{title: t, version: '1'}}
paths:
  /{ACTION}:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                from: {{type: string, format: date, enum: [2026-03-01, 2026-03-02]}}
      responses:
        200:
          description: ok
          content:
            application/json:
              schema: {{type: object}}
"""
    folder = tmp_path / "cat" / "openapi"
    folder.mkdir(parents=True)
    (folder / "x.yml").write_text(text)
    catalogue = load_catalogue(tmp_path / "cat")
    version = catalogue.actions[ACTION].versions[1]
    assert version.request_schema["properties"]["from"]["enum"] == ["2026-03-01", "2026-03-02"]
    assert version.validate_request({"from": "2026-03-01"}) == ()


def test_unreadable_documents_are_errors(tmp_path: Path) -> None:
    folder = tmp_path / "cat" / "openapi"
    folder.mkdir(parents=True)
    (folder / "a.json").write_text("{nope")
    (folder / "b.yaml").write_text("a: [1, 2\n")
    (folder / "c.yaml").write_text("a: !!set {x, y}\n")
    (folder / "notes.txt").write_text("ignored: not .json/.yaml/.yml")
    _, errors, _ = read_sources(tmp_path / "cat")
    assert [(Path(p.source).name, p.pointer) for p in errors] == [("a.json", ""), ("b.yaml", ""), ("c.yaml", "/a")]
    assert "not valid JSON" in errors[0].message and "not valid YAML" in errors[1].message
    assert "no JSON equivalent" in errors[2].message


def test_same_action_in_action_file_and_openapi_is_an_error(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path / "cat", [echo_action(ACTION)], [])
    path = write(root, "roster.json", one({"type": "object"}))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(root)
    [problem] = caught.value.problems
    message = str(problem)
    assert "defined twice" in message
    assert "school-roster-list.json" in message and f"{path}#{P}" in message


def test_same_version_in_two_documents_is_an_error_and_other_versions_merge(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    first = write(root, "v1.json", one({"type": "object"}))
    second = write(root, "v2.yaml", one({"type": "object", "required": ["label"]}, **{"x-version": 2}))
    catalogue = load_catalogue(root)
    action = catalogue.actions[ACTION]
    assert sorted(action.versions) == [1, 2]
    assert action.source == f"{first}#{P} + {second}#{P}"
    assert action.versions[1].validate_request(ok_body({})) == ()
    assert action.versions[2].validate_request(ok_body({}))

    third = write(root, "v2-again.json", one({"type": "object"}, **{"x-version": 2}))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(root)
    [problem] = caught.value.problems
    assert problem.source == str(second) and problem.pointer == P
    assert f"version 2 is defined twice: here and in {third}#{P}" in problem.message


def test_shipped_openapi_catalogue_loads_without_warnings() -> None:
    catalogue = load_catalogue(ROOT / "catalogue")
    action = catalogue.actions["@layers:Attendance:getAbsences"]
    assert action.source.endswith("attendance.yaml#/paths/~1@layers:Attendance:getAbsences/post")
    assert action.idempotent
    assert catalogue.warnings == ()


# ---- end to end ------------------------------------------------------------------------------

async def test_hub_serves_a_call_from_an_openapi_only_catalogue(
    tmp_path: Path, aiohttp_client: Any, provider: Provider,
) -> None:
    answer = {"type": "object", "required": ["echo"], "properties": {"echo": {
        "type": "object", "required": ["value"], "properties": {"value": {"type": "integer"}}}}}
    data = {"type": "object", "required": ["value"], "additionalProperties": False,
            "properties": {"value": {"type": "integer", "format": "int32", "minimum": 0},
                           "note": {"type": "string", "nullable": True}}}
    root = write_catalogue(
        tmp_path / "catalogue", [],
        [provider_manifest("provider-app", provider.url, actions={ACTION: [1]}),
         consumer_manifest(consumes=(ACTION,))],
    )
    write(root, "roster.yaml", one(data, answer))
    hub = await aiohttp_client(create_app(make_config(root)))
    url = f"/v1/services/call/{ACTION}/provider-app"
    r = await hub.post(url, json={"data": {"value": 7, "note": None}}, headers=call_headers())
    assert r.status == 200, await r.text()
    assert await r.json() == {"data": {"echo": {"value": 7, "note": None}}}
    sent = provider.last_body()
    assert sent["context"]["action"] == ACTION and sent["context"]["version"] == 1
    r = await hub.post(url, json={"data": {"value": 2**31}}, headers=call_headers())
    assert r.status == 400
    assert [e["path"] for e in (await r.json())["errors"]] == ["/data/value"]


def test_yaml_integers_beyond_64_bits_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cat" / "openapi"
    folder.mkdir(parents=True)
    (folder / "x.yaml").write_text("openapi: 3.0.3\npaths: {}\nx-big: 123456789012345678901234567890\n")
    _, errors, _ = read_sources(tmp_path / "cat")
    assert [(p.pointer, p.message) for p in errors] == [
        ("/x-big", "integer out of the 64-bit range the hub handles")]


def test_bad_document_default_version_points_at_the_top() -> None:
    doc = one({"type": "object"})
    doc["x-version"] = 0
    _, errors, _ = imported(doc)
    assert where(errors) == {"/x-version": f"{ACTION}: must be a positive integer or a non-empty list of them"}


def test_path_item_references_within_the_document() -> None:
    """A Path Item may be a `$ref` to another in the same document: read there,
    named after its own path. One that cannot be followed is a warning, not
    an error that would reject the whole catalogue."""
    paths = {
        "/@a:B:source": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/@a:B:posted": {"post": operation({"type": "object"})},
        "/@a:B:alias": {"$ref": "#/paths/~1@a:B:posted"},
        "/@a:B:to-get": {"$ref": "#/paths/~1@a:B:source"},
        "/@a:B:away": {"$ref": "other.yaml#/paths/~1x"},
        "/@a:B:chained": {"$ref": "#/paths/~1@a:B:alias"},
    }
    specs, errors, warnings = imported(document(paths))
    assert errors == []
    assert sorted(specs) == ["@a:B:alias", "@a:B:posted"]
    assert specs["@a:B:alias"].versions[1].request == specs["@a:B:posted"].versions[1].request
    skipped = where(warnings)
    assert "/paths/~1@a:B:to-get" in skipped and "no POST operation" in skipped["/paths/~1@a:B:to-get"]
    for name in ("away", "chained"):
        assert "Path Item reference" in skipped[f"/paths/~1@a:B:{name}/$ref"]
