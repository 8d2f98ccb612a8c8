"""`GET /v1/openapi.json`: the hub's callable surface as an OpenAPI 3.1 document,
generated from the loaded catalogue.

Per action, ``POST /v1/services/call/{action}/{provider}`` (the provider as
a path parameter) and its fan-out ``POST /v1/services/call/{action}``; the
request body is the request schema of ONE version minus the hub-owned
``context`` and ``secret`` (removed where that is clean: top-level
``properties``/``required``, or inside ``allOf`` members, inline or behind a
local ``$ref``), the 200 its response schema. The plain document shows each
action at its newest version (what a call without ``?version=`` gets);
``?version=N`` gives the document of the actions at version N, with
``version`` required: a body is never "valid" for a version that would
refuse it (docs/openapi.md, "Versions"). Then the discover endpoint, the
bearer security scheme, the community header, and every error each endpoint
can answer (pipeline/outcomes.py) as problem+json.

Schemas are converted to JSON Schema 2020-12 (OpenAPI 3.1's dialect): each
action version's request and response schema becomes one component,
``<action>.v<N>.request|response``, and its local references point inside
that component, so actions never clash. Draft-04/06/07 keywords that
changed are rewritten (tuple ``items`` → ``prefixItems``, ``dependencies``,
boolean exclusive bounds, ``definitions`` → ``$defs``). A schema with
identifiers (``$id``, anchors) or references to them or to a meta-schema is
first bundled into plain ``#/…`` references (validation/bundle.py; a
``$dynamicRef`` becomes the static reference it starts from). An answer
the catalogue does not describe is an empty schema, and says so.

The document is public (no token): it describes what the catalogue already
publishes, never apps, communities or secrets. It is built once per
catalogue generation (off the event loop) and follows reloads.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import UndefinedTypeCheck

from .. import __version__
from ..catalogue import Action, Catalogue
from ..errors import UnsupportedVersion
from ..jsonpointer import unescape
from ..pipeline.outcomes import by_status
from ..pipeline.steps import as_sent, positive_int
from ..validation.bundle import bundle, needs_bundling
from ..validation.drafts import draft_of
from .state import HUB

HUB_OWNED = ("context", "secret")
_PATH_SAFE = "@:!$&'()*+,;=-._~"  # RFC 3986 pchar, minus percent-encoding


# ---- the route ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Rendered:
    generation: int
    loaded_at: str
    body: bytes
    etag: str


class OpenApiCache:
    """The documents of the catalogue in use (one per `?version=`), built once per generation."""

    __slots__ = ("rendered",)

    def __init__(self) -> None:
        self.rendered: dict[int | None, _Rendered] = {}


OPENAPI_CACHE = web.AppKey("openapi_cache", OpenApiCache)


async def openapi_json(request: web.Request) -> web.StreamResponse:
    catalogue = request.app[HUB].catalogue
    asked = request.query.get("version")
    version = positive_int("version", asked)
    if version is not None and not any(version in a.versions for a in catalogue.actions.values()):
        assert asked is not None
        raise UnsupportedVersion(f"no action of the catalogue has a version {as_sent(asked)}")
    cache = request.app[OPENAPI_CACHE]
    rendered = cache.rendered.get(version)
    if rendered is None or (rendered.generation, rendered.loaded_at) != (catalogue.generation,
                                                                         catalogue.loaded_at):
        if rendered is not None:
            cache.rendered.clear()  # another generation: every version's document is stale
        rendered = cache.rendered[version] = await asyncio.to_thread(render, catalogue, version)
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    matches = request.headers.get("If-None-Match", "")
    # `*`: any current representation (RFC 9110 §13.1.2); else a weak comparison, W/ or not.
    if matches.strip() == "*" or rendered.etag in matches:
        return web.Response(status=304, headers=headers)
    return web.Response(body=rendered.body, content_type="application/json", headers=headers)


def render(catalogue: Catalogue, version: int | None = None) -> _Rendered:
    body = orjson.dumps(build_document(catalogue, version), option=orjson.OPT_INDENT_2)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return _Rendered(catalogue.generation, catalogue.loaded_at, body, etag)


# ---- the document ------------------------------------------------------------------------

def build_document(catalogue: Catalogue, version: int | None = None) -> dict[str, Any]:
    """The document of every action at its newest version (`version` None: what a
    call without `?version=` gets from a provider serving it), or of the actions
    that have `version`, pinned to it (docs/openapi.md, "Versions")."""
    schemas: dict[str, Any] = {
        "Problem": PROBLEM_SCHEMA,
        "ValidationIssue": ISSUE_SCHEMA,
        "Provider": PROVIDER_SCHEMA,
        "ProviderRef": PROVIDER_REF_SCHEMA,
    }
    responses: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    names: set[str] = set(schemas)
    actions = sorted((a for a in catalogue.actions.values() if version is None or version in a.versions),
                     key=lambda a: a.name)
    for action in actions:
        shown = ActionDoc.of(action, version, _unique(_slug(action.name), names), schemas)
        base = f"/v1/services/call/{quote(action.name, safe=_PATH_SAFE)}"
        paths[base + "/{provider}"] = {"post": call_operation(shown, responses)}
        paths[base] = {"post": fanout_operation(shown, responses)}
    paths["/v1/services/discover/{action}"] = {"get": discover_operation(catalogue, responses)}
    pinned = "" if version is None else f" This document describes version {version} of each action that has it."
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "apihub" if version is None else f"apihub (actions at version {version})",
            "version": __version__,
            "description": (
                "The actions this hub relays, generated from its catalogue "
                f"(generation {catalogue.generation}, loaded {catalogue.loaded_at or 'now'}). "
                "Each call is checked against the action's protocol on the way to the provider "
                "and on the way back; the hub adds `context` and `secret` to the body the provider "
                "receives, so they are not part of the request bodies described here." + pinned
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearerAuth": []}],
        "tags": [{"name": tag} for tag in sorted({_tag(a.name) for a in actions})]
                + [{"name": "discovery", "description": "Which providers serve an action"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": dict(sorted(responses.items())),
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer",
                "description": "The consumer app's token (the bare token without 'Bearer ' is accepted too).",
            }},
        },
    }


@dataclass(frozen=True, slots=True)
class ActionDoc:
    """One action as a document shows it: the request of the version shown,
    the answer of every version a result may carry."""

    action: Action
    namespace: str
    shown: int
    pinned: bool  # the document is for ?version=N
    request: dict[str, Any]  # a $ref
    answers: dict[int, dict[str, Any]]  # version → $ref
    notes: tuple[str, ...]

    @classmethod
    def of(cls, action: Action, version: int | None, namespace: str, schemas: dict[str, Any]) -> ActionDoc:
        shown = max(action.versions) if version is None else version
        answers = {}
        request: dict[str, Any] = {}
        notes = []
        # A fan-out without ?version= may answer with any version's results.
        numbers = sorted(action.versions) if version is None else [version]
        for number in numbers:
            spec = action.versions[number]
            sides = [("response", spec.response_schema)]
            if number == shown:
                sides.insert(0, ("request", spec.request_schema))
            for side, schema in sides:
                name = f"{namespace}.v{number}.{side}"
                ref = {"$ref": f"#/components/schemas/{name}"}
                if side == "request":
                    request = ref
                else:
                    answers[number] = ref
                if schema is None:
                    schemas[name] = {"title": f"{action.name} v{number} {side}", "description": UNDESCRIBED}
                    continue
                if side == "request" and spec.refuses_calls:
                    # Nothing a consumer sends can pass: say so rather than describe a body.
                    schemas[name] = {"title": f"{action.name} v{number} {side}", "not": {},
                                     "description": f"No request is valid: the request schema {spec.refuses_calls}."}
                    notes.append(f"v{number}: every call is refused (400 invalid_request): the request schema "
                                 f"{spec.refuses_calls}, which the hub adds to every body.")
                    continue
                schema = standalone(schema)
                if side == "request":
                    schema, clean = strip_hub_owned(schema)
                    if not clean:
                        notes.append(f"v{number}: the request schema still describes the hub-owned "
                                     "`context`/`secret` (they could not be removed cleanly)")
                converted = to_2020_12(schema, f"#/components/schemas/{name}")
                if isinstance(converted, dict):
                    converted.setdefault("title", f"{action.name} v{number} {side}")
                schemas[name] = converted
        return cls(action, namespace, shown, version is not None, request, answers, tuple(notes))

    def description(self) -> str:
        versions = sorted(self.action.versions)
        text = self.action.description + ("\n\n" if self.action.description else "")
        text += f"Versions: {', '.join(map(str, versions))}. This operation describes version {self.shown}"
        if self.pinned:
            text += f", sent as `?version={self.shown}`."
        elif len(versions) > 1:
            text += (": what a call without `version` gets from a provider that serves it (without "
                     "`version` the hub uses the highest version both the catalogue and the provider "
                     "support). Other versions: `/v1/openapi.json?version=N`.")
        else:
            text += "."
        return text + ("\n\n" + "\n".join(self.notes) if self.notes else "")

    def parameters(self) -> list[dict[str, Any]]:
        """The call's and the fan-out's, but the provider. `version` is exact for what
        the hub accepts: any other version of a single-version action is refused;
        of a multi-version action it is another document's call."""
        several = len(self.action.versions) > 1
        version = [] if several and not self.pinned else [{
            "name": "version", "in": "query", "required": several, "description": "The action's version.",
            "schema": {"type": "integer", "enum": [self.shown]}}]
        return [*version, {"$ref": "#/components/parameters/timeout"},
                {"$ref": "#/components/parameters/communityId"},
                {"$ref": "#/components/parameters/requestId"}]

    def request_body(self) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": self.request}}}


