"""`[catalogue] validator = "jsonschema-rs"`: the same checks and the same
issues (JSON Pointers, messages from the schema) as the default engine, a
hub that validates with it, and a clear start-up error when it is
configured but not installed. Also the quick explainer of the default
engine's rejections (jsonschema-rs with fastjsonschema's format regexes):
its issues are jsonschema's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.web.app import create_app
from proxy.catalogue import compiler_for
from proxy.config import ConfigError, parse_config
from proxy.validation import SchemaError, check_schema, compile_schema
from proxy.validation.explain import explain, format_checker

from tests.conftest import Provider
from tests.support import (
    ECHO,
    ROOT,
    call_headers,
    consumer_manifest,
    echo_action,
    provider_manifest,
    write_catalogue,
)

pytest.importorskip("jsonschema_rs")

CONTEXT = {"issuedAt": "2026-01-01T00:00:00Z", "action": "a", "community": "c", "version": 1,
           "requester": "r", "requestId": "x"}
SECRETISH = "do-not-echo-this-value-9f8e7d"

INSTANCES: list[Any] = [
    {"context": CONTEXT, "secret": "s",
     "data": {"entity": {"type": SECRETISH, "id": "1"}, "from": "2026-01-01", "to": "tomorrow", "zz": 1}},
    {"context": {**CONTEXT, "version": 0}, "secret": "",
     "data": {"entity": {"type": "student"}, "from": "2026-01-01", "limit": 0}},
    {"context": CONTEXT, "data": {"entity": {"type": "student", "id": "x" * 70}, "from": 5, "limit": 2000}},
    [],
    {"context": CONTEXT, "secret": "s", "data": {
        "entity": {"type": "student", "id": "1"}, "from": "2026-01-01", "to": "2026-02-01",
        "kinds": ["class", "class"], "timezone": "not valid!"}},
    {"data": {"events": [{"id": 1, "title": "", "category": SECRETISH, "start": "2026", "allDay": "no"}]}},
    {"data": {"events": [], "nextCursor": 3}},
    {"data": {"student": {"id": "s"}, "schoolYear": "2026", "grades": [
        {"subject": {"code": "M", "name": "Mat"}, "term": 0, "score": 11, "publishedAt": SECRETISH}]}},
    {"data": {"payables": [{"id": "p", "description": "d", "amount": {"value": 1.5, "currency": "brl"},
                            "dueDate": "2026-13-01", "status": "late", "paymentUrl": 3}], "total": "x"}},
]


def _shipped_schemas() -> list[tuple[str, Any]]:
    out = []
    for path in sorted((ROOT / "catalogue" / "actions").glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        for version, body in doc["versions"].items():
            for side in ("request", "response"):
                out.append((f"{path.name} v{version} {side}", body[side]))
    return out


@pytest.mark.parametrize(("where", "schema"), _shipped_schemas())
def test_same_issues_as_the_default_engine(where: str, schema: Any) -> None:
    """The rs engine, and the default engine (whose rejections jsonschema-rs
    now explains when installed), say exactly what jsonschema says."""
    fast, _ = compile_schema(schema)
    rust, _ = compile_schema(schema, "jsonschema-rs")
    draft = check_schema(schema)
    reference = draft.meta(schema, format_checker=format_checker(draft))
    for instance in INSTANCES:
        expected = explain(reference, instance)
        assert fast(instance) == expected, (where, instance)
        assert rust(instance) == expected, (where, instance)
        for issue in expected:
            assert issue.pointer == "" or issue.pointer.startswith("/")
            assert SECRETISH not in issue.message


def test_same_refusals_and_drafts() -> None:
    with pytest.raises(SchemaError):
        compile_schema({"$ref": "http://example.org/x"}, "jsonschema-rs")
    with pytest.raises(SchemaError):
        compile_schema({"prefixItems": [{"type": "string"}]}, "jsonschema-rs")
    validate, draft = compile_schema(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "prefixItems": [{"type": "string"}]},
        "jsonschema-rs")
    assert draft == "2020-12"
    assert [i.as_json() for i in validate([1])] == [{"path": "/0", "message": "must be of type string"}]
    # Without $schema a schema is draft-07, as with the default engine.
    validate, draft = compile_schema({"dependencies": {"a": ["b"]}}, "jsonschema-rs")
    assert draft == "draft-07" and validate({"a": 1}) != ()


def test_configured_but_not_installed_is_a_clear_start_up_error(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)  # import now fails
    config = parse_config({"catalogue": {"validator": "jsonschema-rs"}}, base_dir=tmp_path)
    # The engine is looked up by name when the hub (or the check) is built.
    with pytest.raises(ConfigError, match=r"\[catalogue\] validator.*jsonschema-rs.*pip install"):
        compiler_for(config.catalogue)


async def test_a_hub_validating_with_jsonschema_rs(tmp_path: Path, aiohttp_client: Any,
                                                  provider: Provider) -> None:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()],
                           [provider_manifest("provider-app", provider.url), consumer_manifest()])
    config = parse_config({"catalogue": {"path": str(root), "validator": "jsonschema-rs"}},
                          base_dir=tmp_path)
    hub = await aiohttp_client(create_app(config))
    call = f"/v1/services/call/{ECHO}/provider-app"
    ok = await hub.post(call, json={"data": {"value": 3, "label": "x"}}, headers=call_headers())
    assert ok.status == 200, await ok.text()
    bad = await hub.post(call, json={"data": {"value": -1}}, headers=call_headers())
    doc = orjson.loads(await bad.read())
    assert bad.status == 400 and doc["code"] == "invalid_request"
    assert doc["errors"] == [{"path": "/data/label", "message": "is required"},
                             {"path": "/data/value", "message": "must be >= 0"}]


def test_without_jsonschema_rs_rejections_are_explained_by_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    import proxy.validation.rs

    schema = _shipped_schemas()[0][1]
    with_rs, _ = compile_schema(schema)
    monkeypatch.setattr(proxy.validation.rs, "available", lambda: False)
    without_rs, _ = compile_schema(schema)
    for instance in INSTANCES:
        assert without_rs(instance) == with_rs(instance)


@pytest.mark.parametrize("engine", ["fastjsonschema", "jsonschema-rs"])
def test_a_rejection_of_a_large_instance_names_its_first_issue_only(engine: str) -> None:
    """jsonschema-rs makes all of an instance's errors before yielding one: an
    instance of more values than EXPLAIN_ALL_BELOW gets the first issue only
    (every item wrong in a 150,000-item array would take seconds), a smaller
    one its first MAX_ISSUES."""
    from proxy.validation import MAX_ISSUES
    from proxy.validation.rs import EXPLAIN_ALL_BELOW

    schema = {"type": "object", "properties": {"kinds": {"type": "array", "items": {"type": "string"}}}}
    validate, _ = compile_schema(schema, engine)
    small = validate({"kinds": list(range(EXPLAIN_ALL_BELOW - 10))})
    assert [issue.pointer for issue in small] == sorted(f"/kinds/{i}" for i in range(MAX_ISSUES))
    large = validate({"kinds": list(range(150_000))})
    assert [(issue.pointer, issue.message) for issue in large] == [("/kinds/0", "must be of type string")]
