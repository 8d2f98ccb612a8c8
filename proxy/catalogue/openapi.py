"""OpenAPI 3.0 action catalogues: catalogue/openapi/*.json, *.yaml, *.yml.

Each path ``/{action}`` with a POST is an action. Its request schema is the
``requestBody`` application/json schema (the body the provider receives,
usually ``allOf: [Context, {...}]``), its response schema the ``200``
application/json schema. Each side becomes a standalone draft-07 schema:
the reachable ``components/schemas`` are copied into ``definitions`` and
``#/components/schemas/X`` becomes ``#/definitions/X`` (nested and recursive
references keep working). OpenAPI 3.0 Schema Objects are converted on the
way (``nullable``, boolean ``exclusiveMinimum``, ``example``, number
formats, ``readOnly``/``writeOnly`` in ``required`` …) and real-world
mistakes are repaired where the intent is clear. Every conversion that
changes what validates is a warning naming the action(s) and the JSON
Pointer; what cannot be converted is an error. docs/openapi.md lists
every case.

A published document does not always describe a JSON body: a response with
no ``content`` (an acknowledgement), or a media type without ``schema``,
leaves the answer undescribed (``VersionSpec.response`` None: the hub
relays an empty or any JSON answer); a missing or empty ``requestBody``
accepts any JSON object; ``*/*`` is read as JSON; an operation whose body is
only some other media type is no action (skipped). Each is a warning naming
its pointer, never an error that would refuse the whole catalogue.

Versions: ``x-versions: [1, 2]`` or ``x-version: 2`` on the operation (or
``x-version`` at the document's top level as the default), else version 1.
The same action in two OpenAPI documents with different versions is merged
(one document per published version); the same version twice is an error.
``x-enforce`` on the operation is the action file's ``enforce``;
``x-idempotent: true`` is the action file's ``idempotent``.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import yaml

from ..errors import CatalogueError, Problem
from ..jsonpointer import escape as esc
from ..jsonpointer import resolve_local, unescape
from ..validation import SchemaError, check_schema
from .files import parse_enforce
from .model import ActionSpec, VersionSpec

SUFFIXES = (".json", ".yaml", ".yml")


class Body(enum.Enum):
    """What a requestBody or response lookup found, besides (schema, pointer)
    or None (an error, noted)."""

    UNDESCRIBED = "no body schema"  # see UNDESCRIBED_NOTE
    SKIP = "not JSON"  # the operation is no action the hub can relay (noted)


UNDESCRIBED, SKIP = Body.UNDESCRIBED, Body.SKIP
Found = tuple[Any, str] | Body | None
UNDESCRIBED_NOTE = {
    "request": "the request is not described: any JSON object is accepted",
    "response": "the answer is not described: the hub relays it as the provider sends it if it is empty "
                "or JSON (within [limits] max_response_bytes)",
}
SIDES = ("request", "response")
_COMPONENTS = "#/components/schemas/"

_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# Names real documents use for JSON types (Swagger 2's "file", language names).
_TYPE_ALIASES = {
    "int": "integer", "long": "integer", "int32": "integer", "int64": "integer",
    "float": "number", "double": "number", "decimal": "number",
    "bool": "boolean", "str": "string", "text": "string", "file": "string",
    "dict": "object", "map": "object", "list": "array",
}
_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_FORMAT_PATTERNS = {
    "uuid": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    "byte": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
}
# Formats the validator checks (draft-07's, as fastjsonschema knows them),
# and OpenAPI's that are annotations by definition.
_CHECKED_FORMATS = frozenset({
    "date", "date-time", "email", "hostname", "idn-email", "idn-hostname", "ipv4", "ipv6", "iri",
    "iri-reference", "json-pointer", "relative-json-pointer", "time", "uri", "uri-reference",
    "uri-template", "regex",
})
_ANNOTATION_FORMATS = frozenset({"float", "double", "binary", "password"})

# Keys that hold subschemas, so the converter recurses into them.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})
_SCHEMA_ONE = frozenset({
    "additionalProperties", "additionalItems", "not", "contains", "propertyNames", "if", "then", "else",
})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
# Keys kept as they are: JSON Schema draft-07 keywords with the same meaning.
_PLAIN = frozenset({
    "title", "description", "default", "enum", "const", "multipleOf", "maximum", "minimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties",
    "minProperties", "required", "readOnly", "writeOnly", "deprecated", "$comment", "format",
    "contentMediaType", "contentEncoding",
})
# OpenAPI-only annotations: no meaning for validation, dropped without a word.
_DROPPED = frozenset({"xml", "externalDocs"})
_ANNOTATIONS = frozenset({"title", "description", "$comment", "deprecated", "readOnly", "writeOnly",
                          "example", "examples", "default", "externalDocs", "xml"})


def read_folder(folder: Path) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    """Every OpenAPI document under `folder`: (specs, errors, warnings)."""
    specs: list[ActionSpec] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        source = str(path)
        try:
            doc = load_document(path)
        except CatalogueError as exc:
            problems.extend(exc.problems)
            continue
        found, errors, warned = import_document(doc, source)
        specs.extend(found)
        problems.extend(errors)
        warnings.extend(warned)
    return merge_versions(specs, problems), problems, warnings


# ---- reading -------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """safe_load without timestamps: `2026-03-01` stays a string, as JSON would have it."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_document(path: Path) -> Any:
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogueError([Problem(source, "", f"cannot read: {exc.strerror}")]) from None
    if path.suffix == ".json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CatalogueError([Problem(source, "", f"not valid JSON: {exc}")]) from None
    try:
        doc = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CatalogueError([Problem(source, "", f"not valid YAML: {exc}")]) from None
    try:
        return _jsonable(doc, "")
    except _NotJson as exc:
        raise CatalogueError([Problem(source, exc.pointer, exc.message)]) from None
    except RecursionError:
        raise CatalogueError([Problem(source, "", "YAML nested too deeply (or a recursive alias)")]) from None


