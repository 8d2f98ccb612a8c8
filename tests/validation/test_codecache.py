"""`[catalogue] cache_dir`: a schema's compiled validator comes from disk on
the next load, with the same verdicts and issues; a damaged entry or an
unwritable folder only costs time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.validation import fast
from proxy.catalogue import SchemaCompiler
from proxy.validation.codecache import CodeCache
from proxy.config import parse_config
from proxy.validation import SchemaError, compile_schema, engine_for

from tests.conftest import HubFactory, LogSink
from tests.support import ECHO, call_headers

SCHEMA = {"type": "object", "required": ["n"],
          "properties": {"n": {"type": "integer", "minimum": 1}, "at": {"format": "date-time"}}}


def entries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.code"))


def test_second_compile_comes_from_disk_without_generating(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = CodeCache(tmp_path)
    first, draft = compile_schema(SCHEMA, code_cache=cache)
    assert entries(tmp_path) == []  # code is made on first use
    first({"n": 1})
    assert draft == "draft-07" and len(entries(tmp_path)) == 1

    def no_generation(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cached schema's code is not generated again")

    monkeypatch.setattr(fast.fastjsonschema, "compile_to_code", no_generation)
    again, draft = compile_schema(SCHEMA, code_cache=CodeCache(tmp_path))
    assert draft == "draft-07"
    for instance in ({"n": 2}, {"n": 0, "at": "yesterday"}, {}, [1]):
        assert again(instance) == first(instance)
    assert again({"n": 0}) != ()


def test_damaged_entry_is_a_miss(tmp_path: Path) -> None:
    validate, _ = compile_schema(SCHEMA, code_cache=CodeCache(tmp_path))
    validate({"n": 1})
    [entry] = entries(tmp_path)
    entry.write_bytes(b"not marshal data")
    validate, _ = compile_schema(SCHEMA, code_cache=CodeCache(tmp_path))
    assert validate({"n": 1}) == () and validate({"n": 0})
    assert entry.read_bytes() != b"not marshal data"  # written again


def test_refused_schema_is_never_stored(tmp_path: Path) -> None:
    with pytest.raises(SchemaError):
        compile_schema({"type": "integer", "exclusiveMinimum": True}, code_cache=CodeCache(tmp_path))
    assert entries(tmp_path) == []


def test_folder_that_cannot_exist_still_compiles(tmp_path: Path, log_sink: LogSink) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    mark = log_sink.mark()
    compiler = SchemaCompiler(engine_for("fastjsonschema", CodeCache(blocker / "cache")))
    for schema in (SCHEMA, {"type": "string"}):
        validate = compiler.compile(schema).validate
        assert validate(5) or validate(5) == ()
    warnings = [r for r in log_sink.since(mark) if r.get("event") == "code_cache_unwritable"]
    assert len(warnings) == 1  # once, not per schema


def test_cache_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = parse_config({"catalogue": {"cache_dir": "cache"}}, base_dir=tmp_path)
    assert config.catalogue.cache_dir == str(tmp_path / "cache")
    assert parse_config({}, base_dir=tmp_path).catalogue.cache_dir == ""


async def test_hub_serves_from_a_warm_cache(make_hub: HubFactory, tmp_path: Path) -> None:
    folder = tmp_path / "compiled"
    for _ in range(2):  # cold, then warm
        hub = await make_hub(catalogue={"cache_dir": str(folder)})
        r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1, "label": "x"}},
                           headers=call_headers())
        assert r.status == 200
        r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": -1}},
                           headers=call_headers())
        body = await r.json()
        assert r.status == 400
        assert {e["path"] for e in body["errors"]} == {"/data/label", "/data/value"}
        await hub.close()
    assert entries(folder)
