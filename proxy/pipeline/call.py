"""The call and discover endpoints as pipelines of steps (steps.py), on
plain values: `Incoming` is what the web layer read off the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..catalogue import Action, Catalogue
from ..registry import App, Registry
from ..types import CallRecord
from .limits import NO_HEADERS, call_checks, spend
from .relay import Relay, Target, call_provider
from .steps import (
    authenticate,
    catalogue_version,
    check_media_type,
    choose_version,
    community_of,
    deadline_ms,
    parse_object,
    resolve_action,
    resolve_provider,
)


async def _no_body() -> bytes:
    return b""


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
class Incoming:
    """A consumer's request, as the pipeline needs it."""

    action: str
    authorization: str
    communities: Sequence[str]  # every community-id and X-Community-Id value
    version: str | None = None
    timeout: str | None = None
    content_type: str | None = None
    # Reads the whole body under the size limit and body timeout (web layer).
    read_body: Callable[[], Awaitable[bytes]] = _no_body
    provider: str = ""


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
class Reply:
    """A 200 answer: its body and the headers that go with it (RateLimit)."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(slots=True)  # per call, never changed: plain init (a frozen one costs 2.5×)
class Caller:
    consumer: App
    community: str
    action: Action


async def identify(catalogue: Catalogue, registry: Registry, incoming: Incoming, record: CallRecord) -> Caller:
    """The steps every action endpoint shares: who, where, which action."""
    consumer = await authenticate(registry, incoming.authorization)
    record.requester = consumer.id
    community = community_of(consumer, incoming.communities)
    record.community = community
    action = resolve_action(catalogue, incoming.action, consumer)
    record.action = action.name
    return Caller(consumer, community, action)


async def read_call_body(incoming: Incoming, record: CallRecord, max_depth: int) -> dict[str, Any]:
    check_media_type(incoming.content_type)
    raw = await incoming.read_body()
    record.bytes_in = len(raw)
    return parse_object(raw, max_depth)


async def call(relay: Relay, catalogue: Catalogue, registry: Registry, incoming: Incoming,
               record: CallRecord) -> Reply:
    """`POST /v1/services/call/{action}/{provider}`: the provider's validated answer."""
    caller = await identify(catalogue, registry, incoming, record)
    provider, provision = await resolve_provider(registry, caller.action, incoming.provider, caller.community)
    record.provider = provider.id
    version = choose_version(caller.action, provision, incoming.version)
    record.version = version.version
    timeout_ms = deadline_ms(incoming.timeout, provision.timeout_ms or relay.timeout_ms)
    headers = NO_HEADERS
    if (limits := relay.limits) is not None and (
            checks := call_checks(limits, caller.consumer, caller.community, caller.action.name, provider, provision)):
        headers = await spend(limits, checks, caller.consumer.id, caller.action.name)
    body = await read_call_body(incoming, record, relay.max_json_depth)
    answer = await call_provider(
        relay, Target(caller.action, version, provider, provision), body,
        community=caller.community, consumer=caller.consumer, request_id=record.request_id,
        correlation_id=record.correlation_id, deadline_s=timeout_ms / 1000, record=record,
    )
    return Reply(answer, headers)


async def discover(catalogue: Catalogue, registry: Registry, incoming: Incoming,
                   record: CallRecord) -> list[dict[str, Any]]:
    """`GET /v1/services/discover/{action}`: the providers serving it in the community."""
    caller = await identify(catalogue, registry, incoming, record)
    wanted = catalogue_version(caller.action, incoming.version)
    found = []
    for provider in await registry.providers(caller.action.name, caller.community):
        versions = sorted(caller.action.versions.keys() & provider.provides[caller.action.name].versions)
        if not versions or (wanted is not None and wanted not in versions):
            continue
        found.append({**provider.public(), "versions": versions})
    return found
