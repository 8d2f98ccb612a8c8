"""Every error each public endpoint can answer, in the order that decides
which one wins when several things are wrong (docs/contract.md, "Order of
checks"):

auth → community → action → consumer may call it → provider → version →
parameters → rate limit → media type → size → JSON → request schema → the
provider's side → the hub's own resources.

The published OpenAPI document (web/openapi.py) lists exactly these per
operation, and tests/pipeline/test_outcomes.py checks that the pipeline
raises nothing that is missing here, so the two cannot drift.
"""

from __future__ import annotations

from ..errors import (
    BadRequest,
    Forbidden,
    HubError,
    HubOverloaded,
    InvalidJson,
    InvalidParameter,
    InvalidProviderResponse,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    ProviderOverloaded,
    ProviderTimeout,
    ProviderUnreachable,
    RateLimited,
    RegistryUnavailable,
    RequestTimeout,
    RequestTooLarge,
    ShuttingDown,
    Unauthenticated,
    UnknownAction,
    UnknownProvider,
    UnsupportedMediaType,
    UnsupportedVersion,
    UriTooLong,
)

Outcomes = tuple[type[HubError], ...]

# What the HTTP server refuses before any endpoint runs: a URL or header
# fields over the limits, slow headers, malformed HTTP.
HTTP: Outcomes = (UriTooLong, RequestTooLarge, RequestTimeout, BadRequest)

# A path parameter that does not route (an encoded "/" in the action name...).
_ROUTE: Outcomes = (NotFound,)

# Who, where, which action: the steps every action endpoint shares
# (InvalidParameter: the two community headers disagree).
_IDENTIFY: Outcomes = (Unauthenticated, Forbidden, InvalidParameter, UnknownAction)

# The body: media type, size (and its timeout, or a cut-off upload), JSON.
_BODY: Outcomes = (UnsupportedMediaType, PayloadTooLarge, RequestTimeout, BadRequest, InvalidJson)

_PROVIDER: Outcomes = (ProviderOverloaded, ProviderUnreachable, ProviderError, InvalidProviderResponse,
                       ProviderTimeout)

# The hub's own state, whatever the request: the shared registry, the
# buffered-answer budget, the end of the shutdown grace.
_HUB: Outcomes = (RegistryUnavailable, HubOverloaded, ShuttingDown)

OUTCOMES: dict[str, Outcomes] = {
    "call": (*_IDENTIFY, UnknownProvider, UnsupportedVersion, RateLimited, *_BODY, InvalidRequest,
             *_PROVIDER, *_HUB, *_ROUTE, *HTTP),
    # A provider's failure is its entry in the 200's results, never the call's status.
    "fanout": (*_IDENTIFY, UnsupportedVersion, RateLimited, *_BODY, InvalidRequest, *_HUB, *_ROUTE, *HTTP),
    # No rate limit and no answer budget: discover spends neither.
    "discover": (*_IDENTIFY, UnsupportedVersion, RegistryUnavailable, ShuttingDown, *_ROUTE, *HTTP),
    "openapi": (InvalidParameter, UnsupportedVersion, *HTTP),  # ?version=N
    "healthz": HTTP,
}


def by_status(kind: str) -> dict[int, tuple[str, ...]]:
    """The endpoint's problem codes per status, each status in order of first appearance."""
    out: dict[int, tuple[str, ...]] = {}
    for error in OUTCOMES[kind]:
        codes = out.get(error.status, ())
        if error.code not in codes:
            out[error.status] = (*codes, error.code)
    return out