def call_operation(doc: ActionDoc, responses: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": "call_" + doc.namespace.replace(".", "_") + (f"_v{doc.shown}" if doc.pinned else ""),
        "tags": [_tag(doc.action.name)],
        "summary": doc.action.title or doc.action.name,
        "description": doc.description(),
        "parameters": [
            {"name": "provider", "in": "path", "required": True,
             "description": "The providing app's id (see the discover endpoint).",
             "schema": {"type": "string", "minLength": 1}},
            *doc.parameters(),
        ],
        "requestBody": doc.request_body(),
        "responses": {
            "200": {
                "description": "The provider's answer, checked against the response schema, relayed byte for byte."
                               + ("" if doc.action.versions[doc.shown].answer_described
                                  else f" Not described for version(s) {doc.shown}: " + UNDESCRIBED),
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
                "content": {"application/json": {"schema": doc.answers[doc.shown]}},
            },
            **_error_responses("call", responses),
        },
        "x-apihub-action": doc.action.name,
        "x-apihub-versions": sorted(doc.action.versions),
        "x-apihub-version": doc.shown,
    }
    if doc.action.idempotent:
        operation["x-idempotent"] = True
    return operation


def fanout_operation(doc: ActionDoc, responses: dict[str, Any]) -> dict[str, Any]:
    results = [{
        "type": "object",
        "required": ["provider", "version", "status"],
        "properties": {
            "provider": {"$ref": "#/components/schemas/ProviderRef"},
            "version": {"const": number},
            "status": {"enum": ["ok", "error"]},
            "data": answer,
            "error": {"$ref": "#/components/schemas/Problem"},
        },
    } for number, answer in sorted(doc.answers.items())]
    return {
        "operationId": "fanout_" + doc.namespace.replace(".", "_") + (f"_v{doc.shown}" if doc.pinned else ""),
        "tags": [_tag(doc.action.name)],
        "summary": f"{doc.action.title or doc.action.name}: every provider in the community",
        "description": (
            "Calls every provider installed in the community that serves the action, concurrently; "
            "one result per provider, sorted by id (`data`: its answer; `error`: the problem it "
            "would get alone). The body is checked once per version chosen: 400 only when it fits "
            "none of them. " + doc.description()
        ),
        "parameters": doc.parameters(),
        "requestBody": doc.request_body(),
        "responses": {
            "200": {
                "description": "One result per provider.",
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["results"],
                    "properties": {"results": {"type": "array", "items": (
                        results[0] if len(results) == 1 else {"anyOf": results})}},
                }}},
            },
            **_error_responses("fanout", responses),
        },
        "x-apihub-action": doc.action.name,
        "x-apihub-versions": sorted(doc.action.versions),
        "x-apihub-version": doc.shown,
        "x-apihub-fanout": True,
    }


