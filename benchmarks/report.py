"""RESULTS.md and the latency chart from one run (see run.py)."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jsonsafe
import jsonschema_suite
import sections

if TYPE_CHECKING:
    from run import Run, Sample

LABEL = {"direct": "direct to provider", "bare": "bare pass-through", "hub": "hub",
         "hub-rs": "hub (jsonschema-rs)", "hub-aiohttp": "hub (aiohttp client)"}
COLOR = {"direct": "tab:green", "bare": "tab:blue", "hub": "tab:red", "hub-rs": "tab:purple",
         "hub-aiohttp": "tab:orange"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).splitlines()[0].split(" Copyright")[0].strip()
    except (OSError, IndexError):
        return "not installed"


def _fmt(value: float, digits: int = 0) -> str:
    if value != value:  # nan
        return "–"
    return f"{value:,.{digits}f}"


def _samples(run: Run, phase: str, scenario: str, target: str) -> list[Sample]:
    return [s for s in run.samples if s.phase == phase and s.scenario == scenario and s.target == target]


def _ratio(x: float, y: float) -> float:
    return x / y if y else float("nan")


def _paired(run: Run, phase: str, scenario: str, a: str, b: str, key: str,
            combine: Any = _ratio) -> list[float]:
    """`combine(a's figure, b's figure)` in each repeat, in order: the runs of
    one repeat are side by side in time, so each pair saw the same machine
    (the medians of a and b alone can come from different minutes)."""
    by_repeat: dict[int, dict[str, float]] = {}
    for x in run.samples:
        if x.phase == phase and x.scenario == scenario and x.target in (a, b):
            by_repeat.setdefault(x.repeat, {})[x.target] = getattr(x, key)
    pairs = [combine(r[a], r[b]) for _, r in sorted(by_repeat.items()) if a in r and b in r]
    return [p for p in pairs if p == p]  # not NaN (a ratio to a run that made no calls)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _paired_line(run: Run, phase: str, scenario: str, targets: list[str]) -> str:
    """Each hub's calls/s against the bare proxy's, as the headline judges
    them: the median of the repeats' ratios, with their range."""
    parts = []
    for t in targets:
        if t.startswith("hub"):
            ratios = _paired(run, phase, scenario, t, "bare", "calls_per_s")
            if ratios:
                parts.append(f"{LABEL.get(t, t)} **{_median(ratios):.2f}** × ({min(ratios):.2f}–{max(ratios):.2f})")
    return ("Against the bare proxy, the median of the repeats' ratios (each repeat runs the targets back "
            "to back): " + "; ".join(parts) + ".") if parts else ""


def _row(run: Run, phase: str, scenario: str, target: str, label: str | None = None) -> str:
    m = lambda key: run.median(phase, scenario, target, key)  # noqa: E731
    n = len(_samples(run, phase, scenario, target))
    spread = [s.calls_per_s for s in _samples(run, phase, scenario, target)]
    rng = f"{min(spread):,.0f}–{max(spread):,.0f}" if spread else "–"
    return (f"| {label or LABEL.get(target, target)} | {_fmt(m('calls_per_s'))} | {rng} | "
            f"{_fmt(m('p50_ms'), 2)} | {_fmt(m('p99_ms'), 2)} | {_fmt(m('cpu_ms_per_call'), 3)} | {n} |")


# The performance target (docs/performance.md): what the hub may add to the bare proxy's p50 at one connection.
UNLOADED_BUDGET_MS = 0.05

HEADER = ("| target | calls/s (median) | calls/s (min–max) | p50 ms | p99 ms | CPU s / 1,000 calls | runs |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")


