"""Instructions per small call, counted by callgrind: an A/B measure that a
shared, noisy machine cannot blur (two runs of one tree agree within ~0.2 %,
where calls/s swing by ±10 %). It says nothing about wall time or I/O; use
it to compare two versions of the hot path, and `make bench` for the figures.

    apt-get install valgrind
    .venv/bin/python benchmarks/instructions.py [TREE ...]   # default: this checkout
    .venv/bin/python benchmarks/instructions.py --scale [TREE]  # 10 against 10,000 actions

Each TREE is a checkout of the hub (its own `proxy/`, run with this
checkout's interpreter). The hub runs under callgrind with instrumentation
off until 300 warm-up calls are done, then counts N calls (env N, default
1,000) sent one after another on one keep-alive connection to the benchmark
provider (pinned, run natively), then is stopped.

`--scale` counts one tree twice, on the catalogues `make bench` generates
for its scale table (10 actions + 10 apps, and 10,000 + 10,000; env
ACTIONS to change the larger one): the same call's instructions on a small
and a large catalogue, which CPU seconds on a shared machine cannot
compare finely. The code cache is filled natively first, so the hub under
callgrind only loads.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402
import scale  # noqa: E402

WARM_UP = 300


def count(tree: Path, calls: int, catalogue: Path, workdir: Path, cache_dir: Path | None = None) -> float:
    """Instructions per call of the hub in `tree` on `catalogue` (with
    `cache_dir` as its code cache, filled natively first unless a hub
    already filled it, as `make bench`'s scale phase has)."""
    port = bench.free_port()
    cache = {"cache_dir": str(cache_dir)} if cache_dir else {}
    config = bench.write_config(workdir / "hub.toml", catalogue, port, catalogue=cache)
    if cache_dir and not (cache_dir.is_dir() and any(cache_dir.iterdir())):
        _fill_code_cache(tree, config, port)
    log = workdir / "callgrind.log"
    with log.open("w") as stderr:
        hub = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={workdir / 'out'}",
             bench.PY, "-m", "proxy", "serve", "--config", str(config)],
            cwd=tree, env={**os.environ, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/healthz", hub, 300)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        path = f"/v1/services/call/{bench.ACTION}/bench-small"

        def call() -> None:
            connection.request("POST", path, body=bench.GOOD_BODY, headers=bench.HEADERS)
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"the hub answered {answer.status}")

        for _ in range(WARM_UP):
            call()
        subprocess.run(["callgrind_control", "-i", "on", str(hub.pid)], check=True, stdout=subprocess.DEVNULL)
        for _ in range(calls):
            call()
        subprocess.run(["callgrind_control", "-i", "off", str(hub.pid)], check=True, stdout=subprocess.DEVNULL)
    finally:
        hub.send_signal(signal.SIGTERM)
        try:
            hub.wait(120)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
    found = re.search(r"Collected : ([0-9,]+)", log.read_text())
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {log.read_text()[-500:]}")
    return int(found.group(1).replace(",", "")) / calls


def _fill_code_cache(tree: Path, config: Path, port: int) -> None:
    hub = subprocess.Popen([bench.PY, "-m", "proxy", "serve", "--config", str(config)], cwd=tree,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/healthz", hub, 900)
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(60)


def main() -> int:
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    calls = int(os.environ.get("N", 1000))
    args = sys.argv[1:]
    scaled = "--scale" in args
    trees = [Path(t).resolve() for t in args if t != "--scale"] or [bench.ROOT]
    sizes = (10, int(os.environ.get("ACTIONS", 10_000))) if scaled else (0,)
    _, load_core = bench.cores()
    bench.OUT.mkdir(exist_ok=True)  # the fleet's stderr files
    fleet = bench.Fleet()
    try:
        port = bench.free_port()
        provider = fleet.start("provider-upstream", [bench.PY, str(HERE / "provider.py"), str(port)], port,
                               load_core)
        for tree in trees:
            counted = []
            for actions in sizes:
                with tempfile.TemporaryDirectory(prefix="apihub-callgrind-") as tmp:
                    workdir = Path(tmp)
                    if actions:
                        catalogue = scale.generate(workdir / "catalogue", actions, actions, provider.url(""))
                        counted.append(count(tree, calls, catalogue, workdir, workdir / "code-cache"))
                    else:
                        catalogue = bench.write_catalogue(workdir / "catalogue", provider.url(""))
                        counted.append(count(tree, calls, catalogue, workdir))
                what = f", {actions:,} actions" if actions else ""
                print(f"{tree}: {counted[-1]:,.0f} instructions per small call ({calls} calls{what})", flush=True)
            if scaled:
                print(f"{tree}: {sizes[1]:,} actions / 10 actions = {counted[1] / counted[0]:.4f}", flush=True)
    finally:
        fleet.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
