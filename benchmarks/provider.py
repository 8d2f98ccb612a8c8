"""The benchmark provider: fixed, precomputed answers so it is never the
bottleneck. `/small` answers ~1 KB (a few calendar events), `/large` ~200 KB
(a calendar of 1,000 events); both follow @layers:Calendar:getRelated v1.

It reads the whole request body (as a real provider must) but does not
parse it or check the signature: that work would be the provider's, not the
hub's, and the benchmark compares the hub with a bare proxy in front of the
same provider.

    python benchmarks/provider.py PORT
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

KINDS = ["class", "exam", "holiday", "meeting", "event"]


def events(count: int) -> list[dict[str, Any]]:
    out = []
    day = date(2026, 2, 2)
    for i in range(count):
        begin = datetime(day.year, day.month, day.day, 7 + (i % 5) * 2, 30)
        kind = KINDS[i % len(KINDS)]
        out.append({
            "id": f"evt-s-1042-{day.isoformat()}-{i % 5}",
            "title": f"Aula de Matemática, turma {i % 7 + 1}" if kind == "class" else "Reunião de pais e mestres",
            "category": kind,
            "start": begin.isoformat() + "-03:00",
            "end": (begin + timedelta(minutes=50)).isoformat() + "-03:00",
            "allDay": False,
            "location": f"Sala {i % 24 + 1}",
        })
        if i % 5 == 4:
            day += timedelta(days=1)
    return out


SMALL = orjson.dumps({"data": {"events": events(5)}})
LARGE = orjson.dumps({"data": {"events": events(1000)}})


def handler(answer: bytes) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(body=answer, content_type="application/json")

    return handle


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/small", handler(SMALL))
    app.router.add_post("/large", handler(LARGE))
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    import uvloop

    uvloop.install()
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                backlog=1024)


if __name__ == "__main__":
    main()
