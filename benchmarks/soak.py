"""`make soak`: both provider clients against a fault-injecting provider,
counting every failed call by cause. Writes its table into
benchmarks/RESULTS.md (a marked section, which `make bench` keeps).

    SOAK_SECONDS=120 .venv/bin/python benchmarks/soak.py   # split evenly between the clients

One provider server on 127.0.0.1 (in this process, raw asyncio) serves one
provider app per fault, all on the same host:port: `idle` closes kept-alive
connections after 20-80 ms idle, `slow` answers after 50-150 ms, `chunked`
in three writes, `large` ~200 KB, `tail` puts garbage after every 4th answer,
`late` writes a second answer 20 ms after each real one (a tail when the hub
reads it with the first), `hung` never
answers (called with ?timeout=300). The hub runs as `apihub serve`, one
worker per client. Each call carries a nonce the provider puts in its
answer, so an answer relayed to the wrong call is caught.

"Another call's answer, same app": `late` answers one request twice, 20 ms
apart; when the hub reused that connection for the app's next call in
between, HTTP/1.1 cannot tell the late bytes from the next answer (see
docs/reliability.md, known limits). Never another app's answer.

A failure is the provider's when the provider caused it on that call (a
tail it wrote: 502 invalid_provider_response; `hung`: 504
provider_timeout). Every other failure is the hub's, and should be 0.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import provider as bench_provider  # noqa: E402
import run as bench  # noqa: E402
import sections  # noqa: E402

MODES = ("plain", "idle", "slow", "chunked", "large", "tail", "late", "hung")
WEIGHTS = (3, 3, 2, 2, 1, 2, 2, 1)
CLIENTS = ("lean", "aiohttp")
CONCURRENCY = 24
TAIL_EVERY = 4
LATE_S = 0.02


def answer(nonce: str, large: bool) -> bytes:
    events = bench_provider.events(1000 if large else 3)
    events[0]["title"] = nonce
    return orjson.dumps({"data": {"events": events}})


def head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()


@dataclass
class FaultProvider:
    port: int = 0
    faulted: set[str] = field(default_factory=set)  # nonces whose answer the provider broke
    served: int = 0

    async def read(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        raw = await reader.readuntil(b"\r\n\r\n")
        path = raw.split(b" ", 2)[1].decode()
        length = 0
        for line in raw.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = orjson.loads(await reader.readexactly(length))
        return path.strip("/"), str(body["data"]["entity"]["id"])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rng = random.Random()
        idle_close: float | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(idle_close):
                        mode, nonce = await self.read(reader)
                except TimeoutError:
                    return  # `idle`: closes a kept-alive connection nobody used for a while
                await self.answer(mode, nonce, reader, writer, rng)
                idle_close = rng.uniform(0.02, 0.08) if mode == "idle" else None
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass  # cancelled: the soak is over
        finally:
            writer.close()

    async def answer(self, mode: str, nonce: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     rng: random.Random) -> None:
        self.served += 1
        body = answer(nonce, mode == "large")
        if mode == "hung":
            await reader.read()  # until the hub gives up at its deadline and closes
            return
        elif mode == "slow":
            await asyncio.sleep(rng.uniform(0.05, 0.15))
        if mode == "chunked":
            writer.write(head(None))
            third = len(body) // 3 + 1
            for i in range(0, len(body), third):
                part = body[i:i + third]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.001)
            writer.write(b"0\r\n\r\n")
        elif mode == "tail" and self.served % TAIL_EVERY == 0:
            self.faulted.add(nonce)
            writer.write(head(len(body)) + body + b"garbage\r\n")
        else:
            writer.write(head(len(body)) + body)
        await writer.drain()
        if mode == "late":
            # Read with the answer when the hub is slower than LATE_S: then it
            # is a tail, and failing that call is the rule.
            self.faulted.add(nonce)
            await asyncio.sleep(LATE_S)
            late = answer("late-" + nonce, False)
            writer.write(head(len(late)) + late)
            await writer.drain()


@dataclass
class Tally:
    client: str
    seconds: float = 0.0
    calls: collections.Counter[str] = field(default_factory=collections.Counter)  # by mode
    ok: int = 0
    provider: collections.Counter[str] = field(default_factory=collections.Counter)  # mode/code
    hub: collections.Counter[str] = field(default_factory=collections.Counter)  # mode/code
    wrong_same_app: int = 0  # another call's answer, from the same provider app
    wrong_other_app: int = 0


async def load(hub_url: str, fault: FaultProvider, tally: Tally, seconds: float) -> None:
    rng = random.Random(11)
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            mode = rng.choices(MODES, WEIGHTS)[0]
            nonce = f"n{next(counter)}-{mode}"
            body = orjson.loads(bench.GOOD_BODY)
            body["data"]["entity"]["id"] = nonce
            url = f"{hub_url}/v1/services/call/{bench.ACTION}/soak-{mode}"
            if mode == "hung":
                url += "?timeout=300"
            tally.calls[mode] += 1
            try:
                async with session.post(url, data=orjson.dumps(body), headers=bench.HEADERS) as r:
                    raw = await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:
                tally.hub[f"{mode}/consumer-side {type(exc).__name__}"] += 1
                continue
            doc = orjson.loads(raw) if raw else {}
            if status == 200:
                title = doc["data"]["events"][0]["title"]
                if title == nonce:
                    tally.ok += 1
                elif title.endswith(f"-{mode}"):
                    tally.wrong_same_app += 1
                else:
                    tally.wrong_other_app += 1
                continue
            code = doc.get("code", str(status))
            caused = (mode == "hung" and code == "provider_timeout") or (
                nonce in fault.faulted and code == "invalid_provider_response")
            (tally.provider if caused else tally.hub)[f"{mode}/{code}"] += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        tally.seconds = time.monotonic() - started


def apps(base: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [{
        "id": f"soak-{mode}", "displayName": f"Soak {mode}", "icon": "", "secret": bench.SECRET,
        "tokens": [], "communities": [bench.COMMUNITY],
        "provides": {bench.ACTION: {"url": f"{base}/{mode}", "versions": [1]}}, "consumes": [],
    } for mode in MODES]
    out.append({
        "id": "bench-consumer", "displayName": "Soak consumer", "icon": "",
        "tokens": [bench.token_hash(bench.TOKEN)], "communities": [bench.COMMUNITY], "provides": {},
        "consumes": [bench.ACTION],
    })
    return out


def write_catalogue(root: Path, base: str) -> Path:
    bench.write_catalogue(root, base)
    for old in (root / "apps").iterdir():
        old.unlink()
    for app in apps(base):
        (root / "apps" / f"{app['id']}.json").write_text(orjson.dumps(app).decode())
    return root


async def soak_client(client: str, seconds: float, fault: FaultProvider, base: str) -> Tally:
    bench.OUT.mkdir(exist_ok=True)
    catalogue = write_catalogue(bench.OUT / "soak-catalogue", base)
    port = bench.free_port()
    config = bench.write_config(bench.OUT / f"soak-{client}.toml", catalogue, port,
                                upstream={"client": client}, log={"level": "warning"})
    fleet = bench.Fleet()
    tally = Tally(client)
    try:
        hub = await asyncio.to_thread(
            fleet.start, f"soak-hub-{client}", [bench.PY, "-m", "proxy", "serve", "--config", str(config)],
            port, None)
        await load(hub.url(""), fault, tally, seconds)
    finally:
        fleet.stop_all()
    return tally


def table(tallies: list[Tally]) -> str:
    lines = ["| client | seconds | calls | 200 (own answer) | another app's answer | another call's answer, "
             "same app | failed: provider's fault | failed: not the provider's |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t in tallies:
        provider = ", ".join(f"{k} {v}" for k, v in sorted(t.provider.items())) or "0"
        hub = ", ".join(f"{k} {v}" for k, v in sorted(t.hub.items())) or "**0**"
        lines.append(f"| {t.client} | {t.seconds:.0f} | {sum(t.calls.values())} | {t.ok} | "
                     f"**{t.wrong_other_app}** | {t.wrong_same_app} | {sum(t.provider.values())} ({provider}) | "
                     f"{sum(t.hub.values())} ({hub}) |")
    return "\n".join(lines)


async def main() -> int:
    total = float(os.environ.get("SOAK_SECONDS", 120))
    clients = [c for c in os.environ.get("SOAK_CLIENTS", ",".join(CLIENTS)).split(",") if c]
    fault = FaultProvider()
    server = await asyncio.start_server(fault.serve, "127.0.0.1", 0)
    fault.port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{fault.port}"
    tallies = []
    try:
        for client in clients:
            tallies.append(await soak_client(client, total / len(clients), fault, base))
    finally:
        server.close()
    text = table(tallies)
    print(text)
    command = f"SOAK_SECONDS={total:g} make soak"
    modes = ", ".join(f"{m} x{w}" for m, w in zip(MODES, WEIGHTS, strict=True))
    # A marked section: replaced by the next soak, kept by `make bench` (sections.py).
    start, end = sections.markers("soak")
    sections.put(HERE / "RESULTS.md", [
        start, f"## Soak: provider faults, both clients ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "",
        f"`{command}` (.venv/bin/python benchmarks/soak.py): {CONCURRENCY} "
        f"consumers at once against one fault-injecting provider on 127.0.0.1, one app per "
        f"fault on one host:port, calls weighted {modes}; see the docstring of "
        f"benchmarks/soak.py for each fault. \"Provider's fault\": the provider broke that "
        f"very answer (a tail) or never answered (`hung`, 504 by design).", "", text, end])
    return 1 if any(t.hub or t.wrong_other_app for t in tallies) else 0


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main()))
