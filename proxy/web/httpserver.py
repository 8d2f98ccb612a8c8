"""The HTTP server under the app: aiohttp's, plus what a gateway needs and
aiohttp lacks (docs/contract.md, "HTTP-level rejections").

- A header-read timeout (`[server] header_timeout_ms`). aiohttp has none: a
  client trickling its request head a byte at a time (slowloris) would hold
  a connection until the keep-alive timer. Here a timer runs from the moment
  a connection opens, and on a keep-alive connection from the first byte of
  the next request's head, until the head is complete. When it fires on a
  partial head the client gets 408 `request_timeout` and the connection is
  closed; a connection that never sent a byte is just closed. The body has
  its own deadline (`[server] body_timeout_ms`, enforced in call.read_body).
- problem+json for what the HTTP parser rejects before the app sees a
  request (aiohttp answers text/plain): malformed HTTP 400 `bad_request`
  (also a request line without a version, which aiohttp reads as HTTP/0.9,
  or with a version but 1.0 and 1.1, which it answers in kind), a
  URL over `max_header_bytes` 414 and too large or too many header fields
  431 `request_too_large`, each with an X-Request-Id.
- A chunked body is counted on the wire against `[limits] max_request_bytes`:
  chunk sizes, CRLFs and chunk extensions included (aiohttp counts only the
  data, so megabytes of extensions would pass unseen). 413 when it passes.
  Counting starts with the body's first byte, also when it shares a read
  with the head.

Nothing from the rejected bytes is logged or echoed: a parser message can
quote a header line, and header lines carry bearer tokens.

- A write timeout (`[server] write_timeout_ms`): when a consumer leaves its
  answer unread (the transport pauses writing, or bytes are left in its
  buffer after the answer), a timer checks the buffer; if it did not shrink
  for that long, the connection is aborted. Each connection reports the
  answer bytes it holds to the hub's Budget (web/budget.py).

The hot path pays one integer compare per chunk read; the timer is only
armed when a head arrives in pieces, and once per connection; per answer,
two budget updates and one buffer-size read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from ..errors import (
    BadRequest,
    HubError,
    InternalError,
    PayloadTooLarge,
    RequestTimeout,
    RequestTooLarge,
    UriTooLong,
)
from ..ids import new_request_id
from ..observe.logs import get_logger
from .budget import Budget
from .middleware import bytes_out, problem_response
from .state import HUB

log = get_logger("apihub.access")
error_log = get_logger("apihub.error")

_HTTP_1 = (HttpVersion10, HttpVersion11)

# Told of every rejection made below the app: (status, code).
OnReject = Callable[[int, str], None]


def _no_op(status: int, code: str) -> None:
    pass


def rejection_for(status: int, exc: BaseException | None, line_limit: int) -> HubError:
    """The hub error for what aiohttp's protocol layer refused."""
    if isinstance(exc, LineTooLong):
        # The request line and header fields have distinct limits (see
        # HubRunner), so the limit that was hit tells which one it was.
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == line_limit or str(limit) == str(line_limit):
            return UriTooLong("the request line (URL) is longer than the limit")
        return RequestTooLarge("a request header field is longer than the limit")
    if isinstance(exc, BadHttpMessage) and "too many headers" in exc.message.lower():
        return RequestTooLarge("the request has too many header fields")
    if status == 400:
        return BadRequest("the request is not valid HTTP/1.1")
    if status == 408:
        return RequestTimeout("the request was not received in time")
    if status == 413:
        return PayloadTooLarge("body is over the size limit")
    return InternalError("the hub failed to handle this request; the incident is logged")


