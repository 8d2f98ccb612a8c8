"""GET /v1/openapi.json: a valid OpenAPI 3.1 document (openapi-spec-validator)
whose schemas, read with a JSON Schema 2020-12 validator, accept and reject
what the hub itself accepts and rejects; hub-owned keys removed; draft
conversions; namespacing; caching per catalogue generation and reloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from proxy.catalogue import load_catalogue
from proxy.pipeline.outcomes import OUTCOMES
from proxy.web.openapi import OPENAPI_CACHE, build_document, strip_hub_owned, to_2020_12
from proxy.web.state import HUB

from tests.conftest import HubFactory, Provider
from tests.support import (
    CONTEXT_SCHEMA,
    ECHO,
    ROOT,
    call_headers,
    consumer_manifest,
    echo_action,
    provider_manifest,
    write_catalogue,
)

CALL_PATH = f"/v1/services/call/{ECHO}/{{provider}}"
BASE = "urn:apihub:openapi"


def validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A 2020-12 validator for the schema at `pointer` in the document, refs resolved in it."""
    registry = Registry().with_resource(BASE, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{BASE}#{pointer}"}, registry=registry)


def body_pointer(path: str) -> str:
    return "/paths/" + path.replace("~", "~0").replace("/", "~1") + "/post/requestBody/content/application~1json/schema"


def answer_pointer(path: str) -> str:
    return "/paths/" + path.replace("~", "~0").replace("/", "~1") + "/post/responses/200/content/application~1json/schema"


async def fetch(client: Any, **headers: str) -> tuple[Any, dict[str, Any] | None]:
    r = await client.get("/v1/openapi.json", headers=headers)
    raw = await r.read()
    return r, (orjson.loads(raw) if raw else None)


async def fetch_version(client: Any, version: str) -> tuple[Any, dict[str, Any] | None]:
    r = await client.get("/v1/openapi.json", params={"version": version})
    raw = await r.read()
    return r, (orjson.loads(raw) if raw else None)


async def test_document_is_valid_public_and_round_trips_through_the_hub(hub: Any, provider: Provider) -> None:
    r, doc = await fetch(hub)  # no Authorization, no community: public documentation
    assert r.status == 200 and r.content_type == "application/json"
    assert doc is not None
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    operation = doc["paths"][CALL_PATH]["post"]
    params = {p.get("name") or p["$ref"].rsplit("/", 1)[1]: p for p in operation["parameters"]}
    # Two versions: this document is v2's, what a call without ?version= gets.
    assert set(params) == {"provider", "timeout", "communityId", "requestId"}
    assert params["provider"]["in"] == "path"
    assert doc["components"]["parameters"]["communityId"]["name"] == "community-id"
    assert "pattern" not in doc["components"]["parameters"]["requestId"]["schema"]  # never refused
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert doc["security"] == [{"bearerAuth": []}]

    body = validator(doc, body_pointer(CALL_PATH))
    answer = validator(doc, answer_pointer(CALL_PATH))
    good, bad, v1_only = {"data": {"value": 3, "label": "x"}}, {"data": {"value": -1}}, {"data": {"value": 3}}
    assert body.is_valid(good) and not body.is_valid(bad) and not body.is_valid(v1_only)
    assert not body.is_valid({"context": {}, "secret": "s"})  # data is still required
    # The hub agrees with the document, both ways.
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=good, headers=call_headers())
    assert r.status == 200
    assert answer.is_valid(await r.json())
    assert not answer.is_valid({"data": {}})
    for refused in (bad, v1_only):
        r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=refused, headers=call_headers())
        assert r.status == 400
    problem = await r.json()
    error_schema = validator(doc, "/components/responses/" + operation["responses"]["400"]["$ref"].rsplit("/", 1)[1]
                             + "/content/application~1problem+json/schema")
    assert error_schema.is_valid(problem)
    assert not error_schema.is_valid({**problem, "code": "provider_timeout"})


