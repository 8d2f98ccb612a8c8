"""The call pipeline: each step one small function, in the order that decides
which error wins when several things are wrong (DESIGN.md, Errors):

auth → community → action → consumer may call it → provider → version →
parameters → media type → size → JSON → request schema → the provider's side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .catalogue import Action, ActionVersion, Catalogue, now_rfc3339
from .errors import (
    BadRequest,
    Forbidden,
    HubError,
    InvalidJson,
    InvalidParameter,
    InvalidProviderResponse,
    InvalidRequest,
    PayloadTooLarge,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnreachable,
    RequestTimeout,
    Unauthenticated,
    UnknownAction,
    UnknownProvider,
    UnsupportedMediaType,
    UnsupportedVersion,
)
from .hub import HUB, Hub
from .logs import get_logger
from .middleware import RECORD, CallRecord
from .registry import App, Provision, Registry, hash_token

log = get_logger("apihub.call")

# Failures that say the provider is down or struggling: they feed its breaker.
_BREAKER_FAILURES = (ProviderTimeout, ProviderUnreachable)


# ---- steps -----------------------------------------------------------------

async def authenticate(request: web.Request, registry: Registry) -> App:
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header.strip()
    if not token:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    app = await registry.app_by_token(hash_token(token))
    if app is None:
        raise Unauthenticated("unknown token")
    return app


def community_of(request: web.Request, consumer: App) -> str:
    # Both names, each possibly repeated: every value given must agree.
    given = {value.strip() for value in request.headers.getall("community-id", ())}
    given.update(value.strip() for value in request.headers.getall("X-Community-Id", ()))
    if len(given) > 1:
        raise InvalidParameter("the community headers (community-id, X-Community-Id) disagree")
    community = given.pop() if given else ""
    if not community:
        raise Forbidden("missing community header (community-id or X-Community-Id)")
    if community not in consumer.communities:
        raise Forbidden(f"app {consumer.id!r} is not installed in community {community!r}")
    return community


def resolve_action(catalogue: Catalogue, name: str, consumer: App) -> Action:
    action = catalogue.actions.get(name)
    if action is None:
        raise UnknownAction(f"no action {name!r} in the catalogue")
    if name not in consumer.consumes:
        raise Forbidden(f"app {consumer.id!r} is not declared as a consumer of {name!r}")
    return action


async def resolve_provider(registry: Registry, action: Action, provider_id: str,
                           community: str) -> tuple[App, Provision]:
    provider = await registry.app(provider_id)
    if provider is None or community not in provider.communities:
        raise UnknownProvider(f"no provider {provider_id!r} installed in community {community!r}")
    provision = provider.provides.get(action.name)
    if provision is None:
        raise UnknownProvider(f"provider {provider_id!r} does not serve {action.name!r}")
    return provider, provision


# Larger numbers mean "more than anything configured": parsing them whole
# would only cost time (and Python refuses past 4,300 digits).
_HUGE = 10**18


def positive_int(name: str, raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not raw.strip("0"):
        raise InvalidParameter(f"{name} must be a positive integer")
    digits = raw.lstrip("0")
    return _HUGE if len(digits) > 18 else int(digits)


def choose_version(action: Action, provision: Provision, requested: str | None) -> ActionVersion:
    wanted = positive_int("version", requested)
    if wanted is None:
        best = action.best_version(provision.versions)
        if best is None:
            raise UnsupportedVersion(
                f"the provider serves none of the catalogue's versions of {action.name!r}")
        return action.versions[best]
    if wanted not in action.versions:
        raise UnsupportedVersion(f"{action.name!r} has no version {wanted} in the catalogue")
    if wanted not in provision.versions:
        raise UnsupportedVersion(f"the provider does not serve version {wanted} of {action.name!r}")
    return action.versions[wanted]


def catalogue_version(action: Action, requested: str | None) -> int | None:
    """`?version=N` for endpoints without a provider: N must be in the catalogue."""
    wanted = positive_int("version", requested)
    if wanted is not None and wanted not in action.versions:
        raise UnsupportedVersion(f"{action.name!r} has no version {wanted} in the catalogue")
    return wanted


def deadline_ms(requested: str | None, configured: int) -> int:
    """The consumer may ask for a shorter deadline, never a longer one."""
    wanted = positive_int("timeout", requested)
    return configured if wanted is None else min(wanted, configured)


def check_media_type(request: web.Request) -> None:
    if "Content-Type" not in request.headers:
        raise UnsupportedMediaType("missing Content-Type; send application/json")
    kind = request.content_type
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type {kind!r} is not JSON; send application/json")


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, refused as soon as it passes `limit` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks = []
    size = 0
    try:
        if request.content.is_eof():
            # Small bodies arrive with the headers: all buffered already, no timer needed.
            raw = request.content.read_nowait()
            if len(raw) > limit:
                raise PayloadTooLarge(f"body is over the {limit}-byte limit")
            return raw
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over the {limit}-byte limit")
                chunks.append(chunk)
    except TimeoutError:
        # Answer 408, then close: no lingering on the rest of a slow body.
        request.content.feed_eof()
        request.protocol.close()
        raise RequestTimeout("the request body was not received in time") from None
    except web.RequestPayloadError:
        raise BadRequest("the request body is malformed (bad chunked encoding or cut off)") from None
    except ConnectionError:
        raise BadRequest("the consumer closed the connection before sending the whole body") from None
    return b"".join(chunks)


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidJson("body must be a JSON object")
    return body


def context_for(action: Action, version: int, community: str, consumer: App, request_id: str) -> dict[str, Any]:
    return {
        "issuedAt": now_rfc3339(),
        "action": action.name,
        "community": community,
        "version": version,
        "requester": consumer.id,
        "requestId": request_id,
    }


def forwarded_body(body: dict[str, Any], context: dict[str, Any], secret: str) -> dict[str, Any]:
    """The consumer's body with the hub-owned keys; the hub's values win."""
    forwarded = dict(body)
    forwarded["context"] = context
    forwarded["secret"] = secret
    return forwarded


# ---- one provider, end to end ----------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    action: Action
    version: ActionVersion
    provider: App
    provision: Provision


async def call_provider(
    hub: Hub,
    target: Target,
    body: dict[str, Any],
    *,
    community: str,
    consumer: App,
    request_id: str,
    deadline_s: float,
    record: CallRecord | None = None,
) -> bytes:
    """Validate, forward, validate the answer: the provider's bytes or a HubError."""
    action, version, provider = target.action, target.version, target.provider
    assert provider.secret is not None  # manifests require one for providers
    forwarded = forwarded_body(
        body, context_for(action, version.version, community, consumer, request_id), provider.secret.value,
    )
    issues = version.validate_request(forwarded)
    if issues:
        hub.observe_violation(target, "request", issues, request_id)
        if version.enforce_request == "strict":
            raise InvalidRequest(
                f"the request does not follow {action.name} v{version.version}", errors=issues)
    payload = orjson.dumps(forwarded)
    answer = await send(hub, target, payload, request_id=request_id, deadline_s=deadline_s, record=record)
    try:
        parsed = orjson.loads(answer)
    except orjson.JSONDecodeError:
        hub.observe_outcome(target, "invalid_provider_response")
        raise InvalidProviderResponse("provider's answer is not valid JSON") from None
    issues = version.validate_response(parsed)
    if issues:
        hub.observe_violation(target, "response", issues, request_id)
        if version.enforce_response == "strict":
            hub.observe_outcome(target, "invalid_provider_response")
            raise InvalidProviderResponse(
                f"provider's answer does not follow {action.name} v{version.version}", errors=issues)
    hub.observe_outcome(target, "ok")
    return answer