class _NotJson(Exception):
    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(message)
        self.pointer, self.message = pointer, message


def _jsonable(value: Any, at: str) -> Any:
    """YAML's data as JSON would have it: integer keys (`200:`) become strings."""
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise _NotJson(at, f"key {key!r} is not a string")
            out[str(key)] = _jsonable(sub, f"{at}/{esc(str(key))}")
        return out
    if isinstance(value, list):
        return [_jsonable(sub, f"{at}/{i}") for i, sub in enumerate(value)]
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        raise _NotJson(at, "NaN and infinities are not JSON numbers")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        raise _NotJson(at, "integer out of the 64-bit range the hub handles")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise _NotJson(at, f"a YAML {type(value).__name__} has no JSON equivalent")


# ---- one document --------------------------------------------------------------------------

@dataclass
class _Converted:
    """A schema converted for one side, with what its conversion had to say."""

    schema: Any
    refs: set[str] = field(default_factory=set)
    notes: list[tuple[bool, str, str]] = field(default_factory=list)  # (is_error, pointer, message)


def import_document(doc: Any, source: str) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    return _Document(doc, source).run()


class _Document:
    def __init__(self, doc: Any, source: str) -> None:
        self.doc = doc
        self.source = source
        self.schemas: dict[str, Any] = {}
        self._memo: dict[tuple[str, str], _Converted] = {}
        # (is_error, pointer, message) -> actions it concerns, in order met
        self._notes: dict[tuple[bool, str, str], list[str]] = {}

    # -- notes

    def note(self, actions: Iterable[str], error: bool, pointer: str, message: str) -> None:
        users = self._notes.setdefault((error, pointer, message), [])
        for action in actions:
            if action not in users:
                users.append(action)

    def _problems(self) -> tuple[list[Problem], list[Problem]]:
        errors: list[Problem] = []
        warnings: list[Problem] = []
        for (error, pointer, message), actions in self._notes.items():
            who = ", ".join(actions[:3]) + (f" and {len(actions) - 3} more" if len(actions) > 3 else "")
            problem = Problem(self.source, pointer, f"{who}: {message}" if who else message)
            (errors if error else warnings).append(problem)
        return errors, warnings

    # -- the document

    def run(self) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
        doc = self.doc
        if not isinstance(doc, dict):
            return [], [Problem(self.source, "", "an OpenAPI document must be an object")], []
        if "swagger" in doc:
            return [], [Problem(self.source, "/swagger",
                                "Swagger 2.0 is not supported: convert the document to OpenAPI 3.0")], []
        version = doc.get("openapi")
        if not isinstance(version, str) or not version.startswith("3.0"):
            return [], [Problem(self.source, "/openapi",
                                f"must be an OpenAPI 3.0.x version string (found {version!r})")], []
        components = doc.get("components", {})
        schemas = components.get("schemas", {}) if isinstance(components, dict) else None
        if not isinstance(schemas, dict):
            return [], [Problem(self.source, "/components/schemas", "must be an object")], []
        self.schemas = schemas
        paths = doc.get("paths")
        if not isinstance(paths, dict):
            return [], [Problem(self.source, "/paths", "must be an object of path -> Path Item")], []
        default_versions = doc.get("x-version", 1)
        specs = []
        for raw_path, item in paths.items():
            spec = self.path_item(raw_path, item, default_versions)
            if spec is not None:
                specs.append(spec)
        errors, warnings = self._problems()
        return specs, errors, warnings

    def path_item(self, raw_path: str, item: Any, default_versions: Any) -> ActionSpec | None:
        where = "/paths/" + esc(raw_path)
        if not isinstance(item, dict):
            self.note((), True, where, "a Path Item must be an object")
            return None
        if "$ref" in item:
            # A Path Item defined elsewhere in the document: read there, named after this path.
            ref = item["$ref"]
            target = resolve_local(self.doc, ref) if isinstance(ref, str) else None
            if not isinstance(target, dict) or "$ref" in target:
                self.note((), False, f"{where}/$ref", "a Path Item reference to another document or to "
                                                      "another reference: skipped (inline the path)")
                return None
            item = target
        post = item.get("post")
        if post is None:
            methods = [m for m in item if m in {"get", "put", "patch", "delete", "head", "options", "trace"}]
            self.note((), False, where, f"no POST operation ({', '.join(methods) or 'none'}): not an action, skipped")
            return None
        name = raw_path[1:] if raw_path.startswith("/") else ""
        if not name or name != name.strip() or any(c in name for c in "/?#{}"):
            self.note((), False, where, "not of the form /{action}: skipped (an action name has no '/', "
                                        "'?', '#', '{' or surrounding spaces)")
            return None
        return self.operation(name, post, f"{where}/post", default_versions)

    def operation(self, name: str, op: Any, where: str, default_versions: Any) -> ActionSpec | None:
        if not isinstance(op, dict):
            self.note([name], True, where, "an Operation must be an object")
            return None
        found = self.request_schema(name, op, where), self.response_schema(name, op, where)
        if SKIP in found:
            return None
        request = {"type": "object"} if found[0] is UNDESCRIBED else self.side_schema(name, "request", found[0])
        response = None if found[1] is UNDESCRIBED else self.side_schema(name, "response", found[1])
        ok = request is not None and (response is not None or found[1] is UNDESCRIBED)
        key = next((k for k in ("x-versions", "x-version") if k in op), None)
        versions = self.versions(name, op[key] if key else default_versions,
                                 f"{where}/{key}" if key else "/x-version")

        def fail(pointer: str, message: str) -> CatalogueError:
            return CatalogueError([Problem(self.source, pointer, message)])

        enforce: tuple[Any, Any] = ("strict", "strict")
        try:
            enforce = parse_enforce(op.get("x-enforce"), fail, f"{where}/x-enforce")
        except CatalogueError as exc:
            for problem in exc.problems:
                self.note([name], True, problem.pointer, problem.message)
            ok = False
        idempotent = op.get("x-idempotent", False)
        if not isinstance(idempotent, bool):
            self.note([name], True, f"{where}/x-idempotent", "must be true or false")
            ok = False
        for key in ("summary", "description"):
            if not isinstance(op.get(key, ""), str):
                self.note([name], True, f"{where}/{key}", "must be a string")
                ok = False
        if op.get("parameters"):
            self.note([name], False, f"{where}/parameters",
                      "parameters are ignored: the hub forwards only the JSON body")
        if not ok or not versions:
            return None
        return ActionSpec(
            name=name,
            source=f"{self.source}#{where}",
            versions={
                n: VersionSpec(request=request, response=response,
                               enforce_request=enforce[0], enforce_response=enforce[1])
                for n in versions
            },
            title=op.get("summary", ""),
            description=op.get("description", ""),
            idempotent=idempotent,
        )

    def versions(self, name: str, value: Any, where: str) -> list[int]:
        numbers = [value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (not isinstance(numbers, list) or not numbers
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in numbers)):
            self.note([name], True, where, "must be a positive integer or a non-empty list of them")
            return []
        if len(set(numbers)) != len(numbers):
            self.note([name], True, where, "lists a version twice")
            return []
        return sorted(numbers)

    # -- request and response bodies

    def _follow(self, name: str, value: Any, where: str, kind: str) -> tuple[Any, str]:
        """A requestBody/response, following one #/components/<kind>/X reference."""
        if isinstance(value, dict) and "$ref" in value:
            ref = value["$ref"]
            prefix = f"#/components/{kind}/"
            if not isinstance(ref, str) or not ref.startswith(prefix):
                self.note([name], True, f"{where}/$ref", f"only {prefix}... references are supported here")
                return None, where
            key = unescape(unquote(ref[len(prefix):]))
            target = ((self.doc.get("components") or {}).get(kind) or {}).get(key)
            if target is None:
                self.note([name], True, f"{where}/$ref", f"no {key!r} in components/{kind}")
                return None, where
            return target, f"/components/{kind}/{esc(key)}"
        return value, where

    def _json_schema(self, name: str, holder: Any, where: str, what: str, side: str) -> Found:
        """The JSON schema of a requestBody or response: (schema, pointer),
        UNDESCRIBED when it describes no body, SKIP when its body is not JSON."""
        if not isinstance(holder, dict):
            self.note([name], True, where, f"{what} must be an object")
            return None
        content = holder.get("content", {})
        if not isinstance(content, dict):
            self.note([name], True, f"{where}/content", "must be an object of media type -> Media Type Object")
            return None
        if not content:
            self.note([name], False, where, f"{what} describes no body: {UNDESCRIBED_NOTE[side]}")
            return UNDESCRIBED
        media, ranged = _json_media(content)
        if media is None:
            self.note([name], False, f"{where}/content",
                      f"{what} is not JSON (found {', '.join(content)}): not an action the hub can relay, skipped")
            return SKIP
        at = f"{where}/content/{esc(media)}"
        if ranged:
            self.note([name], False, at, f"{what}: media type {media!r} read as application/json")
        body = content[media]
        if not isinstance(body, dict):
            self.note([name], True, at, "a Media Type Object must be an object")
            return None
        if "schema" not in body:
            self.note([name], False, at, f"{what} has no schema: {UNDESCRIBED_NOTE[side]}")
            return UNDESCRIBED
        return body["schema"], f"{at}/schema"

    def request_schema(self, name: str, op: dict[str, Any], where: str) -> Found:
        if "requestBody" not in op:
            self.note([name], False, where, f"no requestBody: {UNDESCRIBED_NOTE['request']}")
            return UNDESCRIBED
        body, at = self._follow(name, op["requestBody"], f"{where}/requestBody", "requestBodies")
        return None if body is None else self._json_schema(name, body, at, "requestBody", "request")

    def response_schema(self, name: str, op: dict[str, Any], where: str) -> Found:
        responses = op.get("responses")
        if not isinstance(responses, dict):
            self.note([name], True, f"{where}/responses", "must be an object with a '200' response")
            return None
        code = _answer_code(responses)
        if code is None:
            self.note([name], False, f"{where}/responses",
                      f"no 2xx or default response: {UNDESCRIBED_NOTE['response']}")
            return UNDESCRIBED
        if code != "200":
            self.note([name], False, f"{where}/responses/{esc(code)}",
                      f"no '200' response: the '{code}' one is used (the hub answers 200)")
        body, at = self._follow(name, responses[code], f"{where}/responses/{esc(code)}", "responses")
        return None if body is None else self._json_schema(name, body, at, f"response '{code}'", "response")

    # -- schemas

    def side_schema(self, name: str, side: str, found: Found) -> Any:
        """A standalone draft-07 schema: the converted root plus the reachable
        components as `definitions`. None (with errors noted) when it fails."""
        if not isinstance(found, tuple):
            return None
        raw, where = found
        root = _Converter(self, side).run(raw, where)
        _check(root, where)
        self._report(name, root)
        failed = any(error for error, _, _ in root.notes)
        definitions: dict[str, Any] = {}
        todo = sorted(root.refs)
        while todo:
            ref = todo.pop()
            if ref in definitions:
                continue
            component = self.component(ref, side)
            self._report(name, component)
            failed = failed or any(error for error, _, _ in component.notes)
            definitions[ref] = component.schema
            todo.extend(sorted(component.refs - definitions.keys()))
        if failed:
            return None
        # Converted parts are fresh objects, only read from here on: shared, not copied.
        schema = root.schema
        if isinstance(schema, dict) and "$ref" in schema:
            # Beside $ref draft-07 ignores every keyword; keep the definitions reachable.
            schema = {"allOf": [schema]}
        if definitions:
            if not isinstance(schema, dict):
                schema = {"allOf": [schema]}
            own = schema.setdefault("definitions", {})
            for key in sorted(definitions):
                if key in own:
                    self.note([name], True, f"{where}/definitions/{esc(key)}",
                              f"'definitions/{key}' clashes with components/schemas/{key}")
                    return None
                own[key] = definitions[key]
        return schema

    def component(self, ref: str, side: str) -> _Converted:
        hit = self._memo.get((ref, side))
        if hit is None:
            where = f"/components/schemas/{esc(ref)}"
            hit = _Converter(self, side).run(self.schemas[ref], where)
            _check(hit, where)
            self._memo[(ref, side)] = hit
        return hit

    def _report(self, name: str, converted: _Converted) -> None:
        for error, pointer, message in converted.notes:
            self.note([name], error, pointer, message)

    def resolve(self, schema: Any, depth: int = 0) -> Any:
        """Follow #/components/schemas references (for readOnly/writeOnly)."""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 32:
            ref = schema["$ref"]
            if not ref.startswith(_COMPONENTS):
                return None
            schema = self.schemas.get(unescape(unquote(ref[len(_COMPONENTS):])))
            depth += 1
        return schema


