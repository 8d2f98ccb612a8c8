"""What checking the ~200 KB benchmark answer costs, step by step, in this
process: the floor under the jsonschema-rs hub's large-answer ratio
(docs/performance.md, "Why the jsonschema-rs target is not met").

    .venv/bin/python benchmarks/large_answer.py

Each figure is the best of 7 rounds of 300 runs, garbage collection off:
orjson's parse (the bare proxy does it too), the JSON rules' proof
(jsonsafe.loads, the parse included), jsonschema-rs and fastjsonschema on
the parsed answer, and the same validators on a copy whose keys are
interned (jsonschema-rs looks keys up by identity first; orjson's cached
keys are not the interned ones). Other parsers, when installed, for
comparison.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import orjson  # noqa: E402
import provider as bench_provider  # noqa: E402

from proxy import jsonsafe  # noqa: E402
from proxy.validation import compile_schema  # noqa: E402

ROUNDS, RUNS = 7, 300


def best_us(step: Callable[[], Any]) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(RUNS):
            step()
        rounds.append((time.perf_counter() - started) / RUNS * 1e6)
    return min(rounds)


def interned(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k): interned(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interned(v) for v in value]
    return value


def main() -> None:
    raw = bench_provider.LARGE
    action = json.loads((HERE.parent / "catalogue" / "actions" / "calendar-get-related.json").read_text())
    schema = action["versions"]["1"]["response"]
    parsed = orjson.loads(raw)
    rs, _ = compile_schema(schema, "jsonschema-rs")
    fast, _ = compile_schema(schema, "fastjsonschema")
    keys = interned(parsed)
    assert rs(parsed) == () and fast(parsed) == ()
    rows = [
        ("orjson.loads (the bare proxy parses too)", lambda: orjson.loads(raw)),
        ("jsonsafe.loads: parse + the JSON rules' proof", lambda: jsonsafe.loads(raw, max_depth=64, unique_keys=True)),
        ("orjson.dumps of the parsed answer", lambda: orjson.dumps(parsed)),
        ("jsonschema-rs on the parsed answer", lambda: rs(parsed)),
        ("jsonschema-rs, keys interned", lambda: rs(keys)),
        ("fastjsonschema on the parsed answer", lambda: fast(parsed)),
    ]
    for name, module, call in (("msgspec.json.decode", "msgspec", "json.decode"),
                               ("jiter.from_json", "jiter", "from_json")):
        try:
            mod: Any = __import__(module)
        except ImportError:
            continue
        for part in call.split("."):
            mod = getattr(mod, part)
        rows.append((name, lambda f=mod: f(raw)))
    gc.disable()
    print(f"{len(raw):,}-byte answer, {len(parsed['data']['events'])} events; "
          f"jsonschema-rs {_version('jsonschema_rs')}, orjson {orjson.__version__}")
    for name, step in rows:
        print(f"  {name:48} {best_us(step):8.1f} µs")


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module.replace("_", "-"))


if __name__ == "__main__":
    main()
