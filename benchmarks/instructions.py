"""Instructions per small call, counted by callgrind: an A/B measure that a
shared, noisy machine cannot blur (two runs of one tree agree within ~0.2 %,
where calls/s swing by ±10 %). It says nothing about wall time or I/O; use
it to compare two versions of the hot path, and `make bench` for the figures.

    apt-get install valgrind
    .venv/bin/python benchmarks/instructions.py [TREE ...]   # default: this checkout

Each TREE is a checkout of the hub (its own `proxy/`, run with this
checkout's interpreter). The hub runs under callgrind with instrumentation
off until 300 warm-up calls are done, then counts N calls (env N, default
1,000) sent one after another on one keep-alive connection to the benchmark
provider (pinned, run natively), then is stopped.
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

WARM_UP = 300


def count(tree: Path, calls: int, upstream: str, workdir: Path) -> float:
    """Instructions per call of the hub in `tree`."""
    catalogue = bench.write_catalogue(workdir / "catalogue", upstream)
    port = bench.free_port()
    config = bench.write_config(workdir / "hub.toml", catalogue, port)
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


def main() -> int:
    if not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    calls = int(os.environ.get("N", 1000))
    trees = [Path(t).resolve() for t in sys.argv[1:]] or [bench.ROOT]
    _, load_core = bench.cores()
    bench.OUT.mkdir(exist_ok=True)  # the fleet's stderr files
    fleet = bench.Fleet()
    try:
        port = bench.free_port()
        provider = fleet.start("provider-upstream", [bench.PY, str(HERE / "provider.py"), str(port)], port,
                               load_core)
        for tree in trees:
            with tempfile.TemporaryDirectory(prefix="apihub-callgrind-") as workdir:
                per_call = count(tree, calls, provider.url(""), Path(workdir))
            print(f"{tree}: {per_call:,.0f} instructions per small call ({calls} calls)", flush=True)
    finally:
        fleet.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
