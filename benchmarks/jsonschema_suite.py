"""The JSON Schema Test Suite's required tests (tests/validation/jsonschema_suite)
through the hub's load path: right verdicts and µs per validation, per draft,
side by side for the fastjsonschema engine (with its per-schema fallbacks),
the jsonschema-rs engine, and jsonschema alone (what validated 2019-09 and
2020-12 schemas before they reached fastjsonschema).

    .venv/bin/python benchmarks/jsonschema_suite.py           # print the section
    .venv/bin/python benchmarks/jsonschema_suite.py --write   # and put it in RESULTS.md

`make bench` measures it too (run.py) and writes the same section.
The suite's instances are small (a few bytes to a few hundred): the figures
say what a schema costs per call, not what a large payload costs
(validators.py measures that).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sections

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "RESULTS.md"
START, END = sections.markers("jsonschema-suite")
REFERENCE = "jsonschema alone"
COMMAND = ".venv/bin/python benchmarks/jsonschema_suite.py --write"


def _compilers() -> dict[str, Any]:
    """Engine label -> schema -> (validate, engine that runs it)."""
    from proxy.catalogue import compiler_for
    from proxy.config import CatalogueConfig
    from proxy.validation.drafts import check_schema
    from proxy.validation.explain import explain, reference_explainer
    from proxy.validation.rs import available

    def hub(engine: str) -> Any:
        compiler = compiler_for(CatalogueConfig(validator=engine))

        def compile_schema(schema: Any) -> tuple[Any, str]:
            compiled = compiler.compile(schema)
            return compiled.validate, compiled.engine

        return compile_schema

    def reference(schema: Any) -> tuple[Any, str]:
        compiler.compile(schema)  # the same checks and refusals
        draft = check_schema(schema)
        explainer = reference_explainer(schema, draft, draft.asserts_formats)
        return (lambda instance: explain(explainer, instance)), "jsonschema"

    compiler = compiler_for(CatalogueConfig())
    found = {"fastjsonschema": hub("fastjsonschema")}
    if available():
        found["jsonschema-rs"] = hub("jsonschema-rs")
    found[REFERENCE] = reference
    return found


def measure(quick: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from proxy.validation import SchemaError
    from tests.validation.suite import DRAFTS, groups, run

    repeats = 2 if quick else 10
    load = os.getloadavg()
    compilers = _compilers()
    rows = []
    for folder, (draft, _) in DRAFTS.items():
        row: dict[str, Any] = {"draft": draft}
        for label, compile_schema in compilers.items():
            score = run(folder, lambda schema, c=compile_schema: c(schema)[0])
            engines: Counter[str] = Counter()
            conforming: list[tuple[Any, Any]] = []
            rejected: list[tuple[Any, Any]] = []
            for group in groups(folder):
                try:
                    validate, engine = compile_schema(group.schema)
                except SchemaError:
                    continue
                engines[engine] += 1
                for _, instance, valid in group.tests:
                    (conforming if valid else rejected).append((validate, instance))
            row[label] = {
                "rate": round(score.rate, 2), "passed": score.passed, "total": score.total,
                "engines": dict(engines),
                "ok_us": round(_per_pair_us(conforming, repeats), 2),
                "bad_us": round(_per_pair_us(rejected, repeats), 2),
            }
        rows.append(row)
    return {"engines": list(compilers), "rows": rows, "repeats": repeats,
            "load": [round(value, 2) for value in (*load, *os.getloadavg())]}


def _per_pair_us(pairs: list[tuple[Any, Any]], repeats: int) -> float:
    """Mean µs over (validator, instance) pairs (every schema counts once per
    test), in the quickest of `repeats` passes: the machine is shared."""
    if not pairs:
        return float("nan")
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for validate, instance in pairs:
            validate(instance)
        best = min(best, time.perf_counter() - started)
    return best / len(pairs) * 1e6


def render(result: dict[str, Any]) -> list[str]:
    engines = result.get("engines", [])
    lines = [START, "## JSON Schema Test Suite: right verdicts and µs per validation, per draft", ""]
    if not engines:
        return [*lines, "Not measured.", "", END]
    lines += [
        "The suite's required tests (vendored in `tests/validation/jsonschema_suite/`, run by `make test` with "
        "a ≥ 99.5 % target per draft and engine) through the hub's load path. A refusal counts as right only "
        "where the schema needs a fetch (refRemote): nothing is fetched.",
        "",
        "| draft | " + " | ".join(f"{e}: right" for e in engines) + " |",
        "| --- | " + " | ".join("---:" for _ in engines) + " |",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['draft']} | " + " | ".join(
            f"{row[e]['rate']:.1f} % ({row[e]['passed']}/{row[e]['total']})" for e in engines) + " |")
    lines += [
        "",
        "µs per validation, mean over the suite's instances (each compiled schema with each of its test "
        "instances; a rejection includes its explanation, every violation with its JSON Pointer). "
        f"`{REFERENCE}` is jsonschema validating and explaining by itself, what 2019-09 and 2020-12 schemas "
        "had before they reached fastjsonschema.",
        "",
        "| draft | " + " | ".join(f"{e}: conforming" for e in engines) + " | "
        + " | ".join(f"{e}: rejected" for e in engines) + f" | {REFERENCE} / fastjsonschema, conforming | "
        "schemas run by (fastjsonschema engine) |",
        "| --- |" + " ---: |" * (2 * len(engines) + 1) + " --- |",
    ]
    for row in result["rows"]:
        fast = row["fastjsonschema"]
        ratio = row[REFERENCE]["ok_us"] / fast["ok_us"] if fast["ok_us"] else float("nan")
        shares = ", ".join(f"{engine} {count}" for engine, count in sorted(fast["engines"].items()))
        lines.append(f"| {row['draft']} | " + " | ".join(f"{row[e]['ok_us']:.1f}" for e in engines) + " | "
                     + " | ".join(f"{row[e]['bad_us']:.1f}" for e in engines) + f" | {ratio:.1f}× | {shares} |")
    lines += [
        "",
        "Schemas fastjsonschema cannot run (`$dynamicRef`, `$recursiveRef`, `unevaluated*`, "
        "`minContains`/`maxContains`, or a reference to the 2019-09/2020-12 meta-schemas, which use them) "
        "fall back to jsonschema-rs (else jsonschema), reported at load. "
        f"The quickest of {result['repeats']} passes over the instances, one process; load average "
        f"(1, 5, 15 min) before {_triple(result['load'][:3])}, after {_triple(result['load'][3:])}: "
        f"on a shared machine, read the ratios, not the last digit. Command: `{COMMAND}`.",
        "",
        END,
    ]
    return lines


def _triple(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values)


def write(lines: list[str], results: Path = RESULTS) -> None:
    """Replace the section in RESULTS.md (or add it at the end)."""
    sections.put(results, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer passes")
    parser.add_argument("--write", action="store_true", help=f"replace the section in {RESULTS.name}")
    args = parser.parse_args()
    lines = render(measure(quick=args.quick))
    print("\n".join(lines))
    if args.write:
        write(lines)


if __name__ == "__main__":
    main()
