"""OpenAPI import: every way a published 3.0 document describes (or does not
describe) an operation's bodies. Each case with a sensible reading loads,
with a warning naming its pointer; only a malformed document is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.catalogue import load_catalogue

from .test_openapi_import import ACTION, P, document, imported, ok_body, operation, where, write

ACK = "the answer is not described: the hub relays it as the provider sends it if it is empty or JSON " \
      "(within [limits] max_response_bytes)"
ANY_OBJECT = "the request is not described: any JSON object is accepted"


def with_responses(responses: dict[str, Any], components: dict[str, Any] | None = None) -> dict[str, Any]:
    op = operation({"type": "object"})
    op["responses"] = responses
    doc = document({f"/{ACTION}": {"post": op}})
    doc["components"].update(components or {})
    return doc


@pytest.mark.parametrize(("responses", "components", "warned"), [
    # An acknowledgement: a 200 with a description and no content
    ({"200": {"description": "accepted"}}, {},
     [(f"{P}/responses/200", f"response '200' describes no body: {ACK}")]),
    # ... behind a $ref: the warning points where the response is written
    ({"200": {"$ref": "#/components/responses/Ack"}}, {"responses": {"Ack": {"description": "accepted"}}},
     [("/components/responses/Ack", f"response '200' describes no body: {ACK}")]),
    # JSON content without a schema
    ({"200": {"description": "ok", "content": {"application/json": {}}}}, {},
     [(f"{P}/responses/200/content/application~1json", f"response '200' has no schema: {ACK}")]),
    # a 204
    ({"204": {"description": "done"}}, {},
     [(f"{P}/responses/204", "no '200' response: the '204' one is used (the hub answers 200)"),
      (f"{P}/responses/204", f"response '204' describes no body: {ACK}")]),
    # only error responses
    ({"400": {"description": "bad"}}, {},
     [(f"{P}/responses", f"no 2xx or default response: {ACK}")]),
])
def test_answers_without_a_body_load_undescribed(responses: dict[str, Any], components: dict[str, Any],
                                                 warned: list[tuple[str, str]]) -> None:
    specs, errors, warnings = imported(with_responses(responses, components))
    assert errors == []
    assert specs[ACTION].versions[1].response is None
    assert [(w.pointer, w.message) for w in warnings] == [(p, f"{ACTION}: {m}") for p, m in warned]


def test_an_undescribed_answer_compiles_to_accept_any_json(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    write(root, "x.json", with_responses({"200": {"description": "accepted"}}))
    catalogue = load_catalogue(root)
    version = catalogue.actions[ACTION].versions[1]
    assert not version.answer_described and version.response_schema is None
    assert version.engines == ("fastjsonschema", "")
    assert version.validate_response({"anything": [1, 2]}) == () and version.validate_response(None) == ()
    assert [str(w) for w in catalogue.warnings] == [f"{root}/openapi/x.json#{P}/responses/200: "
                                                    f"{ACTION}: response '200' describes no body: {ACK}"]


@pytest.mark.parametrize(("responses", "used", "warned"), [
    # `default` is the answer when there is no 2xx
    ({"default": {"description": "the result", "content": {"application/json": {"schema": {"required": ["n"]}}}},
      "400": {"description": "bad"}}, "default",
     {f"{P}/responses/default": f"{ACTION}: no '200' response: the 'default' one is used (the hub answers 200)"}),
    # a 2XX range
    ({"2XX": {"description": "ok", "content": {"application/json": {"schema": {"required": ["n"]}}}}}, "2XX",
     {f"{P}/responses/2XX": f"{ACTION}: no '200' response: the '2XX' one is used (the hub answers 200)"}),
    # a 2xx wins over default
    ({"201": {"description": "ok", "content": {"application/json": {"schema": {"required": ["n"]}}}},
      "default": {"description": "error", "content": {"application/json": {"schema": {"required": ["e"]}}}}},
     "201", {f"{P}/responses/201": f"{ACTION}: no '200' response: the '201' one is used (the hub answers 200)"}),
])
def test_which_response_is_the_answer(responses: dict[str, Any], used: str, warned: dict[str, str]) -> None:
    specs, errors, warnings = imported(with_responses(responses))
    assert errors == []
    assert specs[ACTION].versions[1].response == {"required": ["n"]}
    assert where(warnings) == warned


@pytest.mark.parametrize(("content", "warned"), [
    ({"application/json; charset=utf-8": {"schema": {"required": ["n"]}}}, {}),
    ({"Application/JSON": {"schema": {"required": ["n"]}}}, {}),
    ({"application/vnd.school+json": {"schema": {"required": ["n"]}}}, {}),
    # application/json wins over a range, whatever the order
    ({"*/*": {"schema": {"required": ["x"]}}, "application/json": {"schema": {"required": ["n"]}}}, {}),
    ({"*/*": {"schema": {"required": ["n"]}}},
     {f"{P}/responses/200/content/*~1*": f"{ACTION}: response '200': media type '*/*' read as application/json"}),
    ({"application/*": {"schema": {"required": ["n"]}}, "text/plain": {}},
     {f"{P}/responses/200/content/application~1*":
      f"{ACTION}: response '200': media type 'application/*' read as application/json"}),
])
def test_media_types_read_as_json(content: dict[str, Any], warned: dict[str, str]) -> None:
    specs, errors, warnings = imported(with_responses({"200": {"description": "ok", "content": content}}))
    assert errors == []
    assert specs[ACTION].versions[1].response == {"required": ["n"]}
    assert where(warnings) == warned


@pytest.mark.parametrize(("body", "pointer", "message"), [
    (None, P, f"no requestBody: {ANY_OBJECT}"),
    ({}, f"{P}/requestBody", f"requestBody describes no body: {ANY_OBJECT}"),
    ({"content": {}}, f"{P}/requestBody", f"requestBody describes no body: {ANY_OBJECT}"),
    ({"description": "nothing", "content": {"application/json": {}}},
     f"{P}/requestBody/content/application~1json", f"requestBody has no schema: {ANY_OBJECT}"),
])
def test_empty_request_bodies_accept_any_object(tmp_path: Path, body: Any, pointer: str, message: str) -> None:
    doc = document({f"/{ACTION}": {"post": operation({"type": "object"})}})
    op = doc["paths"][f"/{ACTION}"]["post"]
    if body is None:
        del op["requestBody"]
    else:
        op["requestBody"] = body
    specs, errors, warnings = imported(doc)
    assert errors == []
    assert specs[ACTION].versions[1].request == {"type": "object"}
    assert where(warnings) == {pointer: f"{ACTION}: {message}"}
    root = tmp_path / "cat"
    write(root, "x.json", doc)
    version = load_catalogue(root).actions[ACTION].versions[1]
    assert version.validate_request(ok_body({"anything": True})) == ()


def test_operations_that_exchange_no_json_are_skipped_and_the_rest_loads() -> None:
    uploads = operation({"type": "object"})
    uploads["requestBody"] = {"content": {"multipart/form-data": {"schema": {"type": "object"}}}}
    pdf = operation({"type": "object"})
    pdf["responses"] = {"200": {"description": "a report", "content": {"application/pdf": {}}}}
    doc = document({f"/{ACTION}": {"post": operation({"type": "object"})},
                    "/@a:Upload:run": {"post": uploads}, "/@a:Report:get": {"post": pdf}})
    specs, errors, warnings = imported(doc)
    assert errors == [] and list(specs) == [ACTION]
    assert where(warnings) == {
        "/paths/~1@a:Upload:run/post/requestBody/content":
            "@a:Upload:run: requestBody is not JSON (found multipart/form-data): "
            "not an action the hub can relay, skipped",
        "/paths/~1@a:Report:get/post/responses/200/content":
            "@a:Report:get: response '200' is not JSON (found application/pdf): "
            "not an action the hub can relay, skipped",
    }


@pytest.mark.parametrize(("op_patch", "pointer", "message"), [
    ({"responses": []}, f"{P}/responses", "must be an object with a '200' response"),
    ({"responses": {"200": "ok"}}, f"{P}/responses/200", "response '200' must be an object"),
    ({"responses": {"200": {"description": "x", "content": []}}}, f"{P}/responses/200/content",
     "must be an object of media type -> Media Type Object"),
    ({"responses": {"200": {"description": "x", "content": {"application/json": "s"}}}},
     f"{P}/responses/200/content/application~1json", "a Media Type Object must be an object"),
    ({"requestBody": {"$ref": "#/components/requestBodies/Gone"}}, f"{P}/requestBody/$ref",
     "no 'Gone' in components/requestBodies"),
    ({"responses": {"200": {"$ref": "#/paths/elsewhere"}}}, f"{P}/responses/200/$ref",
     "only #/components/responses/... references are supported here"),
])
def test_malformed_bodies_are_errors_naming_the_pointer(op_patch: dict[str, Any], pointer: str,
                                                        message: str) -> None:
    op = {**operation({"type": "object"}), **op_patch}
    specs, errors, _ = imported(document({f"/{ACTION}": {"post": op}}))
    assert specs == {}
    assert where(errors) == {pointer: f"{ACTION}: {message}"}
