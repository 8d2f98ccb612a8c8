"""Load generators: wrk when installed, else a built-in multi-process aiohttp one.

Both run a fixed number of keep-alive connections for a fixed time, each
connection sending the same POST again as soon as its answer arrived
(closed loop), optionally pausing `delay_ms` first (to offer less than the
peak load). Both report the same `LoadResult`.

The built-in one is itself Python: on a small machine it saturates long
before the hub does, so its peak figures say more about it than about the
server under test. Install wrk (Debian/Ubuntu: `apt-get install wrk`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUA = HERE / "post.lua"


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class LoadResult:
    calls: int
    seconds: float
    non2xx: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def pinned(cores: set[int] | None) -> list[str]:
    if not cores or not shutil.which("taskset"):
        return []
    return ["taskset", "-c", ",".join(map(str, sorted(cores)))]


def run_load(request: Request, *, connections: int, seconds: float, delay_ms: float = 0.0,
             cores: set[int] | None = None, engine: str = "auto") -> LoadResult:
    if engine == "wrk" or (engine == "auto" and wrk_path()):
        return _run_wrk(request, connections, seconds, delay_ms, cores)
    return _run_builtin(request, connections, seconds, delay_ms, cores)


def _run_wrk(request: Request, connections: int, seconds: float, delay_ms: float,
             cores: set[int] | None) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="apihub-wrk-") as tmp:
        body, headers = Path(tmp, "body"), Path(tmp, "headers")
        body.write_bytes(request.body)
        headers.write_text("".join(f"{k}: {v}\n" for k, v in request.headers.items()))
        env = {**os.environ, "BENCH_BODY_FILE": str(body), "BENCH_HEADERS_FILE": str(headers),
               "BENCH_DELAY_MS": f"{delay_ms:.3f}"}
        cmd = [*pinned(cores), "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(LUA), request.url]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            doc = json.loads(line[len("BENCHJSON "):])
            return LoadResult(
                calls=doc["requests"], seconds=doc["duration_us"] / 1e6, non2xx=doc["non2xx"],
                errors=doc["connect"] + doc["read"] + doc["write"] + doc["timeout"],
                # wrk's histogram counts whole µs, so these are exact to 0.001 ms (post.lua prints them as integers).
                p50_ms=doc["p50_us"] / 1000, p99_ms=doc["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")


# ---- the built-in generator --------------------------------------------------

def _run_builtin(request: Request, connections: int, seconds: float, delay_ms: float,
                 cores: set[int] | None) -> LoadResult:
    processes = max(1, min(4, connections // 16))
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    with tempfile.TemporaryDirectory(prefix="apihub-load-") as tmp:
        spec = Path(tmp, "request.json")
        spec.write_text(json.dumps({"url": request.url, "body": request.body.decode(),
                                    "headers": request.headers}))
        children = []
        for i, conns in enumerate(per):
            out = Path(tmp, f"lat{i}")
            cmd = [*pinned(cores), sys.executable, __file__, str(spec), str(conns), str(seconds),
                   str(delay_ms), str(out)]
            children.append((subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True), out))
        latencies = array("d")
        calls = non2xx = errors = 0
        for child, out in children:
            stdout, _ = child.communicate(timeout=seconds + 60)
            doc = json.loads(stdout.strip().splitlines()[-1])
            calls += doc["calls"]
            non2xx += doc["non2xx"]
            errors += doc["errors"]
            latencies.frombytes(out.read_bytes())
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0

    return LoadResult(calls=calls, seconds=seconds, non2xx=non2xx, errors=errors,
                      p50_ms=pct(0.50), p99_ms=pct(0.99))


async def _drive(spec: dict[str, object], connections: int, seconds: float, delay_ms: float,
                 latencies: array) -> tuple[int, int, int]:
    import aiohttp

    counts = [0, 0, 0]
    deadline = time.perf_counter() + seconds
    body = str(spec["body"]).encode()
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one() -> None:
            while time.perf_counter() < deadline:
                if delay_ms:
                    await asyncio.sleep(delay_ms / 1000)
                started = time.perf_counter()
                try:
                    async with session.post(str(spec["url"]), data=body,
                                            headers=dict(spec["headers"])) as r:  # type: ignore[arg-type]
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    counts[2] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                counts[0] += 1
                if not 200 <= status < 400:
                    counts[1] += 1

        await asyncio.gather(*(one() for _ in range(connections)))
    return counts[0], counts[1], counts[2]


def _child(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    connections, seconds, delay_ms, out = int(argv[1]), float(argv[2]), float(argv[3]), Path(argv[4])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    latencies = array("d")
    calls, non2xx, errors = asyncio.run(_drive(spec, connections, seconds, delay_ms, latencies))
    out.write_bytes(latencies.tobytes())
    print(json.dumps({"calls": calls, "non2xx": non2xx, "errors": errors}))


if __name__ == "__main__":
    _child(sys.argv[1:])
