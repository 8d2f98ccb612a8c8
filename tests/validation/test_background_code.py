"""A large schema's code is generated in a thread on its first use, not on
the event loop: fastjsonschema takes 0.1–0.8 s for GitHub's published
response schemas, which held every other call of the worker. The call that
needs it awaits `Compiled.ready()` (the pipeline does), so every verdict is
fastjsonschema's own, from the first call on."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from proxy.validation import fast
from proxy.validation.codecache import CodeCache

# Over fast.IN_BACKGROUND_ABOVE: 80 properties, each an object of its own; and a
# pattern whose verdict differs between Python's re and jsonschema-rs's regexes.
LARGE = {"type": "object", "required": ["p0"], "properties": {
    "ws": {"type": "string", "pattern": "^\\s$"},
    **{f"p{i}": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"},
                                                   "n": {"type": "integer", "minimum": 0}}}
       for i in range(80)}}}
GOOD = {"p0": {"at": "2026-03-01T10:00:00Z", "n": 1}}


def watch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    generated_in: list[str] = []
    real = fast.compile_trimmed

    def watched(source: str) -> Any:
        generated_in.append(threading.current_thread().name)
        return real(source)

    monkeypatch.setattr(fast, "compile_trimmed", watched)
    return generated_in


async def test_a_large_schema_is_generated_in_a_thread_and_awaited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated_in = watch(monkeypatch)
    compiled = fast.FastEngine(CodeCache(tmp_path)).compile(LARGE)
    waiting, again = compiled.ready(), compiled.ready()
    assert waiting is not None and again is not None  # both wait for the one generation (counted below)
    await asyncio.wait_for(asyncio.gather(waiting, again), 30)
    assert compiled.ready() is None
    assert generated_in == [generated_in[0]] and generated_in[0] != threading.main_thread().name
    assert list(tmp_path.rglob("*.code"))
    assert compiled.validate(GOOD) == ()
    # fastjsonschema's verdict (Python's \s does not take U+FEFF; ECMA regexes, jsonschema-rs's, do).
    assert [i.pointer for i in compiled.validate({**GOOD, "ws": "\ufeff"})] == ["/ws"]
    assert [i.pointer for i in compiled.validate({"p0": {"at": "tomorrow"}})] == ["/p0/at"]
    assert len(generated_in) == 1


def test_without_an_event_loop_the_code_is_generated_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated_in = watch(monkeypatch)
    compiled = fast.FastEngine(CodeCache(tmp_path)).compile(LARGE)
    assert compiled.ready() is None
    assert generated_in == [threading.main_thread().name]
    assert compiled.validate(GOOD) == ()


async def test_a_small_schema_is_generated_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generated_in = watch(monkeypatch)
    compiled = fast.FastEngine(CodeCache(tmp_path)).compile({"type": "object", "required": ["n"]})
    assert compiled.ready() is None
    assert generated_in == [threading.main_thread().name]


async def test_called_without_awaiting_it_still_decides(tmp_path: Path) -> None:
    """A caller that does not await (a command, a tool): the code is made on the spot."""
    compiled = fast.FastEngine(CodeCache(tmp_path)).compile(LARGE)
    assert compiled.validate(GOOD) == ()
    assert compiled.ready() is None


async def test_a_hubs_first_calls_to_a_large_action_wait_for_its_code(make_hub: Any) -> None:
    """Through the pipeline: the first calls (request and answer sides, and a
    fan-out) await the code, then get fastjsonschema's verdicts."""
    from tests.support import ECHO, call_headers, echo_action, problem

    action = echo_action(versions=(1,))
    request = action["versions"]["1"]["request"]
    request["properties"]["data"]["properties"].update(
        {f"x{i}": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}} for i in range(120)})
    request["properties"]["data"]["properties"]["ws"] = {"type": "string", "pattern": "^\\s$"}
    hub = await make_hub(actions=[action])
    calls = [hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1}}, headers=call_headers()),
             hub.post(f"/v1/services/call/{ECHO}", json={"data": {"value": 1}}, headers=call_headers()),
             hub.post(f"/v1/services/call/{ECHO}/provider-app", json={"data": {"value": 1, "ws": "\ufeff"}},
                      headers=call_headers())]
    single, fanned, refused = await asyncio.gather(*calls)
    assert single.status == 200 and fanned.status == 200, await single.text()
    assert {"path": "/data/ws", "message": "must match the pattern ^\\s$"} in (
        await problem(refused, 400, "invalid_request"))["errors"]


async def test_a_waiter_cancelled_leaves_the_others_waiting(tmp_path: Path) -> None:
    """A consumer that goes away while the code is generated cancels its own
    wait, not the generation the other first calls are waiting for."""
    compiled = fast.FastEngine(CodeCache(tmp_path)).compile(LARGE)

    async def wait() -> None:
        waiting = compiled.ready()
        assert waiting is not None
        await waiting

    gone, staying = asyncio.ensure_future(wait()), asyncio.ensure_future(wait())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.wait_for(staying, 30)  # not cancelled with the other
    assert compiled.ready() is None and compiled.validate(GOOD) == ()
