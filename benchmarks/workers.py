"""Start-up of a 10,000-action, 10,000-app hub with 1, 2 and 4 workers: time
to the first answer, RSS and PSS per worker (PSS counts pages shared
copy-on-write with the main process once), and a SIGHUP reload of one
changed action file, and RSS again once the reload has settled. The
catalogue is loaded once, in the main process, before the workers are
forked: N workers should start in about the time of one.

    .venv/bin/python benchmarks/workers.py [--workers 1 2 4] [--write]

(`--write` replaces its section of RESULTS.md.) About two minutes on 2
cores; `--workers 1` about forty seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as bench  # noqa: E402
import scale  # noqa: E402
import sections  # noqa: E402

ACTIONS = APPS = 10_000


def _kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _generation(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return int(json.loads(r.read())["catalogue"]["generation"])


def measure(workers: int, catalogue: Path) -> dict[str, float]:
    port = bench.free_port()
    config = bench.write_config(bench.OUT / f"workers-{workers}.toml", catalogue, port,
                                server={"workers": workers})
    started = time.monotonic()
    with open(bench.OUT / f"workers-{workers}.log", "wb") as log:
        proc = subprocess.Popen([bench.PY, "-m", "proxy", "serve", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=bench.ROOT)
    try:
        bench.wait_http(f"http://127.0.0.1:{port}/healthz", proc, 300)
        first = time.monotonic() - started
        deadline = time.monotonic() + 120
        pids = [proc.pid] if workers == 1 else []
        while workers > 1 and len(pids) < workers and time.monotonic() < deadline:
            pids = _children(proc.pid)
            time.sleep(0.1)
        time.sleep(1.0)  # every worker past its start
        rss = [_kib(pid, "Rss") / 1024 for pid in pids]
        pss = [_kib(pid, "Pss") / 1024 for pid in pids]
        action = sorted((catalogue / "actions").glob("*.json"), key=str)[0]
        doc = json.loads(action.read_text())
        doc["title"] = doc.get("title", "") + " (edited)"
        action.write_text(json.dumps(doc))
        before = _generation(port)
        reload_started = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        while _generation(port) <= before and time.monotonic() - reload_started < 120:
            time.sleep(0.01)
        reloaded = time.monotonic() - reload_started
        time.sleep(1.0)  # the replaced catalogue freed, the new one frozen
        rss_after = [_kib(pid, "Rss") / 1024 for pid in pids]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return {"workers": workers, "first_answer_s": round(first, 2), "rss_mib": round(max(rss or [0]), 1),
            "pss_mib": round(max(pss or [0]), 1), "reload_s": round(reloaded, 2),
            "rss_after_reload_mib": round(max(rss_after or [0]), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts to start")
    args = parser.parse_args()
    bench.OUT.mkdir(parents=True, exist_ok=True)
    catalogue = bench.OUT / f"scale-{ACTIONS}"
    if not (catalogue / "actions").is_dir():
        scale.generate(catalogue, ACTIONS, APPS, "http://127.0.0.1:9")
    rows = [measure(n, catalogue) for n in args.workers]
    start, end = sections.markers("workers")
    counts = ", ".join(map(str, args.workers[:-1])) + " and " * (len(args.workers) > 1) + str(args.workers[-1])
    lines = [start, f"## {ACTIONS:,} actions + {APPS:,} apps: start-up with {counts} workers", "",
             f"`.venv/bin/python benchmarks/workers.py --write` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"{os.cpu_count()} cores. The main process loads and checks the catalogue once, then forks; "
             "schemas are compiled on first use.", "",
             ("| workers | cold start to first answer | RSS per worker (max) | PSS per worker (max) "
              "| SIGHUP reload, one file changed | RSS per worker after it (max) |"),
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['workers']} | {row['first_answer_s']} s | {row['rss_mib']} MiB | {row['pss_mib']} MiB "
                     f"| {row['reload_s']} s | {row['rss_after_reload_mib']} MiB |")
    lines += ["", end]
    print("\n".join(lines))
    if args.write:
        sections.put(HERE / "RESULTS.md", lines)


if __name__ == "__main__":
    main()
