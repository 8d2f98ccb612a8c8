"""The example provider 'erp-modelo': a school ERP answering the shipped
example actions with realistic, deterministic data.

It checks what a real provider should: the `secret` in the body, and the
X-Hub-Signature over the exact bytes (rejecting replays older than 5 min).
Used by `make run`, the README, the tests and the benchmarks.
"""

from __future__ import annotations

import calendar as calendar_days
import hashlib
import hmac
import os
import random
import re
import time
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

MAX_SKEW_S = 300

SECRET = web.AppKey("secret", str)

SUBJECTS = [
    ("MAT", "Matemática"), ("POR", "Língua Portuguesa"), ("HIS", "História"), ("GEO", "Geografia"),
    ("CIE", "Ciências"), ("ING", "Inglês"), ("ART", "Artes"), ("EDF", "Educação Física"),
]
EVENT_KINDS = ["class", "exam", "holiday", "meeting", "event"]
EVENT_TITLES = {
    "class": "Aula de {subject}", "exam": "Prova de {subject}", "holiday": "Feriado escolar",
    "meeting": "Reunião de pais e mestres", "event": "Feira de ciências",
}


def verify_signature(header: str | None, body: bytes, secret: str, now: float | None = None) -> bool:
    """What every provider should do with X-Hub-Signature (see the README)."""
    if not header:
        return False
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > MAX_SKEW_S:
        return False  # a replay, or a clock far off
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


# The hub lets through everything the action's schema accepts, so the handlers
# must too: integers may arrive as 203.0 (an integer by JSON Schema), a range
# may span millennia, and a `date` is not checked at all where `format` is an
# annotation (2019-09 and later schemas without [catalogue] assert_formats).
MAX_RANGE_DAYS = 366
_DATE = re.compile(r"(\d+)-(\d+)-(\d+)")


