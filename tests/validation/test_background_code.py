"""A large schema's code is generated in a thread on its first call, not on
the event loop: fastjsonschema takes 0.1–0.8 s for GitHub's published
response schemas, which held every other call of the worker. Meanwhile
jsonschema-rs decides, with the same format rules."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from proxy.validation import compile_schema, fast
from proxy.validation.codecache import CodeCache

pytest.importorskip("jsonschema_rs")

# Over fast.IN_BACKGROUND_ABOVE: 80 properties, each an object of its own.
LARGE = {"type": "object", "required": ["p0"], "properties": {
    f"p{i}": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"},
                                                 "n": {"type": "integer", "minimum": 0}}}
    for i in range(80)}}
GOOD = {"p0": {"at": "2026-03-01T10:00:00Z", "n": 1}}
BAD_FORMAT = {"p0": {"at": "tomorrow"}}


async def test_first_calls_are_decided_while_the_code_is_generated_in_a_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated_in: list[str] = []
    real = fast.compile_trimmed

    def watched(source: str) -> Any:
        generated_in.append(threading.current_thread().name)
        return real(source)

    monkeypatch.setattr(fast, "compile_trimmed", watched)
    cache = CodeCache(tmp_path)
    validate, _ = compile_schema(LARGE, code_cache=cache)
    assert validate(GOOD) == ()
    issues = validate(BAD_FORMAT)
    assert [i.pointer for i in issues] == ["/p0/at"]
    assert validate({}) and validate({"p0": {"n": -1}})
    for _ in range(500):  # the code lands in the cache once generated
        if list(tmp_path.rglob("*.code")):
            break
        await asyncio.sleep(0.01)
    assert generated_in and generated_in[0] != threading.main_thread().name
    assert validate(GOOD) == () and [i.pointer for i in validate(BAD_FORMAT)] == ["/p0/at"]
    assert len(generated_in) == 1  # generated once


def test_without_an_event_loop_the_code_is_generated_at_once(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path)
    validate, _ = compile_schema(LARGE, code_cache=cache)
    assert validate(GOOD) == ()
    assert list(tmp_path.rglob("*.code"))


async def test_a_small_schema_is_generated_on_the_loop(tmp_path: Path) -> None:
    cache = CodeCache(tmp_path)
    validate, _ = compile_schema({"type": "object", "required": ["n"]}, code_cache=cache)
    assert validate({"n": 1}) == ()
    assert list(tmp_path.rglob("*.code"))  # at once: nothing left to a thread
