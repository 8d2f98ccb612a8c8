"""The one boundary where errors become problem+json, every response gets
its X-Request-Id, and each call leaves one access line and its metrics.

Handlers raise HubErrors and never build error responses themselves.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import HttpVersion11, web
from aiohttp.typedefs import Handler

from ..errors import (
    BadRequest,
    HubError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
)
from ..ids import new_request_id
from ..observe.access import AccessLog
from ..observe.logs import get_logger
from ..observe.metrics import Metrics
from ..observe.tracing import Tracing
from ..types import CallRecord
from .answer import JsonAnswer
from .state import InFlight

error_log = get_logger("apihub.error")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Polled by load balancers and scrapers: their access lines are debug only.
_QUIET_ROUTES = frozenset({"healthz", "metrics"})


PROBLEM_JSON = "application/problem+json"

RECORD = web.RequestKey("record", CallRecord)


def check_transfer_coding(request: web.BaseRequest) -> None:
    """aiohttp reads `Transfer-Encoding: gzip, chunked` as plain chunked, so
    the hub would validate bytes other than the ones meant: only `chunked`
    alone is accepted (docs/contract.md §4, `bad_request`)."""
    headers = request.headers
    if "Transfer-Encoding" not in headers:  # nearly every call: no list made
        return
    given = headers.getall("Transfer-Encoding")
    if [c.strip().lower() for v in given for c in v.split(",") if c.strip()] != ["chunked"]:
        raise BadRequest("Transfer-Encoding other than chunked is not accepted")


def correlation_id_of(request: web.BaseRequest) -> str | None:
    """The consumer's X-Request-Id when valid: carried along, never the hub's id."""
    incoming = request.headers.get("X-Request-Id")
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return None


async def expect_handler(request: web.Request) -> None:
    """aiohttp runs this before the middleware, so nothing is answered here:
    `100 Continue` waits until a handler wants the body (send_continue),
    after authentication and the size check, so the hub never invites the
    upload of a body it refuses. Any other expectation is ignored (RFC 9110
    §10.1.1 allows that instead of a 417): the request still gets the hub's
    own answer, problem+json and X-Request-Id included, rather than aiohttp's
    text/plain 417."""


async def send_continue(request: web.BaseRequest, limit: int) -> None:
    """`100 Continue` to a consumer that asked for it and has not sent its
    body: the hub is about to read it. A body declared over `limit` is
    refused first (413), never invited."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    if (request.version == HttpVersion11 and request.writer.output_size == 0
            and request.headers.get("Expect", "").lower() == "100-continue"):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's own head is still to come


Route = tuple[str, str, Handler, str]  # method, path, handler, name


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Every hub route, with the hub's Expect handling (GET routes answer HEAD too)."""
    for method, path, handler, name in routes:
        app.router.add_route(method, path, handler, name=name, expect_handler=expect_handler)
        if method == "GET":
            app.router.add_route("HEAD", path, handler, expect_handler=expect_handler)


def problem_response(error: HubError, request_id: str) -> web.Response:
    """The one place a HubError becomes an HTTP answer."""
    headers = {"X-Request-Id": request_id, **error.headers}
    return JsonAnswer(body=orjson.dumps(error.problem(request_id)), status=error.status,
                      content_type=PROBLEM_JSON, headers=headers)


def _from_http_exception(exc: web.HTTPException) -> HubError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such endpoint")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        return MethodNotAllowed(f"method {exc.method} is not allowed here", extra={"allow": allowed},
                                headers={"Allow": ", ".join(allowed)})
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("body is over the size limit")
    if isinstance(exc, web.HTTPRequestTimeout):
        return RequestTimeout("request not received in time")
    if 400 <= exc.status < 500:
        return BadRequest(exc.reason or "bad request")
    return InternalError(exc.reason or "error")


def _route_template(request: web.Request) -> str | None:
    """[tracing] `http.route`: the matched path template, never the path itself."""
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


