"""The hub's request ids: 128 random bits from the OS, as 32 hex digits.

Unguessable (providers may use them as replay keys), so they come from the
OS's CSPRNG, never from a seeded generator. One read serves 256 ids: on a
virtual machine a `getrandom` call per request showed in the profile. The
ids not yet handed out are dropped in a forked child, so two workers never
share one.
"""

from __future__ import annotations

import os

_PER_READ = 256
_HEX_DIGITS = 32
_unused: list[str] = []


def new_request_id() -> str:
    if not _unused:
        digits = os.urandom(_PER_READ * _HEX_DIGITS // 2).hex()
        _unused.extend(digits[i:i + _HEX_DIGITS] for i in range(0, len(digits), _HEX_DIGITS))
    return _unused.pop()


os.register_at_fork(after_in_child=_unused.clear)
