"""The steps of a call, each a small function of plain values, in the order
that decides which error wins when several things are wrong
(docs/contract.md, "Order of checks"):

auth → community → action → consumer may call it → provider → version →
parameters → media type → size → JSON → request schema → the provider's side.

outcomes.py lists, in this order, every error each endpoint can answer; the
published OpenAPI document is generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..catalogue import Action, ActionVersion, Catalogue
from ..clock import now_rfc3339
from ..errors import (
    Forbidden,
    InvalidJson,
    InvalidParameter,
    Unauthenticated,
    UnknownAction,
    UnknownProvider,
    UnsupportedMediaType,
    UnsupportedVersion,
)
from ..jsonsafe import UnsafeJson, loads
from ..registry import App, Provision, Registry
from ..tokens import bearer_token, hash_token


async def authenticate(registry: Registry, authorization: str) -> App:
    token = bearer_token(authorization)
    if not token:
        raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
    app = await registry.app_by_token(hash_token(token))
    if app is None:
        raise Unauthenticated("unknown token")
    return app


def community_of(consumer: App, given: Sequence[str]) -> str:
    """`given`: every community-id and X-Community-Id value; all must agree."""
    if len(given) == 1:  # what nearly every call sends: no set to build
        community = given[0].strip()
    else:
        values = {value.strip() for value in given}
        if len(values) > 1:
            raise InvalidParameter("the community headers (community-id, X-Community-Id) disagree")
        community = values.pop() if values else ""
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


def as_sent(raw: str) -> str:
    """A positive_int parameter for a message: its digits as sent (not
    _HUGE), the first 24 of a longer one."""
    digits = raw.lstrip("0")
    return digits if len(digits) <= 24 else digits[:24] + "…"


def choose_version(action: Action, provision: Provision, requested: str | None) -> ActionVersion:
    wanted = positive_int("version", requested)
    if wanted is None:
        best = action.best_version(provision.versions)
        if best is None:
            raise UnsupportedVersion(
                f"the provider serves none of the catalogue's versions of {action.name!r}")
        return action.versions[best]
    assert requested is not None
    if wanted not in action.versions:
        raise UnsupportedVersion(f"{action.name!r} has no version {as_sent(requested)} in the catalogue")
    if wanted not in provision.versions:
        raise UnsupportedVersion(f"the provider does not serve version {as_sent(requested)} of {action.name!r}")
    return action.versions[wanted]


def catalogue_version(action: Action, requested: str | None) -> int | None:
    """`?version=N` for endpoints without a provider: N must be in the catalogue."""
    wanted = positive_int("version", requested)
    if wanted is not None and wanted not in action.versions:
        assert requested is not None
        raise UnsupportedVersion(f"{action.name!r} has no version {as_sent(requested)} in the catalogue")
    return wanted


def deadline_ms(requested: str | None, configured: int) -> int:
    """The consumer may ask for a shorter deadline, never a longer one."""
    wanted = positive_int("timeout", requested)
    return configured if wanted is None else min(wanted, configured)


# application/json, or application/<token>+json (RFC 9110 token characters).
_JSON_TYPE = re.compile(r"application/(?:json|[!#$%&'*.^_`|~0-9a-z-]+\+json)")


def check_media_type(content_type: str | None) -> None:
    """`application/json` (parameters allowed) or any `application/*+json`."""
    if content_type == "application/json":  # what nearly every call sends: no parsing
        return
    if content_type is None:
        raise UnsupportedMediaType("missing Content-Type; send application/json")
    kind = content_type.partition(";")[0].strip().lower()
    if not _JSON_TYPE.fullmatch(kind):
        raise UnsupportedMediaType(f"Content-Type {kind!r} is not JSON; send application/json")


def parse_object(raw: bytes, max_depth: int) -> dict[str, Any]:
    """The consumer's body; a repeated key keeps its last value, which is
    what gets validated and re-encoded for the provider (docs/contract.md §5)."""
    try:
        body = loads(raw, max_depth=max_depth, unique_keys=False)
    except UnsafeJson as exc:
        raise InvalidJson(f"body: {exc.detail}", errors=exc.issues) from None
    if not isinstance(body, dict):
        raise InvalidJson("body must be a JSON object")
    return body


def context_for(action: Action, version: int, community: str, consumer: App, request_id: str,
                correlation_id: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "issuedAt": now_rfc3339(),
        "action": action.name,
        "community": community,
        "version": version,
        "requester": consumer.id,
        "requestId": request_id,
    }
    if correlation_id is not None:
        context["correlationId"] = correlation_id
    return context


def forwarded_body(body: dict[str, Any], context: dict[str, Any], secret: str) -> dict[str, Any]:
    """The consumer's body with the hub-owned keys; the hub's values win."""
    forwarded = dict(body)
    forwarded["context"] = context
    forwarded["secret"] = secret
    return forwarded
