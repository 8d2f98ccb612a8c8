"""JsonAnswer writes what aiohttp's own Response writes, byte for byte but
the Date, over real sockets: for every method, HTTP version, connection
choice, status and header set tried, including those it leaves to aiohttp
(HTTP/1.0, HEAD, statuses without a body, a signal handler, header fields
with control characters)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from proxy.web.answer import JsonAnswer

BODIES = {"small": b'{"data":{"ok":true}}', "large": b'{"data":"' + b"x" * 200_000 + b'"}'}
CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "problem": {"status": 400, "content_type": "application/problem+json"},
    "retry": {"status": 503, "headers": {"Retry-After": "1", "X-Request-Id": "abc"}},
    "ratelimit": {"headers": {"RateLimit": '"default";r=9;t=1', "RateLimit-Policy": '"default";q=10;w=1'}},
    "no-content": {"status": 204},
    "not-modified": {"status": 304},
    "closing": {"close": True},
    "injected": {"headers": {"X-Bad": "a\r\nSet-Cookie: x=1"}},
    "tab": {"headers": {"X-Tab": "a\tb"}},
    "unicode": {"headers": {"X-Name": "café"}},
    "untyped": {"content_type": None},
}


def _answer(kind: str, size: str, cls: Callable[..., web.Response]) -> web.Response:
    case = CASES[kind]
    response = cls(body=BODIES[size], status=case.get("status", 200),
                   content_type=case.get("content_type", "application/json") if "content_type" in case
                   else "application/json", headers=case.get("headers"))
    if case.get("close"):
        response.force_close()
    response.headers["X-After"] = "set by a middleware"
    return response


async def _serve(app: web.Application) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


ANSWERED: list[web.Response] = []  # what the handlers returned, last one last


def _app(with_signal: bool = False) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        cls = JsonAnswer if request.match_info["which"] == "lean" else web.Response
        ANSWERED.append(_answer(request.match_info["kind"], request.match_info["size"], cls))
        return ANSWERED[-1]

    app = web.Application()
    app.router.add_get("/{which}/{kind}/{size}", handle)  # and HEAD
    for method in ("POST", "PUT"):
        app.router.add_route(method, "/{which}/{kind}/{size}", handle)
    if with_signal:
        async def stamp(request: web.Request, response: web.StreamResponse) -> None:
            response.headers["X-Signal"] = "seen"

        app.on_response_prepare.append(stamp)
    return app


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async for p in _serve(_app()):
        yield p


async def _exchange(port: int, head: str) -> tuple[bytes, bool]:
    """The raw answer, and whether the server closed the connection after it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        raw = b""
        closed = False
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2 if raw else 5)
            except TimeoutError:
                break
            if not chunk:
                closed = True
                break
            raw += chunk
        return raw, closed
    finally:
        writer.close()


def _normal(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]+", b"\r\nDate: -", raw)


REQUESTS = {
    "post-1.1": "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}",
    "get-1.1": "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n",
    "put-1.1-close": "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "head-1.1": "HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n",
    "post-1.0": "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}",
    "get-1.0-keep": "GET {path} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
}


@pytest.mark.parametrize("request_kind", sorted(REQUESTS))
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_the_same_bytes_as_aiohttp_s_response(port: int, request_kind: str, kind: str) -> None:
    for size in ("small", "large") if kind == "plain" else ("small",):
        (lean, lean_closed), (stock, stock_closed) = await asyncio.gather(
            _exchange(port, REQUESTS[request_kind].format(path=f"/lean/{kind}/{size}")),
            _exchange(port, REQUESTS[request_kind].format(path=f"/stock/{kind}/{size}")))
        assert lean or kind == "injected", "no answer at all"  # aiohttp refuses to write that head: nor do we
        assert _normal(lean) == _normal(stock), (lean[:400], stock[:400])
        assert lean_closed == stock_closed


