"""docs/contract.md §5 "JSON rules" over real sockets: numbers the hub
cannot carry exactly, nesting past `[limits] max_json_depth` and duplicate
keys, on consumer bodies and on provider answers (both provider clients),
and validation logs that stay small whatever the payload holds."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from proxy.config import ConfigError, parse_config
from proxy.jsonsafe import UnsafeJson, dumps, loads
from tests.conftest import HubFactory, LogSink, Provider
from tests.support import ECHO, call_headers, echo_action, problem

CALL = f"/v1/services/call/{ECHO}/provider-app"
FANOUT = f"/v1/services/call/{ECHO}"
CLIENTS = ["aiohttp", "lean"]


def body(value: bytes, extra: bytes = b"") -> bytes:
    return b'{"data": {"value": ' + value + b', "label": "x"' + extra + b"}}"


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ---- the reader itself -----------------------------------------------------

@pytest.mark.parametrize("raw, pointer", [
    (b'{"a": {"b": 0.12345678901234567890123456789012345}}', "/a/b"),
    (b'{"a": 1e400}', "/a"),
    (b'{"a": -1E+400}', "/a"),
    (b'{"a": 1e-400}', "/a"),
    (b'{"a~b/c": 1.23456789012345678901234567890}', "/a~0b~1c"),
    # Whitespace between tokens (skipped when comparing with the re-encoding) hides nothing.
    (b'{"a b": 0.12345678901234567890123456789012345, "c": " "}', "/a b"),
    (b'[\n 0.12345678901234567890123456789012345\n]', "/0"),
    # Past Python's guard against quadratic int conversion, also after an integer orjson finds infinite.
    (b'{"a": [1, ' + b"9" * 4301 + b']}', "/a/1"),
    (b'{"a": 1' + b"0" * 400 + b', "b": -' + b"9" * 4301 + b'}', "/b"),
    (b'{"a": 1' + b"0" * 400 + b', "b": 1e400}', "/b"),
])
def test_inexact_numbers_are_refused_with_their_pointer(raw: bytes, pointer: str) -> None:
    for unique in (True, False):
        with pytest.raises(UnsafeJson) as caught:
            loads(raw, max_depth=64, unique_keys=unique)
        assert [issue.pointer for issue in caught.value.issues] == [pointer]


@pytest.mark.parametrize("raw", [
    b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": 9007199254740993}',
    b'{"a": 0.30000000000000004, "b": 1.50, "c": 1E2, "d": -0.0, "e": 1e308, "f": 5e-324}',
    b'{"id": "123456789012345678901234567890", "t": "e1000", "s": "1e400"}',
    b'[1.7976931348623157e308, 2.2250738585072014e-308]',
])
def test_exact_numbers_pass(raw: bytes) -> None:
    assert loads(raw, max_depth=64, unique_keys=True) == orjson.loads(raw)


@pytest.mark.parametrize("raw, value", [
    (b'{"a": 18446744073709551616}', {"a": 2**64}),
    (b'{"a": [1, -9223372036854775809]}', {"a": [1, -(2**63) - 1]}),
    (b'{"a~b/c": 123456789012345678901234567890, "f": 0.5}', {"a~b/c": 123456789012345678901234567890, "f": 0.5}),
    # Past 1e308, which orjson refuses as an infinite double.
    (b'{"a": [1' + b"0" * 309 + b', -' + b"9" * 4300 + b']}', {"a": [10**309, -int("9" * 4300)]}),
])
def test_integers_past_64_bits_are_carried_exactly(raw: bytes, value: Any) -> None:
    # orjson would read them as floats: the hub reads them again with exact ints.
    for unique in (True, False):
        assert loads(raw, max_depth=64, unique_keys=unique) == value
    assert json.loads(dumps(value)) == value


def test_depth_is_checked_beside_an_integer_past_1e308() -> None:
    raw = b'{"n": 1' + b"0" * 309 + b', "deep": ' + nested(70) + b'}'
    with pytest.raises(UnsafeJson) as caught:
        loads(raw, max_depth=64, unique_keys=False)
    assert [issue.pointer for issue in caught.value.issues] == ["/deep" + "/0" * 63]


@pytest.mark.parametrize("unique", [True, False])
def test_a_lone_surrogate_after_an_integer_past_1e308_is_not_json(unique: bool) -> None:
    """orjson stops at the number it finds infinite; what follows must still be JSON by its rules."""
    raw = b'{"n": 1' + b"0" * 400 + b', "s": "\\ud800"}'
    with pytest.raises(UnsafeJson) as caught:
        loads(raw, max_depth=64, unique_keys=unique)
    assert "surrogate" in caught.value.detail
    with pytest.raises(UnsafeJson):
        loads(b'{"s": "\\ud800"}', max_depth=64, unique_keys=unique)


def test_duplicate_key_beside_an_integer_past_1e308() -> None:
    raw = b'{"n": 1' + b"0" * 309 + b', "k": 1, "k": 2}'
    assert loads(raw, max_depth=64, unique_keys=False) == {"n": 10**309, "k": 2}
    with pytest.raises(UnsafeJson) as caught:
        loads(raw, max_depth=64, unique_keys=True)
    assert [issue.pointer for issue in caught.value.issues] == ["/k"]


def test_depth_counts_containers_not_brackets_in_strings() -> None:
    assert loads(b'{"a": ' + nested(63) + b"}", max_depth=64, unique_keys=True)
    assert loads(b'{"a": "' + b"[" * 500 + b'"}', max_depth=64, unique_keys=True)
    with pytest.raises(UnsafeJson) as caught:
        loads(b'{"s": "' + b"]" * 500 + b'", "a": ' + nested(64) + b"}", max_depth=64, unique_keys=True)
    assert caught.value.issues[0].pointer == "/a" + "/0" * 63


@pytest.mark.parametrize("raw, pointer", [
    (b'{"a": 1, "a": 2}', "/a"),
    (b'{"x": [{"k": 1}, {"k" : 1, "k": 1}]}', "/x/1/k"),
    (b'{"x\\u003a": 1, "x": 1, "x": 2}', "/x"),
    (b'{"q": "\\":", "q": 1}', "/q"),
    (b'{\n  "a": 1,\n  "a": 2\n}', "/a"),
    (b'{"a": 1, "b": {"a": 1}, "b": "x y"}', "/b"),
])
def test_duplicate_keys(raw: bytes, pointer: str) -> None:
    with pytest.raises(UnsafeJson) as caught:
        loads(raw, max_depth=64, unique_keys=True)
    assert [issue.pointer for issue in caught.value.issues] == [pointer]
    assert loads(raw, max_depth=64, unique_keys=False) == orjson.loads(raw)  # the last value wins


def test_max_json_depth_config() -> None:
    assert parse_config({"limits": {"max_json_depth": 10}}, base_dir=Path(".")).limits.max_json_depth == 10
    for bad in (0, 251):
        with pytest.raises(ConfigError, match="max_json_depth"):
            parse_config({"limits": {"max_json_depth": bad}}, base_dir=Path("."))


# ---- consumer bodies -------------------------------------------------------

@pytest.mark.parametrize("value", [b"0.12345678901234567890123456789012345", b"1e400", b"1e-400"])
async def test_consumer_inexact_number_is_400_with_pointer(hub: Any, provider: Provider, value: bytes) -> None:
    r = await hub.post(CALL, data=body(value), headers=call_headers())
    doc = await problem(r, 400, "invalid_json")
    assert doc["errors"] == [{"path": "/data/value", "message": "number the hub cannot carry exactly"}]
    assert provider.received == []


async def test_minus_two_to_the_64_never_passes_an_integer_maximum(make_hub: HubFactory, provider: Provider) -> None:
    action = echo_action(versions=(1,))
    action["versions"]["1"]["request"]["properties"]["data"]["properties"]["n"] = {"type": "integer", "maximum": 100}
    hub = await make_hub(actions=[action])
    # Validated as the exact integer it is (never as a float): within the maximum, and forwarded exactly.
    r = await hub.post(CALL, data=b'{"data": {"value": 1, "label": "x", "n": -18446744073709551616}}',
                       headers=call_headers())
    assert r.status == 200, await r.text()
    assert json.loads(provider.received[-1][1])["data"]["n"] == -(2**64)
    r = await hub.post(CALL, data=b'{"data": {"value": 1, "label": "x", "n": 18446744073709551616}}',
                       headers=call_headers())
    doc = await problem(r, 400, "invalid_request")
    assert doc["errors"][0]["path"] == "/data/n"
    assert len(provider.received) == 1


async def test_consumer_exact_numbers_reach_the_provider_exactly(hub: Any, provider: Provider) -> None:
    numbers = b"[18446744073709551615, -9223372036854775808, 9007199254740993, 0.30000000000000004]"
    r = await hub.post(CALL, data=body(b"1", b', "n": ' + numbers), headers=call_headers())
    assert r.status == 200, await r.text()
    forwarded = json.loads(provider.received[-1][1], parse_float=Decimal)
    assert forwarded["data"]["n"] == [2**64 - 1, -(2**63), 9007199254740993, Decimal("0.30000000000000004")]


async def test_consumer_duplicate_key_keeps_the_last_value(hub: Any, provider: Provider) -> None:
    r = await hub.post(CALL, data=b'{"data": {"value": -1, "value": 7, "label": "x"}}', headers=call_headers())
    assert r.status == 200, await r.text()
    raw = provider.received[-1][1]
    assert raw.count(b'"value"') == 1 and orjson.loads(raw)["data"]["value"] == 7


async def test_consumer_duplicate_key_validated_on_the_last_value(hub: Any, provider: Provider) -> None:
    r = await hub.post(CALL, data=b'{"data": {"value": 7, "value": -1, "label": "x"}}', headers=call_headers())
    await problem(r, 400, "invalid_request")
    assert provider.received == []


@pytest.mark.parametrize("depth", [65, 253, 254, 300, 1023, 1100, 5000])
async def test_consumer_too_deep_is_400(hub: Any, provider: Provider, depth: int) -> None:
    r = await hub.post(CALL, data=body(b"1", b', "deep": ' + nested(depth - 2)), headers=call_headers())
    doc = await problem(r, 400, "invalid_json")
    if depth < 1000:  # past orjson's own reading limit there is no value to point into
        assert doc["errors"][0]["path"] == "/data/deep" + "/0" * 62
    assert provider.received == []


async def test_consumer_depth_limit_is_configurable(make_hub: HubFactory, provider: Provider) -> None:
    hub = await make_hub(limits={"max_json_depth": 5})
    r = await hub.post(CALL, data=body(b"1", b', "deep": ' + nested(3)), headers=call_headers())
    # Depth 5 reaches the provider; its echo nests it one level deeper: refused too.
    assert len(provider.received) == 1
    doc = await problem(r, 502, "invalid_provider_response")
    assert doc["errors"][0]["path"] == "/data/echo/deep/0/0"
    r = await hub.post(CALL, data=body(b"1", b', "deep": ' + nested(4)), headers=call_headers())
    doc = await problem(r, 400, "invalid_json")
    assert doc["errors"][0]["path"] == "/data/deep/0/0/0"


async def test_fanout_too_deep_is_one_400_not_one_error_per_provider(hub: Any, provider: Provider) -> None:
    r = await hub.post(FANOUT, data=body(b"1", b', "deep": ' + nested(400)), headers=call_headers())
    await problem(r, 400, "invalid_json")
    assert provider.received == []


# ---- provider answers ------------------------------------------------------

def answering(raw: bytes) -> Any:
    async def behaviour(request: web.Request, _: bytes) -> web.StreamResponse:
        return web.Response(body=raw, content_type="application/json")
    return behaviour


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("answer, pointer, message", [
    (b'{"data": {"echo": 1, "echo": 2}}', "/data/echo", "duplicate key"),
    (b'{"data": {"bad": true}, "data": {"echo": 1}}', "/data", "duplicate key"),
    (b'{"data": {"echo": 0.12345678901234567890123456789012345}}', "/data/echo",
     "number the hub cannot carry exactly"),
    (b'{"data": {"echo": ' + nested(70) + b"}}", "/data/echo" + "/0" * 62, "nested deeper than 64 levels"),
])
async def test_unsafe_answer_is_502_with_pointer(make_hub: HubFactory, provider: Provider, client: str,
                                                 answer: bytes, pointer: str, message: str) -> None:
    provider.behaviour = answering(answer)
    hub = await make_hub(upstream={"client": client})
    r = await hub.post(CALL, json={"data": {"value": 1, "label": "x"}}, headers=call_headers())
    doc = await problem(r, 502, "invalid_provider_response")
    assert doc["errors"] == [{"path": pointer, "message": message}]
    assert b"0.12345678901234567890123456789012345" not in await r.read()


@pytest.mark.parametrize("client", CLIENTS)
async def test_safe_answer_relayed_byte_for_byte(make_hub: HubFactory, provider: Provider, client: str) -> None:
    answer = b'{"data" : {"echo": [18446744073709551615, 0.30000000000000004, 1.50, "\\u003a"], "n": 1}}'
    provider.behaviour = answering(answer)
    hub = await make_hub(upstream={"client": client})
    r = await hub.post(CALL, json={"data": {"value": 1, "label": "x"}}, headers=call_headers())
    assert r.status == 200, await r.text()
    assert await r.read() == answer


@pytest.mark.parametrize("client", CLIENTS)
async def test_fanout_leg_with_duplicate_keys_is_that_legs_error(make_hub: HubFactory, provider: Provider,
                                                                 client: str) -> None:
    provider.behaviour = answering(b'{"data": {"echo": 1}, "data": {"echo": 2}}')
    hub = await make_hub(upstream={"client": client})
    r = await hub.post(FANOUT, json={"data": {"value": 1, "label": "x"}}, headers=call_headers())
    assert r.status == 200
    [result] = (await r.json())["results"]
    assert result["status"] == "error" and result["error"]["code"] == "invalid_provider_response"
    assert result["error"]["errors"] == [{"path": "/data", "message": "duplicate key"}]


# ---- bounded logs ----------------------------------------------------------

async def test_a_500_kb_key_is_not_logged_whole(make_hub: HubFactory, provider: Provider,
                                                 log_sink: LogSink) -> None:
    action = echo_action(versions=(1,))
    action["versions"]["1"]["request"]["properties"]["data"]["additionalProperties"] = False
    hub = await make_hub(actions=[action], limits={"max_request_bytes": 2 * 1024 * 1024})
    key = "k" * 500_000
    mark = log_sink.mark()
    r = await hub.post(CALL, data=orjson.dumps({"data": {"value": 1, key: 1, **{f"x{i}": i for i in range(80)}}}),
                       headers=call_headers())
    await problem(r, 400, "invalid_request")
    [line] = [rec for rec in log_sink.since(mark) if rec.get("event") == "validation_failed"]
    assert len(json.dumps(line)) < 30_000
    assert line["violationCount"] == 81
    assert len(line["violations"]) == 50
    assert all(len(v["path"]) <= 200 and len(v["message"]) <= 200 for v in line["violations"])


def test_digit_runs_inside_strings_stay_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python's json.dumps escapes non-ASCII, so its bytes differ from orjson's:
    # the digit scan runs, and must not mistake a UUID or a long id for a number.
    import proxy.jsonsafe as jsonsafe

    def no_slow_check(raw: bytes, *, unique_keys: bool) -> None:
        raise AssertionError("a string was read as a number")

    monkeypatch.setattr(jsonsafe, "_slow_check", no_slow_check)
    raw = json.dumps({"id": "550e8400-e29b-41d4-a716-446655440000", "n": "é",
                      "file": "file-2024", "ref": "1234567890123456789012"}).encode()
    assert loads(raw, max_depth=64, unique_keys=True)["ref"] == "1234567890123456789012"
