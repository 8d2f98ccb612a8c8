"""[tracing] over real sockets: a real OTLP/HTTP receiver started here decodes
the hub's exports (opentelemetry-proto), real providers see the propagated
`traceparent`. Spans, their parent/child links, nothing secret in any
attribute, a dead collector costing no call, and tracing off changing nothing."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanPb
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusPb

from tests.conftest import Behaviour, HubFactory, LogSink, Provider
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    PROVIDER_SECRET,
    call_headers,
    consumer_manifest,
    free_port,
    provider_manifest,
)

CALL = f"/v1/services/call/{ECHO}/provider-app"
FANOUT = f"/v1/services/call/{ECHO}"
# A body value that must never reach an attribute.
BODY_VALUE = "body-value-5c1e7d"
BODY = {"data": {"value": 3, "label": BODY_VALUE}}
CONSUMER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CONSUMER_SPAN = "00f067aa0ba902b7"
SECRETS = (CONSUMER_TOKEN, PROVIDER_SECRET, BODY_VALUE)


@dataclass
class Received:
    """One decoded span: ids as hex, attributes as plain values."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    status_code: int


@dataclass
class Collector:
    """A real OTLP/HTTP traces receiver on 127.0.0.1."""

    spans: list[Received] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1/traces"))

    async def _export(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        encoding = request.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        message = ExportTraceServiceRequest()
        message.ParseFromString(raw)
        for resource_spans in message.resource_spans:
            self.resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(Received(
                        span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        _attributes(span.attributes), span.status.code,
                    ))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        return app

    async def wait(self, count: int) -> list[Received]:
        """At least `count` spans (the batch exporter sends within about a second)."""
        for _ in range(200):
            if len(self.spans) >= count:
                return self.spans
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} spans, got {[s.name for s in self.spans]}")

    def no_secrets(self) -> None:
        values = [str(v) for s in self.spans for v in s.attributes.values()]
        values += [str(v) for r in self.resources for v in r.values()]
        leaked = [secret for secret in SECRETS if any(secret in v for v in values)]
        assert not leaked, f"secrets or body values in span attributes: {leaked}"


def _attributes(pairs: Any) -> dict[str, Any]:
    found = {}
    for kv in pairs:
        kind = kv.value.WhichOneof("value")
        found[kv.key] = getattr(kv.value, kind) if kind else None
    return found


@pytest.fixture
async def collector(aiohttp_server: Any) -> Collector:
    c = Collector()
    c.server = await aiohttp_server(c.app())
    return c


def traced(collector: Collector | None = None, **extra: Any) -> dict[str, Any]:
    endpoint = collector.endpoint if collector else f"http://127.0.0.1:{free_port()}/v1/traces"
    return {"enabled": True, "endpoint": endpoint, **extra}


def traceparent(trace_id: str = CONSUMER_TRACE, span_id: str = CONSUMER_SPAN, flags: str = "01") -> str:
    return f"00-{trace_id}-{span_id}-{flags}"


def parts(header: str) -> tuple[str, str, str]:
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00"
    return trace_id, span_id, flags


def by_name(spans: list[Received], name: str) -> list[Received]:
    return [s for s in spans if s.name == name]


SERVER, CLIENT, INTERNAL = SpanPb.SPAN_KIND_SERVER, SpanPb.SPAN_KIND_CLIENT, SpanPb.SPAN_KIND_INTERNAL


