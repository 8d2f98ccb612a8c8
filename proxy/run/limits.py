"""Process limits set at start."""

from __future__ import annotations

import resource

from ..observe.logs import get_logger

log = get_logger("apihub.server")


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit: every consumer and
    provider connection is a file descriptor, and distributions' default
    soft limit (often 1024) is reached long before memory or CPU. Returns
    the (soft, hard) limits now in force."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    if hard == resource.RLIM_INFINITY or before < hard:
        # An infinite hard limit cannot be the soft one on Linux past fs.nr_open.
        target = hard if hard != resource.RLIM_INFINITY else max(before, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("fd_limit_not_raised", soft=before, hard=hard, error=type(exc).__name__)
    log.info("fd_limit", softBefore=before, soft=soft, hard=hard)
    return soft, hard
