"""Where the pipeline reports each provider call: the metrics, the
validation log line and every other CallObserver (conformance, ...)."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import HubOverloaded
from ..types import CLIPPED_CHARS, CallObserver, CallSite, Mode, Side, ValidationIssue
from .logs import get_logger
from .metrics import Metrics

violation_log = get_logger("apihub.validation")

# A log line stays small whatever the payload (pointers hold its keys).
LOGGED_ISSUES = 50


class CallObservers:
    """A CallObserver that tells the metrics, the log and `others` in turn."""

    def __init__(self, metrics: Metrics, others: Sequence[CallObserver] = ()) -> None:
        self._metrics = metrics
        self._others = tuple(others)

    def outcome(self, site: CallSite, outcome: str) -> None:
        if outcome == HubOverloaded.code:
            # Told here, from the provider call: the hub could not open a
            # connection to the provider (out of file descriptors).
            self._metrics.hub_overloaded("provider_connect")
        for observer in self._others:
            observer.outcome(site, outcome)

    def answered(self, site: CallSite, ms: float, outcome: str) -> None:
        self._metrics.observe_upstream(site.action, site.provider, ms / 1000)
        for observer in self._others:
            observer.answered(site, ms, outcome)

    def violation(self, site: CallSite, side: Side, mode: Mode, issues: tuple[ValidationIssue, ...],
                  request_id: str) -> None:
        # Where and what, never the payload: it may hold personal data or the secret.
        self._metrics.violation(site.action, site.provider, side, mode)
        violation_log.warning(
            "validation_failed", requestId=request_id, action=site.action, version=site.version,
            provider=site.provider, side=side, mode=mode, violationCount=len(issues),
            violations=[issue.clipped(CLIPPED_CHARS).as_json() for issue in issues[:LOGGED_ISSUES]],
        )
        for observer in self._others:
            observer.violation(site, side, mode, issues, request_id)
