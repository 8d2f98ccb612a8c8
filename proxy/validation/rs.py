"""The optional jsonschema-rs engine (`[catalogue] validator = "jsonschema-rs"`).

Behind the same seam as fastjsonschema (base.Engine): the
schema is checked by the same rules first, the validator returns the same
`ValidationIssue`s (JSON Pointers, messages built from the schema, never
from the instance). jsonschema-rs (Rust) decides and explains in one pass,
compiles a schema in about a hundredth of the time, and validates large
answers several times faster. It is a dependency (the meta-schema checks
at load and the explanations of rejections use it too); the engine still
refuses to start without it, should an install lack it.

Formats are checked by jsonschema-rs's own rules (RFC 3339 dates and times,
etc.), which are close to but not byte-for-byte those of fastjsonschema's
regexes. `format` asserts in draft-04/06/07 and, with `[catalogue]
assert_formats`, in 2019-09/2020-12. No `$ref` is ever fetched (`offline`,
and remote references are refused by bundle.check_references first).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from ..config import ConfigError
from ..jsonpointer import pointer
from ..types import ValidationIssue
from .base import MAX_ISSUES, Compiled, SchemaError, Validator
from .bundle import check_references
from .drafts import check_schema
from .explain import is_regex, message_for

MODULE = "jsonschema_rs"
INSTALL_HINT = "pip install 'apihub[rs]' (or: pip install jsonschema-rs)"


def available() -> bool:
    try:
        import jsonschema_rs  # noqa: F401
    except ImportError:
        return False
    return True


def _classes() -> dict[str, Any]:
    import jsonschema_rs as rs

    return {
        "draft-04": rs.Draft4Validator, "draft-06": rs.Draft6Validator, "draft-07": rs.Draft7Validator,
        "2019-09": rs.Draft201909Validator, "2020-12": rs.Draft202012Validator,
    }


class RsEngine:
    name = "jsonschema-rs"

    def __init__(self, code_cache: object = None, *, assert_formats: bool = False) -> None:
        # Compiling is fast enough that nothing is cached on disk.
        if not available():
            raise ConfigError(f"[catalogue] validator = \"jsonschema-rs\" needs the jsonschema-rs "
                              f"package, which is not installed: {INSTALL_HINT}")
        self._assert_formats = assert_formats  # [catalogue] assert_formats (2019-09, 2020-12)

    def compile(self, schema: Any) -> Compiled:
        draft = check_schema(schema)
        check_references(schema, draft.name)
        formats = self._assert_formats or draft.asserts_formats
        return Compiled(compile_rs(schema, draft.name, validate_formats=formats), draft.name, self.name)


def compile_rs(schema: Any, draft: str, *, validate_formats: bool = True,
               format_regexes: dict[str, str] | None = None) -> Validator:
    """A validator for an already checked schema of the named draft; with
    `format_regexes`, formats are checked by those (fastjsonschema's)."""
    cls = _classes()[draft]
    try:
        if format_regexes is None:
            engine = cls(schema, validate_formats=validate_formats, offline=True)
        else:
            engine = cls(schema, validate_formats=True, offline=True,
                         formats=_formats(tuple(format_regexes.items())))
    except ValueError as exc:  # jsonschema-rs refuses the schema
        raise SchemaError("", f"cannot be compiled: {str(exc).splitlines()[0]}") from None
    is_valid = engine.is_valid

    def validate(instance: Any) -> tuple[ValidationIssue, ...]:
        try:
            if is_valid(instance):
                return ()
            issues = _collect(engine, schema, instance)
        except (RecursionError, ValueError):
            return (ValidationIssue("", "nested too deeply to validate"),)
        return issues or (ValidationIssue("", "does not follow the schema"),)

    return validate


def explainer(schema: Any, draft: str,
              format_regexes: dict[str, str] | None) -> Callable[[Any], tuple[ValidationIssue, ...]] | None:
    """The issues of an instance that fastjsonschema rejected, or None when
    jsonschema-rs is not installed or refuses the schema. Formats are checked
    with fastjsonschema's own regexes, so the two engines agree (not at all
    when `format_regexes` is None: `format` is an annotation)."""
    if not available():
        return None
    try:
        if format_regexes is None:
            engine = _classes()[draft](schema, validate_formats=False, offline=True)
        else:
            engine = _classes()[draft](schema, validate_formats=True, offline=True,
                                       formats=_formats(tuple(format_regexes.items())))
    except (ValueError, KeyError):
        return None

    def explain(instance: Any) -> tuple[ValidationIssue, ...]:
        try:
            return _collect(engine, schema, instance)
        except (RecursionError, ValueError):
            return ()  # the caller falls back to jsonschema

    return explain


def lazy_explainer(schema: Any, draft: str,
                   format_regexes: dict[str, str] | None) -> Callable[[Any], tuple[ValidationIssue, ...]] | None:
    """`explainer`, built on the schema's first rejection: most schemas never
    reject anything, and neither load time nor memory should pay for them."""
    if not available():
        return None
    built: list[Callable[[Any], tuple[ValidationIssue, ...]] | None] = []

    def explain(instance: Any) -> tuple[ValidationIssue, ...]:
        if not built:
            built.append(explainer(schema, draft, format_regexes))
        quick = built[0]
        return quick(instance) if quick is not None else ()

    return explain


# jsonschema-rs's iter_errors makes every error before yielding the first
# (10 µs each: 150,000 wrong items held the loop 1.5 s). An instance of more
# values than this gets the first issue only, from validate(); one this small
# costs at most a few milliseconds whatever it breaks.
EXPLAIN_ALL_BELOW = 4096


def _collect(engine: Any, schema: Any, instance: Any) -> tuple[ValidationIssue, ...]:
    """The first MAX_ISSUES issues, by pointer, without repeats (RecursionError
    or ValueError for an instance nested too deeply for jsonschema-rs)."""
    issues: list[ValidationIssue] = []
    if _holds_more_than(instance, EXPLAIN_ALL_BELOW):
        from jsonschema_rs import ValidationError

        try:
            engine.validate(instance)
        except ValidationError as first:
            issues = _issues(first, schema)[:MAX_ISSUES]
    else:
        for error in engine.iter_errors(instance):
            issues.extend(_issues(error, schema))
            if len(issues) >= MAX_ISSUES:
                break
    issues.sort(key=lambda issue: issue.pointer)
    return tuple(dict.fromkeys(issues))


def _holds_more_than(value: Any, limit: int) -> bool:
    """Whether `value` holds more than `limit` values, itself included (counted up to the limit)."""
    count = 0
    stack = [value]
    while stack:
        node = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


@functools.lru_cache(maxsize=8)
def _formats(format_regexes: tuple[tuple[str, str], ...]) -> dict[str, Callable[[Any], bool]]:
    formats = {name: _matcher(re.compile(regex)) for name, regex in format_regexes}
    formats["regex"] = is_regex
    return formats


def _matcher(compiled: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: not isinstance(value, str) or bool(compiled.match(value))


class _Keyword:
    """What `explain.message_for` reads from a jsonschema error."""

    __slots__ = ("validator",)

    def __init__(self, keyword: str | bool) -> None:
        self.validator = keyword


def _issues(error: Any, schema: Any) -> list[ValidationIssue]:
    path = list(error.instance_path)
    kind = error.kind
    name = type(kind).__name__
    if name == "Required":
        return [ValidationIssue(pointer([*path, kind.property]), "is required")]
    if name in ("AdditionalProperties", "UnevaluatedProperties") and getattr(kind, "unexpected", None):
        return [ValidationIssue(pointer([*path, extra]), "is not allowed here") for extra in kind.unexpected]
    if name == "FalseSchema":
        return [ValidationIssue(pointer(path), "is not allowed")]
    context = getattr(kind, "context", None)
    if context:
        # anyOf/oneOf: point at the deepest cause when a branch fails deeper down.
        causes = [cause for branch in context for cause in branch]
        if causes:
            deepest = max(causes, key=lambda cause: len(cause.instance_path))
            if len(deepest.instance_path) > len(path):
                return _issues(deepest, schema)
    schema_path = list(error.schema_path)
    keyword = str(schema_path[-1]) if schema_path else ""
    keyword = _KEYWORD_OF_KIND.get(name, keyword)
    value = _at(schema, schema_path)
    return [ValidationIssue(pointer(path), message_for(keyword, value, _Keyword(keyword)))]  # type: ignore[arg-type]


_KEYWORD_OF_KIND = {"OneOfNotValid": "oneOf", "OneOfMultipleValid": "oneOf", "AnyOf": "anyOf"}


def _at(schema: Any, path: list[Any]) -> Any:
    """The keyword's value in the schema, following the error's schema path."""
    node = schema
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    return node