def _hundredths(value: float) -> float:
    """A non-negative `value` to two decimals, halves up: what round(value, 2)
    gives but for exact ties, at a third of its cost (round converts to an
    exact decimal first), twice on every access line."""
    return int(value * 100 + 0.5) / 100


def bytes_out(response: web.StreamResponse) -> int:
    """The answer body's size: read off the bytes when they are at hand, as
    they are for every hub answer (aiohttp's content_length checks the body
    against its Payload ABC first, at twice the cost)."""
    body = getattr(response, "body", None)
    return len(body) if type(body) is bytes else (response.content_length or 0)


def make_middleware(metrics: Metrics, access: AccessLog, calls: InFlight | None = None,
                    tracing: Tracing | None = None) -> Any:
    """`calls`: where the tasks of calls in flight are kept for a shutdown to cut.
    `tracing`: [tracing] on (observe/tracing.py); None makes no tracer call at all."""

    @web.middleware
    async def hub_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        record = CallRecord(new_request_id(), correlation_id_of(request))
        resource = request.match_info.route.name
        if resource:
            record.route = resource
        request[RECORD] = record
        # [tracing] the call's server span, current while the handler runs (probes and scrapes untraced)
        call_span = None if tracing is None or record.route in _QUIET_ROUTES else tracing.start_call(
            request.method, _route_template(request), request.headers, record)
        metrics.in_flight += 1
        # The call's own task (aiohttp runs each request in one); request.task is the connection's.
        task = asyncio.current_task() if calls is not None else None
        if task is not None and calls is not None:
            calls.tasks.add(task)
        try:
            check_transfer_coding(request)
            response = await handler(request)
            code = "ok"
        except asyncio.CancelledError:
            if task is None or calls is None or not calls.cutting:
                if call_span is not None:  # the span still ends (no answer to carry traceparent)
                    call_span.finish(record, 499, "cancelled", None)
                raise  # aiohttp's own cancellations, or a task being torn down
            task.uncancel()  # answered here: the task goes on to send it
            error: HubError = ShuttingDown("the hub is shutting down and this call did not finish within "
                                           "the shutdown grace period")
            response, code = problem_response(error, record.request_id), error.code
            response.force_close()  # the hub is going: no next request on this connection
        except HubError as exc:
            response, code = problem_response(exc, record.request_id), exc.code
            if isinstance(exc, BadRequest) and request.body_exists:
                response.force_close()  # what is left of the body is not a next request
        except web.HTTPException as exc:
            error = _from_http_exception(exc)
            response, code = problem_response(error, record.request_id), error.code
        except Exception:
            error_log.exception("unhandled_error", requestId=record.request_id, route=record.route)
            error = InternalError("the hub failed to handle this request; the incident is logged")
            response, code = problem_response(error, record.request_id), error.code
        except BaseException:  # KeyboardInterrupt, SystemExit: the span still ends
            if call_span is not None:
                call_span.finish(record, 499, "cancelled", None)
            raise
        finally:
            metrics.in_flight -= 1
            if task is not None and calls is not None:
                calls.tasks.discard(task)
        # The consumer's own id comes back when it sent a valid one; the hub's
        # id is always in the problem body and the access line.
        response.headers["X-Request-Id"] = record.correlation_id or record.request_id
        if call_span is not None:  # [tracing]
            call_span.finish(record, response.status, code, response.headers)
        elapsed = time.perf_counter() - started
        metrics.observe_call(record.route, record.action, record.provider, code, elapsed)
        access.line(record.route in _QUIET_ROUTES, {
            "event": "access",
            "requestId": record.request_id,
            "correlationId": record.correlation_id,
            "method": request.method,
            "route": record.route,
            "action": record.action or None,
            "version": record.version,
            "provider": record.provider or None,
            "community": record.community or None,
            "requester": record.requester or None,
            "status": response.status,
            "code": code,
            "ms": _hundredths(elapsed * 1000),
            "upstreamMs": None if record.upstream_ms is None else _hundredths(record.upstream_ms),
            "bytesIn": record.bytes_in,
            "bytesOut": bytes_out(response),
            "traceId": record.trace_id or None,
        })
        return response

    return hub_middleware