def write(run: Run, results: Path, chart: Path) -> None:
    s = run.settings
    x = run.extra
    chart_ok = _chart(run, chart)
    lines: list[str] = []
    add = lines.append
    targets = [t for t in ("direct", "bare", "hub", "hub-rs", "hub-aiohttp") if _samples(run, "peak", "small", t)]
    hub_small = run.median("peak", "small", "hub", "calls_per_s")
    bare_small = run.median("peak", "small", "bare", "calls_per_s")
    direct_small = run.median("peak", "small", "direct", "calls_per_s")
    # Met on the median of the per-repeat ratios (paired: see _paired); the
    # ratio of the medians is shown beside it.
    ratios = _paired(run, "peak", "small", "hub", "bare", "calls_per_s")
    ratio = _median(ratios)
    half = "load0.5"
    p50_hub = run.median(half, "small", "hub", "p50_ms")
    p50_direct = run.median(half, "small", "direct", "p50_ms")
    gap = _median(_paired(run, half, "small", "hub", "direct", "p50_ms", lambda x, y: x - y))
    # Absent from a results.json written before the one-connection phase existed (--report-only).
    unloaded = bool(_samples(run, "unloaded", "small", "hub") and _samples(run, "unloaded", "small", "bare"))
    one_hub = run.median("unloaded", "small", "hub", "p50_ms")
    one_bare = run.median("unloaded", "small", "bare", "p50_ms")
    one_gap = _median(_paired(run, "unloaded", "small", "hub", "bare", "p50_ms", lambda x, y: x - y))

    add("# apihub benchmark results")
    add("")
    add(f"Generated by `make bench` ({'BENCH_QUICK=1 smoke run: figures are indicative only' if s.quick else 'full run'}) "
        f"on {x['started']}, in {x['seconds']} s. Do not edit by hand: run `make bench` again.")
    add("")
    add("## Headline")
    add("")
    ok1 = ratio >= 1.0
    ok2 = gap <= 1.0
    ok3 = not unloaded or one_gap <= UNLOADED_BUDGET_MS
    add("| target (docs/performance.md) | measured | met |")
    add("| --- | --- | :---: |")
    add(f"| shipped defaults: hub calls/s ≥ 1.0 × bare pass-through, small call, one worker each | "
        f"**{ratio:.2f}** (median of the repeats' ratios: {', '.join(f'{r:.2f}' for r in ratios)}); "
        f"medians {_fmt(hub_small)} / {_fmt(bare_small)} = {hub_small / bare_small if bare_small else float('nan'):.2f}"
        f" | {'yes' if ok1 else 'no'} |")
    add(f"| hub p50 ≤ direct p50 + 1 ms at half the hub's peak ({_fmt(x.get('hub_peak_small', 0) / 2)} calls/s offered) | "
        f"**{gap:+.2f} ms** (median of the repeats' differences); medians {_fmt(p50_hub, 2)} ms vs "
        f"{_fmt(p50_direct, 2)} ms | {'yes' if ok2 else 'no'} |")
    if unloaded:
        add(f"| hub p50 ≤ bare p50 + {UNLOADED_BUDGET_MS} ms, one connection | "
            f"**{one_gap:+.3f} ms** (median of the repeats' differences); medians {one_hub:.3f} ms vs "
            f"{one_bare:.3f} ms | {'yes' if ok3 else 'no'} |")
    rs_large = run.median("peak", "large", "hub-rs", "calls_per_s")
    bare_large = run.median("peak", "large", "bare", "calls_per_s")
    if rs_large == rs_large and bare_large:  # not NaN: the jsonschema-rs hub ran
        large_ratios = _paired(run, "peak", "large", "hub-rs", "bare", "calls_per_s")
        large_ratio = _median(large_ratios)
        add(f"| `validator = \"jsonschema-rs\"`: hub ≥ 0.8 × bare on the ~200 KB answer | "
            f"**{large_ratio:.2f}** (median of the repeats' ratios: {', '.join(f'{r:.2f}' for r in large_ratios)}); "
            f"medians {_fmt(rs_large)} / {_fmt(bare_large)} = {rs_large / bare_large:.2f} | "
            f"{'yes' if large_ratio >= 0.8 else 'no'} |")
    big = [row for row in x.get("scale", {}).get("rows", []) if row.get("actions", 0) >= 10_000]
    if big:
        row = big[-1]
        add(f"| {row['actions']:,} actions + {row['apps']:,} apps: start-up to first answer ≤ 15 s | "
            f"{row['start_s']} s | {'yes' if row['start_s'] <= 15 else 'no'} |")
        rss = max(row["rss_mib"], row["rss_after_reload_mib"])
        add(f"| … RSS ≤ 300 MB per worker (after a reload too) | {row['rss_mib']} MiB, "
            f"{row['rss_after_reload_mib']} MiB after a reload | {'yes' if rss * 1.048576 <= 300 else 'no'} |")
        add(f"| … SIGHUP reload of one changed file ≤ 1 s | {row['reload_s']} s | "
            f"{'yes' if row['reload_s'] <= 1 else 'no'} |")
        flat = _flatness(run, x.get("scale", {}))
        if flat is not None:
            work, cpu = flat.work, _median(flat.cpu)
            skipped = x.get("scale", {}).get("instructions_skipped", "not counted in this run")
            work_text = (f"instructions per call **{work:.3f}** ×" if work is not None
                         else f"instructions: {skipped}")
            if work is None:
                met = "yes" if cpu <= FLAT_BUDGET else "no"
            elif work <= FLAT_BUDGET:
                met = "yes" if cpu <= FLAT_BUDGET else "work yes; CPU time not reliably"
            else:
                met = "no"
            noise_text = (f"; two hubs on the same catalogue, measured alike: {_median(flat.control):.2f} ×"
                          if flat.control else "")
            add(f"| … per-call cost flat: ≤ {FLAT_BUDGET} × that on a 10-action catalogue | {work_text}; "
                f"CPU seconds per call {cpu:.2f} × (median of paired runs{noise_text}) | {met} |")
    add(f"| hub / direct, small call | {_fmt(hub_small)} / {_fmt(direct_small)} = "
        f"{hub_small / direct_small if direct_small else float('nan'):.2f} | |")
    add("")
    for note in run.notes:
        add(f"> {note}")
        add("")
    add("## Machine and method")
    add("")
    la0, la1 = x["loadavg_before"], x["loadavg_after"]
    shared = max(la0[0], la1[0]) > 0.7 or os.environ.get("BENCH_SHARED")
    add(f"- CPU: {_cpu_model()}, {os.cpu_count()} cores; Linux {platform.release()}; "
        f"Python {platform.python_version()}")
    add(f"- aiohttp {_version('aiohttp')}, uvloop {_version('uvloop')}, orjson {_version('orjson')}, "
        f"structlog {_version('structlog')}, fastjsonschema {_version('fastjsonschema')}, "
        f"jsonschema-rs {_version('jsonschema-rs')}, load generator: {x['load_engine']} ({_wrk_version()})")
    add(f"- load average (1, 5, 15 min) before: {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f}; "
        f"after: {la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f}. "
        + ("**The machine was shared with other work during this run: expect noise.**" if shared
           else "The machine was otherwise idle."))
    pin = ("not pinned (fewer than 2 cores)" if run.sut_core is None else
           f"the server under test (hub, bare proxy, or the provider when called directly) alone on core "
           f"{min(run.sut_core)}; the load generator and the upstream provider on core {min(run.load_core or {0})} "
           "(`sched_setaffinity` before exec, `taskset` for wrk)")
    add(f"- Pinning: {pin}. Every target gets the same budget: one process, one core, one worker.")
    add(f"- Request: POST, {x['request_bytes']['body']} B JSON body + {x['request_bytes']['headers']} B of "
        f"headers (bearer token, community, content type); answers: small {x['answer_bytes']['small']:,} B "
        f"(5 calendar events), large {x['answer_bytes']['large']:,} B (1,000 events), fixed bytes from "
        "`benchmarks/provider.py`. The hub validates the request and the answer "
        "(`@layers:Calendar:getRelated` v1) and logs one JSON access line per call (to /dev/null).")
    add(f"- Peak: {s.connections} keep-alive connections, closed loop, {s.seconds:g} s per run; targets "
        f"interleaved (direct, bare, hub, … then again), {s.repeats} repeats, medians reported. "
        "CPU = utime + stime of the server process from /proc/<pid>/stat over the run.")
    add(f"- Offered load: {s.curve_connections} connections, each pausing before every request "
        "(wrk `delay()`), so the rate offered is about connections / pause; the achieved rate is what is plotted.")
    add("- Command: `make bench` (= `.venv/bin/python benchmarks/run.py`"
        + (" with `BENCH_QUICK=1`" if s.quick else "") + ").")
    add("")
    add("## Small call (~1 KB answer), peak")
    add("")
    add(HEADER)
    for t in targets:
        add(_row(run, "peak", "small", t))
    add("")
    add(_paired_line(run, "peak", "small", targets))
    add("")
    if "hub-aiohttp" in targets:
        lean_small = run.median("peak", "small", "hub-aiohttp", "calls_per_s")
        cpu = {t: run.median("peak", "small", t, "cpu_ms_per_call") * 1000 for t in ("hub", "hub-aiohttp")}
        add(f"With `[upstream] client = \"aiohttp\"` (aiohttp's ClientSession instead of the default lean client, "
            f"proxy/upstream/lean.py): {_fmt(lean_small)} / {_fmt(bare_small)} = "
            f"**{lean_small / bare_small if bare_small else float('nan'):.2f}** × the bare proxy, "
            f"{cpu['hub-aiohttp']:.0f} µs of CPU per call against {cpu['hub']:.0f} µs with the lean client.")
        add("")
    add("## Large answer (~200 KB, 1,000 events), peak")
    add("")
    add(HEADER)
    for t in targets:
        add(_row(run, "peak", "large", t))
    hub_large = run.median("peak", "large", "hub", "calls_per_s")
    bare_large = run.median("peak", "large", "bare", "calls_per_s")
    rs_large = run.median("peak", "large", "hub-rs", "calls_per_s")
    add("")
    add(f"Ratio of the medians, hub / bare on the large answer: {hub_large / bare_large if bare_large else float('nan'):.2f} "
        f"(fastjsonschema), {rs_large / bare_large if bare_large else float('nan'):.2f} (jsonschema-rs). "
        "The difference is the response validation of 1,000 events: see the validator table below.")
    add("")
    add(_paired_line(run, "peak", "large", targets))
    rs_fast = _paired(run, "peak", "large", "hub-rs", "hub", "calls_per_s")
    if rs_fast:
        add("")
        add(f"The jsonschema-rs hub against the default one on the large answer: **{_median(rs_fast):.2f}** × "
            f"(median of the repeats' ratios; {min(rs_fast):.2f}–{max(rs_fast):.2f}).")
    add("")
    add("## Rejected calls (invalid body → 400 `invalid_request`) against successful ones, same hub")
    add("")
    add(HEADER)
    add(_row(run, "rejected", "small", "hub", "hub, valid call (200)"))
    add(_row(run, "rejected", "rejected", "hub", "hub, invalid body (400, explained)"))
    ok_c = run.median("rejected", "small", "hub", "cpu_ms_per_call")
    bad_c = run.median("rejected", "rejected", "hub", "cpu_ms_per_call")
    add("")
    add(f"A rejected call costs {bad_c / ok_c if ok_c else float('nan'):.2f} × the CPU of a successful one "
        "(no provider call, no answer to parse or validate; the explanation of every violation is built "
        "only after the fast engine said no).")
    add("")
    if unloaded:
        _unloaded(add, run)
    add("## Latency against offered load (small call)")
    add("")
    if chart_ok:
        add(f"![latency vs offered load]({chart.name})")
        add("")
    add("| offered calls/s | target | achieved calls/s | p50 ms | p99 ms | CPU s / 1,000 calls |")
    add("| ---: | --- | ---: | ---: | ---: | ---: |")
    for fraction in s.curve_fractions:
        phase = f"load{fraction:g}"
        for t in ("direct", "bare", "hub"):
            rows = _samples(run, phase, "small", t)
            if not rows:
                continue
            add(f"| {_fmt(rows[0].offered_per_s or 0)} ({fraction:g} × hub peak) | {LABEL[t]} | "
                f"{_fmt(run.median(phase, 'small', t, 'calls_per_s'))} | "
                f"{_fmt(run.median(phase, 'small', t, 'p50_ms'), 2)} | "
                f"{_fmt(run.median(phase, 'small', t, 'p99_ms'), 2)} | "
                f"{_fmt(run.median(phase, 'small', t, 'cpu_ms_per_call'), 3)} |")
    add("")
    _profile(add, x.get("profile", {}))
    _validators(add, x.get("validators", {}))
    lines.extend(jsonschema_suite.render(x.get("jsonschema_suite", {})))
    add("")
    lines.extend(jsonsafe.render(x.get("jsonsafe", {})))
    add("")
    _scale(add, run, x.get("scale", {}))
    _redis(add, run, x.get("redis", {}))
    _gap(add, run, ok1 and ok2 and ok3)
    add("## Multi-core")
    add("")
    add("`[server] workers = N` (default 0 = one per CPU) runs N worker processes on one port "
        "(SO_REUSEPORT); throughput grows with cores until the provider or the network is the limit. "
        "This 2-core machine cannot show it fairly (the load generator and the provider need a core), "
        "so the figures above are per worker: multiply by the cores you give the hub.")
    add("")
    add("## Phase timings")
    add("")
    add(", ".join(f"{k} {v} s" for k, v in x.get("phase_seconds", {}).items()))
    add("")
    text = "\n".join(lines)
    if results.exists():  # sections other scripts wrote (e.g. tracing.py), as they were
        kept = [section for name, section in sections.marked(results.read_text()).items()
                if name not in sections.marked(text)]
        text = "\n\n".join([text.rstrip("\n"), *kept]) + "\n"
    results.write_text(text)


