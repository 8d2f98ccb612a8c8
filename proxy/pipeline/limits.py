"""The rate-limit step: which counters a call spends (the consumer's rate
and quota, the provider's protection) and the answer when one is spent.

It runs once consumer, action, provider and version are known, before the
body is read or the provider is called. A call to which no limit applies
builds nothing and awaits nothing: the step then costs a few attribute
reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import RateLimited
from ..ratelimit import Check, Limiter, rate_limit_headers
from ..ratelimit.headers import RETRY_AFTER, retry_after
from ..registry import ANY_ACTION, App, Limits, Provision

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RateLimits:
    """What the step needs; made once per app (web/app.py)."""

    limiter: Limiter
    # [ratelimit] default_rate / default_quota, for apps whose manifest has no `limits`.
    default: Limits | None
    # Told of every refusal: consumer, action, kind (metrics).
    on_limited: Callable[[str, str, str], None]


def consumer_checks(limits: RateLimits, consumer: App, community: str, action: str) -> list[Check]:
    declared = consumer.limits
    if declared:
        spec = declared.get(action) or declared.get(ANY_ACTION)
    else:
        spec = limits.default
    if spec is None:
        return []
    scope = f"c:{consumer.id}:{community}:{action}"
    checks = []
    if spec.rate is not None:
        checks.append(Check("rate", scope, spec.rate))
    if spec.quota is not None:
        checks.append(Check("quota", scope, spec.quota))
    return checks


def provider_checks(provider: App, action: str, provision: Provision) -> list[Check]:
    if provision.max_rate is None:
        return []
    return [Check("provider", f"p:{provider.id}:{action}", provision.max_rate)]


def call_checks(limits: RateLimits, consumer: App, community: str, action: str, provider: App,
                provision: Provision) -> list[Check]:
    """A single call's counters: the consumer's and the provider's, spent together."""
    checks = consumer_checks(limits, consumer, community, action)
    if provision.max_rate is not None:  # on every call: no call and no list when there is none
        checks += provider_checks(provider, action, provision)
    return checks


def usage_checks(limits: RateLimits, app: App) -> list[tuple[dict[str, str], Check]]:
    """Every counter the app's limits use, labelled (the admin usage view):
    its consumer limits per community it is installed in and action it may
    call, and the protection rate of each action it provides."""
    found = []
    for community in sorted(app.communities):
        for action in sorted(app.consumes | (app.limits.keys() - {ANY_ACTION})):
            for check in consumer_checks(limits, app, community, action):
                found.append(({"community": community, "action": action}, check))
    for action, provision in sorted(app.provides.items()):
        for check in provider_checks(app, action, provision):
            found.append(({"action": action}, check))
    return found


async def spend(limits: RateLimits, checks: list[Check], consumer: str, action: str) -> Mapping[str, str]:
    """Count the call against every check; RateLimited (429) when one is spent.
    Returns the RateLimit headers for the answer."""
    verdict = await limits.limiter.hit(checks)
    headers = rate_limit_headers(verdict.outcomes)
    refused = verdict.refused
    if refused is None:
        return headers
    check = refused.check
    headers[RETRY_AFTER] = retry_after(refused)
    if verdict.unavailable:
        limits.on_limited(consumer, action, "unavailable")
        raise RateLimited(
            "rate limits cannot be checked now (the shared counters are unreachable) and "
            "[ratelimit] on_redis_error is closed",
            extra={"limit": {"kind": "unavailable"}}, headers=headers)
    limits.on_limited(consumer, action, check.kind)
    whose = "the provider's protection rate" if check.kind == "provider" else f"the consumer {check.kind}"
    raise RateLimited(
        f"{whose} of {check.rate} for {action} is spent; retry in {headers[RETRY_AFTER]} s",
        extra={"limit": {"kind": check.kind, "limit": check.rate.count, "window": check.rate.window_s}},
        headers=headers,
    )