async def test_version_document_is_exact_for_its_version(hub: Any, provider: Provider) -> None:
    """?version=1: the body v1 accepts (and v2 refuses) is valid, with `version` required."""
    r, doc = await fetch_version(hub, "1")
    assert r.status == 200 and doc is not None
    validate(doc)
    operation = doc["paths"][CALL_PATH]["post"]
    version = next(p for p in operation["parameters"] if p.get("name") == "version")
    assert version["required"] is True and version["schema"]["enum"] == [1]
    body = validator(doc, body_pointer(CALL_PATH))
    v1_only = {"data": {"value": 3}}
    assert body.is_valid(v1_only) and not body.is_valid({"data": {"value": -1}})
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app?version=1", json=v1_only, headers=call_headers())
    assert r.status == 200
    assert validator(doc, answer_pointer(CALL_PATH)).is_valid(await r.json())
    for query, status, code in (("3", 404, "unsupported_version"), ("x", 400, "invalid_parameter")):
        r, problem = await fetch_version(hub, query)
        assert (r.status, problem and problem["code"]) == (status, code)


async def test_fanout_is_described_and_round_trips(hub: Any, provider: Provider) -> None:
    _, doc = await fetch(hub)
    assert doc is not None
    path = f"/v1/services/call/{ECHO}"
    operation = doc["paths"][path]["post"]
    assert "provider" not in {p.get("name") for p in operation["parameters"]}
    r = await hub.post(path, json={"data": {"value": 3, "label": "x"}}, headers=call_headers())
    assert r.status == 200
    results = await r.json()
    assert results["results"] and validator(doc, answer_pointer(path)).is_valid(results)
    assert not validator(doc, answer_pointer(path)).is_valid({"results": [{"version": 1}]})


async def test_every_error_code_is_documented(hub: Any) -> None:
    """Each operation documents exactly the status × code pairs of its endpoint's table."""
    _, doc = await fetch(hub)
    assert doc is not None
    codes: dict[str, set[tuple[int, str]]] = {}
    for path, item in doc["paths"].items():
        for op in item.values():
            for status, response in op["responses"].items():
                if status == "200":
                    continue
                target = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                schema = target["content"]["application/problem+json"]["schema"]["allOf"][1]
                assert schema["properties"]["status"]["const"] == int(status)
                codes.setdefault(path, set()).update((int(status), c) for c in schema["properties"]["code"]["enum"])
    for path, kind in ((CALL_PATH, "call"), (f"/v1/services/call/{ECHO}", "fanout"),
                       ("/v1/services/discover/{action}", "discover")):
        assert codes[path] == {(e.status, e.code) for e in OUTCOMES[kind]}, kind
    assert {(404, "unsupported_version"), (429, "rate_limited"), (503, "hub_overloaded"),
            (503, "shutting_down"), (431, "request_too_large"), (408, "request_timeout"),
            (413, "payload_too_large"), (415, "unsupported_media_type")} <= codes[CALL_PATH]
    assert (404, "unsupported_version") in codes["/v1/services/discover/{action}"]
    discover = doc["paths"]["/v1/services/discover/{action}"]["get"]
    assert discover["parameters"][0]["schema"]["enum"] == [ECHO]


async def test_cached_per_generation_and_follows_reloads(make_hub: HubFactory, tmp_path: Path) -> None:
    client = await make_hub()
    first, doc = await fetch(client)
    assert doc is not None
    assert list(doc["paths"]) == [CALL_PATH, f"/v1/services/call/{ECHO}", "/v1/services/discover/{action}"]
    hub = client.server.app[HUB]
    cached = client.server.app[OPENAPI_CACHE].rendered[None]
    again, _ = await fetch(client)
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.server.app[OPENAPI_CACHE].rendered[None] is cached  # not rebuilt per request
    unchanged, body = await fetch(client, **{"If-None-Match": first.headers["ETag"]})
    assert unchanged.status == 304 and body is None
    anything, body = await fetch(client, **{"If-None-Match": "*"})
    assert anything.status == 304 and body is None

    other = echo_action("@test:Other:run", versions=(1,))
    (tmp_path / "catalogue" / "actions" / "other.json").write_text(json.dumps(other))
    assert await hub.reload()
    after, doc = await fetch(client)
    assert after.headers["ETag"] != first.headers["ETag"]
    assert doc is not None and "/v1/services/call/@test:Other:run/{provider}" in doc["paths"]
    validate(doc)


