"""The hub's problem codes: one exception per code, turned into
application/problem+json (RFC 9457) at one boundary (middleware.py).

    HubError
     ├── Unauthenticated            401 unauthenticated
     ├── Forbidden                  403 forbidden
     ├── NotFound                   404 not_found (no such route)
     ├── UnknownAction              404 unknown_action
     ├── UnsupportedVersion         404 unsupported_version
     ├── UnknownProvider            404 unknown_provider
     ├── MethodNotAllowed           405 method_not_allowed
     ├── RequestTimeout             408 request_timeout
     ├── RegistryReadOnly           409 registry_read_only
     ├── PayloadTooLarge            413 payload_too_large
     ├── RequestTooLarge            431 request_too_large (414 for the URL)
     ├── UnsupportedMediaType       415 unsupported_media_type
     ├── BadRequest                 400 bad_request (malformed HTTP)
     ├── InvalidJson                400 invalid_json
     ├── InvalidParameter           400 invalid_parameter
     ├── InvalidRequest             400 invalid_request (+ errors)
     ├── InvalidManifest            400 invalid_manifest (+ errors)
     ├── ProviderUnreachable        502 provider_unreachable
     ├── ProviderError              502 provider_error
     ├── InvalidProviderResponse    502 invalid_provider_response (+ errors)
     ├── ProviderOverloaded         503 provider_overloaded
     ├── RegistryUnavailable        503 registry_unavailable
     ├── ProviderTimeout            504 provider_timeout
     └── InternalError              500 internal_error (a bug; never expected)

Details never carry a token, a secret or a payload value: validation
messages are built from the schema, not from the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from aiohttp import web

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One schema violation: where (a JSON Pointer) and what (no values)."""

    pointer: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.pointer, "message": self.message}


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
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = tuple(errors)
        self.extra = extra or {}

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


class Unauthenticated(HubError):
    status, code, title = 401, "unauthenticated", "Unauthenticated"


class Forbidden(HubError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(HubError):
    status, code, title = 404, "not_found", "Not found"


class UnknownAction(HubError):
    status, code, title = 404, "unknown_action", "Unknown action"


class UnsupportedVersion(HubError):
    status, code, title = 404, "unsupported_version", "Unsupported version"


class UnknownProvider(HubError):
    status, code, title = 404, "unknown_provider", "Unknown provider"


class MethodNotAllowed(HubError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class RequestTimeout(HubError):
    status, code, title = 408, "request_timeout", "Request timeout"


class RegistryReadOnly(HubError):
    status, code, title = 409, "registry_read_only", "Registry is read-only"


class PayloadTooLarge(HubError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RequestTooLarge(HubError):
    status, code, title = 431, "request_too_large", "Request header fields too large"


class UriTooLong(RequestTooLarge):
    status, title = 414, "URI too long"


class UnsupportedMediaType(HubError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class BadRequest(HubError):
    status, code, title = 400, "bad_request", "Bad request"


class InvalidJson(HubError):
    status, code, title = 400, "invalid_json", "Invalid JSON"


class InvalidParameter(HubError):
    status, code, title = 400, "invalid_parameter", "Invalid parameter"


class InvalidRequest(HubError):
    status, code, title = 400, "invalid_request", "Request does not follow the action's protocol"


class InvalidManifest(HubError):
    status, code, title = 400, "invalid_manifest", "Invalid manifest"


class ProviderUnreachable(HubError):
    status, code, title = 502, "provider_unreachable", "Provider unreachable"


class ProviderError(HubError):
    status, code, title = 502, "provider_error", "Provider answered with an error"


class InvalidProviderResponse(HubError):
    status, code, title = 502, "invalid_provider_response", "Provider answer does not follow the action's protocol"


class ProviderOverloaded(HubError):
    status, code, title = 503, "provider_overloaded", "Provider overloaded"


class RegistryUnavailable(HubError):
    status, code, title = 503, "registry_unavailable", "Registry unavailable"


class ProviderTimeout(HubError):
    status, code, title = 504, "provider_timeout", "Provider timeout"


class InternalError(HubError):
    status, code, title = 500, "internal_error", "Internal error"


def problem_response(error: HubError, request_id: str) -> web.Response:
    headers = {"X-Request-Id": request_id}
    if isinstance(error, MethodNotAllowed) and "allow" in error.extra:
        headers["Allow"] = ", ".join(error.extra["allow"])
    return web.Response(
        status=error.status,
        body=orjson.dumps(error.problem(request_id)),
        content_type=PROBLEM_JSON,
        headers=headers,
    )
