"""The hub's answers: JSON bytes whose head is written in one piece.

aiohttp's general response path serves any body (payloads, streams,
compression, cookies): its headers go through a CIMultiDict into the
writer's serialiser, and the body is checked against its Payload ABC
several times on the way. Every answer the hub writes is bytes of a known
length, so for the plain case (HTTP/1.1, a method and a status that carry a
body, no compression, cookies or chunking, printable header fields, no
`on_response_prepare` signal handler in the app) the head is built here
as one string and left with aiohttp's writer, which sends it together with
the body in one write. That takes about 20,000 instructions off a small
call's 721,000 (benchmarks/instructions.py).
Anything else goes aiohttp's own way, unchanged.

The head says what aiohttp's would: the status line, the response's own
headers in their order, Content-Length, a Content-Type of
application/octet-stream, a Date and a Server unless set, and `Connection:
close` when the connection will not be kept
(tests/web/test_answer.py compares the two byte for byte).

On uvloop, a head and a body of 2 KiB or more leave in one vectored write
(`write_vectored`), not joined into a copy first.
"""

from __future__ import annotations

from aiohttp import http_writer, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11

JSON = "application/json"


class JsonAnswer(web.Response):
    """A web.Response of JSON bytes: JsonAnswer(body=…, content_type=…, status=…, headers=…)."""

    _plain = False  # prepared here, not by aiohttp

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if not (self._payload_writer is None and not self._eof_sent and request.version == HttpVersion11
                and type(self._body) is bytes and self._body
                and not (self._compression or self._chunked or self._cookies)
                # (type, not isinstance: Request's metaclass makes that an ABC check, at a cost)
                and not must_be_empty_body(request.method, self._status) and type(request) is web.Request):
            return await super().prepare(request)
        # No match yet (an error before routing) is possible: aiohttp's own hook allows it too.
        match_info = request._match_info
        for app in match_info.apps if match_info is not None else ():
            if app.on_response_prepare:  # a handler may change the head as it is written: aiohttp's path runs it
                return await super().prepare(request)
        headers = self._headers
        fields = [f"{name}: {value}" for name, value in headers.items()]
        # Control characters (CR, LF: header injection) take aiohttp's path, which refuses them.
        if not (" ".join(fields) + self._reason).isprintable() or "Content-Length" in headers \
                or "Transfer-Encoding" in headers:
            return await super().prepare(request)
        self._must_be_empty_body = False
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        body = self._body
        assert type(body) is bytes  # checked above
        fields.append(f"Content-Length: {len(body)}")
        if "Content-Type" not in headers:
            fields.append("Content-Type: application/octet-stream")  # aiohttp's default for a body
        if "Date" not in headers:
            fields.append(f"Date: {rfc822_formatted_time()}")
        if "Server" not in headers:
            fields.append(f"Server: {SERVER_SOFTWARE}")
        if not keep_alive and "Connection" not in headers:
            fields.append("Connection: close")
        writer = request._payload_writer
        self._req, self._payload_writer, self._plain = request, writer, True
        writer.length = len(body)
        # Left for write_eof, which sends it with the body (aiohttp 3.14's StreamWriter; pinned in pyproject.toml).
        writer._headers_buf = (  # type: ignore[attr-defined]
            f"HTTP/1.1 {self._status} {self._reason}\r\n" + "\r\n".join(fields) + "\r\n\r\n").encode("utf-8")
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        if self._plain and not self._eof_sent:
            # The body as it is (Response.write_eof would check it against the Payload ABC again).
            await web.StreamResponse.write_eof(self, self._body)  # type: ignore[arg-type]
            return
        await super().write_eof(data)


def write_vectored() -> None:
    """Let aiohttp hand a head and a body to the transport as two buffers.

    Called once the event loop is uvloop's. aiohttp's writer joins the head
    and the body into one new bytes object on Python before 3.12.9 (and on
    3.13.0-3.13.1), because asyncio's own socket transport mishandled
    `writelines` in some of those versions. uvloop's transport sends the
    buffers with one `writev` (`uv_try_write`), and asyncio's on 3.11 joins
    them itself, so neither needs the copy. On a ~200 KB answer the copy is
    a 200 KB allocation and memcpy: a uvloop server writing such answers
    spent about 9 % less CPU per answer without it (~73 against ~83 µs, the
    median of 12 paired runs), under 1 % of a hub's large call."""
    http_writer.SKIP_WRITELINES = False
