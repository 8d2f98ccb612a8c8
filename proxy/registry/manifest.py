"""App manifests: the JSON an operator writes, checked and turned into `App`.

Shared by the file backend, the redis backend and the admin API, so a
manifest means the same thing wherever it comes from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..jsonpointer import escape
from ..tokens import TOKEN_PREFIX
from ..types import QUOTA_UNITS, RATE_UNITS, Rate, parse_rate

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {"id", "displayName", "icon", "secret", "tokens", "communities", "provides", "consumes",
         "limits", "$comment"}
_PROVIDES_KEYS = {"url", "versions", "maxConcurrency", "timeoutMs", "maxRate"}
_LIMIT_KEYS = {"rate", "quota"}
ANY_ACTION = "*"


class ManifestError(Exception):
    """A manifest that cannot be used; `field` is the JSON Pointer of the culprit."""

    def __init__(self, field_: str, message: str) -> None:
        super().__init__(f"{field_ or '/'}: {message}")
        self.field = field_
        self.message = message


@dataclass(frozen=True, slots=True)
class Secret:
    """A provider's secret; its repr never shows the value."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Provision:
    """How an app serves one action."""

    url: str
    versions: frozenset[int]
    max_concurrency: int | None = None
    timeout_ms: int | None = None
    max_rate: Rate | None = None  # provider protection, across all consumers


@dataclass(frozen=True, slots=True)
class Limits:
    """A consumer's limits for one action (or "*"): either may be absent."""

    rate: Rate | None = None
    quota: Rate | None = None


@dataclass(frozen=True, slots=True)
class App:
    id: str
    display_name: str
    icon: str
    secret: Secret | None
    token_hashes: frozenset[str]
    communities: frozenset[str]
    provides: Mapping[str, Provision]
    consumes: frozenset[str]
    # Action name or "*" -> the consumer's limits, as declared.
    limits: Mapping[str, Limits] = field(default_factory=dict)
    # The manifest as written (secret reference, not value): what the admin API returns.
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "icon": self.icon}


def parse_manifest(
    doc: Any,
    *,
    environ: Mapping[str, str] | None = None,
    resolve_secret: bool = True,
) -> App:
    """Check a manifest and build the App. Raises ManifestError naming the field."""
    environ = os.environ if environ is None else environ
    if not isinstance(doc, dict):
        raise ManifestError("", "a manifest must be a JSON object")
    for key in doc:
        if key not in _KEYS:
            raise ManifestError(f"/{key}", f"unknown field (expected {', '.join(sorted(_KEYS - {'$comment'}))})")
    app_id = doc.get("id")
    if not isinstance(app_id, str) or not _ID.match(app_id):
        raise ManifestError("/id", "must be 1-128 characters of letters, digits, '.', '_' or '-'")
    display_name = doc.get("displayName", app_id)
    if not isinstance(display_name, str) or not display_name:
        raise ManifestError("/displayName", "must be a non-empty string")
    icon = doc.get("icon", "")
    if not isinstance(icon, str):
        raise ManifestError("/icon", "must be a string (a URL)")
    tokens = _string_list(doc, "tokens")
    hashes = set()
    for index, token in enumerate(tokens):
        digest = token.removeprefix(TOKEN_PREFIX)
        if not token.startswith(TOKEN_PREFIX) or not _HEX64.match(digest):
            raise ManifestError(
                f"/tokens/{index}",
                "must be 'sha256:' + 64 lowercase hex digits (tokens are stored only as hashes; "
                "`apihub token new` makes one)",
            )
        hashes.add(digest)
    communities = _string_list(doc, "communities")
    consumes = _string_list(doc, "consumes")
    provides = _provides(doc.get("provides", {}))
    secret = _secret(doc.get("secret"), environ, resolve_secret, required=bool(provides))
    return App(
        id=app_id,
        display_name=display_name,
        icon=icon,
        secret=secret,
        token_hashes=frozenset(hashes),
        communities=frozenset(communities),
        provides=provides,
        consumes=frozenset(consumes),
        limits=_limits(doc.get("limits", {})),
        manifest=doc,
    )


def _string_list(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ManifestError(f"/{key}", "must be a list of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise ManifestError(f"/{key}/{index}", "must be a non-empty string")
    return value


def _per_action(value: Any, field_: str, shape: str, keys: set[str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(action, its JSON Pointer, its object) of an object keyed by action name,
    each object holding only `keys`."""
    if not isinstance(value, dict):
        raise ManifestError(f"/{field_}", f"must be an object of action name -> {shape}")
    for action, spec in value.items():
        where = f"/{field_}/" + escape(action)
        if not isinstance(spec, dict):
            raise ManifestError(where, f"must be an object {shape}")
        for key in spec:
            if key not in keys:
                raise ManifestError(f"{where}/{key}", f"unknown field (expected {', '.join(sorted(keys))})")
        yield action, where, spec


def _provides(value: Any) -> dict[str, Provision]:
    provides: dict[str, Provision] = {}
    for action, where, spec in _per_action(value, "provides", "{url, versions, …}", _PROVIDES_KEYS):
        url = spec.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise ManifestError(f"{where}/url", "must be an http:// or https:// URL")
        versions = spec.get("versions", [1])
        if (not isinstance(versions, list) or not versions
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in versions)):
            raise ManifestError(f"{where}/versions", "must be a non-empty list of positive integers")
        limits = {}
        for key in ("maxConcurrency", "timeoutMs"):
            limit = spec.get(key)
            if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
                raise ManifestError(f"{where}/{key}", "must be a positive integer")
            limits[key] = limit
        max_rate = spec.get("maxRate")
        provides[action] = Provision(
            url=url,
            versions=frozenset(versions),
            max_concurrency=limits["maxConcurrency"],
            timeout_ms=limits["timeoutMs"],
            max_rate=None if max_rate is None else _rate(f"{where}/maxRate", max_rate, RATE_UNITS),
        )
    return provides


def _limits(value: Any) -> dict[str, Limits]:
    limits = {}
    for action, where, spec in _per_action(value, "limits", '(or "*") {rate, quota}', _LIMIT_KEYS):
        rate, quota = spec.get("rate"), spec.get("quota")
        limits[action] = Limits(
            rate=None if rate is None else _rate(f"{where}/rate", rate, RATE_UNITS),
            quota=None if quota is None else _rate(f"{where}/quota", quota, QUOTA_UNITS),
        )
    return limits


def _rate(where: str, value: Any, units: tuple[str, ...]) -> Rate:
    try:
        return parse_rate(value, units)
    except ValueError as exc:
        raise ManifestError(where, str(exc)) from None


def _secret(value: Any, environ: Mapping[str, str], resolve: bool, *, required: bool) -> Secret | None:
    if value is None:
        if required:
            raise ManifestError("/secret", "is required for an app that provides actions")
        return None
    if isinstance(value, str):
        if not value:
            raise ManifestError("/secret", "must not be empty")
        return Secret(value)
    if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str) and value["env"]:
        if not resolve:
            return None
        resolved = environ.get(value["env"])
        if not resolved:
            raise ManifestError("/secret/env", f"environment variable {value['env']} is not set or empty")
        return Secret(resolved)
    raise ManifestError("/secret", "must be a string or {\"env\": \"VARIABLE\"}")


MASK = "***"


def redacted(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without the secret's value."""
    doc = dict(manifest)
    if isinstance(doc.get("secret"), str):
        doc["secret"] = MASK
    return doc
