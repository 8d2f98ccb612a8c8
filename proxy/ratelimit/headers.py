"""The RateLimit-Policy and RateLimit fields of the IETF httpapi
rate-limit-headers draft (-08 and later: structured-field lists, one item per
policy), e.g.

    RateLimit-Policy: "rate";q=10;w=1, "quota";q=50000;w=86400
    RateLimit: "rate";r=7;t=1, "quota";r=49120;t=30512

The policy names are the limit kinds: "rate", "quota" (the consumer's) and
"provider" (the provider's protection).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import Outcome

POLICY = "RateLimit-Policy"
STATE = "RateLimit"
RETRY_AFTER = "Retry-After"


def rate_limit_headers(outcomes: Sequence[Outcome]) -> dict[str, str]:
    return {
        POLICY: ", ".join(f'"{o.check.kind}";q={o.check.rate.count};w={o.check.rate.window_s}' for o in outcomes),
        STATE: ", ".join(f'"{o.check.kind}";r={o.remaining};t={math.ceil(o.reset_s)}' for o in outcomes),
    }


def retry_after(outcome: Outcome) -> str:
    """Whole seconds, never 0: a client retrying at once would only be refused again."""
    return str(max(1, math.ceil(outcome.retry_s)))
