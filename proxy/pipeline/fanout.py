"""Fan-out: `POST /v1/services/call/{action}` (no provider) calls every
provider installed in the community that serves the action, concurrently,
and answers 200 with one result per provider, sorted by provider id:

    {"results": [
      {"provider": {"id", "displayName", "icon"}, "version": 1, "status": "ok", "data": <its bytes>},
      {"provider": {...}, "version": 1, "status": "error", "error": <the problem+json it would get>}
    ]}

Each provider goes through `relay.call_provider`, as a single call would: its
own deadline, breaker, bulkhead, request and response validation (and
their report modes). One provider's failure never fails the others. Each
answer is embedded as the provider sent it (`orjson.Fragment`: no re-parse
into Python objects, no re-serialisation); an empty answer to an action
whose answer the catalogue leaves undescribed is an entry without `data`.

Request-level problems still answer with their own status, in the order
docs/contract.md fixes: auth → community → action → consumer may call it →
version (404 if the catalogue lacks it) → parameters → rate limit → media type → size →
JSON → request schema. The rate limit comes before the body is read: the
consumer's limits count the fan-out as one call, each provider's protection
rate one call per provider called (a provider over it gets a `rate_limited`
result). The body is checked once per distinct version
chosen; if it fails the (strict) request schema of *every* provider's
version, nothing is sent and the call answers 400 `invalid_request`, as a
single call would. If it fails only some versions, those providers get an
`invalid_request` result and the others are called.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from ..catalogue import Action, Catalogue
from ..errors import HubError, InternalError, InvalidRequest, ProviderTimeout
from ..observe.logs import get_logger
from ..registry import App, Registry
from ..types import CallRecord, ValidationIssue
from .call import Caller, Incoming, Reply, identify, read_call_body
from .limits import NO_HEADERS, consumer_checks, provider_checks, spend
from .relay import Relay, Target, call_provider
from .steps import catalogue_version, context_for, deadline_ms, forwarded_body, positive_int

log = get_logger("apihub.fanout")

# The per-provider deadlines decide; this only guards against a call that
# somehow outlives its own deadline (it then gets a provider_timeout result).
_GUARD_S = 1.0


@dataclass(frozen=True, slots=True)
class Leg:
    """One provider of the fan-out and its deadline."""

    target: Target
    deadline_ms: int


def legs_for(relay: Relay, action: Action, providers: list[App], wanted: int | None,
             timeout: str | None) -> list[Leg]:
    """Each provider at the version asked (those lacking it left out) or the
    highest it shares with the catalogue (those sharing none left out)."""
    legs = []
    configured = relay.timeout_ms
    for provider in sorted(providers, key=lambda p: p.id):
        provision = provider.provides.get(action.name)
        if provision is None:
            continue
        if wanted is not None:
            number: int | None = wanted if wanted in provision.versions else None
        else:
            number = action.best_version(provision.versions)
        if number is None:
            continue
        target = Target(action, action.versions[number], provider, provision)
        legs.append(Leg(target, deadline_ms(timeout, provision.timeout_ms or configured)))
    return legs


async def check_request(legs: list[Leg], body: dict[str, Any], caller: Caller, relay: Relay, request_id: str,
                        correlation_id: str | None) -> None:
    """400 when the body breaks the strict request schema of every version
    chosen; otherwise each provider's own validation decides (in call_provider)."""
    if not legs:
        return
    for leg in legs:
        if (waiting := leg.target.version.request_ready()) is not None:
            await waiting
    issues_by_version: dict[int, tuple[ValidationIssue, ...]] = {}
    for leg in legs:
        version = leg.target.version
        if version.enforce_request != "strict":
            return
        if version.version not in issues_by_version:
            # The context and secret differ per provider only in values the
            # schemas type-check; one representative body per version will do.
            forwarded = forwarded_body(
                body, context_for(caller.action, version.version, caller.community, caller.consumer, request_id,
                            correlation_id),
                leg.target.provider.secret.value if leg.target.provider.secret else "",
            )
            issues_by_version[version.version] = version.validate_request(forwarded)
        if not issues_by_version[version.version]:
            return
    for leg in legs:  # counted and logged as the single calls would have been
        relay.observer.violation(leg.target.site, "request", "strict",
                                 issues_by_version[leg.target.version.version], request_id)
    versions = sorted(issues_by_version)
    merged = list(dict.fromkeys(issue for v in reversed(versions) for issue in issues_by_version[v]))
    raise InvalidRequest(
        f"the request does not follow {caller.action.name} "
        + ", ".join(f"v{v}" for v in versions) + " (the versions of every provider)",
        errors=merged,
    )