def _unloaded(add: Any, run: Run) -> None:
    s = run.settings
    targets = [t for t in LABEL if _samples(run, "unloaded", "small", t)]
    add("## Unloaded latency, one connection")
    add("")
    wrk = run.extra["load_engine"] == "wrk"
    add("Small call, one keep-alive connection, closed loop ("
        + ("wrk `-t1 -c1`" if wrk else f"load generator: {run.extra['load_engine']}, one connection")
        + "): each call leaves as soon as the previous answer arrived, so no call waits behind another and "
        f"the latency is the path's own. {s.unloaded_seconds:g} s per run, targets interleaved, "
        f"{s.repeats} repeat{'s' if s.repeats != 1 else ''}, medians. "
        + ("wrk keeps latencies in whole µs, so p50 and p99 are exact to 0.001 ms. " if wrk else
           "The built-in generator's own client time (aiohttp, Python) is inside every figure. ")
        + "calls/s is about 1 / mean latency, so it also shows the tail p50 leaves out. CPU per call is the "
        "server's over the run divided by its calls: at one connection every call pays for waking the "
        "event loop, which at peak many calls share.")
    add("")
    add("| target | calls/s | p50 ms | p99 ms | CPU µs per call | runs |")
    add("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in targets:
        m = {key: run.median("unloaded", "small", t, key) for key in ("calls_per_s", "p50_ms", "p99_ms",
                                                                     "cpu_ms_per_call")}
        add(f"| {LABEL[t]} | {_fmt(m['calls_per_s'])} | {_fmt(m['p50_ms'], 3)} | {_fmt(m['p99_ms'], 3)} | "
            f"{_fmt(m['cpu_ms_per_call'] * 1000)} | {len(_samples(run, 'unloaded', 'small', t))} |")
    add("")
    p50 = {t: run.median("unloaded", "small", t, "p50_ms") for t in ("direct", "bare", "hub")}
    pairs = _paired(run, "unloaded", "small", "hub", "bare", "p50_ms", lambda x, y: x - y)
    gap = _median(pairs)
    add(f"hub p50 − bare p50, the median of the repeats' differences: **{gap:+.3f} ms** (target ≤ "
        f"+{UNLOADED_BUDGET_MS} ms: {'met' if gap <= UNLOADED_BUDGET_MS else 'not met'}; the difference of the "
        f"medians is {p50['hub'] - p50['bare']:+.3f} ms); in each interleaved repeat: "
        + ", ".join(f"{d:+.3f}" for d in pairs)
        + f" ms. The bare proxy is {p50['bare'] - p50['direct']:+.3f} ms above calling the provider directly "
        "(a second HTTP exchange on loopback).")
    others = [(t, _paired(run, "unloaded", "small", t, "bare", "p50_ms", lambda x, y: x - y))
              for t in ("hub-rs", "hub-aiohttp") if t in targets]
    if any(d for _, d in others):
        add("")
        add("p50 − bare p50 for the other hubs, the median of the repeats' differences: "
            + "; ".join(f"{LABEL[t]} **{_median(d):+.3f} ms**" for t, d in others if d) + ".")
    add("")


def _gap(add: Any, run: Run, met: bool) -> None:
    add("## Reading the targets" + ("" if met else ": what would close the gap"))
    add("")
    hub = run.median("peak", "small", "hub", "cpu_ms_per_call") * 1000
    bare = run.median("peak", "small", "bare", "cpu_ms_per_call") * 1000
    rs = run.median("peak", "small", "hub-rs", "cpu_ms_per_call") * 1000
    p50 = {t: run.median("load0.5", "small", t, "p50_ms") for t in ("direct", "bare", "hub")}
    buckets = dict(run.extra.get("profile", {}).get("buckets", []))

    def us(name: str) -> str:
        return f"{buckets[name] / 100 * hub:.0f} µs" if name in buckets else "–"

    add(f"- **Throughput.** At peak the hub spends {hub:.0f} µs of CPU per small call, the bare proxy "
        f"{bare:.0f} µs. From the profile: schema validation {us('schema validation')}, Prometheus metrics "
        f"{us('metrics (prometheus)')}, conformance observers {us('call observers (conformance)')}, auth and "
        f"lookups {us('auth, registry, action, provider, version steps')}, reading the consumer's body "
        f"{us('reading the consumer' + chr(39) + 's body')}, the provider call (lean client, HMAC signature, "
        f"deadline) {us('provider call: client, signature, deadline')}, the rest of the hub's handler and "
        f"middleware (JSON rules on the answer, context, access line) {us('hub handler and middleware (the rest)')}, "
        f"and the aiohttp server {us('aiohttp server: parse, dispatch, write')}, the machinery the bare proxy's "
        "call is made of too (with aiohttp's client, where the hub has its lean one).")
    add("- In the defaults for this run: the lean HTTP/1.1 client for providers; the access line written in "
        "batches; fastjsonschema's generated code trimmed to the verdict (no message paths per array item, "
        "empty raises, required keys made once, no key set nobody reads, a closed object's keys one subset "
        "test, no type checked twice); metrics and "
        "conformance counted in plain per-worker sums handed to prometheus-client at scrape and once a second; "
        "the youngest GC generation collected every 10,000 allocations instead of 700 (each collection walked "
        "every call in flight); the provider deadline as one timer instead of asyncio.timeout's objects, "
        "shared by every call in 5 ms buckets; the hub's answers written with a head it builds in one string "
        "(`proxy/web/answer.py`) instead of aiohttp's general response path; "
        "request ids from one `getrandom` per 256; glibc's allocator thresholds left to glibc (pinned, large "
        "answers were faulted in page by page). What is left, biggest first: schema validation by the default "
        f"engine (with jsonschema-rs the hub spends {rs:.0f} µs per small call), the JSON rules' second reading "
        "of each answer (parse, then re-encode to compare), the access line, the pipeline's per-call objects. "
        "None of these changes the contract.")
    add(f"- **Latency at half load.** p50 direct {p50['direct']:.2f} ms, bare {p50['bare']:.2f} ms, hub "
        f"{p50['hub']:.2f} ms. Any proxy adds a second HTTP exchange on loopback and two more event-loop turns: "
        f"the bare proxy alone is +{p50['bare'] - p50['direct']:.2f} ms above direct, the hub "
        f"{p50['hub'] - p50['bare']:+.2f} ms against the bare proxy. On a shared 2-core machine the scheduler's "
        "wake-up latency is part of every hop.")
    add("- More cores: `[server] workers` scales the hub by process (SO_REUSEPORT), one worker per core.")
    add("")


def _profile(add: Any, profile: dict[str, Any]) -> None:
    add("## Where a hub call's CPU goes (py-spy, hub at peak, small call)")
    add("")
    if "skipped" in profile or not profile:
        add(f"Skipped: {profile.get('skipped', 'no profile')}.")
        add("")
        return
    cpu = profile.get("cpu_ms_per_call")
    add(f"{profile['samples']:,} samples. Where the samples fall (each sample counted once, in the first "
        "matching row)" + (f"; µs per call = share × the hub's {cpu * 1000:.0f} µs of CPU per small call" if cpu else "")
        + ":")
    add("")
    add("| share | µs per call | what |")
    add("| ---: | ---: | --- |")
    for name, pct in profile.get("buckets", []):
        add(f"| {pct}% | {pct / 100 * cpu * 1000:.0f} | {name} |" if cpu else f"| {pct}% | – | {name} |")
    add("")
    add("Own time (the function itself, not what it calls), top 20:")
    add("")
    add("| % of samples | function |")
    add("| ---: | --- |")
    for frame, pct in profile["own"]:
        add(f"| {pct} | `{frame}` |")
    add("")
    add("Inclusive time of the hub's own functions (the function and everything it calls), top 20:")
    add("")
    add("| % of samples | function |")
    add("| ---: | --- |")
    for frame, pct in profile["inclusive_hub"]:
        add(f"| {pct} | `{frame}` |")
    add("")


def _validators(add: Any, v: dict[str, Any]) -> None:
    add("## Validator engines (µs per validation, through the hub's seam, one core)")
    add("")
    if not v:
        add("Not measured.")
        add("")
        return
    engines = v["engines"]
    add("| action | version | side | payload | bytes | " + " | ".join(engines) + " | speed-up |")
    add("| --- | ---: | --- | --- | ---: | " + " | ".join("---:" for _ in engines) + " | ---: |")
    for r in v["rows"]:
        speed = (f"{r['fastjsonschema'] / r['jsonschema-rs']:.1f}×" if "jsonschema-rs" in r else "–")
        add(f"| `{r['action']}` | {r['version']} | {r['side']} | {r['size']} | {r['bytes']:,} | "
            + " | ".join(_fmt(r[e], 1) for e in engines) + f" | {speed} |")
    add("")
    rej = v["rejected"]
    add("Rejected request (two violations, each explained with its JSON Pointer): "
        + ", ".join(f"{e} {rej[e]['us']:.0f} µs" for e in engines)
        + ". Mean compile time per schema (checks included): "
        + ", ".join(f"{e} {ms} ms" for e, ms in v["compile_ms"].items()) + ".")
    add("")
    add("Both engines give the same issues (tested in `tests/validation/test_schemas_rs.py`); fastjsonschema stays "
        "the default, `[catalogue] validator = \"jsonschema-rs\"` (extra `rs`) switches.")
    add("")


# The performance target (docs/performance.md): per-call cost at 10,000 actions at most 1.04 × that at 10.
FLAT_BUDGET = 1.04


class _Flatness(NamedTuple):
    """The larger catalogue against the smaller, as the headline and the
    scale section both report it."""

    counted: dict[str, float]  # instructions per call by catalogue label, when counted
    work: float | None  # their ratio, larger to smaller
    cpu: list[float]  # CPU seconds per call, the repeats' ratios
    control: list[float]  # the control hub against the smaller catalogue's, the repeats' ratios


def _flatness(run: Run, sc: dict[str, Any]) -> _Flatness | None:
    """None when the scale phase did not run."""
    labels = sc.get("labels", [])
    if len(labels) != 2:
        return None
    small, large = labels
    counted = sc.get("instructions", {})
    work = counted[large] / counted[small] if counted.get(small) and counted.get(large) else None
    control = sc.get("control")
    return _Flatness(counted, work, _paired(run, "scale", "small", large, small, "cpu_ms_per_call"),
                     _paired(run, "scale", "small", control, small, "cpu_ms_per_call") if control else [])


def _control_text(pairs: list[float], small: str) -> str:
    if not pairs:
        return ""
    return (f"The control, a second hub on the same {small}-action catalogue measured the same way, came to "
            f"**{_median(pairs):.2f}** × the first (per repeat {min(pairs):.2f}–{max(pairs):.2f}): how far the "
            "machine alone moves this ratio in this run. ")


def _scale(add: Any, run: Run, sc: dict[str, Any]) -> None:
    add("## Catalogue scale")
    add("")
    if not sc:
        add("Not measured.")
        add("")
        return
    add("Generated actions each have schemas of their own (no sharing through the compile memo); "
        "generated apps each hold a token, provide one action and consume another. Default engine "
        "(fastjsonschema). Start-up is first with an empty `[catalogue] cache_dir` (every schema checked "
        "and compiled, the code cache filled), then again on the same catalogue with the cache warm, as "
        "a restart or another worker would be.")
    add("")
    add("| actions | apps | start-up to first answer s | … with a warm code cache s | RSS MiB | "
        "SIGHUP reload s (one file changed) | RSS after reload MiB | calls/s | p50 ms | CPU s / 1,000 calls |")
    add("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in sc["rows"]:
        label = row["catalogue"]
        add(f"| {row['actions']:,} | {row['apps']:,} | {row['start_s']} | {row.get('warm_start_s', '–')} | "
            f"{row['rss_mib']} | {row['reload_s']} | "
            f"{row['rss_after_reload_mib']} | {_fmt(run.median('scale', 'small', label, 'calls_per_s'))} | "
            f"{_fmt(run.median('scale', 'small', label, 'p50_ms'), 2)} | "
            f"{_fmt(run.median('scale', 'small', label, 'cpu_ms_per_call'), 3)} |")
    labels = sc["labels"]
    if len(labels) == 2:
        a = run.median("scale", "small", labels[0], "cpu_ms_per_call")
        b = run.median("scale", "small", labels[1], "cpu_ms_per_call")
        add("")
        spread = [x.cpu_ms_per_call for x in run.samples if x.phase == "scale" and x.target == labels[0]]
        flat = _flatness(run, sc)
        assert flat is not None  # two labels
        pairs, counted = flat.cpu, flat.counted
        if flat.work is not None:
            add(f"Instructions per small call, counted under callgrind (1,000 calls on one connection after 300 "
                f"warm-up calls, `benchmarks/instructions.py`): {counted[labels[0]]:,.0f} at {labels[0]} actions, "
                f"{counted[labels[1]]:,.0f} at {labels[1]}: **{flat.work:.3f}** ×. "
                "This is the work a call does, which a shared machine cannot blur; it leaves out what a cache "
                "miss costs. Reproduce alone: `.venv/bin/python benchmarks/instructions.py --scale` "
                "(`apt-get install valgrind`; about 3 minutes).")
        elif sc.get("instructions_skipped"):
            add(f"Instructions per call were not counted: {sc['instructions_skipped']}.")
        add("")
        add(f"Per-call CPU seconds at {labels[1]} actions are **{_median(pairs):.2f}** × those at {labels[0]} "
            f"(the median of {len(pairs)} repeats' ratios, each repeat's runs back to back"
            + (", each repeat in another order of the hubs: " if sc.get("control") else ": ") +
            f"{', '.join(f'{p:.2f}' for p in pairs)}; the ratio of the medians is "
            f"{b / a if a else float('nan'):.2f}; the {labels[0]}-action hub's own runs ranged "
            f"{min(spread):.3f}–{max(spread):.3f} s / 1,000 calls). "
            + _control_text(flat.control, labels[0]) +
            "The call path does one dict lookup for the action and one for each app, whatever the "
            "catalogue's size; what grows is start-up (every schema checked at load, its code generated on "
            "first use) and memory. What CPU time adds to the work a call does comes from that memory: a "
            "larger heap makes cache misses dearer. The cyclic GC does not walk it: a serving hub moves the "
            "loaded catalogue into the collector's permanent generation (`gc.freeze()`, proxy/web/heap.py; a "
            "reload freezes what it made once nothing uses the replaced catalogue, whose objects go as their "
            "last reference does).")
    add("")


def _redis(add: Any, run: Run, info: dict[str, Any]) -> None:
    add("## Registry backend: redis against file")
    add("")
    if "skipped" in info or not info:
        add(f"Skipped: {info.get('skipped', 'not run')}.")
        add("")
        return
    add(HEADER)
    add(_row(run, "registry", "small", "file", "hub, `file` registry"))
    add(_row(run, "registry", "small", "redis", "hub, `redis` registry (private redis-server on core 1)"))
    add("")
    redis = run.median("registry", "small", "redis", "calls_per_s")
    file = run.median("registry", "small", "file", "calls_per_s")
    if redis and file:
        # The runs alternate file, redis, file, redis…: each repeat is a fair pair.
        pairs = _paired(run, "registry", "small", "redis", "file", "calls_per_s")
        paired = _median(pairs)
        verdict = "met" if paired >= 0.95 else "not met"
        add(f"Throughput ratio redis / file, warm cache: **{paired:.2f}** (median of the repeats' ratios; "
            f"target ≥ 0.95: {verdict}; the ratio of the medians is {redis / file:.2f}); in each interleaved "
            "pair of runs: " + ", ".join(f"{p:.2f}" for p in pairs)
            + ". On this machine two runs of the same hub differ by up to ±10 %.")
        add("")
    add("With a warm in-process cache the redis backend makes no Redis round trip per call.")
    add("")


def _chart(run: Run, chart: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    phases = [f"load{f:g}" for f in run.settings.curve_fractions] + ["peak"]
    for target in ("direct", "bare", "hub"):
        xs, p50, p99 = [], [], []
        for phase in phases:
            rows = [s for s in run.samples if s.phase == phase and s.scenario == "small" and s.target == target]
            if rows:
                xs.append(statistics.median(r.calls_per_s for r in rows))
                p50.append(statistics.median(r.p50_ms for r in rows))
                p99.append(statistics.median(r.p99_ms for r in rows))
        if not xs:
            continue
        ax.plot(xs, p50, "o-", color=COLOR[target], label=f"{LABEL[target]} p50")
        ax.plot(xs, p99, "x--", color=COLOR[target], alpha=0.6, label=f"{LABEL[target]} p99")
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("calls/s achieved (small call; last point of each line = peak, 50 connections)")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title("apihub: latency against offered load, one core per server")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(chart)
    plt.close(fig)
    return True
