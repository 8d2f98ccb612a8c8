"""Request schemas that refuse the hub-owned `context` and `secret`
(catalogue/hubkeys.py): they load with a warning, every call to them is
refused as the warning says, and the hub's OpenAPI document claims no
request valid. Shapes found in published catalogues (GitHub's REST
description has 28 such operations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.catalogue import load_catalogue
from proxy.catalogue.hubkeys import refused_hub_key
from tests.conftest import HubFactory
from tests.support import CONTEXT_SCHEMA, ECHO, call_headers, echo_action, problem

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
CLOSED = {"type": "object", "properties": {"data": {"type": "object"}}, "additionalProperties": False}


@pytest.mark.parametrize(("schema", "why"), [
    (CLOSED, "refuses the hub-owned key `context` (additionalProperties: false, and not among the properties)"),
    ({"type": "object", "properties": {"context": {"type": "string"}}},
     "refuses the hub-owned key `context` (typed string, where the hub sends an object)"),
    ({"properties": {"secret": {"type": ["object", "null"]}}},
     "refuses the hub-owned key `secret` (typed object/null, where the hub sends a string)"),
    ({"oneOf": [{"additionalProperties": False, "properties": {"a": {}}}, {"$ref": "#/definitions/B"}],
      "definitions": {"B": {"additionalProperties": False, "required": ["b"]}}},
     "refuses the hub-owned key `context` (every oneOf branch: additionalProperties: false, and not among "
     "the properties)"),
    ({"allOf": [{"type": "object"}, {"$ref": "#/definitions/Closed"}], "definitions": {"Closed": CLOSED}},
     "refuses the hub-owned key `context` (additionalProperties: false, and not among the properties)"),
])
def test_schemas_that_refuse_every_call(schema: Any, why: str) -> None:
    assert refused_hub_key(schema) == why
    assert refused_hub_key({**schema, "$schema": DRAFT_2020_12}) == why


@pytest.mark.parametrize("schema", [
    {"type": "object"},
    True,
    echo_action()["versions"]["1"]["request"],
    {**CLOSED, "properties": {**CLOSED["properties"], "context": CONTEXT_SCHEMA, "secret": {"type": "string"}}},
    {"additionalProperties": False, "patternProperties": {"^(context|secret|data)$": {}}},
    {"oneOf": [{"additionalProperties": False}, {"type": "object"}]},  # one branch takes them
    {"$ref": "#/definitions/Missing"},  # cannot tell: no warning
    {"$ref": "#/definitions/A", "definitions": {"A": {"$ref": "#/definitions/A"}}},
    # `#` names the embedded resource inside it, not the root: not followed.
    {"$id": "http://example.org/root.json", "allOf": [{"$ref": "#/definitions/B"}], "definitions": {"B": {
        "$id": "http://example.org/b.json", "allOf": [{"$ref": "#/definitions/Open"}],
        "definitions": {"Open": {"type": "object"}}}}, "additionalProperties": True},
])
def test_schemas_that_take_the_hub_keys(schema: Any) -> None:
    assert refused_hub_key(schema) is None


def test_siblings_of_a_ref_count_only_from_2019_09() -> None:
    """Draft-07 ignores what stands beside a `$ref`; 2019-09 and 2020-12 apply it."""
    schema = {"$ref": "#/definitions/Body", "additionalProperties": False, "properties": {"data": {}},
              "definitions": {"Body": {"type": "object"}}}
    assert refused_hub_key(schema) is None
    assert refused_hub_key({**schema, "$schema": DRAFT_2020_12}) is not None


def test_no_false_warning_for_a_schema_the_hub_validates_as_accepting() -> None:
    """Each schema warned about refuses a body carrying the hub's keys when
    compiled and run; each left alone accepts one (with the body it requires)."""
    from proxy.validation import compile_schema

    context = {"issuedAt": "2026-03-01T10:00:00Z", "action": ECHO, "community": "c", "version": 1,
               "requester": "r", "requestId": "q"}
    body = {"context": context, "secret": "s", "data": {}}
    for schema in (CLOSED, {"$ref": "#/definitions/Body", "additionalProperties": False,
                            "definitions": {"Body": {"type": "object"}}}):
        validate, _ = compile_schema(schema)
        assert (refused_hub_key(schema) is not None) == bool(validate(body)), schema


def closed_action() -> dict[str, Any]:
    action = echo_action(versions=(1,))
    action["versions"]["1"]["request"] = CLOSED
    return action


def test_loaded_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "actions").mkdir(parents=True)
    (tmp_path / "actions" / "echo.json").write_text(json.dumps(closed_action()))
    catalogue = load_catalogue(tmp_path)
    assert catalogue.actions[ECHO].versions[1].refuses_calls.startswith("refuses the hub-owned key `context`")
    assert [(w.pointer, w.message) for w in catalogue.warnings] == [(
        "/versions/1/request",
        f"{ECHO} v1 request schema refuses the hub-owned key `context` (additionalProperties: false, and not "
        "among the properties): every call will be refused (400 invalid_request)")]


async def test_every_call_refused_and_the_document_says_so(make_hub: HubFactory) -> None:
    hub = await make_hub(actions=[closed_action()])
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {}}, headers=call_headers())
    doc = await problem(r, 400, "invalid_request")
    assert {"path": "/context", "message": "is not allowed here"} in doc["errors"]
    document = await (await hub.get("/v1/openapi.json")).json()
    operation = document["paths"][f"/v1/services/call/{ECHO}/{{provider}}"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert request["not"] == {} and "refuses the hub-owned key `context`" in request["description"]
    assert "every call is refused" in operation["description"]
