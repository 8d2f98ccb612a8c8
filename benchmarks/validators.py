"""fastjsonschema against jsonschema-rs, through the hub's own seam
(`proxy.validation.compile_schema`), on the shipped example actions with small
and large payloads: µs per validation of a conforming payload, µs to
explain a rejected one, and ms to compile a schema.

    .venv/bin/python benchmarks/validators.py
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("fastjsonschema", "jsonschema-rs")
CONTEXT = {"issuedAt": "2026-03-01T12:00:00.000Z", "action": "x", "community": "c", "version": 1,
           "requester": "r", "requestId": "0123456789abcdef"}


def _grow(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return [copy.deepcopy(rows[i % len(rows)]) for i in range(count)]


def payloads() -> list[tuple[str, str, str, str, Any]]:
    """(action, version, side, size, instance): every one valid."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import provider

    from proxy.run import example_provider as ep

    out: list[tuple[str, str, str, str, Any]] = []
    cal = "@layers:Calendar:getRelated"
    req = {"context": CONTEXT, "secret": "s3cr3t",
           "data": {"entity": {"type": "student", "id": "s-1042"}, "from": "2026-03-01", "to": "2026-03-31"}}
    out.append((cal, "1", "request", "small", req))
    for size, raw in (("small", provider.SMALL), ("large", provider.LARGE)):
        answer = orjson.loads(raw)
        out.append((cal, "1", "response", size, answer))
        v2 = copy.deepcopy(answer)
        for event in v2["data"]["events"]:
            event["kind"] = event.pop("category")
        v2["data"]["nextCursor"] = None
        out.append((cal, "2", "response", size, v2))
    grades = asyncio.run(ep.grades(None, {"data": {"studentId": "s-1042", "schoolYear": "2026"}}))  # type: ignore[arg-type]
    out.append(("@layers:Gradebook:getGrades", "1", "request", "small",
                {"context": CONTEXT, "secret": "s", "data": {"studentId": "s-1042", "schoolYear": "2026"}}))
    out.append(("@layers:Gradebook:getGrades", "1", "response", "small", grades))
    big = copy.deepcopy(grades)
    big["data"]["grades"] = _grow(grades["data"]["grades"], 1000)
    out.append(("@layers:Gradebook:getGrades", "1", "response", "large", big))
    pay = asyncio.run(ep.payables(None, {"data": {"guardianId": "g-7"}}))  # type: ignore[arg-type]
    out.append(("@layers:Payables:list", "1", "response", "small", pay))
    big = copy.deepcopy(pay)
    big["data"]["payables"] = _grow(pay["data"]["payables"], 1000)
    out.append(("@layers:Payables:list", "1", "response", "large", big))
    return out


def _per_call_us(fn: Any, arg: Any, budget_s: float) -> float:
    fn(arg)
    n, started = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn(arg)
        n += 10
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            return elapsed / n * 1e6


def measure(quick: bool = False) -> dict[str, Any]:
    from proxy.validation import compile_schema
    from proxy.validation.rs import available

    engines = [e for e in ENGINES if e != "jsonschema-rs" or available()]
    budget = 0.03 if quick else 0.15
    docs = {}
    for path in sorted((ROOT / "catalogue" / "actions").glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        docs[doc["action"]] = doc
    rows = []
    compiled: dict[tuple[str, str, str, str], Any] = {}
    compile_ms: dict[str, list[float]] = {e: [] for e in engines}
    for action, doc in docs.items():
        for version, body in doc["versions"].items():
            for side in ("request", "response"):
                for engine in engines:
                    started = time.perf_counter()
                    compiled[(action, version, side, engine)] = compile_schema(body[side], engine)[0]
                    compile_ms[engine].append((time.perf_counter() - started) * 1000)
    for action, version, side, size, instance in payloads():
        row: dict[str, Any] = {"action": action, "version": version, "side": side, "size": size,
                               "bytes": len(orjson.dumps(instance))}
        for engine in engines:
            validate = compiled[(action, version, side, engine)]
            assert validate(instance) == (), (engine, action, version, side, validate(instance))
            row[engine] = round(_per_call_us(validate, instance, budget), 2)
        rows.append(row)
    # The rejected path: a bad request is explained (every violation, with its pointer).
    bad = {"context": CONTEXT, "secret": "s3cr3t",
           "data": {"entity": {"type": "pupil", "id": "s-1042"}, "from": "2026-03-01", "to": "tomorrow"}}
    rejected: dict[str, Any] = {}
    for engine in engines:
        validate = compiled[("@layers:Calendar:getRelated", "1", "request", engine)]
        rejected[engine] = {"us": round(_per_call_us(validate, bad, budget), 2),
                            "issues": [i.as_json() for i in validate(bad)]}
    return {
        "engines": engines,
        "rows": rows,
        "rejected": rejected,
        "compile_ms": {e: round(sum(v) / len(v), 2) for e, v in compile_ms.items() if v},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=1))