def _check(converted: _Converted, where: str) -> None:
    """The converted part against the draft-07 meta-schema, on its own: each
    component once per document, so the error points into the document (the
    assembled schema is checked again when compiled)."""
    if any(error for error, _, _ in converted.notes):
        return
    try:
        check_schema(converted.schema)
    except SchemaError as exc:
        converted.notes.append((True, where + exc.pointer, exc.message))


def _json_media(content: dict[str, Any]) -> tuple[str | None, bool]:
    """The media type whose schema describes JSON: application/json (any
    parameters, any case), else a +json type, else a range that includes
    JSON (`*/*`, `application/*`: second item True)."""
    kinds = {media: media.split(";")[0].strip().lower() for media in content}
    for media, kind in kinds.items():
        if kind == "application/json":
            return media, False
    for media, kind in kinds.items():
        if kind.startswith("application/") and kind.endswith("+json"):
            return media, False
    for media, kind in kinds.items():
        if kind in ("*/*", "application/*"):
            return media, True
    return None, False


def _answer_code(responses: dict[str, Any]) -> str | None:
    """Which response describes the answer: 200, another 2xx, 2XX, then default."""
    if "200" in responses:
        return "200"
    others = sorted(code for code in responses if len(code) == 3 and code[0] == "2" and code.isdigit())
    for code in (*others, "2XX", "2xx", "default"):
        if code in responses:
            return code
    return None