def test_hub_owned_keys_removed_from_allof_and_refs() -> None:
    envelope = {"type": "object", "description": "hub", "required": ["context", "secret"],
                "properties": {"context": {"$ref": "#/definitions/Context"}, "secret": {"type": "string"}}}
    schema = {
        "allOf": [{"$ref": "#/definitions/Envelope"},
                  {"type": "object", "required": ["data"], "properties": {"data": {"$ref": "#/definitions/Data"}}}],
        "definitions": {"Envelope": envelope, "Context": CONTEXT_SCHEMA, "Data": {"type": "object"}},
    }
    stripped, clean = strip_hub_owned(schema)
    assert clean
    assert stripped == {"type": "object", "required": ["data"], "properties": {"data": {"$ref": "#/definitions/Data"}},
                        "definitions": {"Data": {"type": "object"}}}
    assert schema["definitions"]["Envelope"] == envelope  # the catalogue's schema is untouched

    tangled = {"type": "object", "oneOf": [{"required": ["context"]}, {"required": ["data"]}]}
    same, clean = strip_hub_owned(tangled)
    assert not clean and same == tangled


async def test_unremovable_hub_keys_are_said_so(make_hub: HubFactory) -> None:
    action = echo_action(versions=(1,))
    action["versions"]["1"]["request"]["anyOf"] = [{"required": ["secret"]}, {"required": ["context"]}]
    client = await make_hub(actions=[action])
    _, doc = await fetch(client)
    assert doc is not None
    operation = doc["paths"][CALL_PATH]["post"]
    assert "could not be removed cleanly" in operation["description"]
    validate(doc)


def test_draft_conversions_agree_with_the_hub(tmp_path: Path) -> None:
    """Response schemas in draft-04, draft-07 and 2020-12, each read the same
    by the hub's validator and by a 2020-12 validator on the exported copy."""
    draft07 = {
        "type": "object",
        "properties": {
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False},
            "list": {"type": "array", "items": {"$ref": "#/definitions/Item"}, "additionalItems": False},
            "card": {"type": "object", "dependencies": {"number": ["expiry"], "bonus": {"required": ["code"]}}},
        },
        "definitions": {"Item": {"type": "integer", "minimum": 0}},
    }
    draft04 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
               "properties": {"score": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}}
    draft2020 = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                 "properties": {"pair": {"prefixItems": [{"type": "string"}], "items": False},
                                "item": {"$ref": "#/$defs/Item"}},
                 "$defs": {"Item": {"type": "string", "maxLength": 2}}}
    actions = []
    for name, schema in (("@z:Seven:run", draft07), ("@z:Four:run", draft04), ("@z:Twenty:run", draft2020)):
        action = echo_action(name, versions=(1,))
        action["versions"]["1"]["response"] = schema
        actions.append(action)
    root = write_catalogue(tmp_path / "cat", actions, [])
    catalogue = load_catalogue(root)
    doc = build_document(catalogue)
    validate(doc)
    instances = [
        {}, {"pair": ["a", 1]}, {"pair": ["a", 1, 2]}, {"pair": [1]}, {"pair": ["a"]},
        {"list": [1, 2]}, {"list": [-1]}, {"card": {"number": 1}}, {"card": {"number": 1, "expiry": 2}},
        {"card": {"bonus": 1}}, {"card": {"bonus": 1, "code": 2}}, {"score": 0}, {"score": 0.1},
        {"item": "ab"}, {"item": "abc"},
    ]
    for name in ("@z:Seven:run", "@z:Four:run", "@z:Twenty:run"):
        hub_side = catalogue.actions[name].versions[1].validate_response
        exported = validator(doc, answer_pointer(f"/v1/services/call/{name}/{{provider}}"))
        for instance in instances:
            assert (hub_side(instance) == ()) == exported.is_valid(instance), (name, instance)
    text = json.dumps(doc["components"]["schemas"])
    assert '"definitions"' not in text and '"dependencies"' not in text and '"$schema"' not in text


