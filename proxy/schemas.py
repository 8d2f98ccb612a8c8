"""The validator seam: compile a JSON Schema once into a callable that
returns the list of violations of an instance (empty when it conforms).

Two engines work together, each where it is best:

* **fastjsonschema** decides, on the hot path. It generates Python code per
  schema, is fast, but stops at the first error, names paths in a way that
  splits keys containing ``.`` or ``[``, silently mis-compiles some invalid
  schemas, silently ignores newer-draft keywords and fetches remote ``$ref``s
  over the network at compile time. So every schema is checked here first:
  against its draft's meta-schema, for remote references, and for keywords
  its draft does not have.
* **jsonschema** explains, only after a rejection (off the hot path): it
  lists every violation with an exact location, turned into JSON Pointers.
  It uses the same format regexes as fastjsonschema so the two agree.

Drafts 2019-09 and 2020-12 (declared by ``$schema``) are validated by
jsonschema alone: correct, slower, and said so by a load warning.
A schema without ``$schema`` is draft-07.
"""

from __future__ import annotations

import copy
import functools
import re
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fastjsonschema
import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from fastjsonschema.draft04 import CodeGeneratorDraft04
from fastjsonschema.draft06 import CodeGeneratorDraft06
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.draft2019 import CodeGeneratorDraft2019

from .errors import ValidationIssue

if TYPE_CHECKING:
    from .codecache import CodeCache

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# A validator returns the violations of an instance; () when it conforms.
Validator = Callable[[Any], tuple[ValidationIssue, ...]]

MAX_ISSUES = 50


class SchemaError(Exception):
    """A schema that the hub refuses to compile; `pointer` locates the problem."""

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


@dataclass(frozen=True, slots=True)
class _Draft:
    name: str
    meta: type[jsonschema.protocols.Validator]
    generator: type[CodeGeneratorDraft04] | None  # None: jsonschema validates alone
    # Keywords that exist only in later drafts: silently ignored by this draft.
    foreign: frozenset[str]


_LATER_THAN_07 = frozenset({
    "prefixItems", "dependentRequired", "dependentSchemas", "unevaluatedProperties",
    "unevaluatedItems", "minContains", "maxContains", "$anchor", "$dynamicRef",
    "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "$vocabulary",
})
_LATER_THAN_04 = _LATER_THAN_07 | {"const", "contains", "propertyNames", "examples"}

_DRAFTS: dict[str, _Draft] = {
    "draft-04": _Draft("draft-04", jsonschema.Draft4Validator, CodeGeneratorDraft04, _LATER_THAN_04),
    "draft-06": _Draft("draft-06", jsonschema.Draft6Validator, CodeGeneratorDraft06,
                       _LATER_THAN_07 | {"if", "then", "else"}),
    "draft-07": _Draft("draft-07", jsonschema.Draft7Validator, CodeGeneratorDraft07, _LATER_THAN_07),
    "2019-09": _Draft("2019-09", jsonschema.Draft201909Validator, None,
                      frozenset({"prefixItems", "$dynamicRef", "$dynamicAnchor"})),
    "2020-12": _Draft("2020-12", jsonschema.Draft202012Validator, None,
                      frozenset({"$recursiveRef", "$recursiveAnchor"})),
}

# Where a schema keeps subschemas, by keyword: so the walk below visits
# schemas only, never instance data such as `enum`, `const` or `default`.
_SCHEMA_MAPS = {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"}
_SCHEMA_ONE = {
    "additionalProperties", "additionalItems", "items", "contains", "not", "if", "then", "else",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties",
}
_SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}
_DATA_KEYWORDS = {"enum", "const", "default", "examples", "example"}


def _draft_of(schema: Any) -> _Draft:
    declared = schema.get("$schema") if isinstance(schema, dict) else None
    if declared is None:
        return _DRAFTS["draft-07"]
    if not isinstance(declared, str):
        raise SchemaError("/$schema", "must be a string")
    for marker, draft in (("draft-04", "draft-04"), ("draft-06", "draft-06"),
                          ("draft-07", "draft-07"), ("2019-09", "2019-09"),
                          ("2020-12", "2020-12")):
        if marker in declared:
            return _DRAFTS[draft]
    raise SchemaError("/$schema", f"unknown JSON Schema draft {declared!r}")


def _escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(parts: Iterable[str | int]) -> str:
    return "".join("/" + _escape(part) for part in parts)