async def send(hub: Hub, target: Target, payload: bytes, *, request_id: str, deadline_s: float,
               record: CallRecord | None) -> bytes:
    """Through the provider's breaker and bulkhead, to the network and back."""
    provider, provision = target.provider, target.provision
    assert hub.upstream is not None and provider.secret is not None
    breaker = hub.guards.breaker(provider.id)
    bulkhead = hub.guards.bulkhead(provider.id, target.action.name, provision.max_concurrency)
    try:
        probe = breaker.admit()
    except ProviderOverloaded:
        hub.observe_outcome(target, "provider_overloaded")
        raise
    try:
        bulkhead.acquire()
    except ProviderOverloaded:
        breaker.abandon(probe=probe)
        hub.observe_outcome(target, "provider_overloaded")
        raise
    # None: the call never finished (cancelled, say by a shutdown): it says
    # nothing about the provider, so the breaker does not count it.
    failed: bool | None = None
    try:
        answer = await hub.upstream.post(
            provision.url, payload, secret=provider.secret.value, request_id=request_id,
            deadline_s=deadline_s, retry_connect=target.action.idempotent,
        )
        failed = False
    except ProviderError as exc:
        failed = exc.extra.get("providerStatus", 500) >= 500
        hub.observe_outcome(target, exc.code)
        raise
    except HubError as exc:
        failed = isinstance(exc, _BREAKER_FAILURES)
        if failed and isinstance(exc, ProviderTimeout):
            # A deadline the consumer shortened (?timeout=) is the consumer's
            # choice: it must not let one consumer open the breaker for all.
            configured_ms = provision.timeout_ms or hub.config.upstream.timeout_ms
            failed = round(deadline_s * 1000) >= configured_ms
        hub.observe_outcome(target, exc.code)
        raise
    finally:
        bulkhead.release()
        if failed is None:
            breaker.abandon(probe=probe)
        else:
            breaker.record(failed=failed, probe=probe)
    hub.metrics.observe_upstream(target.action.name, provider.id, answer.upstream_ms / 1000)
    hub.observe_upstream(target, answer.upstream_ms)
    if record is not None:
        record.upstream_ms = answer.upstream_ms
    return answer.body