@pytest.mark.parametrize("client", ["aiohttp", "lean"])
async def test_a_call_is_one_trace_across_consumer_hub_and_provider(
        make_hub: HubFactory, provider: Provider, collector: Collector, log_sink: LogSink, client: str) -> None:
    hub = await make_hub(tracing=traced(collector), upstream={"client": client})
    mark = log_sink.mark()
    resp = await hub.post(CALL, json=BODY, headers=call_headers(
        traceparent=traceparent(), tracestate="vendor=opaque"))
    assert resp.status == 200, await resp.text()

    spans = await collector.wait(4)
    (server,) = by_name(spans, "POST /v1/services/call/{action}/{provider}")
    (check_request,) = by_name(spans, "apihub.validate_request")
    (forward,) = by_name(spans, "POST")
    (check_answer,) = by_name(spans, "apihub.validate_answer")
    # The consumer's trace, the hub's server span under the consumer's span,
    # the three steps under the server span.
    assert {s.trace_id for s in spans} == {CONSUMER_TRACE}
    assert (server.kind, server.parent_id) == (SERVER, CONSUMER_SPAN)
    for child in (check_request, forward, check_answer):
        assert child.parent_id == server.span_id
    assert (forward.kind, check_request.kind) == (CLIENT, INTERNAL)

    assert server.attributes == {
        "http.request.method": "POST", "http.route": "/v1/services/call/{action}/{provider}",
        "http.response.status_code": 200, "apihub.route": "call", "apihub.action": ECHO, "apihub.version": 2,
        "apihub.provider": "provider-app", "apihub.community": "colegio-teste", "apihub.consumer": "consumer-app",
    }
    url = provider.url
    port = int(url.split(":")[2].split("/")[0])
    assert forward.attributes == {
        "http.request.method": "POST", "server.address": "127.0.0.1", "server.port": port,
        "url.full": f"http://127.0.0.1:{port}/action",
        "apihub.provider": "provider-app", "apihub.action": ECHO, "apihub.version": 2,
    }
    assert collector.resources[0]["service.name"] == "apihub"

    # The provider got the consumer's trace, with the hub's client span as parent.
    headers = provider.received[-1][0]
    trace_id, parent_id, flags = parts(headers["traceparent"])
    assert (trace_id, parent_id, flags) == (CONSUMER_TRACE, forward.span_id, "01")
    assert headers["tracestate"] == "vendor=opaque"
    # The consumer gets its trace back, the hub's server span as the parent.
    assert parts(resp.headers["traceparent"]) == (CONSUMER_TRACE, server.span_id, "01")
    (line,) = [r for r in log_sink.since(mark) if r.get("event") == "access"]
    assert line["traceId"] == CONSUMER_TRACE
    collector.no_secrets()


async def test_a_fanout_has_one_provider_call_per_provider(
        make_hub: HubFactory, start_provider: Callable[[Behaviour], Awaitable[Provider]],
        collector: Collector) -> None:
    providers = {"p-one": await start_provider(_echo), "p-two": await start_provider(_echo)}
    hub = await make_hub(
        tracing=traced(collector),
        apps=[*(provider_manifest(pid, p.url) for pid, p in providers.items()), consumer_manifest()],
    )
    resp = await hub.post(FANOUT, json=BODY, headers=call_headers())
    assert resp.status == 200
    assert [r["status"] for r in (await resp.json())["results"]] == ["ok", "ok"]

    spans = await collector.wait(7)
    (server,) = by_name(spans, "POST /v1/services/call/{action}")
    assert server.parent_id == ""  # no consumer trace: the hub started one
    assert server.attributes["apihub.route"] == "fanout"
    forwards = by_name(spans, "POST")
    assert sorted(s.attributes["apihub.provider"] for s in forwards) == ["p-one", "p-two"]
    assert len(by_name(spans, "apihub.validate_request")) == len(by_name(spans, "apihub.validate_answer")) == 2
    for span in spans:
        assert span.trace_id == server.trace_id
        if span is not server:
            assert span.parent_id == server.span_id
    for forward in forwards:
        seen = providers[forward.attributes["apihub.provider"]].received[-1][0]["traceparent"]
        assert parts(seen)[:2] == (server.trace_id, forward.span_id)
    collector.no_secrets()


async def _echo(request: web.Request, raw: bytes) -> web.StreamResponse:
    return web.json_response({"data": {"echo": orjson.loads(raw)["data"]}})


