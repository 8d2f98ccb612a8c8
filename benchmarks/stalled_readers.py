"""Stalled readers: N consumers each ask for a large answer and never read it.

Measures the hub's resident memory (VmRSS) before, at the peak of the burst,
and after the consumers are gone, plus what a normal call gets meanwhile.
Runs the hub of this tree and, with --base DIR (a source tree, e.g.
`git archive main | tar -x -C DIR`), that hub too, side by side.

    .venv/bin/python benchmarks/stalled_readers.py --readers 1500 --size-mib 2 [--base DIR]

Bounded: every phase has a deadline; the hub is a subprocess stopped at the
end. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import (  # noqa: E402
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    free_port,
    provider_manifest,
    write_catalogue,
    write_config_file,
)

MiB = 1024 * 1024
CALL = f"/v1/services/call/{ECHO}/provider-app"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request(size: int) -> bytes:
    body = json.dumps({"data": {"value": size}}).encode()
    headers = {**call_headers(), "Content-Type": "application/json", "Content-Length": str(len(body)),
               "Host": "127.0.0.1"}
    head = f"POST {CALL} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


async def start_provider(size: int) -> tuple[web.AppRunner, str]:
    """Answers `size` bytes when asked for them (`data.value`), else a small answer."""
    large = json.dumps({"data": {"echo": "x" * size}}).encode()
    small = json.dumps({"data": {"echo": "small"}}).encode()

    async def handle(request: web.Request) -> web.Response:
        asked = json.loads(await request.read())["data"]["value"]
        return web.Response(body=large if asked == size else small, content_type="application/json")

    app = web.Application()
    app.router.add_post("/action", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/action"


async def normal_call(port: int) -> tuple[int, float]:
    """A consumer that reads: (status, seconds)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(10).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))
        async with asyncio.timeout(30):
            raw = await reader.read()
    except TimeoutError:
        return 0, time.perf_counter() - started
    finally:
        writer.close()
    return int(raw.split(b" ", 2)[1]), time.perf_counter() - started


async def run_hub(source: Path, label: str, args: argparse.Namespace, provider_url: str,
                  work: Path) -> dict[str, Any]:
    root = write_catalogue(work / f"catalogue-{label}", [echo_action(versions=(1,))],
                           [provider_manifest("provider-app", provider_url), consumer_manifest()])
    port = free_port()
    config = write_config_file(
        work / f"config-{label}.toml", root, port,
        upstream={"max_concurrency": args.readers * 2, "pool_size": args.readers * 2, "timeout_ms": 60_000},
        limits={"max_response_bytes": (args.size_mib + 1) * MiB},
        log={"format": "json", "level": "info"},
    )
    env = {**os.environ, "PYTHONPATH": str(source)}
    log_path = work / f"hub-{label}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(config)],
                                cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT)
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = await normal_call(port)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: hub did not start")
            await asyncio.sleep(0.1)
        before = rss_mib(proc.pid)
        payload = request(args.size_mib * MiB)
        for _ in range(args.readers):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, payload)
            socks.append(sock)
        peak = before
        probe: tuple[int, float] | None = None
        settle_until = time.monotonic() + args.settle_s
        while time.monotonic() < settle_until:
            peak = max(peak, rss_mib(proc.pid))
            if probe is None and time.monotonic() > settle_until - args.settle_s / 2:
                probe = await normal_call(port)
            await asyncio.sleep(0.2)
        statuses: dict[str, int] = {}
        for sock in socks:
            try:
                head = sock.recv(16)
                key = head.split(b" ")[1].decode() if head.startswith(b"HTTP/") else "none"
            except (BlockingIOError, IndexError):
                key = "none"
            except OSError:
                key = "reset"
            statuses[key] = statuses.get(key, 0) + 1
        for sock in socks:
            sock.close()
        socks.clear()
        after_close = time.monotonic()
        await asyncio.sleep(args.after_s)
        after = rss_mib(proc.pid)
        await asyncio.sleep(args.after_s)
        after_twice = rss_mib(proc.pid)
        final = await normal_call(port)
        events: dict[str, int] = {}
        for line in log_path.read_text().splitlines():
            try:
                event = json.loads(line).get("event")
            except ValueError:
                continue
            if event in ("memory_trimmed", "consumer_write_timeout", "allocator"):
                events[event] = events.get(event, 0) + 1
        return {
            "hub": label, "readers": args.readers, "answerMiB": args.size_mib,
            "rssBeforeMiB": round(before), "rssPeakMiB": round(peak), "rssAfterMiB": round(after),
            "rssLaterMiB": round(after_twice), "laterSeconds": round(time.monotonic() - after_close, 1),
            "events": events,
            "stalledAnswers": statuses,
            "normalCallDuring": {"status": probe[0], "seconds": round(probe[1], 3)} if probe else None,
            "normalCallAfter": {"status": final[0], "seconds": round(final[1], 3)},
        }
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=1500)
    parser.add_argument("--size-mib", type=int, default=2)
    parser.add_argument("--settle-s", type=float, default=8.0, help="burst phase length")
    parser.add_argument("--after-s", type=float, default=5.0, help="wait after the consumers left")
    parser.add_argument("--base", type=Path, help="a source tree to compare with (e.g. main)")
    args = parser.parse_args()
    runner, provider_url = await start_provider(args.size_mib * MiB)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hubs = [(ROOT, "this tree")] + ([(args.base.resolve(), "base")] if args.base else [])
            for source, label in hubs:
                print(json.dumps(await run_hub(source, label, args, provider_url, Path(tmp))), flush=True)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