def _int(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _day(text: str) -> date:
    """A `format: date` string as a real date, out-of-range fields clamped."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    match = _DATE.fullmatch(text.strip())
    if match is None:
        return date.min
    year, month, day = (int(part) for part in match.groups())
    year = min(max(year, 1), 9999)
    month = min(max(month, 1), 12)
    return date(year, month, min(max(day, 1), calendar_days.monthrange(year, month)[1]))


def _range(data: dict[str, Any]) -> tuple[date, date]:
    start = _day(data["from"])
    end = _day(data["to"])
    # Bounded work per call; and no date arithmetic past year 9999.
    start = min(start, date.max - timedelta(days=MAX_RANGE_DAYS + 1))
    return start, min(end, start + timedelta(days=MAX_RANGE_DAYS))


def _rng(*parts: Any) -> random.Random:
    return random.Random(hashlib.sha256(repr(parts).encode()).digest())


def calendar_events(entity_id: str, start: date, end: date, limit: int, kinds: list[str] | None = None,
                    tz: str = "-03:00") -> list[dict[str, Any]]:
    rng = _rng("calendar", entity_id, start.isoformat(), end.isoformat())
    events: list[dict[str, Any]] = []
    day = start
    while day <= end and len(events) < limit:
        if day.weekday() < 5:
            for slot in range(rng.randint(1, 3)):
                kind = rng.choices(EVENT_KINDS, weights=[70, 10, 3, 7, 10])[0]
                if kinds and kind not in kinds:
                    continue
                subject = rng.choice(SUBJECTS)[1]
                begin = datetime(day.year, day.month, day.day, 7 + slot * 2, 30)
                all_day = kind == "holiday"
                event: dict[str, Any] = {
                    "id": f"evt-{entity_id}-{day.isoformat()}-{slot}",
                    "title": EVENT_TITLES[kind].format(subject=subject),
                    "kind": kind,
                    "start": begin.isoformat() + tz,
                    "end": (begin + timedelta(minutes=50)).isoformat() + tz,
                    "allDay": all_day,
                }
                if not all_day:
                    event["location"] = f"Sala {rng.randint(1, 24)}"
                events.append(event)
                if len(events) >= limit:
                    break
        day += timedelta(days=1)
    return events


async def calendar(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    data = body["data"]
    version = body["context"]["version"]
    start, end = _range(data)
    limit = _int(data.get("limit"), 100)
    if version == 1:
        events = calendar_events(data["entity"]["id"], start, end, limit)
        for event in events:
            event["category"] = event.pop("kind")
        return {"data": {"events": events}}
    cursor = data.get("cursor") or "0"
    # A cursor this provider did not hand out starts from the beginning.
    offset = int(cursor) if cursor.isascii() and cursor.isdigit() and len(cursor) < 7 else 0
    events = calendar_events(data["entity"]["id"], start, end, offset + limit + 1, data.get("kinds"))
    page = events[offset:offset + limit]
    more = len(events) > offset + limit
    return {"data": {"events": page, "timezone": data.get("timezone", "America/Sao_Paulo"),
                     "nextCursor": str(offset + limit) if more else None}}


async def grades(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    data = body["data"]
    student = data["studentId"]
    rng = _rng("grades", student, data["schoolYear"])
    terms = [int(data["term"])] if "term" in data else [1, 2, 3]
    rows: list[dict[str, Any]] = []
    for term in terms:
        for code, name in SUBJECTS:
            published = term <= 2
            score = round(rng.uniform(4.0, 10.0), 1) if published else None
            rows.append({
                "subject": {"code": code, "name": name},
                "term": term,
                "score": score,
                "teacher": rng.choice(["Ana Souza", "Bruno Lima", "Carla Dias", "Diego Alves"]),
                "publishedAt": f"{data['schoolYear']}-{3 + term * 3:02d}-15T18:00:00Z" if published else None,
            })
    scores = [r["score"] for r in rows if r["score"] is not None]
    return {"data": {
        "student": {"id": student, "name": "Estudante " + student.upper()},
        "schoolYear": data["schoolYear"],
        "grades": rows,
        "average": round(sum(scores) / len(scores), 2) if scores else None,
    }}


async def payables(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    data = body["data"]
    rng = _rng("payables", data["guardianId"])
    wanted = data.get("status", "all")
    items = []
    for month in range(1, 13):
        status = "paid" if month < 6 else "overdue" if month == 6 else "open"
        if wanted != "all" and status != wanted:
            continue
        item: dict[str, Any] = {
            "id": f"pay-{data['guardianId']}-2026-{month:02d}",
            "description": f"Mensalidade {month:02d}/2026",
            "amount": {"value": 185000 + rng.randint(0, 4) * 500, "currency": "BRL"},
            "dueDate": f"2026-{month:02d}-10",
            "status": status,
            "paidAt": f"2026-{month:02d}-0{rng.randint(1, 9)}T12:00:00Z" if status == "paid" else None,
        }
        if status != "paid":
            # The guardian id is any string: the URL (format: uri) carries it percent-encoded.
            item["paymentUrl"] = f"https://pay.example.org/b/{quote(item['id'], safe='')}"
        items.append(item)
    items = items[: _int(data.get("limit"), 50)]
    return {"data": {"payables": items, "total": sum(i["amount"]["value"] for i in items)}}


ABSENCE_KINDS = ["absent", "late", "early_leave"]
JUSTIFICATIONS = ["illness", "medical_appointment", "family", "transport", "other"]


async def absences(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    """@layers:Attendance:getAbsences (catalogue/openapi/attendance.yaml)."""
    data = body["data"]
    student = data["studentId"]
    start, end = _range(data)
    include_justified = data.get("includeJustified", True)
    rng = _rng("attendance", student, start.isoformat(), end.isoformat())
    rows: list[dict[str, Any]] = []
    school_days = 0
    day = start
    while day <= end:
        if day.weekday() < 5:
            school_days += 1
            if rng.random() < 0.12:
                kind = rng.choices(ABSENCE_KINDS, weights=[60, 30, 10])[0]
                code, subject = rng.choice(SUBJECTS)
                justified = rng.random() < 0.5
                justification = None
                if justified:
                    justification = {
                        "reason": rng.choice(JUSTIFICATIONS),
                        "note": "Atestado entregue na secretaria" if rng.random() < 0.4 else None,
                        "accepted": rng.random() < 0.85,
                        "submittedAt": f"{(day + timedelta(days=1)).isoformat()}T09:15:00Z",
                    }
                rows.append({
                    "id": f"abs-{student}-{day.isoformat()}",
                    "date": day.isoformat(),
                    "period": rng.randint(1, 6),
                    "kind": kind,
                    "subject": {"code": code, "name": subject},
                    "minutesLate": None if kind == "absent" else rng.choice([5, 10, 15, 20, 30]),
                    "justification": justification,
                })
        day += timedelta(days=1)
    periods = school_days * 6
    missed = sum(1 for r in rows if r["kind"] == "absent")
    totals = {
        "absences": missed,
        "lateArrivals": sum(1 for r in rows if r["kind"] == "late"),
        "earlyLeaves": sum(1 for r in rows if r["kind"] == "early_leave"),
        "schoolDays": school_days,
        "attendanceRate": round(1 - missed / periods, 4) if periods else 1.0,
    }
    if not include_justified:
        rows = [r for r in rows if not (r["justification"] and r["justification"]["accepted"])]
    return {"data": {
        "student": {"id": student, "name": "Estudante " + student.upper(), "classId": "7A"},
        "absences": rows,
        "totals": totals,
    }}


def _endpoint(answer: Any) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        secret = request.app[SECRET]
        if not verify_signature(request.headers.get("X-Hub-Signature"), raw, secret):
            return web.json_response({"error": "bad or missing X-Hub-Signature"}, status=401)
        body = orjson.loads(raw)
        if not hmac.compare_digest(str(body.get("secret", "")), secret):
            return web.json_response({"error": "wrong secret"}, status=401)
        result = await answer(request, body)
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    return handler


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def create_app(secret: str) -> web.Application:
    app = web.Application()
    app[SECRET] = secret
    app.router.add_post("/v1/layers/actions/calendar", _endpoint(calendar))
    app.router.add_post("/v1/gradebook/grades", _endpoint(grades))
    app.router.add_post("/v1/payables/list", _endpoint(payables))
    app.router.add_post("/v1/attendance/absences", _endpoint(absences))
    app.router.add_get("/healthz", healthz)
    return app


def run(host: str, port: int, *, secret_env: str = "ERP_MODELO_SECRET") -> None:
    secret = os.environ.get(secret_env)
    if not secret:
        raise SystemExit(f"apihub example-provider: set {secret_env} to the secret in its manifest")
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(create_app(secret), host=host, port=port, access_log=None, print=None)