class _Converter:
    """One OpenAPI 3.0 Schema Object (and its inline subschemas) → draft-07."""

    def __init__(self, document: _Document, side: str) -> None:
        self.document = document
        self.side = side
        self.result = _Converted(None)

    def run(self, schema: Any, where: str) -> _Converted:
        try:
            self.result.schema = self.convert(schema, where)
        except RecursionError:
            self.error(where, "schema nested too deeply")
        return self.result

    def warn(self, where: str, message: str) -> None:
        self.result.notes.append((False, where, message))

    def error(self, where: str, message: str) -> None:
        self.result.notes.append((True, where, message))

    def convert(self, node: Any, where: str) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            self.error(where, "a schema must be an object")
            return {}
        if "$ref" in node:
            return self.reference(node, where)
        out: dict[str, Any] = {}
        for key, value in node.items():
            at = f"{where}/{esc(key)}"
            if key.startswith("x-") or key in _DROPPED or key in ("nullable", "example", "discriminator"):
                continue
            if key in _PLAIN:
                out[key] = copy.deepcopy(value)
            elif key == "type":
                out[key] = self.type_(value, at)
            elif key == "items":
                out[key] = self.items(value, at)
            elif key in _SCHEMA_MAPS:
                out[key] = self.schema_map(value, at)
            elif key in _SCHEMA_ONE:
                out[key] = self.convert(value, at)
            elif key in _SCHEMA_LISTS:
                if isinstance(value, list):
                    out[key] = [self.convert(sub, f"{at}/{i}") for i, sub in enumerate(value)]
                else:
                    self.error(at, f"{key} must be a list of schemas")
            elif key == "dependencies" and isinstance(value, dict):
                out[key] = {k: self.convert(v, f"{at}/{esc(k)}") if isinstance(v, dict) else copy.deepcopy(v)
                            for k, v in value.items()}
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                out[key] = copy.deepcopy(value)  # booleans are converted below
            elif key == "examples":
                if isinstance(value, list):  # JSON Schema's form; OpenAPI's map of Example Objects is dropped
                    out[key] = copy.deepcopy(value)
            elif key == "$schema":
                self.warn(at, "$schema inside an OpenAPI schema is ignored (the document's dialect applies)")
            else:
                self.warn(at, f"unknown keyword {key!r} is ignored (no such OpenAPI 3.0 or JSON Schema keyword)")
        self.exclusive(node, out, where)
        self.example(node, out)
        self.property_flags(node, out, where)
        self.format_(node, out, where)
        self.discriminator(node, out, where)
        return self.nullable(node, out, where)

    # -- keywords

    def reference(self, node: dict[str, Any], where: str) -> Any:
        ref = node["$ref"]
        at = f"{where}/$ref"
        if not isinstance(ref, str):
            self.error(at, "$ref must be a string")
            return {}
        if not ref.startswith(_COMPONENTS):
            if ref.startswith("#"):
                self.error(at, f"reference {ref!r} refused: only {_COMPONENTS}... is supported in schemas")
            else:
                self.error(at, f"external reference {ref!r} refused (nothing is fetched): "
                               "copy the schema into components/schemas")
            return {}
        first, _, rest = ref[len(_COMPONENTS):].partition("/")
        name = unescape(unquote(first))
        if name not in self.document.schemas:
            self.error(at, f"no schema {name!r} in components/schemas")
            return {}
        self.result.refs.add(name)
        out: dict[str, Any] = {"$ref": "#/definitions/" + esc(name) + (f"/{rest}" if rest else "")}
        ignored = [k for k in node if k not in _ANNOTATIONS and k not in ("$ref", "nullable")
                   and not k.startswith("x-")]
        if ignored:
            self.warn(where, f"{', '.join(ignored)} beside $ref ignored (OpenAPI 3.0 and JSON Schema "
                             "draft-07 both ignore the siblings of $ref); wrap them with the $ref in allOf")
        nullable = node.get("nullable", node.get("x-nullable"))
        if nullable is True:
            self.warn(f"{where}/nullable", "nullable beside $ref (which OpenAPI 3.0 ignores) is honoured: "
                                           "null is accepted too")
            return {"anyOf": [out, {"type": "null"}]}
        return out

    def type_(self, value: Any, at: str) -> Any:
        names = value if isinstance(value, list) else [value]
        out: list[str] = []
        for index, name in enumerate(names):
            where = f"{at}/{index}" if isinstance(value, list) else at
            if not isinstance(name, str):
                self.error(where, "type must be a string")
                continue
            if name in _JSON_TYPES:
                mapped = name
            elif name.lower() in _JSON_TYPES or name.lower() in _TYPE_ALIASES:
                mapped = name.lower() if name.lower() in _JSON_TYPES else _TYPE_ALIASES[name.lower()]
                self.warn(where, f"type {name!r} is not a JSON type: read as {mapped!r}")
            else:
                self.error(where, f"unknown type {name!r} (one of {', '.join(sorted(_JSON_TYPES))})")
                continue
            if mapped not in out:
                out.append(mapped)
        return out if isinstance(value, list) else (out[0] if out else {})

    def items(self, value: Any, at: str) -> Any:
        if not isinstance(value, list):
            return self.convert(value, at)
        if len(value) == 1:
            self.warn(at, "items is a list (tuple form): read as the schema of every item")
            return self.convert(value[0], f"{at}/0")
        if not value:
            self.warn(at, "items is an empty list: any item is accepted")
            return {}
        self.warn(at, f"items is a list of {len(value)} schemas: read as 'every item matches one of them' "
                      "(anyOf); OpenAPI 3.0 has no tuples")
        return {"anyOf": [self.convert(sub, f"{at}/{i}") for i, sub in enumerate(value)]}

    def schema_map(self, value: Any, at: str) -> Any:
        if not isinstance(value, dict):
            self.error(at, "must be an object of name -> schema")
            return {}
        return {k: self.convert(v, f"{at}/{esc(k)}") for k, v in value.items()}

    def exclusive(self, node: dict[str, Any], out: dict[str, Any], where: str) -> None:
        """OpenAPI 3.0 (like draft-04): a boolean that makes minimum/maximum exclusive."""
        for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(key)
            if not isinstance(value, bool):
                continue
            out.pop(key, None)
            if value and bound in out:
                out[key] = out.pop(bound)
            elif value:
                self.warn(f"{where}/{key}", f"{key}: true without {bound} has no effect")

    def example(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        if "example" in node and "examples" not in out:
            out["examples"] = [copy.deepcopy(node["example"])]

    def property_flags(self, node: dict[str, Any], out: dict[str, Any], where: str) -> None:
        """`required: true` on a property (draft-03 habit) and readOnly/writeOnly
        (OpenAPI: a required readOnly property is required only in responses,
        a writeOnly one only in requests)."""
        props = out.get("properties")
        if not isinstance(props, dict):
            return
        required = out.get("required", [])
        if isinstance(required, list):
            required = list(required)
        for name, sub in node.get("properties", {}).items():
            flag = sub.get("required") if isinstance(sub, dict) else None
            if isinstance(flag, bool):
                at = f"{where}/properties/{esc(name)}/required"
                if flag:
                    self.warn(at, "required: true on a property: read as the property being in its "
                                  "object's required list")
                    if isinstance(required, list) and name not in required:
                        required.append(name)
                else:
                    self.warn(at, "required: false on a property is ignored")
                if isinstance(props.get(name), dict):
                    props[name].pop("required", None)
        if not isinstance(required, list):
            return
        skip = "readOnly" if self.side == "request" else "writeOnly"
        kept = [name for name in required
                if not (isinstance(sub := self.document.resolve(node.get("properties", {}).get(name)), dict)
                        and sub.get(skip) is True)]
        if kept:
            out["required"] = kept
        else:
            out.pop("required", None)

    def format_(self, node: dict[str, Any], out: dict[str, Any], where: str) -> None:
        fmt = node.get("format")
        if not isinstance(fmt, str):
            return
        at = f"{where}/format"
        kind = out.get("type")
        if fmt in _INT_BOUNDS or fmt == "integer":
            if kind == "number":
                out["type"] = "integer"
                self.warn(at, f"type number with format {fmt!r}: read as type integer")
            if fmt in _INT_BOUNDS:
                low, high = _INT_BOUNDS[fmt]
                if "minimum" not in out and "exclusiveMinimum" not in out:
                    out["minimum"] = low
                if "maximum" not in out and "exclusiveMaximum" not in out:
                    out["maximum"] = high
            if kind == "string":
                self.warn(at, f"format {fmt!r} on a string is not checked")
        elif fmt in _FORMAT_PATTERNS:
            if "pattern" not in out:
                out["pattern"] = _FORMAT_PATTERNS[fmt]
        elif fmt not in _CHECKED_FORMATS and fmt not in _ANNOTATION_FORMATS:
            self.warn(at, f"format {fmt!r} is not checked by the hub (kept as an annotation)")

    def discriminator(self, node: dict[str, Any], out: dict[str, Any], where: str) -> None:
        if "discriminator" in node and not ({"oneOf", "anyOf"} & node.keys()):
            self.warn(f"{where}/discriminator",
                      "discriminator without oneOf/anyOf is dropped: the subtypes it names are not checked")

    def nullable(self, node: dict[str, Any], out: dict[str, Any], where: str) -> Any:
        nullable = node.get("nullable")
        if "x-nullable" in node and nullable is None:
            nullable = node["x-nullable"]
            self.warn(f"{where}/x-nullable", "x-nullable is Swagger 2.0's: read as nullable")
        if nullable is None or nullable is False:
            return out
        at = f"{where}/nullable"
        if nullable is not True:
            self.error(at, "nullable must be true or false")
            return out
        kind = out.get("type")
        if isinstance(kind, str) and kind != "null":
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
            self.warn(at, "nullable with an enum that lacks null: null is accepted too "
                          "(OpenAPI 3.0.3 would still refuse it)")
        if kind is None and ({"allOf", "anyOf", "oneOf", "not", "const"} & out.keys()):
            self.warn(at, "nullable without type: null is accepted too (OpenAPI 3.0.3 would ignore it)")
            notes = {k: out.pop(k) for k in ("title", "description") if k in out}
            return {**notes, "anyOf": [out, {"type": "null"}]}
        if "const" in out:
            notes = {k: out.pop(k) for k in ("title", "description") if k in out}
            return {**notes, "anyOf": [out, {"type": "null"}]}
        return out


# ---- across documents ----------------------------------------------------------------------

def merge_versions(specs: list[ActionSpec], problems: list[Problem]) -> list[ActionSpec]:
    """One document per published version: the same action with other
    versions is merged; the same version twice is an error naming both."""
    merged: dict[str, ActionSpec] = {}
    origin: dict[tuple[str, int], str] = {}
    for spec in specs:
        have = merged.get(spec.name)
        twice = sorted(have.versions.keys() & spec.versions.keys()) if have else []
        if twice:
            file, _, pointer = spec.source.partition("#")
            elsewhere = sorted({origin[(spec.name, n)] for n in twice})
            problems.append(Problem(file, pointer, (
                f"action {spec.name!r} version {', '.join(map(str, twice))} is defined twice: "
                f"here and in {' and '.join(elsewhere)}")))
            continue
        origin.update({(spec.name, n): spec.source for n in spec.versions})
        if have is None:
            merged[spec.name] = spec
            continue
        newest = spec if max(spec.versions) > max(have.versions) else have
        merged[spec.name] = ActionSpec(
            name=spec.name,
            source=f"{have.source} + {spec.source}",
            versions={**have.versions, **spec.versions},
            title=newest.title,
            description=newest.description,
            idempotent=have.idempotent and spec.idempotent,
        )
    return list(merged.values())
