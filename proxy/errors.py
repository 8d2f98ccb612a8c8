"""The hub's errors: one exception per problem code, turned into
application/problem+json (RFC 9457) at one boundary (web/middleware.py),
plus the errors of loading a catalogue.

    HubError                        every code a client can see
     ├── ConsumerError              4xx: the request, not the hub or a provider
     │    ├── BadRequest            400 bad_request (malformed HTTP)
     │    ├── InvalidJson           400 invalid_json
     │    ├── InvalidParameter      400 invalid_parameter
     │    ├── InvalidRequest        400 invalid_request (+ errors)
     │    ├── InvalidManifest       400 invalid_manifest (+ errors)
     │    ├── Unauthenticated       401 unauthenticated
     │    ├── Forbidden             403 forbidden
     │    ├── NotFound              404 not_found (no such route, or admin: no such app)
     │    ├── UnknownAction         404 unknown_action
     │    ├── UnsupportedVersion    404 unsupported_version
     │    ├── UnknownProvider       404 unknown_provider
     │    ├── MethodNotAllowed      405 method_not_allowed
     │    ├── RequestTimeout        408 request_timeout
     │    ├── RegistryReadOnly      409 registry_read_only
     │    ├── PayloadTooLarge       413 payload_too_large
     │    ├── RequestTooLarge       431 request_too_large (UriTooLong: 414)
     │    ├── UnsupportedMediaType  415 unsupported_media_type
     │    └── RateLimited           429 rate_limited
     ├── ProviderFailure            the provider's side; `breaker_failure` says
     │    │                         whether it counts against its breaker
     │    ├── ProviderUnreachable   502 provider_unreachable   (counts)
     │    ├── ProviderError         502 provider_error         (counts when 5xx)
     │    ├── InvalidProviderResponse 502 invalid_provider_response (+ errors)
     │    ├── ProviderOverloaded    503 provider_overloaded
     │    └── ProviderTimeout       504 provider_timeout       (counts)
     └── HubFailure                 5xx: the hub itself, never the provider's fault
          ├── RegistryUnavailable   503 registry_unavailable
          ├── HubOverloaded         503 hub_overloaded (Retry-After)
          ├── ShuttingDown          503 shutting_down
          └── InternalError         500 internal_error (a bug; never expected)

    CatalogueError                  a catalogue or app folder that cannot load,
                                    with every Problem found

Details never carry a token, a secret or a payload value: validation
messages are built from the schema, not from the instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .types import ValidationIssue


class HubError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[ValidationIssue] = (),
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.extra = extra or {}
        # Response headers that belong to the problem (Allow, Retry-After, RateLimit...).
        self.headers = dict(headers or {})

    def problem(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "requestId": request_id,
        }
        if self.errors:
            body["errors"] = [issue.as_json() for issue in self.errors]
        body.update(self.extra)
        return body


class ConsumerError(HubError):
    """The request is at fault (4xx)."""

    status, code, title = 400, "bad_request", "Bad request"


class ProviderFailure(HubError):
    """The provider's side failed the call (5xx)."""

    status, code, title = 502, "provider_error", "Provider failure"
    # Timeouts, connection errors and provider 5xx feed the provider's breaker;
    # invalid answers and 4xx show the provider is up, so they do not.
    breaker_failure: bool = False


class HubFailure(HubError):
    """The hub itself cannot serve the call now (5xx); never the provider's fault."""


class Unauthenticated(ConsumerError):
    status, code, title = 401, "unauthenticated", "Unauthenticated"


class Forbidden(ConsumerError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ConsumerError):
    status, code, title = 404, "not_found", "Not found"


class UnknownAction(ConsumerError):
    status, code, title = 404, "unknown_action", "Unknown action"


class UnsupportedVersion(ConsumerError):
    status, code, title = 404, "unsupported_version", "Unsupported version"


class UnknownProvider(ConsumerError):
    status, code, title = 404, "unknown_provider", "Unknown provider"


class MethodNotAllowed(ConsumerError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class RequestTimeout(ConsumerError):
    status, code, title = 408, "request_timeout", "Request timeout"


class RegistryReadOnly(ConsumerError):
    status, code, title = 409, "registry_read_only", "Registry is read-only"


class PayloadTooLarge(ConsumerError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RequestTooLarge(ConsumerError):
    status, code, title = 431, "request_too_large", "Request header fields too large"


class UriTooLong(RequestTooLarge):
    status, title = 414, "URI too long"


class UnsupportedMediaType(ConsumerError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class BadRequest(ConsumerError):
    status, code, title = 400, "bad_request", "Bad request"


class InvalidJson(ConsumerError):
    status, code, title = 400, "invalid_json", "Invalid JSON"


class InvalidParameter(ConsumerError):
    status, code, title = 400, "invalid_parameter", "Invalid parameter"


class InvalidRequest(ConsumerError):
    status, code, title = 400, "invalid_request", "Request does not follow the action's protocol"


class InvalidManifest(ConsumerError):
    status, code, title = 400, "invalid_manifest", "Invalid manifest"


class ProviderUnreachable(ProviderFailure):
    status, code, title = 502, "provider_unreachable", "Provider unreachable"
    breaker_failure = True


class ProviderError(ProviderFailure):
    status, code, title = 502, "provider_error", "Provider answered with an error"

    def __init__(self, provider_status: int) -> None:
        super().__init__(f"provider answered HTTP {provider_status}", extra={"providerStatus": provider_status})
        self.provider_status = provider_status
        self.breaker_failure = provider_status >= 500


class InvalidProviderResponse(ProviderFailure):
    status, code, title = 502, "invalid_provider_response", "Provider answer does not follow the action's protocol"


class ProviderOverloaded(ProviderFailure):
    status, code, title = 503, "provider_overloaded", "Provider overloaded"


class RegistryUnavailable(HubFailure):
    status, code, title = 503, "registry_unavailable", "Registry unavailable"


class ProviderTimeout(ProviderFailure):
    status, code, title = 504, "provider_timeout", "Provider timeout"
    breaker_failure = True


class RateLimited(ConsumerError):
    status, code, title = 429, "rate_limited", "Rate limit reached"


class HubOverloaded(HubFailure):
    status, code, title = 503, "hub_overloaded", "Hub overloaded"


class ShuttingDown(HubFailure):
    status, code, title = 503, "shutting_down", "Hub shutting down"


class InternalError(HubFailure):
    status, code, title = 500, "internal_error", "Internal error"


@dataclass(frozen=True, slots=True)
class Problem:
    """An error or warning about one place in the catalogue or app folder."""

    source: str
    pointer: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}#{self.pointer}" if self.pointer else self.source
        return f"{where}: {self.message}"


class CatalogueError(Exception):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)))
