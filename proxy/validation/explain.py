"""Explaining a rejection with jsonschema: every violation with an exact
JSON Pointer and a message built from the schema's side only (instance
values may be secret). Off the hot path: it runs only after an engine has
said no. Formats use fastjsonschema's own regexes so the two agree.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jsonschema
import jsonschema.exceptions
from jsonschema_specifications import REGISTRY as META_SCHEMAS

from ..jsonpointer import pointer
from ..types import ValidationIssue
from .base import MAX_ISSUES
from .drafts import Draft, short


def reference_explainer(schema: Any, draft: Draft, formats: bool) -> Any:
    """jsonschema's validator for `schema`: references resolve within it and
    the shipped meta-schemas only (bundle.py has refused the rest), formats
    are checked only when `formats`, with fastjsonschema's regexes."""
    return draft.meta(schema, format_checker=format_checker(draft) if formats else None, registry=META_SCHEMAS)


@functools.cache  # one per draft: the regexes are the same for every schema
def format_checker(draft: Draft) -> jsonschema.FormatChecker:
    """jsonschema's format checks, using fastjsonschema's own regexes."""
    checker = jsonschema.FormatChecker(formats=())
    for name, regex in draft.generator.FORMAT_REGEXS.items():
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
    return [ValidationIssue(pointer(path), message_for(keyword, value, error))]


def _extra_properties(error: jsonschema.exceptions.ValidationError) -> list[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    declared = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    instance: Any = error.instance
    return [
        name for name in instance
        if name not in declared and not any(p.search(name) for p in patterns)
    ]


def message_for(keyword: str, value: Any, error: jsonschema.exceptions.ValidationError) -> str:
    """A message from the schema's side only: instance values may be secret."""
    match keyword:
        case "type":
            kinds = value if isinstance(value, list) else [value]
            return "must be of type " + " or ".join(map(str, kinds))
        case "enum":
            return f"must be one of {short(repr(value), 120)}"
        case "const":
            return f"must be {short(repr(value), 120)}"
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
            return f"must match the pattern {short(str(value), 120)}"
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