def _walk(schema: Any, at: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every subschema object with its location, skipping instance data."""
    if not isinstance(schema, dict):
        return
    yield at, schema
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*at, key, name))
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            for index, sub in enumerate(value):
                yield from _walk(sub, (*at, key, index))
        elif key in _SCHEMA_ONE:
            yield from _walk(value, (*at, key))
        elif key == "dependencies" and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, (*at, key, name))


def check_schema(schema: Any) -> _Draft:
    """Refuse what fastjsonschema would compile wrongly or dangerously."""
    if not isinstance(schema, (dict, bool)):
        raise SchemaError("", "a schema must be a JSON object or a boolean")
    draft = _draft_of(schema)
    best = jsonschema.exceptions.best_match(draft.meta(draft.meta.META_SCHEMA).iter_errors(schema))
    if best is not None:
        raise SchemaError(
            pointer(best.absolute_path),
            f"not a valid {draft.name} schema: {_short(best.message)}",
        )
    for at, sub in _walk(schema):
        ref = sub.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise SchemaError(pointer((*at, "$ref")),
                              f"remote reference {ref!r} refused: only local '#...' references are allowed")
        sub_id = sub.get("$id", sub.get("id")) if at else None
        if isinstance(sub_id, str) and not sub_id.startswith("#"):
            raise SchemaError(pointer((*at, "$id")),
                              "nested $id changes the base of references; inline the schema instead")
        for keyword in draft.foreign.intersection(sub):
            raise SchemaError(
                pointer((*at, keyword)),
                f"keyword {keyword!r} does not exist in {draft.name} and would be silently ignored; "
                "declare the draft that has it in \"$schema\" or remove it",
            )
    return draft


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"


@functools.cache  # one per draft: the regexes are the same for every schema
def _format_checker(draft: _Draft) -> jsonschema.FormatChecker:
    """jsonschema's format checks, using fastjsonschema's own regexes."""
    regexes = dict(CodeGeneratorDraft2019.FORMAT_REGEXS)
    if draft.generator is not None:
        regexes = dict(draft.generator.FORMAT_REGEXS)
    checker = jsonschema.FormatChecker(formats=())
    for name, regex in regexes.items():
        compiled = re.compile(regex)
        checker.checks(name)(lambda value, _re=compiled: not isinstance(value, str) or bool(_re.match(value)))
    checker.checks("regex")(is_regex)
    return checker


def is_regex(value: Any) -> bool:
    """The `regex` format: a string Python's re accepts (what fastjsonschema checks)."""
    if not isinstance(value, str):
        return True
    try:
        re.compile(value)
    except re.error:
        return False
    return True


def compile_schema(schema: Any, engine: str = "fastjsonschema",
                   code_cache: CodeCache | None = None) -> tuple[Validator, str]:
    """Check and compile a schema; returns (validator, draft name).

    `engine` is `[catalogue] validator`: "fastjsonschema" (the default, as
    described above) or "jsonschema-rs" (schemas_rs.py, same checks, same
    issues). Raises SchemaError when the schema is refused. With a
    `code_cache`, fastjsonschema's code for a schema that passed the checks
    before is loaded instead of generated (codecache.py).
    """
    if engine == "fastjsonschema" and code_cache is not None:
        cached = _from_cache(schema, code_cache)
        if cached is not None:
            return cached
    draft = check_schema(schema)
    if engine == "jsonschema-rs":
        from .schemas_rs import compile_rs

        return compile_rs(schema, draft.name), draft.name
    explainer = draft.meta(schema, format_checker=_format_checker(draft))
    if draft.generator is None:
        return _reference_validator(explainer), draft.name
    definition = _definition(schema)
    try:
        source = fastjsonschema.compile_to_code(
            copy.deepcopy(definition),  # fastjsonschema rewrites `$ref`s in place
            handlers=_NO_REMOTE,
            use_default=False,  # validation must never change what is forwarded
            # Details only cost on failure; without them 2.22 cannot compile `const`.
            detailed_exceptions=True,
        )
        code = compile(source, "<apihub schema>", "exec")
        decide = _run(code)
    except RecursionError:
        raise SchemaError("", "too deeply nested to compile") from None
    except SchemaError:
        raise
    except Exception as exc:  # fastjsonschema has crashed with KeyError and friends
        raise SchemaError("", f"cannot be compiled: {type(exc).__name__}: {exc}") from None
    if code_cache is not None:
        code_cache.store(definition, code)
    return _fast_validator(decide, explainer, _quick_explainer(schema, draft)), draft.name


def _definition(schema: Any) -> Any:
    if isinstance(schema, dict) and "$schema" not in schema:
        # fastjsonschema would otherwise pick its newest generator.
        return {"$schema": DRAFT_07, **schema}
    return schema


def _run(code: types.CodeType) -> Callable[[Any], Any]:
    """The `validate` function of fastjsonschema's generated module."""
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - code fastjsonschema generated from a checked schema
    return namespace["validate"]  # type: ignore[no-any-return]


def _from_cache(schema: Any, code_cache: CodeCache) -> tuple[Validator, str] | None:
    """A schema that passed every check before: its stored code, no checks again."""
    draft = _draft_of(schema)
    if draft.generator is None:
        return None
    code = code_cache.load(_definition(schema))
    if code is None:
        return None
    try:
        decide = _run(code)
    except Exception:  # a stale or damaged entry: compile afresh
        return None
    explainer = draft.meta(schema, format_checker=_format_checker(draft))
    return _fast_validator(decide, explainer, _quick_explainer(schema, draft)), draft.name


def _quick_explainer(schema: Any, draft: _Draft) -> Callable[[Any], tuple[ValidationIssue, ...]] | None:
    """jsonschema-rs, when installed, explains a rejection several times
    faster than jsonschema, with the same format regexes; None without it."""
    from .schemas_rs import lazy_explainer

    assert draft.generator is not None
    return lazy_explainer(schema, draft.name, draft.generator.FORMAT_REGEXS)


def _refuse_remote(uri: str) -> Any:
    raise SchemaError("", f"remote reference {uri!r} refused")


_NO_REMOTE = {scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp", "urn", "")}


def _fast_validator(decide: Callable[[Any], Any], explainer: Any,
                    quick: Callable[[Any], tuple[ValidationIssue, ...]] | None = None) -> Validator:
    def validate(instance: Any) -> tuple[ValidationIssue, ...]:
        try:
            decide(instance)
            return ()
        except fastjsonschema.JsonSchemaException:
            pass
        except RecursionError:
            return (ValidationIssue("", "nested too deeply to validate"),)
        # A rejection must stay cheaper than a success: the quick explainer
        # first, jsonschema only when it has nothing to say.
        issues = quick(instance) if quick is not None else ()
        if not issues:
            issues = explain(explainer, instance)
        # The engines agree by construction; should they not, still reject.
        return issues or (ValidationIssue("", "does not follow the schema"),)

    return validate


def _reference_validator(explainer: Any) -> Validator:
    def validate(instance: Any) -> tuple[ValidationIssue, ...]:
        return explain(explainer, instance)

    return validate


def explain(explainer: Any, instance: Any) -> tuple[ValidationIssue, ...]:
    issues: list[ValidationIssue] = []
    try:
        for error in explainer.iter_errors(instance):
            issues.extend(_issues(error))
            if len(issues) >= MAX_ISSUES:
                break
    except RecursionError:
        return (ValidationIssue("", "nested too deeply to validate"),)
    issues.sort(key=lambda issue: issue.pointer)
    return tuple(dict.fromkeys(issues))


def _issues(error: jsonschema.exceptions.ValidationError) -> list[ValidationIssue]:
    path = list(error.absolute_path)
    keyword = str(error.validator)
    value: Any = error.validator_value
    if keyword == "required" and isinstance(error.instance, dict):
        missing = [name for name in value if name not in error.instance]
        # jsonschema yields one error per missing name; its message names it.
        named = [name for name in missing if repr(name) in error.message] or missing[:1]
        return [ValidationIssue(pointer([*path, name]), "is required") for name in named]
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        extras = _extra_properties(error)
        if extras:
            return [ValidationIssue(pointer([*path, name]), "is not allowed here") for name in extras]
    if keyword in ("anyOf", "oneOf") and error.context:
        # Point at the deepest cause when every branch fails at the same place.
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(path):
            return _issues(deepest)
    return [ValidationIssue(pointer(path), _message(keyword, value, error))]


def _extra_properties(error: jsonschema.exceptions.ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    declared = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    instance: Any = error.instance
    return [
        name for name in instance
        if name not in declared and not any(p.search(name) for p in patterns)
    ]


def _message(keyword: str, value: Any, error: jsonschema.exceptions.ValidationError) -> str:
    """A message from the schema's side only: instance values may be secret."""
    match keyword:
        case "type":
            kinds = value if isinstance(value, list) else [value]
            return "must be of type " + " or ".join(map(str, kinds))
        case "enum":
            return f"must be one of {_short(repr(value), 120)}"
        case "const":
            return f"must be {_short(repr(value), 120)}"
        case "format":
            return f"must be a valid {value}"
        case "minimum":
            return f"must be >= {value}"
        case "maximum":
            return f"must be <= {value}"
        case "exclusiveMinimum":
            return f"must be > {value}" if not isinstance(value, bool) else "must be > the minimum"
        case "exclusiveMaximum":
            return f"must be < {value}" if not isinstance(value, bool) else "must be < the maximum"
        case "multipleOf":
            return f"must be a multiple of {value}"
        case "minLength":
            return f"must be at least {value} characters long"
        case "maxLength":
            return f"must be at most {value} characters long"
        case "pattern":
            return f"must match the pattern {_short(str(value), 120)}"
        case "minItems":
            return f"must have at least {value} items"
        case "maxItems":
            return f"must have at most {value} items"
        case "uniqueItems":
            return "must have unique items"
        case "minProperties":
            return f"must have at least {value} properties"
        case "maxProperties":
            return f"must have at most {value} properties"
        case "additionalProperties" | "unevaluatedProperties":
            return "has properties that are not allowed"
        case "additionalItems" | "unevaluatedItems" | "items" if value is False:
            return "has more items than allowed"
        case "anyOf":
            return "must match at least one of the allowed schemas"
        case "oneOf":
            return "must match exactly one of the allowed schemas"
        case "not":
            return "must not match the excluded schema"
        case "contains":
            return "must contain a matching item"
        case "dependencies" | "dependentRequired":
            return "is missing properties its other properties depend on"
        case "propertyNames":
            return "has a property name that is not allowed"
        case "if" | "then" | "else":
            return "does not match the conditional schema"
        case _:
            if value is False or error.validator is False:  # type: ignore[comparison-overlap]
                return "is not allowed"
            return f"fails the {keyword!r} rule"
