"""The fastjsonschema engine (the default, `[catalogue] validator =
"fastjsonschema"`): decides on the hot path.

fastjsonschema generates Python code per schema and is fast, but stops at
the first error, names paths in a way that splits keys containing ``.`` or
``[``, silently mis-compiles some invalid schemas, silently ignores
newer-draft keywords, fetches remote ``$ref``s at compile time and follows
only ``#/…`` references in a document without ``$id``. So every schema is
checked first (drafts.check_schema), a schema with identifiers or other
references is bundled into one such document (bundle.py), 2019-09 and
2020-12 schemas are rewritten into draft-07 keywords (lower.py), and a
rejection is explained by another engine: jsonschema-rs when installed
(several times faster), else jsonschema (explain.py).

A schema that needs what fastjsonschema cannot run (`$dynamicRef`,
`$recursiveRef`, `unevaluated*`, `minContains`/`maxContains`) is validated
by jsonschema-rs, else by jsonschema: `Compiled.fallback` says why, and the
load reports it as a warning.
"""

from __future__ import annotations

import asyncio
import copy
import decimal
import types
from collections.abc import Awaitable, Callable
from typing import Any

import fastjsonschema
import orjson

from ..observe.logs import get_logger
from ..types import ValidationIssue
from . import rs
from .base import Compiled, SchemaError, Validator
from .bundle import bundle, needs_bundling
from .codecache import CodeCache
from .drafts import DRAFT_07, Draft, check_schema
from .explain import explain, reference_explainer
from .fastcode import compile_trimmed
from .lower import LOWERED_DRAFTS

# fastjsonschema picks its generator from `$schema`: its "2019" one is
# draft-07's keywords with the 2019-09 formats, what a lowered schema needs.
_LOWERED_DIALECT = "https://json-schema.org/draft/2019-09/schema"
log = get_logger("apihub.catalogue")
REFERENCE = "jsonschema"  # the engine of last resort, when jsonschema-rs is not installed


class FastEngine:
    name = "fastjsonschema"

    def __init__(self, code_cache: CodeCache | None = None, *, assert_formats: bool = False) -> None:
        # [catalogue] cache_dir: code of schemas that passed every check before.
        self._code_cache = code_cache
        self._assert_formats = assert_formats  # [catalogue] assert_formats (2019-09, 2020-12)

    def compile(self, schema: Any) -> Compiled:
        """Every check at once (a broken schema rejects the catalogue); the
        code itself on first use (_LazyCode): most of a large catalogue's
        load time was generating code for schemas a worker may never see."""
        draft = check_schema(schema)
        formats = self._assert_formats or draft.asserts_formats
        definition = schema
        if draft.name in LOWERED_DRAFTS or needs_bundling(schema):
            bundled = bundle(schema, draft.name, lower=draft.name in LOWERED_DRAFTS, assert_formats=formats)
            if bundled.blockers:
                return _fallback(schema, draft, formats, bundled.blockers[0])
            definition = bundled.schema
        decide = _LazyCode(_definition(definition, draft), self._code_cache, _cache_key(schema, formats),
                           lambda: _fallback(schema, draft, formats, ("", "this schema")).validate)
        return self._compiled(decide, schema, draft, formats)

    def _compiled(self, decide: _LazyCode, schema: Any, draft: Draft, formats: bool) -> Compiled:
        # jsonschema's validator only for a rejection jsonschema-rs cannot explain:
        # built then, not at load (a tenth of a large catalogue's load time).
        validate = _fast_validator(decide, lambda: reference_explainer(schema, draft, formats),
                                   rs.lazy_explainer(schema, draft.name, _regexes(draft, formats)))
        return Compiled(validate, draft.name, self.name, ready=decide.ready)


# A schema this large (its JSON, in bytes) takes fastjsonschema 0.1–0.8 s
# to generate code for (GitHub's published response schemas): on the event
# loop that would hold every other call of the worker.
IN_BACKGROUND_ABOVE = 8 * 1024


