"""What `[tracing]` costs per call: the hub of a baseline git ref (main) and
this tree with tracing off, on at 100 % and at 1 % sampling, side by side,
interleaved, the small call of run.py. CPU per call is the hub process's
`utime + stime` over a run divided by the calls answered.

    .venv/bin/python benchmarks/tracing.py [--baseline main] [--repeats 5] [--seconds 3] [--write]

The spans go to a real OTLP/HTTP receiver (this script, `collector` mode: it
answers 200 and counts what it got) on the load generator's core. Pinning as
in run.py: each hub alone on core 0, load generator, provider and collector
on core 1. Prints a Markdown section; `--write` puts it in RESULTS.md as
"Tracing" (which `make bench` keeps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import run as bench  # noqa: E402
import sections  # noqa: E402
from loadgen import Request, run_load, wrk_path  # noqa: E402

CONNECTIONS = 50


def collector(port: int) -> None:
    """A minimal OTLP/HTTP traces receiver: reads each export, answers 200."""
    from aiohttp import web

    exported = [0, 0]

    async def export(request: web.Request) -> web.StreamResponse:
        exported[0] += 1
        exported[1] += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"exports": exported[0], "bytes": exported[1]})

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def baseline_tree(ref: str) -> Path:
    """The baseline's `proxy` package, extracted from git (no checkout touched)."""
    tree = bench.OUT / f"baseline-{ref.replace('/', '_')}"
    if tree.exists():
        subprocess.run(["rm", "-rf", str(tree)], check=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "proxy"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", default="main", help="git ref whose hub is the reference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--write", action="store_true", help="put the figures in RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()
    bench.OUT.mkdir(exist_ok=True)
    sut_core, load_core = bench.cores()
    fleet = bench.Fleet()
    try:
        up_port, col_port = bench.free_port(), bench.free_port()
        upstream = fleet.start("provider-upstream", [bench.PY, str(HERE / "provider.py"), str(up_port)],
                               up_port, load_core)
        col = fleet.start("collector", [bench.PY, __file__, "collector", str(col_port)], col_port, load_core)
        catalogue = bench.write_catalogue(bench.OUT / "catalogue-tracing", upstream.url(""))
        endpoint = col.url("/v1/traces")
        variants = {
            f"{args.baseline} (no tracing code)": ({}, baseline_tree(args.baseline)),
            "tracing off": ({}, ROOT),
            "on, 100 %": ({"tracing": {"enabled": True, "endpoint": endpoint, "sample_ratio": 1.0}}, ROOT),
            "on, 1 %": ({"tracing": {"enabled": True, "endpoint": endpoint, "sample_ratio": 0.01}}, ROOT),
        }
        hubs = {}
        for i, (name, (config_sections, tree)) in enumerate(variants.items()):
            port = bench.free_port()
            config = bench.write_config(bench.OUT / f"hub-tracing-{i}.toml", catalogue, port, **config_sections)
            # `env -C`: `python -m proxy` imports the package of its working directory first.
            cmd = ["env", "-C", str(tree), bench.PY, "-m", "proxy", "serve", "--config", str(config)]
            hubs[name] = fleet.start(f"hub-tracing-{i}", cmd, port, sut_core, log=Path("/dev/null"))
        path = f"/v1/services/call/{bench.ACTION}/bench-small"
        requests = {name: Request(hub.url(path), bench.GOOD_BODY, bench.HEADERS) for name, hub in hubs.items()}
        for name, request in requests.items():
            status, body = bench.post(request.url, request.body)
            assert status == 200, (name, status, body[:300])
            bench.warm_up(request, load_core)
        rates: dict[str, list[float]] = {name: [] for name in hubs}
        cpu: dict[str, list[float]] = {name: [] for name in hubs}
        for _ in range(args.repeats):
            for name, hub in hubs.items():
                before = hub.cpu_seconds()
                result = run_load(requests[name], connections=CONNECTIONS, seconds=args.seconds, cores=load_core)
                used = hub.cpu_seconds() - before
                assert result.non2xx == 0 and result.errors == 0, (name, result)
                rates[name].append(result.calls_per_s)
                cpu[name].append(used / result.calls * 1e6)
        with urllib.request.urlopen(col.url("/healthz"), timeout=5) as answer:
            received = json.loads(answer.read())
    finally:
        fleet.stop_all()
    base = next(iter(hubs))
    base_cpu, base_rate = statistics.median(cpu[base]), statistics.median(rates[base])
    command = " ".join(["python", "benchmarks/tracing.py", *sys.argv[1:]])
    load_after = os.getloadavg()
    start, end = sections.markers("tracing")
    lines = [
        start,
        "## Tracing: per-call cost of `[tracing]` off and on, against main",
        "",
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: one hub per row, the small call of the"
        f" runs above, {args.repeats} interleaved runs of {args.seconds:g} s at {CONNECTIONS} connections"
        f" ({'wrk' if wrk_path() else 'the built-in Python load generator'}); medians, each run's min–max in"
        " brackets. CPU per call = the hub's utime + stime over a run / calls answered. Spans went to a real"
        f" OTLP/HTTP receiver ({received['exports']:,} exports, {received['bytes']:,} bytes).",
        f"Load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores.",
        "",
        "| hub | calls/s | vs baseline | CPU µs/call | vs baseline |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in hubs:
        c, r = statistics.median(cpu[name]), statistics.median(rates[name])
        lines.append(f"| {name} | {r:,.0f} ({min(rates[name]):,.0f}–{max(rates[name]):,.0f}) | {r / base_rate:.2f}"
                     f" | {c:.0f} ({min(cpu[name]):.0f}–{max(cpu[name]):.0f}) | {c / base_cpu:.2f} |")
    lines += [
        "",
        "Tracing off runs main's code plus one `is None` test per call and per provider call: its row should"
        " match main's within the noise. On, the CPU includes the batch exporter's thread (protobuf encoding"
        " and the HTTP export) in the same process. On a shared machine read the ratios, not the digits.",
        "",
        end,
    ]
    print("\n".join(lines))
    if args.write:
        sections.put(bench.RESULTS, lines)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["collector"]:
        collector(int(sys.argv[2]))
    else:
        sys.exit(main())