async def call_leg(relay: Relay, leg: Leg, body: dict[str, Any], caller: Caller, request_id: str,
                   correlation_id: str | None) -> dict[str, Any]:
    """One provider's result entry; never raises (except when cancelled)."""
    target = leg.target
    entry: dict[str, Any] = {"provider": target.provider.public(), "version": target.version.version}
    try:
        if relay.limits is not None and (checks := provider_checks(target.provider, target.action.name,
                                                                    target.provision)):
            await spend(relay.limits, checks, caller.consumer.id, target.action.name)
        answer = await call_provider(
            relay, target, body, community=caller.community, consumer=caller.consumer,
            request_id=request_id, correlation_id=correlation_id, deadline_s=leg.deadline_ms / 1000,
        )
    except HubError as exc:
        entry["status"] = "error"
        entry["error"] = exc.problem(request_id)
        return entry
    except Exception:
        log.exception("fanout_leg_crashed", requestId=request_id, action=target.action.name,
                      provider=target.provider.id)
        error = InternalError("the hub failed to call this provider; the incident is logged")
        entry["status"] = "error"
        entry["error"] = error.problem(request_id)
        return entry
    entry["status"] = "ok"
    # Already parsed and validated by call_provider: valid JSON, embedded as is.
    if answer:
        entry["data"] = orjson.Fragment(answer)
    return entry


async def run_legs(relay: Relay, legs: list[Leg], body: dict[str, Any], caller: Caller,
                   request_id: str, correlation_id: str | None) -> list[dict[str, Any]]:
    tasks = [asyncio.create_task(call_leg(relay, leg, body, caller, request_id, correlation_id)) for leg in legs]
    guard_s = max(leg.deadline_ms for leg in legs) / 1000 + _GUARD_S
    try:
        await asyncio.wait(tasks, timeout=guard_s)
    finally:
        # Past the guard, or the handler itself cancelled: stop what is left and
        # let each leg release its bulkhead slot before answering.
        late = [task for task in tasks if not task.done()]
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
    results = []
    for leg, task in zip(legs, tasks, strict=True):
        if task.cancelled():
            log.warning("fanout_leg_outlived_deadline", requestId=request_id, action=leg.target.action.name,
                        provider=leg.target.provider.id, deadlineMs=leg.deadline_ms)
            error = ProviderTimeout(f"provider did not answer within {leg.deadline_ms} ms")
            results.append({"provider": leg.target.provider.public(), "version": leg.target.version.version,
                            "status": "error", "error": error.problem(request_id)})
        else:
            results.append(task.result())
    return results


async def fanout(relay: Relay, catalogue: Catalogue, registry: Registry, incoming: Incoming,
                 record: CallRecord) -> Reply:
    """`POST /v1/services/call/{action}`: `{"results": [...]}`, one per provider."""
    caller = await identify(catalogue, registry, incoming, record)
    wanted = catalogue_version(caller.action, incoming.version)
    positive_int("timeout", incoming.timeout)  # malformed: 400 before the body is read
    providers = await registry.providers(caller.action.name, caller.community)
    legs = legs_for(relay, caller.action, list(providers), wanted, incoming.timeout)
    record.version = wanted
    headers = NO_HEADERS
    # The consumer's limits count the fan-out once; each provider's protection
    # counts its own leg (call_leg), so one provider over its rate fails alone.
    if relay.limits is not None and (checks := consumer_checks(relay.limits, caller.consumer, caller.community,
                                                               caller.action.name)):
        headers = await spend(relay.limits, checks, caller.consumer.id, caller.action.name)
    body = await read_call_body(incoming, record, relay.max_json_depth)
    results: list[dict[str, Any]] = []
    if legs:
        await check_request(legs, body, caller, relay, record.request_id, record.correlation_id)
        results = await run_legs(relay, legs, body, caller, record.request_id, record.correlation_id)
    return Reply(orjson.dumps({"results": results}), headers)
