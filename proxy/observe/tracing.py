"""[tracing]: W3C Trace Context through the hub, spans exported over OTLP/HTTP.

One `Tracing` per app, made only when `[tracing] enabled = true`; when off,
the middleware and the relay hold None and make no tracer call at all.

Spans of one call (attribute names follow the OpenTelemetry HTTP semantic
conventions where there is one; never a token, secret or body value):

- server span `POST /v1/services/call/{action}/{provider}`: the call, a child
  of the consumer's `traceparent` when it sent a valid one (a malformed one is
  ignored: a new trace starts);
- per provider: `apihub.validate_request`, the client span `POST` (its
  `traceparent` goes to the provider), `apihub.validate_answer`.

The exporter runs on the batch processor's own thread with a bounded queue
and a short timeout: a collector that is down or slow loses spans, never
delays or fails a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..config import TracingConfig
from ..errors import HubError
from ..types import CallRecord, CallSite

# Each export (retries included) gives up after this long: the exporter's
# thread, not a call, waits, and the queue below bounds what piles up meanwhile.
EXPORT_TIMEOUT_S = 1.0
MAX_QUEUE_SPANS = 2048
MAX_BATCH_SPANS = 512
EXPORT_DELAY_MS = 500


@dataclass(frozen=True, slots=True)
class CallSpan:
    """A call's server span, current (attached) while the handler runs."""

    span: Span
    token: object
    propagator: TraceContextTextMapPropagator

    def finish(self, record: CallRecord, status: int, code: str,
               response_headers: MutableMapping[str, str] | None) -> None:
        """Record the outcome, hand `traceparent` back (`response_headers`),
        end the span. None: the call never answered (cancelled)."""
        span = self.span
        otel_context.detach(self.token)  # type: ignore[arg-type]
        if span.is_recording():
            span.set_attributes(_record_attributes(record))
            span.set_attribute("http.response.status_code", status)
            if code != "ok":
                span.set_attribute("error.type", code)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR, code))
        if response_headers is not None:
            self.propagator.inject(response_headers, context=trace.set_span_in_context(span))
        span.end()


class Tracing:
    """The SDK set-up: tracer, sampler, batch exporter and W3C propagator."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            shutdown_on_exit=False,  # the app's cleanup context shuts it down (web/app.py)
        )
        if exporter is None:
            exporter = OTLPSpanExporter(endpoint=config.endpoint, timeout=EXPORT_TIMEOUT_S)
            hide_endpoint(config.endpoint)
        self._processor = BatchSpanProcessor(
            exporter, max_queue_size=MAX_QUEUE_SPANS, max_export_batch_size=MAX_BATCH_SPANS,
            schedule_delay_millis=EXPORT_DELAY_MS,
        )
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("apihub")
        self._propagator = TraceContextTextMapPropagator()

    def start_call(self, method: str, route: str | None, headers: Mapping[str, str],
                   record: CallRecord) -> CallSpan:
        """The server span of a call, made current until its `finish`."""
        parent = self._propagator.extract(headers, getter=_EVERY_VALUE)
        attributes: dict[str, Any] = {"http.request.method": method}
        if route is not None:
            attributes["http.route"] = route
        span = self._tracer.start_span(
            f"{method} {route}" if route else method, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        record.trace_id = format(span.get_span_context().trace_id, "032x")
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return CallSpan(span, token, self._propagator)

    @contextmanager
    def step(self, name: str, site: CallSite) -> Iterator[None]:
        """A hub-internal child span (request or answer validation)."""
        with self._tracer.start_as_current_span(
            name, attributes=_site_attributes(site), record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                _failed(span, exc)
                raise

    @contextmanager
    def provider_call(self, url: str, site: CallSite) -> Iterator[tuple[tuple[str, str], ...]]:
        """The client span of one forwarded call; yields the trace headers the
        provider gets (this span as their parent)."""
        attributes = {**_url_attributes(url), **_site_attributes(site)}
        with self._tracer.start_as_current_span(
            "POST", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            try:
                yield tuple(carrier.items())
            except BaseException as exc:
                _failed(span, exc)
                raise

    def shutdown(self, timeout_s: float) -> None:
        """Export what is queued, waiting at most `timeout_s` (blocking: run it
        in a thread). The SDK's own shutdown takes no deadline, so it runs on a
        daemon thread that is left behind, never waited for, past `timeout_s`."""
        worker = threading.Thread(target=self._provider.shutdown, name="apihub-tracing-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)


def open_tracing(config: TracingConfig) -> Tracing | None:
    """None when tracing is off: callers test that once and skip every tracer call."""
    return Tracing(config) if config.enabled else None


def _failed(span: Span, exc: BaseException) -> None:
    # The code only: an exception's message or traceback could quote a value.
    code = exc.code if isinstance(exc, HubError) else type(exc).__name__
    span.set_attribute("error.type", code)
    status = getattr(exc, "provider_status", None)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
    span.set_status(Status(StatusCode.ERROR, code))


def _site_attributes(site: CallSite) -> dict[str, Any]:
    return {"apihub.provider": site.provider, "apihub.action": site.action, "apihub.version": site.version}


def _record_attributes(record: CallRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {"apihub.route": record.route}
    for key, value in (("apihub.action", record.action), ("apihub.version", record.version),
                       ("apihub.provider", record.provider), ("apihub.community", record.community),
                       ("apihub.consumer", record.requester)):
        if value:
            attributes[key] = value
    return attributes


@lru_cache(maxsize=4096)
def _url_attributes(url: str) -> dict[str, Any]:
    """HTTP client attributes of a provider URL: no query, fragment or user info
    (any of them could carry a credential)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return {"http.request.method": "POST"}
    port = port or (443 if parts.scheme == "https" else 80)
    netloc = f"[{host}]" if ":" in host else host
    return {
        "http.request.method": "POST",
        "server.address": host,
        "server.port": port,
        "url.full": f"{parts.scheme}://{netloc}:{port}{parts.path or '/'}",
    }


class _EveryValue(Getter[Mapping[str, str]]):
    """A repeated header's values joined with commas (RFC 9110 §5.3), as W3C
    Trace Context reads them: two `traceparent`s make an invalid one (a new
    trace starts), two `tracestate`s one list. The default getter took the first."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        getall = getattr(carrier, "getall", None)
        values = getall(key, None) if getall is not None else None
        if values:
            return [",".join(values)]
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_EVERY_VALUE = _EveryValue()


class _EndpointHidden(logging.Filter):
    """The OTLP exporter's own warnings quote the URL it failed to reach, query
    string included ("Max retries exceeded with url: /v1/traces?api_key=...");
    the endpoint may carry credentials there or as user-info, and is never shown."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        parts = urlsplit(endpoint)
        self._hidden = [part for part in (parts.query, parts.password, parts.username) if part]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._hidden:
            text = record.getMessage()
            for part in self._hidden:
                text = text.replace(part, "***")
            record.msg, record.args = text, ()
        return True


def hide_endpoint(endpoint: str) -> None:
    """One filter on the exporter's logger, for the endpoint configured last."""
    logger = logging.getLogger(OTLPSpanExporter.__module__)
    for old in [f for f in logger.filters if isinstance(f, _EndpointHidden)]:
        logger.removeFilter(old)
    logger.addFilter(_EndpointHidden(endpoint))