class _LazyCode:
    """fastjsonschema's code for one schema, generated on the first call (or
    loaded from the code cache). A large schema's code is generated in a
    thread: the pipeline awaits `ready()` before it validates, so the call
    that needs it waits, and the worker's other calls go on. Should
    fastjsonschema fail to compile a schema that passed every check, the
    other engine validates it instead, and the log says so: the verdict
    stays right."""

    __slots__ = ("_cache", "_decide", "_definition", "_fallback", "_key", "_waiting")

    def __init__(self, definition: Any, cache: CodeCache | None, key: Any,
                 fallback: Callable[[], Validator]) -> None:
        self._definition = definition
        self._cache = cache
        self._key = key
        self._fallback = fallback
        self._decide: Callable[[Any], Any] | None = None
        self._waiting: asyncio.Future[None] | None = None  # resolved once generated in a thread

    def __call__(self, instance: Any) -> Any:
        decide = self._decide
        if decide is None:
            # Not awaited first (a command, a test): made here and now.
            decide = self._decide = self._cached() or self._generate()
        return decide(instance)

    def ready(self) -> Awaitable[None] | None:
        if self._decide is not None:
            return None
        if self._waiting is not None:
            # Each caller's own wait: a cancelled one (the consumer went away)
            # must not cancel the generation the others wait for.
            return asyncio.shield(self._waiting)
        cached = self._cached()
        if cached is not None:
            self._decide = cached
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or not _large(self._definition):
            self._decide = self._generate()
            return None
        try:
            generating = loop.run_in_executor(None, self._generate)
        except RuntimeError:  # the loop's executor is shut down: here, then
            self._decide = self._generate()
            return None
        waiting = self._waiting = loop.create_future()

        def generated(future: asyncio.Future[Callable[[Any], Any]]) -> None:
            self._waiting = None
            if not future.cancelled() and future.exception() is None:
                self._decide = future.result()
            # Else __call__ generates it when first needed.
            waiting.set_result(None)

        generating.add_done_callback(generated)
        return asyncio.shield(waiting)

    def _cached(self) -> Callable[[Any], Any] | None:
        if self._cache is not None:
            code = self._cache.load(self._key)
            if code is not None:
                try:
                    return _run(code)
                except Exception:  # noqa: BLE001 - a stale or damaged entry: compile afresh
                    pass
        return None

    def _generate(self) -> Callable[[Any], Any]:
        try:
            code = compile_trimmed(_source(self._definition))
            decide = _run(code)
        except Exception as exc:  # noqa: BLE001 - fastjsonschema has crashed with KeyError, RecursionError...
            log.warning("schema_compile_fell_back", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
            return _deciding(self._fallback())
        if self._cache is not None:
            self._cache.store(self._key, code)
        return decide


def _large(definition: Any) -> bool:
    try:
        return len(orjson.dumps(definition)) > IN_BACKGROUND_ABOVE
    except orjson.JSONEncodeError:  # an integer past 64 bits in the schema
        return True


def _source(definition: Any) -> str:
    """fastjsonschema's code for `definition`. Without detailed exceptions:
    trimming drops them anyway, and their schema literal in every `raise`
    was half the time of parsing the code. fastjsonschema 2.22 cannot
    generate `const` that way (KeyError): then with them."""
    try:
        return _generated(definition, detailed=False)
    except KeyError:
        return _generated(definition, detailed=True)


def _generated(definition: Any, *, detailed: bool) -> str:
    return fastjsonschema.compile_to_code(
        copy.deepcopy(definition),  # fastjsonschema rewrites `$ref`s in place
        handlers=_NO_REMOTE,
        use_default=False,  # validation must never change what is forwarded
        detailed_exceptions=detailed,
    )


def _deciding(validate: Validator) -> Callable[[Any], None]:
    """Another engine's validator in fastjsonschema's shape: raise when invalid."""
    def decide(instance: Any) -> None:
        if validate(instance):
            raise fastjsonschema.JsonSchemaException("does not follow the schema")

    return decide


def _fallback(schema: Any, draft: Draft, formats: bool, blocker: tuple[str, str]) -> Compiled:
    """Another engine for a schema fastjsonschema cannot run, with the same
    format rules (fastjsonschema's regexes), and the reason why."""
    where, what = blocker
    if rs.available():
        validate = rs.compile_rs(schema, draft.name, validate_formats=formats,
                                 format_regexes=_regexes(draft, formats))
        engine = rs.RsEngine.name
    else:
        validate, engine = _reference_validator(reference_explainer(schema, draft, formats)), REFERENCE
    return Compiled(validate, draft.name, engine,
                    f"fastjsonschema cannot run {what} (at {where or '/'}): validated by {engine}")


def _regexes(draft: Draft, formats: bool) -> dict[str, str] | None:
    """fastjsonschema's format regexes, which the other engines use too, when formats assert."""
    return draft.generator.FORMAT_REGEXS if formats else None


def _definition(definition: Any, draft: Draft) -> Any:
    if not isinstance(definition, dict):
        return definition
    if draft.name in LOWERED_DRAFTS:
        return {**definition, "$schema": _LOWERED_DIALECT}
    if "$schema" not in definition:
        # fastjsonschema would otherwise pick its newest generator.
        return {"$schema": DRAFT_07, **definition}
    return definition


def _cache_key(schema: Any, formats: bool) -> Any:
    return {"schema": schema, "formats": formats}


def _run(code: types.CodeType) -> Callable[[Any], Any]:
    """The `validate` function of fastjsonschema's generated module."""
    # fastjsonschema 2.22 drops its `Decimal` import from the code of a schema
    # with `format: regex` while still using it for numbers.
    namespace: dict[str, Any] = {"Decimal": decimal.Decimal}
    exec(code, namespace)  # noqa: S102 - code fastjsonschema generated from a checked schema
    return namespace["validate"]  # type: ignore[no-any-return]


def _refuse_remote(uri: str) -> Any:
    raise SchemaError("", f"remote reference {uri!r} refused")


_NO_REMOTE = {scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp", "urn", "")}


def _fast_validator(decide: Callable[[Any], Any], make_explainer: Callable[[], Any],
                    quick: Callable[[Any], tuple[ValidationIssue, ...]] | None = None) -> Validator:
    explainers: list[Any] = []

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
            if not explainers:
                explainers.append(make_explainer())
            issues = explain(explainers[0], instance)
        # The engines agree by construction; should they not, still reject.
        return issues or (ValidationIssue("", "does not follow the schema"),)

    return validate


def _reference_validator(explainer: Any) -> Validator:
    def validate(instance: Any) -> tuple[ValidationIssue, ...]:
        return explain(explainer, instance)

    return validate