@pytest.mark.parametrize(("request_kind", "kind", "lean"), [
    ("post-1.1", "plain", True), ("get-1.1", "problem", True), ("put-1.1-close", "closing", True),
    ("post-1.1", "unicode", True), ("post-1.1", "untyped", True), ("head-1.1", "plain", False), ("post-1.0", "plain", False),
    ("post-1.1", "no-content", False), ("post-1.1", "tab", False), ("post-1.1", "injected", False),
])
async def test_which_answers_take_the_lean_path(port: int, request_kind: str, kind: str, lean: bool) -> None:
    """The comparison above is only worth something if the plain cases do
    take the lean path, and the others aiohttp's."""
    await _exchange(port, REQUESTS[request_kind].format(path=f"/lean/{kind}/small"))
    assert ANSWERED[-1]._plain is lean  # type: ignore[attr-defined]


async def test_a_plain_answer_s_head() -> None:
    async for port in _serve(_app()):
        raw, closed = await _exchange(port, REQUESTS["post-1.1"].format(path="/lean/plain/small"))
        assert ANSWERED[-1]._plain  # type: ignore[attr-defined]
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == BODIES["small"]
        assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", head)
        assert b"\r\nContent-Length: %d" % len(BODIES["small"]) in head and not closed


async def test_a_signal_handler_still_sees_and_changes_the_answer() -> None:
    async for port in _serve(_app(with_signal=True)):
        lean, _ = await _exchange(port, REQUESTS["post-1.1"].format(path="/lean/plain/small"))
        stock, _ = await _exchange(port, REQUESTS["post-1.1"].format(path="/stock/plain/small"))
        assert b"\r\nX-Signal: seen\r\n" in lean
        assert _normal(lean) == _normal(stock)


async def test_keep_alive_serves_the_next_request_on_the_same_connection(port: int) -> None:
    one = REQUESTS["post-1.1"].format(path="/lean/plain/small")
    raw, closed = await _exchange(port, one + one)
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2 and not closed


async def test_an_answer_before_any_route_matched() -> None:
    """An error answered before routing (HubRequestHandler.handle_error)
    has no match info: the answer is still written, as aiohttp would."""
    @web.middleware
    async def unrouted(request: web.Request, handler: Any) -> web.StreamResponse:
        which = request.path.split("/")[1]
        request._match_info = None  # as before routing (and not the copy aiohttp caches on first reading)
        request._cache.pop("match_info", None)
        cls = JsonAnswer if which == "lean" else web.Response
        ANSWERED.append(cls(body=BODIES["small"], status=500, content_type="application/problem+json"))
        return ANSWERED[-1]

    app = _app()
    app.middlewares.append(unrouted)
    async for port in _serve(app):
        (lean, _), (stock, _) = await asyncio.gather(
            _exchange(port, REQUESTS["post-1.1"].format(path="/lean/plain/small")),
            _exchange(port, REQUESTS["post-1.1"].format(path="/stock/plain/small")))
        assert lean.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert _normal(lean) == _normal(stock)


def test_large_answers_written_vectored_on_uvloop_arrive_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """write_vectored (what `apihub serve` turns on with uvloop): the head
    and a large body go to uvloop's transport as two buffers. Pipelined
    large answers, ours and aiohttp's, still arrive whole, in order, and the
    same bytes as before it."""
    uvloop = pytest.importorskip("uvloop")
    from aiohttp import http_writer

    from proxy.web.answer import write_vectored

    requests = "".join(REQUESTS["post-1.1"].format(path=f"/{which}/plain/{size}")
                       for which in ("lean", "stock") for size in ("large", "small", "large"))
    requests += REQUESTS["put-1.1-close"].format(path="/lean/plain/large")

    async def exchange() -> bytes:
        async for port in _serve(_app()):
            raw, closed = await _exchange(port, requests)
            assert closed
            return raw
        raise AssertionError("no server")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        joined = runner.run(exchange())
        monkeypatch.setattr(http_writer, "SKIP_WRITELINES", http_writer.SKIP_WRITELINES)  # put back afterwards
        write_vectored()
        vectored = runner.run(exchange())
    assert not http_writer.SKIP_WRITELINES
    assert _normal(vectored) == _normal(joined)
    answers = _normal(vectored).split(b"HTTP/1.1 200 OK\r\n")[1:]
    sizes = ["large", "small", "large"] * 2 + ["large"]
    assert [answer.partition(b"\r\n\r\n")[2] for answer in answers] == [BODIES[size] for size in sizes]