def test_schemas_with_identifiers_export_as_plain_pointers(tmp_path: Path) -> None:
    """Embedded `$id`s, anchors, a URN base and a reference to the draft's
    meta-schema: the exported copy has only `#/…` references, and reads
    instances as the hub does."""
    urn = {"$id": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed", "type": "object",
           "properties": {"n": {"$ref": "urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed#/definitions/count"},
                          "tag": {"$ref": "#tag"},
                          "node": {"$ref": "http://example.com/tree.json"}},
           "definitions": {"count": {"type": "integer", "minimum": 0},
                           "tag": {"$id": "#tag", "type": "string", "maxLength": 3},
                           "tree": {"$id": "http://example.com/tree.json", "type": "object",
                                    "properties": {"kids": {"type": "array", "items": {"$ref": "tree.json"}}}}}}
    meta = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"schema": {"$ref": "http://json-schema.org/draft-07/schema#"}}}
    actions = []
    for name, schema in (("@i:Urn:run", urn), ("@i:Meta:run", meta)):
        action = echo_action(name, versions=(1,))
        action["versions"]["1"]["response"] = schema
        actions.append(action)
    catalogue = load_catalogue(write_catalogue(tmp_path / "cat", actions, []))
    doc = build_document(catalogue)
    validate(doc)
    refs = [ref for ref in json.dumps(doc["components"]["schemas"]).split('"$ref": "')[1:]]
    assert all(ref.startswith("#/") for ref in refs)
    instances = [{}, {"n": 1}, {"n": -1}, {"tag": "abc"}, {"tag": "abcd"}, {"node": {"kids": [{"kids": []}]}},
                 {"node": {"kids": [{"kids": 1}]}}, {"schema": {"minLength": 1}}, {"schema": {"minLength": -1}},
                 {"schema": {"type": "nope"}}]
    for name in ("@i:Urn:run", "@i:Meta:run"):
        hub_side = catalogue.actions[name].versions[1].validate_response
        exported = validator(doc, answer_pointer(f"/v1/services/call/{name}/{{provider}}"))
        for instance in instances:
            assert (hub_side(instance) == ()) == exported.is_valid(instance), (name, instance)


def test_same_definition_names_do_not_clash(tmp_path: Path) -> None:
    actions = []
    for name, kind in (("@n:A:run", "string"), ("@n:B:run", "integer")):
        action = echo_action(name, versions=(1,))
        action["versions"]["1"]["response"] = {"$ref": "#/definitions/Item", "definitions": {"Item": {"type": kind}}}
        actions.append(action)
    doc = build_document(load_catalogue(write_catalogue(tmp_path / "cat", actions, [])))
    validate(doc)
    a = validator(doc, answer_pointer("/v1/services/call/@n:A:run/{provider}"))
    b = validator(doc, answer_pointer("/v1/services/call/@n:B:run/{provider}"))
    assert a.is_valid("x") and not a.is_valid(1)
    assert b.is_valid(1) and not b.is_valid("x")


def test_to_2020_12_rebases_every_local_ref() -> None:
    schema = {"items": {"$ref": "#"}, "properties": {"a": {"$ref": "#/properties/b"}, "b": {"type": "string"}}}
    out = to_2020_12(schema, "#/components/schemas/X")
    assert out["items"] == {"$ref": "#/components/schemas/X"}
    assert out["properties"]["a"] == {"$ref": "#/components/schemas/X/properties/b"}