UNDESCRIBED = ("The catalogue does not describe this answer: the provider's answer is relayed as sent "
               "when it is empty (an empty 200, without Content-Type) or JSON.")


def standalone(schema: Any) -> Any:
    """A schema whose references are all plain `#/…` pointers into itself."""
    if isinstance(schema, dict) and needs_bundling(schema):
        return bundle(schema, draft_of(schema).name).schema
    return schema


def discover_operation(catalogue: Catalogue, responses: dict[str, Any]) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "string", "minLength": 1}
    if catalogue.actions:
        action["enum"] = sorted(catalogue.actions)
    return {
        "operationId": "discover",
        "tags": ["discovery"],
        "summary": "The providers installed in the community that serve an action",
        "parameters": [
            {"name": "action", "in": "path", "required": True, "schema": action},
            {"name": "version", "in": "query", "required": False,
             "description": "Keep only the providers serving this version (404 when the catalogue lacks it).",
             "schema": {"type": "integer", "minimum": 1}},
            {"$ref": "#/components/parameters/communityId"},
            {"$ref": "#/components/parameters/requestId"},
        ],
        "responses": {
            "200": {
                "description": "The providers, sorted by id; `versions` are those the catalogue also has.",
                "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
                "content": {"application/json": {"schema": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Provider"}}}},
            },
            **_error_responses("discover", responses),
        },
    }


def _error_responses(kind: str, shared: dict[str, Any]) -> dict[str, Any]:
    """Every status × code of the endpoint, from the pipeline's own table."""
    out = {}
    for status, names in sorted(by_status(kind).items()):
        key = f"E{status}_" + "_".join(names)
        shared.setdefault(key, {
            "description": f"{HTTPStatus(status).phrase}: {', '.join(f'`{n}`' for n in names)}",
            "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
            "content": {"application/problem+json": {"schema": {"allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {"properties": {"status": {"const": status}, "code": {"enum": list(names)}}},
            ]}}},
        })
        out[str(status)] = {"$ref": f"#/components/responses/{key}"}
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "action"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def _tag(action: str) -> str:
    head, _, _ = action.rpartition(":")
    return head or action


# ---- hub-owned keys --------------------------------------------------------------------------

def strip_hub_owned(schema: Any) -> tuple[Any, bool]:
    """The request schema without `context`/`secret`; clean=False (and the
    schema unchanged) when they are constrained somewhere this cannot undo."""
    if not isinstance(schema, dict):
        return schema, True
    out = copy.deepcopy(schema)
    definitions = out.get("definitions") if isinstance(out.get("definitions"), dict) else out.get("$defs")
    definitions = definitions if isinstance(definitions, dict) else {}

    def local(ref: Any) -> Any:
        for prefix in ("#/definitions/", "#/$defs/"):
            if isinstance(ref, str) and ref.startswith(prefix) and "/" not in ref[len(prefix):]:
                return definitions.get(unescape(ref[len(prefix):]))
        return None

    def strip(node: dict[str, Any]) -> None:
        props = node.get("properties")
        if isinstance(props, dict):
            for key in HUB_OWNED:
                props.pop(key, None)
        if isinstance(node.get("required"), list):
            node["required"] = [k for k in node["required"] if k not in HUB_OWNED]
            if not node["required"]:
                del node["required"]
        members = node.get("allOf")
        if isinstance(members, list):
            kept = []
            for member in members:
                if isinstance(member, dict) and set(member) <= {"$ref", "description", "title"}:
                    target = local(member.get("$ref"))
                    if isinstance(target, dict) and _mentions_hub_owned(target):
                        member = copy.deepcopy(target)
                if isinstance(member, dict) and "$ref" not in member:
                    strip(member)
                    if _is_empty(member):
                        continue
                kept.append(member)
            node["allOf"] = kept
            if not kept:
                del node["allOf"]

    strip(out)
    if _requires_hub_owned(out, local):
        return schema, False
    members = out.get("allOf")
    if isinstance(members, list) and len(members) == 1 and isinstance(members[0], dict) \
            and "$ref" not in members[0] and not (set(members[0]) & set(out)):
        # allOf [Envelope, {...}] without the envelope: just {...}
        out.update(out.pop("allOf")[0])
    return _prune_definitions(out), True


def _mentions_hub_owned(node: dict[str, Any]) -> bool:
    props = node.get("properties")
    required = node.get("required")
    return (isinstance(props, dict) and any(k in props for k in HUB_OWNED)) or (
        isinstance(required, list) and any(k in required for k in HUB_OWNED))


def _is_empty(node: dict[str, Any]) -> bool:
    """Nothing left but annotations and an object type with no properties."""
    rest = {k: v for k, v in node.items() if k not in ("title", "description", "$comment")}
    if rest.get("properties") == {}:
        rest.pop("properties")
    return rest in ({}, {"type": "object"})


def _requires_hub_owned(node: Any, local: Callable[[Any], Any], depth: int = 0) -> bool:
    """Does a consumer body without context/secret still fail somewhere on top level?"""
    if not isinstance(node, dict) or depth > 16:
        return False
    if _mentions_hub_owned(node):
        return True
    target = local(node.get("$ref"))
    if isinstance(target, dict) and _requires_hub_owned(target, local, depth + 1):
        return True
    for key in ("allOf", "anyOf", "oneOf"):
        for member in node.get(key, []) if isinstance(node.get(key), list) else []:
            if _requires_hub_owned(member, local, depth + 1):
                return True
    return any(_requires_hub_owned(node.get(k), local, depth + 1) for k in ("if", "then", "else"))


def _prune_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the definitions nothing refers to any more (Context, Envelope…)."""
    for key in ("definitions", "$defs"):
        defs = schema.get(key)
        if not isinstance(defs, dict):
            continue
        prefix = f"#/{key}/"
        body = {k: v for k, v in schema.items() if k != key}
        reachable: set[str] = set()
        todo = [body]
        while todo:
            for ref in _refs(todo.pop()):
                if not ref.startswith(prefix):
                    if ref.startswith(f"#/{key}") or ref == "#":
                        return schema  # a reference this cannot follow: keep everything
                    continue
                name = unescape(ref[len(prefix):].split("/")[0])
                if name not in reachable and name in defs:
                    reachable.add(name)
                    todo.append(defs[name])
        schema[key] = {k: v for k, v in defs.items() if k in reachable}
        if not schema[key]:
            del schema[key]
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            elif key not in ("enum", "const", "default", "examples", "example"):
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# ---- draft-04/06/07 → 2020-12 ----------------------------------------------------------------

_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")
_ONE = ("additionalProperties", "additionalItems", "items", "contains", "not", "if", "then", "else",
        "propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


def _draft(schema: Any) -> str:
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    for marker in ("draft-04", "draft-06", "2019-09", "2020-12"):
        if isinstance(declared, str) and marker in declared:
            return marker
    return "draft-07"


def to_2020_12(schema: Any, base: str) -> Any:
    """A copy of `schema` in JSON Schema 2020-12, its local `$ref`s rebased to `base`."""
    draft = _draft(schema)
    out = copy.deepcopy(schema)
    if not isinstance(out, dict):
        return out
    out.pop("$schema", None)
    out.pop("$id", None)
    if draft == "draft-04":
        out.pop("id", None)
    if isinstance(out.get("definitions"), dict):
        defs = out.pop("definitions")
        out["$defs"] = {**defs, **out.get("$defs", {})}
        _rewrite_refs(out, lambda ref: "#/$defs/" + ref[len("#/definitions/"):]
                      if ref.startswith("#/definitions/") else ref)
    for node in list(_subschemas(out)):
        if draft not in ("2019-09", "2020-12"):
            _upgrade(node, draft)
        _drop_mistyped_default(node)
    _rewrite_refs(out, lambda ref: base + ref[1:] if ref.startswith("#") else ref)
    return out


def _drop_mistyped_default(node: dict[str, Any]) -> None:
    """A `default` of a type the node refuses (`"type": "string", "default":
    null` in published documents): an annotation nothing validates, but
    OpenAPI validators refuse the document for it."""
    if "default" not in node or "type" not in node:
        return
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    if not any(_is_of_type(node["default"], kind) for kind in types):
        del node["default"]


def _is_of_type(value: Any, kind: Any) -> bool:
    """JSON Schema's own type test (jsonschema's, for the converted 2020-12 node)."""
    try:
        return bool(Draft202012Validator.TYPE_CHECKER.is_type(value, kind))
    except UndefinedTypeCheck:  # not a JSON Schema type name
        return False


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(node, dict):
        return
    yield node
    for key, value in node.items():
        if key in _MAPS and isinstance(value, dict):
            for sub in value.values():
                yield from _subschemas(sub)
        elif key in _LISTS and isinstance(value, list) or key == "items" and isinstance(value, list):
            for sub in value:
                yield from _subschemas(sub)
        elif key in _ONE:
            yield from _subschemas(value)
        elif key == "dependencies" and isinstance(value, dict):
            for sub in value.values():
                yield from _subschemas(sub)


_REF_SIBLINGS = frozenset({"$ref", "$defs", "title", "description", "$comment"})


def _upgrade(node: dict[str, Any], draft: str) -> None:
    if "$ref" in node:
        # Up to draft-07 a $ref's siblings are ignored; from 2019-09 on they apply.
        for key in set(node) - _REF_SIBLINGS:
            del node[key]
        return
    if isinstance(node.get("items"), list):
        node["prefixItems"] = node.pop("items")
        if "additionalItems" in node:
            node["items"] = node.pop("additionalItems")
    else:
        node.pop("additionalItems", None)  # without tuple items it has no effect
    deps = node.pop("dependencies", None)
    if isinstance(deps, dict):
        for name, value in deps.items():
            key = "dependentRequired" if isinstance(value, list) else "dependentSchemas"
            node.setdefault(key, {})[name] = value
    if draft == "draft-04":
        for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(key)
            if isinstance(value, bool):
                del node[key]
                if value and bound in node:
                    node[key] = node.pop(bound)


def _rewrite_refs(node: Any, rewrite: Callable[[str], str]) -> None:
    for sub in _subschemas(node):
        ref = sub.get("$ref")
        if isinstance(ref, str):
            sub["$ref"] = rewrite(ref)


# ---- fixed parts -----------------------------------------------------------------------------

ISSUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["path", "message"],
    "properties": {
        "path": {"type": "string", "description": "JSON Pointer into the body (or the provider's answer)."},
        "message": {"type": "string"},
    },
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, with a stable machine `code`.",
    "required": ["type", "title", "status", "detail", "code", "requestId"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "requestId": {"type": "string"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationIssue"}},
    },
}
PROVIDER_REF_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "displayName", "icon"],
    "properties": {"id": {"type": "string"}, "displayName": {"type": "string"}, "icon": {"type": "string"}},
}
PROVIDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "displayName", "icon", "versions"],
    "properties": {
        "id": {"type": "string"},
        "displayName": {"type": "string"},
        "icon": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "integer", "minimum": 1}},
    },
}
PARAMETERS: dict[str, Any] = {
    "communityId": {
        "name": "community-id", "in": "header", "required": True,
        "description": "The community both apps are installed in (`X-Community-Id` is accepted too).",
        "schema": {"type": "string", "minLength": 1},
    },
    "requestId": {
        "name": "X-Request-Id", "in": "header", "required": False,
        "description": ("Your correlation id: up to 128 characters from `[A-Za-z0-9._-]` is echoed on the "
                        "response and sent to the provider as `context.correlationId`; anything else is "
                        "ignored (never refused)."),
        "schema": {"type": "string"},
    },
    "timeout": {
        "name": "timeout", "in": "query", "required": False,
        "description": "Milliseconds; may shorten the configured deadline, never lengthen it.",
        "schema": {"type": "integer", "minimum": 1},
    },
}
HEADERS: dict[str, Any] = {
    "X-Request-Id": {"description": "The request's id, also in logs and in problem bodies.",
                     "schema": {"type": "string"}},
}
