"""The access line's figures over real sockets: bytes in and out are the
bodies' own sizes, whatever answered (a relayed answer, a problem, a
page), durations are non-negative with two decimals, and the
timestamp is the call's."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import orjson

from tests.conftest import LogSink, Provider
from tests.support import ECHO, call_headers

CALL = f"/v1/services/call/{ECHO}/provider-app"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def lines(log_sink: LogSink, mark: int) -> list[dict[str, Any]]:
    return [rec for rec in log_sink.since(mark) if rec.get("event") == "access"]


async def test_a_relayed_call_s_line(hub: Any, provider: Provider, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    body = orjson.dumps({"data": {"value": 3, "label": "x" * 40}})
    before = time.time()
    r = await hub.post(CALL, data=body, headers=call_headers())
    answer = await r.read()
    after = time.time()
    assert r.status == 200
    [line] = lines(log_sink, mark)
    assert line["bytesIn"] == len(body) and line["bytesOut"] == len(answer) > 0
    assert STAMP.fullmatch(line["timestamp"])
    stamped = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
    assert before - 0.001 <= stamped <= after + 0.001
    assert line["ms"] >= line["upstreamMs"] >= 0
    assert round(line["ms"], 2) == line["ms"] and round(line["upstreamMs"], 2) == line["upstreamMs"]


async def test_a_problem_s_line_counts_the_problem_body(hub: Any, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    r = await hub.post(CALL, data=b"{not json", headers=call_headers())
    answer = await r.read()
    assert r.status == 400
    [line] = lines(log_sink, mark)
    assert line["code"] == "invalid_json" and line["bytesOut"] == len(answer) > 0


async def test_a_page_s_line_counts_what_was_sent(hub: Any, log_sink: LogSink) -> None:
    mark = log_sink.mark()
    r = await hub.get("/docs")
    answer = await r.read()
    assert r.status == 200
    [line] = lines(log_sink, mark)
    assert line["route"] != "-" and line["bytesOut"] == len(answer) > 0