def test_shipped_catalogue_exports_and_the_openapi_action_round_trips() -> None:
    catalogue = load_catalogue(ROOT / "catalogue")
    doc = build_document(catalogue)
    validate(doc)
    assert "/v1/services/call/@layers:Attendance:getAbsences" in doc["paths"]  # fan-out
    older = build_document(catalogue, 1)
    validate(older)
    calendar = older["paths"]["/v1/services/call/@layers:Calendar:getRelated/{provider}"]["post"]
    assert {"name": "version", "required": True} | {"in": "query"} == {
        k: v for k, v in calendar["parameters"][1].items() if k in ("name", "required", "in")}
    path = "/v1/services/call/@layers:Attendance:getAbsences/{provider}"
    body = validator(doc, body_pointer(path))
    assert body.is_valid({"data": {"studentId": "s-1042", "from": "2026-03-01", "to": "2026-03-31"}})
    assert not body.is_valid({"data": {"studentId": "s-1042", "from": "2026-03-01"}})
    assert not body.is_valid({"data": {"studentId": "", "from": "2026-03-01", "to": "2026-03-31"}})
    request_schema = doc["components"]["schemas"]["layers_Attendance_getAbsences.v1.request"]
    assert "context" not in json.dumps(request_schema) and "$defs" not in request_schema
    answer = validator(doc, answer_pointer(path))
    absence = {"id": "a", "date": "2026-03-02", "period": 1, "kind": "late", "subject": {"code": "MAT", "name": "M"},
               "minutesLate": None, "justification": None}
    totals = {"absences": 0, "lateArrivals": 1, "earlyLeaves": 0, "schoolDays": 1, "attendanceRate": 1}
    good = {"data": {"student": {"id": "s", "name": "S", "classId": None}, "absences": [absence], "totals": totals}}
    assert answer.is_valid(good)
    assert not answer.is_valid({"data": {**good["data"], "absences": [{**absence, "period": 0}]}})


@pytest.mark.parametrize("actions", [[], [echo_action()]])
def test_empty_and_small_catalogues_are_valid(tmp_path: Path, actions: list[dict[str, Any]]) -> None:
    root = write_catalogue(tmp_path / "cat", actions, [provider_manifest("p", "http://127.0.0.1:1/"),
                                                       consumer_manifest()])
    validate(build_document(load_catalogue(root)))


def test_draft07_ref_siblings_stay_ignored() -> None:
    schema = {"properties": {"a": {"$ref": "#/definitions/S", "maxLength": 1}}, "definitions": {"S": {"type": "string"}}}
    out = to_2020_12(schema, "#/components/schemas/X")
    assert out["properties"]["a"] == {"$ref": "#/components/schemas/X/$defs/S"}


def test_a_default_of_a_type_the_schema_refuses_is_dropped(tmp_path: Path) -> None:
    """Published documents write `"type": "string", "default": null`: an
    annotation nothing validates, which OpenAPI validators refuse."""
    action = echo_action(versions=(1,))
    action["versions"]["1"]["response"]["properties"]["data"]["properties"] = {
        "s": {"type": "string", "default": None}, "n": {"type": ["number", "null"], "default": None},
        "i": {"type": "integer", "default": 2.0}, "a": {"type": "array", "default": "x"}}
    root = write_catalogue(tmp_path / "cat", [action], [provider_manifest("p", "http://127.0.0.1:1/"),
                                                        consumer_manifest()])
    doc = build_document(load_catalogue(root))
    validate(doc)
    schema = next(v for k, v in doc["components"]["schemas"].items() if k.endswith(".v1.response"))
    kept = {k: "default" in v for k, v in schema["properties"]["data"]["properties"].items()}
    assert kept == {"s": False, "n": True, "i": True, "a": False}
