"""`make bench`: the hub, a bare pass-through proxy and the provider called
directly, side by side, interleaved, on this machine. Writes
benchmarks/RESULTS.md and benchmarks/latency.png; scratch in benchmarks/out/.

    .venv/bin/python benchmarks/run.py            # the full run (< 10 min on 2 cores)
    BENCH_QUICK=1 .venv/bin/python benchmarks/run.py   # a ~1-minute smoke run

Pinning (when the machine has at least 2 cores): the server under test (the
hub, the bare proxy, or the provider when called directly) runs alone on
core 0; the load generator and the upstream provider share core 1. So every
target gets the same budget: one process on one core.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import jsonsafe  # noqa: E402
import jsonschema_suite  # noqa: E402
import loadgen  # noqa: E402
import provider as bench_provider  # noqa: E402
import scale  # noqa: E402
import validators  # noqa: E402

from proxy.run.cli import wait_http  # noqa: E402
from tests.support import write_config_file  # noqa: E402
from loadgen import LoadResult, Request, run_load  # noqa: E402

OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
CHART = HERE / "latency.png"
PY = sys.executable

ACTION = "@layers:Calendar:getRelated"
TOKEN = "bench-consumer-token-0123456789"
SECRET = "bench-provider-secret-0123456789"
COMMUNITY = "bench-community"
TICKS = os.sysconf("SC_CLK_TCK")

GOOD_BODY = json.dumps({"data": {
    "entity": {"type": "student", "id": "s-1042-0000-0000-0000-0000-0000-0000"},
    "from": "2026-03-01", "to": "2026-03-31", "limit": 100,
}}).encode()
BAD_BODY = GOOD_BODY.replace(b'"to": "2026-03-31"', b'"to": "tomorrow"')
HEADERS = {"Authorization": f"Bearer {TOKEN}", "community-id": COMMUNITY,
           "Content-Type": "application/json"}


@dataclass(frozen=True)
class Settings:
    quick: bool
    repeats: int
    seconds: float
    connections: int = 50
    curve_connections: int = 50
    curve_fractions: tuple[float, ...] = (0.25, 0.5, 0.9)
    scale_actions: int = 10_000
    scale_apps: int = 10_000
    profile_seconds: float = 8.0
    unloaded_seconds: float = 4.0  # per run at one connection

    @classmethod
    def from_env(cls) -> Settings:
        if os.environ.get("BENCH_QUICK"):
            return cls(quick=True, repeats=1, seconds=2, curve_fractions=(0.5,),
                       scale_actions=300, scale_apps=300, profile_seconds=3, unloaded_seconds=1)
        seconds = float(os.environ.get("BENCH_SECONDS", 4))
        return cls(quick=False, repeats=int(os.environ.get("BENCH_REPEATS", 7)),
                   seconds=seconds, unloaded_seconds=seconds)


# ---- processes ----------------------------------------------------------------

def cores() -> tuple[set[int] | None, set[int] | None]:
    """(server under test, load generator + provider)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, {available[1]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Fleet:
    """Every process the run starts; all stopped at the end, whatever happens."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def start(self, name: str, cmd: list[str], port: int, core: set[int] | None, *,
              env: dict[str, str] | None = None, log: Path | None = None,
              ready: str = "/healthz", timeout_s: float = 60) -> Server:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        err = open(OUT / f"{name}.stderr", "wb")  # noqa: SIM115

        def pin() -> None:
            if core:
                os.sched_setaffinity(0, core)

        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})},
                                cwd=ROOT, preexec_fn=pin)
        server = Server(name, proc, port)
        self.servers.append(server)
        wait_http(server.url(ready), proc, timeout_s)
        return server

    def stop(self, server: Server) -> None:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
        if server in self.servers:
            self.servers.remove(server)

    def stop_all(self) -> None:
        for server in list(self.servers):
            self.stop(server)


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ---- the hub's files --------------------------------------------------------------

def token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def bench_apps(upstream: str) -> list[dict[str, Any]]:
    def provider_app(size: str) -> dict[str, Any]:
        return {
            "id": f"bench-{size}", "displayName": f"Bench {size}", "icon": "", "secret": SECRET,
            "tokens": [], "communities": [COMMUNITY],
            "provides": {ACTION: {"url": f"{upstream}/{size}", "versions": [1]}}, "consumes": [],
        }

    consumer = {
        "id": "bench-consumer", "displayName": "Bench consumer", "icon": "",
        "tokens": [token_hash(TOKEN)], "communities": [COMMUNITY], "provides": {}, "consumes": [ACTION],
    }
    return [provider_app("small"), provider_app("large"), consumer]


def write_catalogue(root: Path, upstream: str) -> Path:
    """The shipped example actions and the bench apps."""
    if root.exists():
        shutil.rmtree(root)
    (root / "apps").mkdir(parents=True)
    shutil.copytree(ROOT / "catalogue" / "actions", root / "actions")
    for app in bench_apps(upstream):
        (root / "apps" / f"{app['id']}.json").write_text(json.dumps(app))
    return root


def write_config(path: Path, catalogue_dir: Path, port: int, /, **sections: dict[str, Any]) -> Path:
    server = {"shutdown_grace_s": 5, **sections.pop("server", {})}
    return write_config_file(path, catalogue_dir, port, server=server, **sections)


# ---- measuring -------------------------------------------------------------------

@dataclass
class Sample:
    phase: str
    scenario: str
    target: str
    repeat: int
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_call: float  # = CPU seconds per 1,000 calls
    non2xx: int
    errors: int
    offered_per_s: float | None = None


@dataclass
class Run:
    settings: Settings
    sut_core: set[int] | None
    load_core: set[int] | None
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def measure(self, phase: str, scenario: str, target: str, server: Server, request: Request,
                repeat: int, *, connections: int | None = None, delay_ms: float = 0.0,
                offered: float | None = None, seconds: float | None = None) -> Sample:
        before = server.cpu_seconds()
        result: LoadResult = run_load(
            request, connections=connections or self.settings.connections,
            seconds=seconds or self.settings.seconds, delay_ms=delay_ms, cores=self.load_core,
        )
        cpu = server.cpu_seconds() - before
        sample = Sample(
            phase, scenario, target, repeat, round(result.calls_per_s, 1), round(result.p50_ms, 3),
            round(result.p99_ms, 3), round(cpu / max(result.calls, 1) * 1000, 4),
            result.non2xx, result.errors, offered,
        )
        self.samples.append(sample)
        print(f"  {phase:8} {scenario:9} {target:12} #{repeat}  {sample.calls_per_s:9.0f}/s  "
              f"p50 {sample.p50_ms:7.3f} ms  p99 {sample.p99_ms:7.3f} ms  "
              f"cpu {sample.cpu_ms_per_call:6.3f} s/1k  non2xx {sample.non2xx} err {sample.errors}",
              flush=True)
        return sample

    def median(self, phase: str, scenario: str, target: str, key: str) -> float:
        values = [getattr(s, key) for s in self.samples
                  if s.phase == phase and s.scenario == scenario and s.target == target]
        return statistics.median(values) if values else float("nan")


def warm_up(request: Request, load_core: set[int] | None) -> None:
    run_load(request, connections=10, seconds=1, cores=load_core)


# ---- the run -----------------------------------------------------------------------

def rerender() -> int:
    """`run.py --report-only`: RESULTS.md and the chart again from out/results.json."""
    import report

    doc = json.loads((OUT / "results.json").read_text())
    settings = Settings(**{**asdict(Settings.from_env()), **doc["extra"].get("settings", {})})
    run = Run(settings, set(doc["extra"].get("sut_core") or []) or None,
              set(doc["extra"].get("load_core") or []) or None)
    run.samples = [Sample(**s) for s in doc["samples"]]
    run.extra, run.notes = doc["extra"], doc["notes"]
    run.extra["loadavg_before"] = tuple(run.extra["loadavg_before"])
    report.write(run, RESULTS, CHART)
    print(f"wrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)} from {OUT / 'results.json'}")
    return 0


def main() -> int:
    if "--report-only" in sys.argv:
        return rerender()
    settings = Settings.from_env()
    OUT.mkdir(exist_ok=True)
    sut_core, load_core = cores()
    run = Run(settings, sut_core, load_core)
    run.extra["started"] = datetime.now(UTC).isoformat(timespec="seconds")
    run.extra["settings"] = {k: v for k, v in asdict(settings).items() if k != "quick"} | {"quick": settings.quick}
    run.extra["sut_core"] = sorted(sut_core or [])
    run.extra["load_core"] = sorted(load_core or [])
    run.extra["loadavg_before"] = os.getloadavg()
    run.extra["load_engine"] = "wrk" if loadgen.wrk_path() else "built-in (aiohttp, multi-process)"
    if not loadgen.wrk_path():
        run.notes.append("wrk is not installed (`apt-get install wrk`): the built-in Python load "
                         "generator was used, and it saturates before the servers do.")
    if sut_core is None:
        run.notes.append("fewer than 2 cores: processes were not pinned.")
    started = time.monotonic()
    print(f"apihub bench ({'quick' if settings.quick else 'full'}), load generator: "
          f"{run.extra['load_engine']}, server core {sut_core}, load+provider core {load_core}", flush=True)
    fleet = Fleet()
    try:
        with timed(run, "validators"):
            run.extra["validators"] = validators.measure(quick=settings.quick)
        with timed(run, "jsonschema_suite"):
            run.extra["jsonschema_suite"] = jsonschema_suite.measure(quick=settings.quick)
        with timed(run, "jsonsafe"):
            run.extra["jsonsafe"] = jsonsafe.measure(quick=settings.quick)
        servers = start_servers(fleet, run)
        with timed(run, "throughput"):
            throughput(run, servers)
        with timed(run, "unloaded"):
            unloaded(run, servers)
        with timed(run, "curve"):
            curve(run, servers)
        with timed(run, "profile"):
            run.extra["profile"] = profile(run, servers)
            run.extra["profile"]["cpu_ms_per_call"] = run.median("peak", "small", "hub", "cpu_ms_per_call")
        fleet.stop_all()
        with timed(run, "redis"):
            redis_scenario(fleet, run)
        with timed(run, "scale"):
            run.extra["scale"] = scale.measure(fleet, run, settings)
    finally:
        fleet.stop_all()
    run.extra["seconds"] = round(time.monotonic() - started)
    run.extra["loadavg_after"] = os.getloadavg()
    (OUT / "results.json").write_text(json.dumps(
        {"samples": [asdict(s) for s in run.samples], "extra": run.extra, "notes": run.notes},
        indent=1, default=str))
    import report

    report.write(run, RESULTS, CHART)
    print(f"wrote {RESULTS.relative_to(ROOT)} and {CHART.relative_to(ROOT)} "
          f"in {run.extra['seconds']} s", flush=True)
    return 0


@contextmanager
def timed(run: Run, name: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    yield
    run.extra.setdefault("phase_seconds", {})[name] = round(time.monotonic() - started, 1)


@dataclass
class Servers:
    upstream: Server
    direct: Server
    bare: Server
    hub: Server
    hub_rs: Server | None
    requests: dict[tuple[str, str], Request]
    hub_lean: Server | None = None

    def targets(self) -> dict[str, Server]:
        """Every server a call can be measured against, by target name, in the order runs interleave."""
        server_of = {"direct": self.direct, "bare": self.bare, "hub": self.hub}
        if self.hub_rs is not None:
            server_of["hub-rs"] = self.hub_rs
        if self.hub_lean is not None:
            server_of["hub-aiohttp"] = self.hub_lean
        return server_of


def start_servers(fleet: Fleet, run: Run) -> Servers:
    up_port, direct_port, bare_port, hub_port = (free_port() for _ in range(4))
    upstream = fleet.start("provider-upstream", [PY, str(HERE / "provider.py"), str(up_port)],
                           up_port, run.load_core)
    direct = fleet.start("provider-direct", [PY, str(HERE / "provider.py"), str(direct_port)],
                         direct_port, run.sut_core)
    bare = fleet.start("bare", [PY, str(HERE / "bare_proxy.py"), str(bare_port), upstream.url("")],
                       bare_port, run.sut_core)
    catalogue = write_catalogue(OUT / "catalogue", upstream.url(""))
    config = write_config(OUT / "hub.toml", catalogue, hub_port)
    hub = fleet.start("hub", [PY, "-m", "proxy", "serve", "--config", str(config)], hub_port, run.sut_core)
    hub_rs = None
    if validators_available():
        rs_port = free_port()
        rs_config = write_config(OUT / "hub-rs.toml", catalogue, rs_port,
                                 catalogue={"validator": "jsonschema-rs"})
        hub_rs = fleet.start("hub-rs", [PY, "-m", "proxy", "serve", "--config", str(rs_config)], rs_port,
                             run.sut_core)
    # The same hub with aiohttp's client for providers ([upstream] client = "aiohttp"; lean is the default).
    lean_port = free_port()
    lean_config = write_config(OUT / "hub-aiohttp.toml", catalogue, lean_port, upstream={"client": "aiohttp"})
    hub_lean = fleet.start("hub-aiohttp", [PY, "-m", "proxy", "serve", "--config", str(lean_config)], lean_port,
                           run.sut_core)
    requests: dict[tuple[str, str], Request] = {}
    for size in ("small", "large"):
        path = f"/v1/services/call/{ACTION}/bench-{size}"
        requests[("direct", size)] = Request(direct.url(f"/{size}"), GOOD_BODY, HEADERS)
        requests[("bare", size)] = Request(bare.url(path), GOOD_BODY, HEADERS)
        requests[("hub", size)] = Request(hub.url(path), GOOD_BODY, HEADERS)
        if hub_rs is not None:
            requests[("hub-rs", size)] = Request(hub_rs.url(path), GOOD_BODY, HEADERS)
        requests[("hub-aiohttp", size)] = Request(hub_lean.url(path), GOOD_BODY, HEADERS)
    requests[("hub", "rejected")] = Request(hub.url(f"/v1/services/call/{ACTION}/bench-small"),
                                            BAD_BODY, HEADERS)
    # Every target answers what it should before anything is measured.
    expected = {"small": bench_provider.SMALL, "large": bench_provider.LARGE}
    for (target, scenario), request in requests.items():
        status, body = post(request.url, request.body)
        if scenario == "rejected":
            assert status == 400 and json.loads(body)["code"] == "invalid_request", body[:300]
        else:
            assert status == 200 and body == expected[scenario], (target, scenario, status, body[:300])
    run.extra["request_bytes"] = {"body": len(GOOD_BODY), "headers": sum(
        len(k) + len(v) + 4 for k, v in HEADERS.items())}
    run.extra["answer_bytes"] = {"small": len(bench_provider.SMALL), "large": len(bench_provider.LARGE)}
    for request in requests.values():
        warm_up(request, run.load_core)
    return Servers(upstream, direct, bare, hub, hub_rs, requests, hub_lean)


def validators_available() -> bool:
    from proxy.validation.rs import available

    return available()


TARGETS = ("direct", "bare", "hub")


def throughput(run: Run, s: Servers) -> None:
    """Peak (closed loop, `connections` at once), interleaved, `repeats` times."""
    for scenario in ("small", "large"):
        for repeat in range(run.settings.repeats):
            for target, server in s.targets().items():
                run.measure("peak", scenario, target, server, s.requests[(target, scenario)], repeat)
    # A rejected call against a successful one, on the same hub.
    for repeat in range(run.settings.repeats):
        run.measure("rejected", "small", "hub", s.hub, s.requests[("hub", "small")], repeat)
        run.measure("rejected", "rejected", "hub", s.hub, s.requests[("hub", "rejected")], repeat)


def unloaded(run: Run, s: Servers) -> None:
    """One keep-alive connection, closed loop, interleaved, `repeats` times: no call ever waits
    behind another, so p50 is the path's own latency (the target in docs/performance.md: hub ≤ bare + 0.05 ms)."""
    for repeat in range(run.settings.repeats):
        for target, server in s.targets().items():
            run.measure("unloaded", "small", target, server, s.requests[(target, "small")], repeat,
                        connections=1, seconds=run.settings.unloaded_seconds)


def curve(run: Run, s: Servers) -> None:
    """Latency at fractions of the hub's peak, the same offered rates for all three."""
    server_of = {"direct": s.direct, "bare": s.bare, "hub": s.hub}
    peak = run.median("peak", "small", "hub", "calls_per_s")
    run.extra["hub_peak_small"] = peak
    conns = run.settings.curve_connections
    for fraction in run.settings.curve_fractions:
        rate = peak * fraction
        delay_ms = conns / rate * 1000
        repeats = run.settings.repeats if fraction == 0.5 else 1
        for repeat in range(repeats):
            for target in TARGETS:
                run.measure(f"load{fraction:g}", "small", target, server_of[target],
                            s.requests[(target, "small")], repeat, connections=conns,
                            delay_ms=delay_ms, offered=round(rate, 1))


def profile(run: Run, s: Servers) -> dict[str, Any]:
    """py-spy samples the hub at its peak: where a call's CPU goes."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw = OUT / "profile.txt"
    seconds = run.settings.profile_seconds
    cmd = [*loadgen.pinned(run.load_core), spy, "record", "--format", "raw", "--nolineno",
           "--rate", "250", "-d", str(int(seconds) + 1), "-o", str(raw), "-p", str(s.hub.proc.pid)]
    spy_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    run_load(s.requests[("hub", "small")], connections=run.settings.connections, seconds=seconds,
             cores=run.load_core)
    _, err = spy_proc.communicate(timeout=60)
    if spy_proc.returncode != 0 or not raw.exists():
        return {"skipped": f"py-spy failed: {err.decode(errors='replace')[-300:]}"}
    return summarise_profile(raw.read_text())


# Where a sample goes, first match wins (matched against the whole stack).
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("schema validation", ("proxy/validation", "(<string>)", "jsonschema")),
    ("logging (structlog)", ("structlog/",)),
    ("metrics (prometheus)", ("prometheus_client/", "proxy/observe/metrics")),
    ("call observers (conformance)", ("proxy/observe/conformance", "proxy/observe/calls")),
    ("provider call: client, signature, deadline", ("AiohttpClient.post", "LeanClient.post")),
    ("reading the consumer's body", ("read_call_body",)),
    ("auth, registry, action, provider, version steps", ("identify (", "resolve_provider", "choose_version")),
    ("hub handler and middleware (the rest)", ("hub_middleware", "proxy/web/handlers")),
    ("aiohttp server: parse, dispatch, write", ("aiohttp/web_", "aiohttp/http_", "proxy/web/httpserver")),
)

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>.*)\)$")


def _short_frame(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else path
    return f"{m['fn']} ({path})"


def summarise_profile(text: str) -> dict[str, Any]:
    own: dict[str, int] = {}
    buckets: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        joined = ";".join(frames)
        bucket = next((name for name, markers in BUCKETS if any(m in joined for m in markers)),
                      "event loop, other")
        buckets[bucket] = buckets.get(bucket, 0) + n
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + n

    def top(d: dict[str, int], keep: Callable[[str], bool] = lambda f: True) -> list[tuple[str, float]]:
        rows = sorted(((f, n) for f, n in d.items() if keep(f)), key=lambda r: -r[1])[:20]
        return [(f, round(100 * n / total, 1)) for f, n in rows]

    return {
        "samples": total,
        "buckets": sorted(((name, round(100 * n / total, 1)) for name, n in buckets.items()),
                          key=lambda r: -r[1]),
        "own": top(own),
        "inclusive_hub": top(inclusive, lambda f: "(proxy/" in f),
    }


def redis_scenario(fleet: Fleet, run: Run) -> None:
    scale.redis_vs_file(fleet, run)


if __name__ == "__main__":
    sys.exit(main())
