"""Rate limits and quotas: which counters a call spends, counted where every
instance (redis) or every worker of the machine (local) sees them.

One Protocol (base.py), limiters by name (backends.py), the counting rules
(gcra.py) and the IETF RateLimit headers (headers.py).
"""

from .backends import LIMITERS, limiter_name, open_limiter
from .base import Check, Kind, Limiter, Outcome, Verdict
from .headers import rate_limit_headers

__all__ = [
    "LIMITERS", "Check", "Kind", "Limiter", "Outcome", "Verdict", "limiter_name", "open_limiter",
    "rate_limit_headers",
]
