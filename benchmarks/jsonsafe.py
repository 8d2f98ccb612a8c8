"""What the JSON rules cost (proxy/jsonsafe.py): µs per read with
`orjson.loads` alone and with the hub's checks (depth, exact numbers,
duplicate keys), side by side, on the shipped example payloads.

    .venv/bin/python benchmarks/jsonsafe.py [--quick] [--write]

`--write` replaces its section in RESULTS.md; `make bench` runs it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import jsonschema_suite  # noqa: E402
import sections  # noqa: E402
import provider  # noqa: E402

from proxy import jsonsafe  # noqa: E402

REQUEST = (b'{"data": {"entity": {"type": "student", "id": "s-1042"}, '
           b'"from": "2026-03-01", "to": "2026-03-31"}}')


def _floats(raw: bytes) -> bytes:
    """The large answer with a 17-digit double in every event (what another
    language's encoder writes): the number check's slower path, still exact."""
    answer = orjson.loads(raw)
    for i, event in enumerate(answer["data"]["events"]):
        event["score"] = 0.1 + i * 0.2  # 0.30000000000000004, ...
    return orjson.dumps(answer)


START, END = sections.markers("jsonsafe")
NOTE = ("`orjson.loads` alone against `proxy.jsonsafe.loads` (depth, exact numbers and, for answers, "
        "duplicate keys), interleaved, best of 3 rounds; the same bytes, one process. An answer equal to "
        "its re-encoding up to whitespace between tokens (what common encoders write, pretty-printed or "
        "not) costs one re-encoding, plus two whitespace-dropping passes when it is not compact; any other "
        "also a count of `:` and a scan for long digit runs. Refusing duplicate keys in consumer bodies "
        "as well would cost the row \"consumer body, duplicates refused\" (not shipped: the last value "
        "wins and is what the provider receives). Reproduce: `.venv/bin/python benchmarks/jsonsafe.py --write`.")


def _per_call_us(fn: Any, budget_s: float) -> float:
    number = max(1, int(budget_s / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def measure(quick: bool = False) -> dict[str, Any]:
    budget = 0.05 if quick else 0.2
    cases = [("consumer body (request)", REQUEST, False),
             ("consumer body, duplicates refused (not shipped)", REQUEST, True),
             ("answer, small", provider.SMALL, True),
             ("answer, large", provider.LARGE, True),
             ("answer, large, 17-digit doubles", _floats(provider.LARGE), True),
             ("answer, large, written with spaces (not compact)",
              json.dumps(orjson.loads(provider.LARGE), ensure_ascii=False).encode(), True)]
    rows = []
    for label, raw, unique in cases:
        # Interleaved, best of several rounds: the machine is shared.
        base, safe = float("inf"), float("inf")
        for _ in range(3):
            base = min(base, _per_call_us(lambda raw=raw: orjson.loads(raw), budget))
            safe = min(safe, _per_call_us(
                lambda raw=raw, unique=unique: jsonsafe.loads(raw, max_depth=64, unique_keys=unique), budget))
        rows.append({"payload": label, "bytes": len(raw), "orjson_us": round(base, 2),
                     "checked_us": round(safe, 2), "added_us": round(safe - base, 2),
                     "ratio": round(safe / base, 2)})
    return {"rows": rows}


def render(result: dict[str, Any]) -> list[str]:
    lines = [START, "## JSON rules: what reading a body or an answer safely costs (µs per read, one core)", ""]
    if not result:
        return [*lines, "Not measured.", "", END]
    lines += ["| payload | bytes | `orjson.loads` µs | with the checks µs | added µs | ratio |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['payload']} | {r['bytes']:,} | {r['orjson_us']} | {r['checked_us']} | "
              f"{r['added_us']} | {r['ratio']}× |" for r in result["rows"]]
    return [*lines, "", NOTE, "", END]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--write", action="store_true", help="replace the section in RESULTS.md")
    args = parser.parse_args()
    lines = render(measure(quick=args.quick))
    print("\n".join(lines))
    if args.write:
        sections.put(jsonschema_suite.RESULTS, lines)


if __name__ == "__main__":
    main()