async def test_a_failed_call_says_which_error_and_where(
        make_hub: HubFactory, provider: Provider, collector: Collector) -> None:
    async def failing(request: web.Request, raw: bytes) -> web.StreamResponse:
        return web.Response(status=500, text=f"boom {PROVIDER_SECRET}")

    provider.behaviour = failing
    hub = await make_hub(tracing=traced(collector))
    resp = await hub.post(CALL, json=BODY, headers=call_headers())
    assert resp.status == 502

    spans = await collector.wait(3)
    (server,) = by_name(spans, "POST /v1/services/call/{action}/{provider}")
    (forward,) = by_name(spans, "POST")
    assert server.attributes["http.response.status_code"] == 502
    assert server.attributes["error.type"] == "provider_error"
    assert server.status_code == StatusPb.STATUS_CODE_ERROR
    assert forward.attributes["error.type"] == "provider_error"
    assert forward.attributes["http.response.status_code"] == 500
    assert not by_name(spans, "apihub.validate_answer")
    collector.no_secrets()


@pytest.mark.parametrize("bad", [
    "not-a-traceparent",
    f"00-{'0' * 32}-{CONSUMER_SPAN}-01",  # all-zero trace id
    f"00-{CONSUMER_TRACE}-{'0' * 16}-01",  # all-zero span id
    f"ff-{CONSUMER_TRACE}-{CONSUMER_SPAN}-01",  # forbidden version
    f"00-{CONSUMER_TRACE.upper()}-{CONSUMER_SPAN}-01",
    f"00-{CONSUMER_TRACE}-{CONSUMER_SPAN}-01\r\nX-Injected: 1",
])
async def test_a_malformed_traceparent_starts_a_new_trace(
        make_hub: HubFactory, provider: Provider, collector: Collector, bad: str) -> None:
    hub = await make_hub(tracing=traced(collector))
    headers = call_headers()
    headers["traceparent"] = bad
    try:
        resp = await hub.post(CALL, json=BODY, headers=headers)
    except ValueError:  # the client itself refuses a header with CR/LF: nothing to test there
        return
    assert resp.status == 200
    spans = await collector.wait(4)
    (server,) = by_name(spans, "POST /v1/services/call/{action}/{provider}")
    assert server.parent_id == ""
    assert server.trace_id != CONSUMER_TRACE
    seen = provider.received[-1][0]
    assert parts(seen["traceparent"])[0] == server.trace_id
    assert "X-Injected" not in seen


async def test_sampling_follows_the_consumer_else_the_ratio(
        make_hub: HubFactory, provider: Provider, collector: Collector, log_sink: LogSink) -> None:
    hub = await make_hub(tracing=traced(collector, sample_ratio=0.0))
    # Not sampled: nothing exported, but the trace context still flows both ways.
    mark = log_sink.mark()
    resp = await hub.post(CALL, json=BODY, headers=call_headers())
    assert resp.status == 200
    trace_id, _, flags = parts(resp.headers["traceparent"])
    assert not int(flags, 16) & 1  # the sampled bit
    assert parts(provider.received[-1][0]["traceparent"])[::2] == (trace_id, flags)
    (line,) = [r for r in log_sink.since(mark) if r.get("event") == "access"]
    assert line["traceId"] == trace_id
    # A consumer's sampled trace is recorded whatever the ratio (parent-based).
    resp = await hub.post(CALL, json=BODY, headers=call_headers(traceparent=traceparent()))
    assert resp.status == 200
    spans = await collector.wait(4)
    assert {s.trace_id for s in spans} == {CONSUMER_TRACE}
    assert trace_id not in {s.trace_id for s in collector.spans}


