"""One provider, end to end: validate the forwarded body, send it through
the provider's breaker and bulkhead, validate the answer. Used alike by a
single call and by each leg of a fan-out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalogue import Action, ActionVersion
from ..errors import (
    HubError,
    InternalError,
    InvalidProviderResponse,
    InvalidRequest,
    ProviderFailure,
    ProviderOverloaded,
    ProviderTimeout,
)
from ..jsonsafe import UnsafeJson, dumps, loads
from ..observe.tracing import Tracing
from ..registry import App, Provision
from ..types import Answer, CallObserver, CallRecord, CallSite
from ..upstream import Guards, ProviderClient
from .limits import RateLimits
from .steps import context_for, forwarded_body


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
class Target:
    action: Action
    version: ActionVersion
    provider: App
    provision: Provision
    site: CallSite = field(init=False)

    def __post_init__(self) -> None:
        self.site = CallSite(self.provider.id, self.action.name, self.version.version)


@dataclass(frozen=True, slots=True)
class Relay:
    """What a provider call needs besides its target: made once per app, when
    the provider client exists (web/app.py)."""

    client: ProviderClient
    guards: Guards
    observer: CallObserver
    timeout_ms: int  # [upstream] timeout_ms; a provision's timeoutMs overrides it
    max_json_depth: int  # [limits] max_json_depth, for bodies and answers alike
    limits: RateLimits | None = None  # None: no call is ever limited
    tracing: Tracing | None = None  # [tracing] on; None: no tracer call at all


async def call_provider(
    relay: Relay,
    target: Target,
    body: dict[str, Any],
    *,
    community: str,
    consumer: App,
    request_id: str,
    deadline_s: float,
    correlation_id: str | None = None,
    record: CallRecord | None = None,
) -> bytes:
    """Validate, forward, validate the answer: the provider's bytes (b"" for
    an empty answer where the catalogue does not describe it) or a HubError."""
    action, version, provider = target.action, target.version, target.provider
    if provider.secret is None:  # parse_manifest requires one of every provider
        raise InternalError(f"provider {provider.id!r} has no secret")
    forwarded = forwarded_body(
        body, context_for(action, version.version, community, consumer, request_id, correlation_id),
        provider.secret.value,
    )
    # A large schema's first use: its code made in a thread, awaited here
    # (the answer's is started now and awaited once the provider answered).
    if (waiting := version.request_ready()) is not None:
        await waiting
    answer_ready = version.response_ready()
    tracing = relay.tracing
    if tracing is None:
        check_forwarded(relay, target, forwarded, request_id)
        answer = await send(relay, target, dumps(forwarded), provider.secret.value,
                            request_id=request_id, deadline_s=deadline_s, record=record)
        if answer_ready is not None:
            await answer_ready
        relayed = checked_answer(relay, target, answer, request_id)
    else:  # [tracing] the same steps, each in its span (observe/tracing.py)
        with tracing.step("apihub.validate_request", target.site):
            check_forwarded(relay, target, forwarded, request_id)
        with tracing.provider_call(target.provision.url, target.site) as trace_headers:
            answer = await send(relay, target, dumps(forwarded), provider.secret.value,
                                request_id=request_id, deadline_s=deadline_s, record=record,
                                headers=trace_headers)
        if answer_ready is not None:
            await answer_ready
        with tracing.step("apihub.validate_answer", target.site):
            relayed = checked_answer(relay, target, answer, request_id)
    relay.observer.answered(target.site, answer.upstream_ms, "ok")
    return relayed


def check_forwarded(relay: Relay, target: Target, forwarded: dict[str, Any], request_id: str) -> None:
    version = target.version
    issues = version.validate_request(forwarded)
    if issues:
        relay.observer.violation(target.site, "request", version.enforce_request, issues, request_id)
        if version.enforce_request == "strict":
            raise InvalidRequest(
                f"the request does not follow {target.action.name} v{version.version}", errors=issues)


def checked_answer(relay: Relay, target: Target, answered: Answer, request_id: str) -> bytes:
    """The answer's bytes once they pass; a refusal is told to the observer here."""
    action, version, answer = target.action, target.version, answered.body
    if not version.answer_described and not answer.strip():
        # An acknowledgement: the catalogue describes no answer, the provider sent none.
        return b""
    try:
        # Relayed as received, so every reading of these bytes must be the one
        # validated: no repeated key, no number a parser could read otherwise.
        parsed = loads(answer, max_depth=relay.max_json_depth, unique_keys=True)
    except UnsafeJson as exc:
        relay.observer.answered(target.site, answered.upstream_ms, "invalid_provider_response")
        raise InvalidProviderResponse(f"provider's answer: {exc.detail}", errors=exc.issues) from None
    issues = version.validate_response(parsed)
    if issues:
        relay.observer.violation(target.site, "response", version.enforce_response, issues, request_id)
        if version.enforce_response == "strict":
            relay.observer.answered(target.site, answered.upstream_ms, "invalid_provider_response")
            raise InvalidProviderResponse(
                f"provider's answer does not follow {action.name} v{version.version}", errors=issues)
    return answer


async def send(relay: Relay, target: Target, payload: bytes, secret: str, *, request_id: str,
               deadline_s: float, record: CallRecord | None, headers: Sequence[tuple[str, str]] = ()) -> Answer:
    """Through the provider's breaker and bulkhead, to the network and back
    (the observer hears of an answer once it is checked)."""
    provider, provision, site = target.provider, target.provision, target.site
    breaker = relay.guards.breaker(provider.id)
    bulkhead = relay.guards.bulkhead(provider.id, target.action.name, provision.max_concurrency)
    try:
        probe = breaker.admit()
    except ProviderOverloaded:
        relay.observer.outcome(site, "provider_overloaded")
        raise
    try:
        bulkhead.acquire()
    except ProviderOverloaded:
        breaker.abandon(probe=probe)
        relay.observer.outcome(site, "provider_overloaded")
        raise
    # None: the call never finished (cancelled, say by a shutdown): it says
    # nothing about the provider, so the breaker does not count it.
    failed: bool | None = None
    try:
        answer = await relay.client.post(
            provision.url, payload, pool=provider.id, secret=secret, request_id=request_id,
            deadline_s=deadline_s, retry_connect=target.action.idempotent, headers=headers,
        )
        failed = False
    except ProviderFailure as exc:
        failed = exc.breaker_failure
        if failed and isinstance(exc, ProviderTimeout):
            # A deadline the consumer shortened (?timeout=) is the consumer's
            # choice: it must not let one consumer open the breaker for all.
            failed = round(deadline_s * 1000) >= (provision.timeout_ms or relay.timeout_ms)
        relay.observer.outcome(site, exc.code)
        raise
    except HubError as exc:
        # Any other HubError (e.g. the hub out of file descriptors) says
        # nothing about the provider: neither a failure nor a success.
        failed = None
        relay.observer.outcome(site, exc.code)
        raise
    finally:
        bulkhead.release()
        if failed is None:
            breaker.abandon(probe=probe)
        else:
            breaker.record(failed=failed, probe=probe)
    if record is not None:
        record.upstream_ms = answer.upstream_ms
    return answer
