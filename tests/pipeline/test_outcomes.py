"""The table of what each endpoint can answer (pipeline/outcomes.py) is the
one the OpenAPI export documents; these tests keep it the truth: every hub
error the call path raises is in it, and its order is the precedence of
docs/contract.md."""

from __future__ import annotations

import ast
from pathlib import Path

from proxy import errors
from proxy.pipeline.outcomes import OUTCOMES, by_status

from tests.support import ROOT

# Where the call, fan-out and discover endpoints raise, directly or through the seams they use.
CALL_PATH_MODULES = ("pipeline", "upstream", "registry", "web/handlers.py", "web/httpserver.py",
                     "web/openapi.py")
# Raised on the call path but never a documented answer: a bug, or admin-only.
NOT_AN_ANSWER = {errors.InternalError, errors.RegistryReadOnly,
                 errors.InvalidManifest, errors.HubError}


def raised_hub_errors() -> set[type[errors.HubError]]:
    found = set()
    for part in CALL_PATH_MODULES:
        target = ROOT / "proxy" / part
        files = [target] if target.is_file() else sorted(Path(target).rglob("*.py"))
        for file in files:
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    error = getattr(errors, node.func.id, None)
                    if isinstance(error, type) and issubclass(error, errors.HubError):
                        found.add(error)
    return found


def test_every_error_the_call_path_raises_is_in_the_table() -> None:
    raised = raised_hub_errors() - NOT_AN_ANSWER
    assert raised, "the scan found nothing: the modules moved?"
    documented = {error for table in OUTCOMES.values() for error in table}
    assert raised <= documented, raised - documented


def test_order_is_the_contract_precedence() -> None:
    """auth → community → action → provider → version → parameters → rate limit → body → schema → provider."""
    call = OUTCOMES["call"]
    order = [errors.Unauthenticated, errors.Forbidden, errors.UnknownAction, errors.UnknownProvider,
             errors.UnsupportedVersion, errors.RateLimited, errors.UnsupportedMediaType,
             errors.PayloadTooLarge, errors.InvalidJson, errors.InvalidRequest, errors.ProviderUnreachable]
    assert [call.index(e) for e in order] == sorted(call.index(e) for e in order)
    assert errors.UnknownProvider not in OUTCOMES["fanout"]  # a provider's failure is a result there
    assert errors.ProviderTimeout not in OUTCOMES["fanout"]


def test_by_status_groups_codes() -> None:
    assert by_status("discover")[404] == ("unknown_action", "unsupported_version", "not_found")
    assert by_status("call")[503] == ("provider_overloaded", "registry_unavailable", "hub_overloaded",
                                      "shutting_down")
    assert set(by_status("healthz")) == {400, 408, 414, 431}