async def test_shutdown_flushes_the_queued_spans(
        make_hub: HubFactory, provider: Provider, collector: Collector) -> None:
    hub = await make_hub(tracing=traced(collector))
    resp = await hub.post(CALL, json=BODY, headers=call_headers())
    assert resp.status == 200
    probe = await hub.get("/healthz")
    assert "traceparent" not in probe.headers  # probes and scrapes are not traced
    await hub.close()  # the cleanup context exports what is queued before it returns
    assert sorted(s.name for s in collector.spans) == [
        "POST", "POST /v1/services/call/{action}/{provider}", "apihub.validate_answer", "apihub.validate_request"]


async def test_a_dead_collector_costs_no_call(make_hub: HubFactory, provider: Provider) -> None:
    # Nothing listens on the endpoint's port: every export fails, on the exporter's thread.
    hub = await make_hub(tracing=traced(None))
    for _ in range(30):
        resp = await hub.post(CALL, json=BODY, headers=call_headers())
        assert resp.status == 200
        assert "traceparent" in resp.headers
    await asyncio.sleep(0.6)  # let one export try and fail between calls
    resp = await hub.post(CALL, json=BODY, headers=call_headers())
    assert resp.status == 200
    await hub.close()  # the shutdown's flush gives up within the grace period


async def test_tracing_off_exports_nothing_and_changes_no_header(
        make_hub: HubFactory, provider: Provider, collector: Collector, log_sink: LogSink) -> None:
    hub: TestClient = await make_hub(tracing={"enabled": False, "endpoint": collector.endpoint})
    mark = log_sink.mark()
    resp = await hub.post(CALL, json=BODY, headers=call_headers(traceparent=traceparent()))
    assert resp.status == 200
    assert "traceparent" not in resp.headers
    assert "traceparent" not in provider.received[-1][0]
    (line,) = [r for r in log_sink.since(mark) if r.get("event") == "access"]
    assert line["traceId"] is None
    await hub.close()
    await asyncio.sleep(0.6)  # longer than the export delay: a span would be there by now
    assert collector.spans == []


async def test_repeated_trace_headers_are_read_as_one_list(
        make_hub: HubFactory, provider: Provider, collector: Collector) -> None:
    """RFC 9110 joins a repeated header's values: two traceparents are no valid
    traceparent (a new trace starts), two tracestates are one list."""
    hub = await make_hub(tracing=traced(collector))
    other = f"00-{'1' * 32}-{'2' * 16}-01"
    two = [*call_headers().items(), ("traceparent", f"00-{CONSUMER_TRACE}-{CONSUMER_SPAN}-01"),
           ("traceparent", other)]
    assert (await hub.post(CALL, json=BODY, headers=two)).status == 200
    spans = await collector.wait(4)
    (server,) = by_name(spans, "POST /v1/services/call/{action}/{provider}")
    assert server.parent_id == "" and server.trace_id not in (CONSUMER_TRACE, "1" * 32)

    states = [*call_headers().items(), ("traceparent", f"00-{CONSUMER_TRACE}-{CONSUMER_SPAN}-01"),
              ("tracestate", "a=1"), ("tracestate", "b=2")]
    assert (await hub.post(CALL, json=BODY, headers=states)).status == 200
    assert provider.received[-1][0]["tracestate"] == "a=1,b=2"


def test_the_exporters_own_warnings_never_show_the_endpoints_credentials(log_sink: LogSink) -> None:
    """The OTLP exporter quotes the URL it failed to reach, query string included."""
    import logging

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from proxy.config import TracingConfig
    from proxy.observe.tracing import Tracing

    tracing = Tracing(TracingConfig(enabled=True,
                                    endpoint="http://user:PWSECRET1@127.0.0.1:9/v1/traces?api_key=QSECRET2"))
    mark = log_sink.mark()
    logging.getLogger(OTLPSpanExporter.__module__).warning(
        "Transient error %s encountered while exporting spans batch",
        "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
        "/v1/traces?api_key=QSECRET2 (user PWSECRET1)")
    text = str(log_sink.since(mark))
    assert "Max retries exceeded" in text
    assert "QSECRET2" not in text and "PWSECRET1" not in text
    tracing.shutdown(1.0)
