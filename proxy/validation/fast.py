"""The fastjsonschema engine (the default, `[catalogue] validator =
"fastjsonschema"`): decides on the hot path.

fastjsonschema generates Python code per schema and is fast, but stops at
the first error, names paths in a way that splits keys containing ``.`` or
``[``, silently mis-compiles some invalid schemas, silently ignores
newer-draft keywords and fetches remote ``$ref``s at compile time. So every
schema is checked first (drafts.check_schema), and a rejection is explained
by another engine: jsonschema-rs when installed (several times faster), else
jsonschema (explain.py).

Drafts 2019-09 and 2020-12 are validated by jsonschema alone: correct,
slower, and said so by a load warning.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable
from typing import Any

import fastjsonschema

from ..types import ValidationIssue
from . import rs
from .base import SchemaError, Validator
from .codecache import CodeCache
from .drafts import DRAFT_07, Draft, check_schema, draft_of
from .explain import explain, format_checker


class FastEngine:
    name = "fastjsonschema"

    def __init__(self, code_cache: CodeCache | None = None) -> None:
        # [catalogue] cache_dir: code of schemas that passed every check before.
        self._code_cache = code_cache

    def compile(self, schema: Any) -> tuple[Validator, str]:
        if self._code_cache is not None:
            cached = self._from_cache(schema, self._code_cache)
            if cached is not None:
                return cached
        draft = check_schema(schema)
        explainer = draft.meta(schema, format_checker=format_checker(draft))
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
        if self._code_cache is not None:
            self._code_cache.store(definition, code)
        return _fast_validator(decide, explainer, _quick_explainer(schema, draft)), draft.name

    @staticmethod
    def _from_cache(schema: Any, code_cache: CodeCache) -> tuple[Validator, str] | None:
        """A schema that passed every check before: its stored code, no checks again."""
        draft = draft_of(schema)
        if draft.generator is None:
            return None
        code = code_cache.load(_definition(schema))
        if code is None:
            return None
        try:
            decide = _run(code)
        except Exception:  # a stale or damaged entry: compile afresh
            return None
        explainer = draft.meta(schema, format_checker=format_checker(draft))
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


def _quick_explainer(schema: Any, draft: Draft) -> Callable[[Any], tuple[ValidationIssue, ...]] | None:
    """jsonschema-rs, when installed, explains a rejection several times
    faster than jsonschema, with the same format regexes; None without it."""
    assert draft.generator is not None
    return rs.lazy_explainer(schema, draft.name, draft.generator.FORMAT_REGEXS)


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