def raw_problem(error: HubError, request_id: str) -> bytes:
    """A complete HTTP/1.1 error response, for a connection with no request object."""
    body = orjson.dumps(error.problem(request_id))
    head = (
        f"HTTP/1.1 {error.status} {error.title}\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-Id: {request_id}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HubRequestHandler(RequestHandler):
    """aiohttp's protocol with a header-read timeout and problem+json rejections."""

    __slots__ = ("_body_limit", "_body_refused", "_body_wire", "_budget", "_head_partial", "_head_timeout_s",
                 "_head_timer", "_held", "_last_body", "_last_chunked", "_last_read", "_on_reject", "_write_seen",
                 "_write_timeout_s", "_write_timer", "_writing")

    def __init__(self, manager: web.Server, *, head_timeout_s: float, on_reject: OnReject,
                 budget: Budget | None = None, write_timeout_s: float = 30.0, body_limit: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._budget = budget
        self._held = 0  # answer bytes this connection holds, as told to the budget
        self._writing = False
        self._write_timeout_s = write_timeout_s
        self._write_timer: asyncio.TimerHandle | None = None
        self._write_seen = 0  # the buffer's size when the timer was armed
        self._body_limit = body_limit
        self._body_wire = 0  # bytes of the current chunked body read so far, framing included
        self._last_read = 0  # the size of the last read that parsed a request
        self._last_chunked = False
        self._body_refused = False
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        # Some bytes of the awaited head have arrived (408), or none (close quietly).
        self._head_partial = False
        # The body of the last request whose head was parsed: while it is not
        # complete, incoming bytes are body bytes, not a new head.
        self._last_body: StreamReader | None = None
        self._on_reject = on_reject

    # ---- header-read timeout -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # A new connection must deliver its first head in time, even if it
        # never sends a byte (then it is closed without an answer).
        self._head_timer = self._loop.call_later(self._head_timeout_s, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._body_refused:
            return  # the rest of a body refused as too large: the connection closes
        body = self._last_body
        awaiting_head = body is None or body.is_eof()
        if not awaiting_head and self._last_chunked and self._body_limit is not None and body is not None:
            self._body_wire += len(data)
            if self._body_wire > self._body_limit:
                self._refuse_body(body)
                return
        count = self._request_count
        head_started_before = self._head_partial
        super().data_received(data)
        if self._request_count != count:
            new = self._request_count - count
            last = self._messages[-1][0] if self._messages else None
            if new > 1 or getattr(last, "version", None) is not HttpVersion11 or getattr(last, "upgrade", False):
                self._screen_requests(new)
            if not awaiting_head and body is not None:
                self._fail_body(body)
            self._head_done()
            if self._last_chunked:
                self._count_first_read(data, awaiting_head and not head_started_before and new == 1)
            self._last_read = len(data)
        elif awaiting_head and data:
            self._head_partial = True
            if self._head_timer is None and not (self._close or self._force_close):
                self._head_timer = self._loop.call_later(self._head_timeout_s, self._head_timed_out)

    def close(self) -> None:
        """aiohttp's close() lets the request being handled finish, then
        closes. On an idle connection, or one accepted as a shutdown began
        (its loop not started yet), there is none: aiohttp would still wait
        for a next request, while data_received drops every byte once
        closing, so a shutdown waited its whole timeout on it. Such a
        connection is closed now."""
        super().close()
        if not self._request_in_progress and not self._messages:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        self._last_body = None
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        self._hold(0)
        super().connection_lost(exc)

    def _screen_requests(self, new: int) -> None:
        """The last `new` queued requests: one not HTTP/1.0 or 1.1 becomes a
        parse error, answered 400 in its turn (handle_error), then closed.
        After a request asking for an upgrade (the hub serves none: it answers
        it as HTTP/1.1) the connection closes: aiohttp would parse what
        follows from a tail that never passes through here."""
        messages = self._messages
        for at in range(len(messages) - new, len(messages)):
            message = messages[at][0]
            if isinstance(message, RawRequestMessage) and message.version not in _HTTP_1:
                error = BadHttpMessage(f"HTTP/{message.version.major}.{message.version.minor} is not served")
                messages[at] = (_ErrInfo(status=400, exc=error, message=error.message), EMPTY_PAYLOAD)
            elif isinstance(message, RawRequestMessage) and message.upgrade:
                self.close()

    def _count_first_read(self, data: bytes, head_starts_read: bool) -> None:
        """The chunked body's bytes in the read that completed its head.
        When that read began with the head, they follow its first empty
        line; else (a pipelined request after another's body, or a head
        begun in an earlier read, whose end may be split between the two)
        the whole read is counted, the safe side. An empty read is aiohttp
        parsing again what it held back while its queue of requests was
        full: at most the last read that parsed a request."""
        end = data.find(b"\r\n\r\n") if head_starts_read else -1
        self._body_wire = len(data) - end - 4 if end >= 0 else len(data) or self._last_read
        body = self._last_body
        if (self._body_limit is not None and self._body_wire > self._body_limit
                and body is not None):
            self._refuse_body(body)

    def _read_by_handler(self, body: StreamReader) -> bool:
        """Whether a handler reads `body`, now or once it starts. Else the
        handler has answered and aiohttp only drains the body: an exception
        set on it would surface there as an unhandled error, logged with a
        traceback for every such request."""
        return self._request_in_progress or any(payload is body for _, payload in self._messages)

    def _fail_body(self, body: StreamReader) -> None:
        """A parse error in the middle of a body (say, a bad chunk size):
        aiohttp queues a 400 for after the request and leaves the handler
        waiting for the rest of a body that will never come. Fail the body
        now instead, so the handler answers 400 at once, then close."""
        last = self._messages[-1][0] if self._messages else None
        if last is None or isinstance(last, RawRequestMessage) or body.is_eof():
            return  # the next request's head, or an error after a complete body
        if self._read_by_handler(body):
            body.set_exception(web.RequestPayloadError("the request body is malformed"))
        body.feed_eof()  # so aiohttp does not linger on it
        if self._request_in_progress:
            self._messages.pop()  # the handler's 400 answers it
            self.close()

    def _refuse_body(self, body: StreamReader) -> None:
        """A chunked body over the limit on the wire: the handler reading it
        gets 413, nothing more is parsed, and the connection closes."""
        self._body_refused = True
        if self._read_by_handler(body):
            body.set_exception(PayloadTooLarge(
                f"the chunked body is over the {self._body_limit}-byte limit (framing and chunk extensions count)"))
        body.feed_eof()  # so aiohttp does not linger on what is no longer parsed
        self.close()

    def _head_done(self) -> None:
        self._cancel_head_timer()
        self._head_partial = False
        self._last_body = self._messages[-1][1] if self._messages else None
        head = self._messages[-1][0] if self._messages else None
        self._last_chunked = isinstance(head, RawRequestMessage) and head.chunked
        self._body_wire = 0

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._force_close or self._close or self.transport is None or self._messages:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            # A request is being handled and the next (pipelined) head is
            # trickling in: finish the current one, then close.
            self.close()
            return
        if self._head_partial:
            request_id = new_request_id()
            error = RequestTimeout(
                f"the request head was not received within {round(self._head_timeout_s * 1000)} ms")
            self.transport.write(raw_problem(error, request_id))
            self._rejected(error, request_id, "HeaderTimeout")
        self.force_close()

    # ---- write timeout and the answer-bytes budget ----------------------------

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        self._hold(bytes_out(resp))
        self._writing = True
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._writing = False
            transport = self.transport
            left = transport.get_write_buffer_size() if transport is not None else 0
            self._hold(left)
            if left:
                self._watch_writes()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._watch_writes()

    def _hold(self, size: int) -> None:
        if size != self._held and self._budget is not None:
            self._budget.change(size - self._held)
        self._held = size

    def _watch_writes(self) -> None:
        transport = self.transport
        if self._write_timer is None and transport is not None:
            self._write_seen = transport.get_write_buffer_size()
            self._write_timer = self._loop.call_later(self._write_timeout_s, self._write_check)

    def _write_check(self) -> None:
        self._write_timer = None
        transport = self.transport
        if transport is None:
            return
        size = transport.get_write_buffer_size()
        if not self._writing:
            self._hold(size)
        if size == 0:
            return
        if size < self._write_seen:  # the consumer reads, slowly: keep watching
            self._watch_writes()
            return
        log.info("consumer_write_timeout", unreadBytes=size,
                 writeTimeoutMs=round(self._write_timeout_s * 1000))
        transport.abort()

    # ---- problem+json for the parser's rejections ---------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp calls this for a request it could not parse (and for
        errors escaping the app, which the hub's middleware prevents)."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        error = rejection_for(status, exc, self.max_line_size)
        request_id = new_request_id()
        if isinstance(error, InternalError):
            error_log.error("unhandled_error_below_app", requestId=request_id, exc_info=exc)
        self._rejected(error, request_id, type(exc).__name__ if exc is not None else "-")
        response = problem_response(error, request_id)
        response.force_close()
        return response

    def _rejected(self, error: HubError, request_id: str, reason: str) -> None:
        # Only the class of the parser's error: its message may quote a header.
        log.info("http_rejected", requestId=request_id, status=error.status, code=error.code,
                 reason=reason)
        self._on_reject(error.status, error.code)


class HubServer(web.Server):
    """aiohttp's low-level server, making HubRequestHandlers."""

    def __init__(self, base: web.Server, *, head_timeout_s: float, on_reject: OnReject,
                 budget: Budget | None = None, write_timeout_s: float = 30.0,
                 body_limit: int | None = None) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self._head_timeout_s = head_timeout_s
        self._on_reject = on_reject
        self._budget = budget
        self._write_timeout_s = write_timeout_s
        self._body_limit = body_limit

    def __call__(self) -> RequestHandler:
        return HubRequestHandler(self, loop=self._loop, head_timeout_s=self._head_timeout_s,
                                 on_reject=self._on_reject, budget=self._budget,
                                 write_timeout_s=self._write_timeout_s, body_limit=self._body_limit,
                                 **self._kwargs)


class HubRunner(web.AppRunner):
    """An AppRunner whose connections have a header-read timeout and answer
    HTTP-level rejections in problem+json.

    `max_header_bytes` bounds the request line and every header field; the
    request line's limit is one byte more, only so that the parser's
    LineTooLong tells a long URL (414) from a long header (431).
    """

    __slots__ = ("_head_timeout_s",)

    def __init__(self, app: web.Application, *, header_timeout_s: float, max_header_bytes: int,
                 **kwargs: Any) -> None:
        super().__init__(app, max_line_size=max_header_bytes + 1, max_field_size=max_header_bytes,
                         **kwargs)
        self._head_timeout_s = header_timeout_s

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        hub = self.app.get(HUB)
        if hub is None:
            return HubServer(base, head_timeout_s=self._head_timeout_s, on_reject=_no_op)
        metrics = hub.metrics

        def on_reject(status: int, code: str) -> None:
            metrics.observe_call("-", "", "", code, 0.0)

        return HubServer(base, head_timeout_s=self._head_timeout_s, on_reject=on_reject,
                         budget=hub.budget, write_timeout_s=hub.config.server.write_timeout_ms / 1000,
                         body_limit=hub.config.limits.max_request_bytes)
