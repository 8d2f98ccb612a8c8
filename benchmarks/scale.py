"""Catalogue scale (10,000 generated actions and 10,000 apps) and the redis
registry backend against the file one.

Generated files go to benchmarks/out/ (never committed). Every generated
action has schemas of its own (a distinct property name), so the compiler's
memo of identical schemas does not make the load look cheaper than it is.
Their equal parts are held once all the same (proxy/catalogue/sharing.py):
each is the shipped template with one property more, a best case for that
sharing, so the RSS here is that of a catalogue whose files repeat one
another; files with nothing in common would cost ~100 MB more at 10,000.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import itertools
import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run import Fleet, Run, Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTRUCTION_CALLS = 1000


def generate(root: Path, actions: int, apps: int, upstream: str) -> Path:
    """The shipped actions + generated ones up to `actions`; the bench apps +
    generated ones up to `apps` (each provides one generated action and
    consumes another, in a few communities, with a token of its own)."""
    import run as bench

    root = bench.write_catalogue(root, upstream)
    template = json.loads((ROOT / "catalogue" / "actions" / "calendar-get-related.json").read_text())
    v1 = template["versions"]["1"]
    shipped = len(list((root / "actions").glob("*.json")))
    names = []
    for i in range(max(0, actions - shipped)):
        name = f"@gen:Domain{i // 100:03d}:action{i:05d}"
        names.append(name)
        version = copy.deepcopy(v1)
        version["request"]["properties"]["data"]["properties"][f"field{i}"] = {"type": "string", "maxLength": 64}
        version["response"]["definitions"]["Event"]["properties"][f"extra{i}"] = {"type": "integer"}
        doc = {"action": name, "title": f"Generated action {i}", "versions": {"1": version}}
        (root / "actions" / f"gen-{i:05d}.json").write_text(json.dumps(doc))
    generated_apps = max(0, apps - len(bench.bench_apps(upstream)))
    for i in range(generated_apps):
        provides = {names[i % len(names)]: {"url": f"{upstream}/small", "versions": [1]}} if names else {}
        doc = {
            "id": f"gen-app-{i:05d}", "displayName": f"Generated app {i}", "icon": "",
            "secret": f"gen-secret-{i}",
            "tokens": ["sha256:" + hashlib.sha256(f"gen-token-{i}".encode()).hexdigest()],
            "communities": [f"community-{i % 50:02d}", bench.COMMUNITY],
            "provides": provides,
            "consumes": [names[(i + 1) % len(names)]] if names else [],
        }
        (root / "apps" / f"gen-app-{i:05d}.json").write_text(json.dumps(doc))
    return root


def _generation(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as r:
        return int(json.loads(r.read())["catalogue"]["generation"])


def _reload_seconds(server: Any, catalogue: Path) -> float:
    """Touch one action, SIGHUP, and time until /healthz shows generation 2."""
    first = sorted((catalogue / "actions").glob("*.json"))[0]
    doc = json.loads(first.read_text())
    doc["title"] = doc.get("title", "") + " (edited)"
    first.write_text(json.dumps(doc))
    started = time.monotonic()
    server.proc.send_signal(signal.SIGHUP)
    while _generation(server.url("/healthz")) < 2:
        if time.monotonic() - started > 300:
            raise RuntimeError("reload did not finish within 300 s")
        time.sleep(0.01)
    return time.monotonic() - started


def measure(fleet: Fleet, run: Run, settings: Settings) -> dict[str, Any]:
    import run as bench

    out = bench.OUT
    up_port = bench.free_port()
    upstream = fleet.start("provider-scale", [bench.PY, str(HERE / "provider.py"), str(up_port)],
                           up_port, run.load_core)
    sizes = [("10", 10, 10), (f"{settings.scale_actions:,}", settings.scale_actions, settings.scale_apps)]
    hubs = []
    control: tuple[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    for label, actions, apps in sizes:
        started = time.monotonic()
        catalogue = generate(out / f"scale-{actions}", actions, apps, upstream.url(""))
        generated_s = time.monotonic() - started
        port = bench.free_port()
        # The code cache starts empty: this start-up compiles everything (and fills it).
        code_cache = out / f"scale-{actions}-code-cache"
        shutil.rmtree(code_cache, ignore_errors=True)
        config = bench.write_config(out / f"scale-{actions}.toml", catalogue, port,
                                    catalogue={"cache_dir": str(code_cache)})
        started = time.monotonic()
        hub = fleet.start(f"hub-scale-{actions}", [bench.PY, "-m", "proxy", "serve", "--config", str(config)],
                          port, run.sut_core, log=out / f"hub-scale-{actions}.log", timeout_s=900)
        start_s = time.monotonic() - started
        row = {"catalogue": label, "actions": actions, "apps": apps,
               "generate_s": round(generated_s, 1), "start_s": round(start_s, 2),
               "rss_mib": round(hub.rss_mib(), 1)}
        row["reload_s"] = round(_reload_seconds(hub, catalogue), 2)
        row["rss_after_reload_mib"] = round(hub.rss_mib(), 1)
        # A restart (or another worker) on the same catalogue: the code cache is warm.
        warm_port = bench.free_port()
        warm_config = bench.write_config(out / f"scale-{actions}-warm.toml", catalogue, warm_port,
                                         catalogue={"cache_dir": str(code_cache)})
        started = time.monotonic()
        warm = fleet.start(f"hub-scale-{actions}-warm",
                           [bench.PY, "-m", "proxy", "serve", "--config", str(warm_config)],
                           warm_port, run.sut_core, log=out / f"hub-scale-{actions}-warm.log", timeout_s=900)
        row["warm_start_s"] = round(time.monotonic() - started, 2)
        if control is None:
            # Kept, on the smallest catalogue: the control, two hubs alike measured
            # as the two catalogues are, says how far noise alone moves that ratio.
            # Reloaded as the measured hubs were.
            _reload_seconds(warm, catalogue)
            control = (f"{label} (control)", warm)
        else:
            fleet.stop(warm)
        print(f"  scale {label}: start {row['start_s']} s (warm code cache {row['warm_start_s']} s), "
              f"RSS {row['rss_mib']} MiB, reload {row['reload_s']} s", flush=True)
        hubs.append((label, hub))
        rows.append(row)
    path = f"/v1/services/call/{bench.ACTION}/bench-small"
    measured = [*hubs, *([control] if control else [])]
    requests = {label: bench.Request(hub.url(path), bench.GOOD_BODY, bench.HEADERS) for label, hub in measured}
    for request in requests.values():
        bench.warm_up(request, run.load_core)
    # Twice as many repeats of half-length runs as elsewhere, each repeat in
    # another order (every order of the hubs in turn): on a shared machine the
    # runs of one repeat are what see the same minute, and each hub runs
    # before and after each other as often.
    orders = list(itertools.permutations(measured))
    for repeat in range(settings.repeats * 2):
        for label, hub in orders[repeat % len(orders)]:
            run.measure("scale", "small", label, hub, requests[label], repeat, seconds=settings.seconds / 2)
    for _, hub in measured:
        fleet.stop(hub)
    result: dict[str, Any] = {"rows": rows, "labels": [label for label, _ in hubs],
                              "control": control[0] if control else None}
    if shutil.which("valgrind") and not settings.quick:
        try:
            result["instructions"] = _instructions(sizes, out)
        except Exception as exc:  # the rest of the run is still worth its report
            result["instructions_skipped"] = f"counting them failed ({type(exc).__name__}: {exc})"[:300]
            print(f"  scale: {result['instructions_skipped']}", flush=True)
    elif not settings.quick:
        result["instructions_skipped"] = "valgrind is not installed (apt-get install valgrind)"
    fleet.stop(upstream)
    return result


def _instructions(sizes: list[tuple[str, int, int]], out: Path) -> dict[str, float]:
    """Instructions per small call under callgrind on each generated
    catalogue (benchmarks/instructions.py): the same call's work on both,
    which CPU seconds on a shared machine cannot compare finely."""
    import instructions

    counted = {}
    for label, actions, _ in sizes:
        with tempfile.TemporaryDirectory(prefix="apihub-callgrind-") as tmp:
            counted[label] = instructions.count(ROOT, INSTRUCTION_CALLS, out / f"scale-{actions}", Path(tmp),
                                                out / f"scale-{actions}-code-cache")
        print(f"  scale {label}: {counted[label]:,.0f} instructions per small call", flush=True)
    return counted


# ---- redis ------------------------------------------------------------------------

def redis_vs_file(fleet: Fleet, run: Run) -> None:
    """The same hub, registry in files vs in a private redis-server."""
    import run as bench

    if importlib.util.find_spec("proxy.registry.redis") is None:
        run.extra["redis"] = {"skipped": "the redis registry backend (proxy/registry/redis.py) "
                                         "does not exist yet"}
        return
    server_bin = shutil.which("redis-server")
    if server_bin is None:
        run.extra["redis"] = {"skipped": "redis-server is not installed (apt-get install redis-server)"}
        return
    out = bench.OUT
    up_port, redis_port, file_port, redis_hub_port = (bench.free_port() for _ in range(4))
    upstream = fleet.start("provider-redis", [bench.PY, str(HERE / "provider.py"), str(up_port)],
                           up_port, run.load_core)
    redis_dir = out / "redis"
    shutil.rmtree(redis_dir, ignore_errors=True)
    redis_dir.mkdir()
    redis = subprocess.Popen(
        [*bench.loadgen.pinned(run.load_core), server_bin, "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(redis_dir)],
        stdout=open(out / "redis.log", "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    try:
        _wait_redis(redis_port, redis)
        catalogue = bench.write_catalogue(out / "catalogue-redis", upstream.url(""))
        file_cfg = bench.write_config(out / "hub-file.toml", catalogue, file_port)
        redis_cfg = bench.write_config(
            out / "hub-redis.toml", catalogue, redis_hub_port,
            registry={"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"})
        push = subprocess.run([bench.PY, "-m", "proxy", "apps", "push", str(catalogue / "apps"),
                               "--config", str(redis_cfg)], capture_output=True, text=True, cwd=ROOT,
                              timeout=60)
        if push.returncode != 0:
            run.extra["redis"] = {"skipped": f"apihub apps push failed: {push.stderr.strip()[-300:]}"}
            return
        file_hub = fleet.start("hub-file", [bench.PY, "-m", "proxy", "serve", "--config", str(file_cfg)],
                               file_port, run.sut_core)
        redis_hub = fleet.start("hub-redis", [bench.PY, "-m", "proxy", "serve", "--config", str(redis_cfg)],
                                redis_hub_port, run.sut_core)
        path = f"/v1/services/call/{bench.ACTION}/bench-small"
        for name, hub in (("file", file_hub), ("redis", redis_hub)):
            status, body = bench.post(hub.url(path), bench.GOOD_BODY)
            assert status == 200, (name, status, body[:300])
            bench.warm_up(bench.Request(hub.url(path), bench.GOOD_BODY, bench.HEADERS), run.load_core)
        for repeat in range(run.settings.repeats):
            for name, hub in (("file", file_hub), ("redis", redis_hub)):
                run.measure("registry", "small", name, hub,
                            bench.Request(hub.url(path), bench.GOOD_BODY, bench.HEADERS), repeat)
        run.extra["redis"] = {"ok": True}
        fleet.stop(file_hub)
        fleet.stop(redis_hub)
    finally:
        redis.terminate()
        redis.wait(timeout=10)
        fleet.stop(upstream)


def _wait_redis(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer PING")