# ---- handlers ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Caller:
    consumer: App
    community: str
    action: Action


async def identify(request: web.Request, hub: Hub, record: CallRecord) -> Caller:
    """The steps every action endpoint shares: who, where, which action."""
    snapshot = hub.snapshot
    consumer = await authenticate(request, snapshot.registry)
    record.requester = consumer.id
    community = community_of(request, consumer)
    record.community = community
    action = resolve_action(snapshot.catalogue, request.match_info["action"], consumer)
    record.action = action.name
    return Caller(consumer, community, action)


async def read_call_body(request: web.Request, hub: Hub, record: CallRecord) -> dict[str, Any]:
    check_media_type(request)
    raw = await read_body(request, hub.config.limits.max_request_bytes,
                          hub.config.server.body_timeout_ms / 1000)
    record.bytes_in = len(raw)
    return parse_object(raw)


async def call(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    record = request[RECORD]
    registry = hub.snapshot.registry
    caller = await identify(request, hub, record)
    provider, provision = await resolve_provider(
        registry, caller.action, request.match_info["provider"], caller.community)
    record.provider = provider.id
    version = choose_version(caller.action, provision, request.query.get("version"))
    record.version = version.version
    timeout_ms = deadline_ms(request.query.get("timeout"), provision.timeout_ms or hub.config.upstream.timeout_ms)
    body = await read_call_body(request, hub, record)
    answer = await call_provider(
        hub, Target(caller.action, version, provider, provision), body,
        community=caller.community, consumer=caller.consumer, request_id=record.request_id,
        deadline_s=timeout_ms / 1000, record=record,
    )
    return web.Response(body=answer, content_type="application/json")


async def discover(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    record = request[RECORD]
    caller = await identify(request, hub, record)
    wanted = catalogue_version(caller.action, request.query.get("version"))
    found = []
    for provider in await hub.snapshot.registry.providers(caller.action.name, caller.community):
        versions = sorted(caller.action.versions.keys() & provider.provides[caller.action.name].versions)
        if not versions or (wanted is not None and wanted not in versions):
            continue
        found.append({**provider.public(), "versions": versions})
    return web.Response(body=orjson.dumps(found), content_type="application/json")

