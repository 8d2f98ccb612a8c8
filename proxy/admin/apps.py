"""The admin API for apps and installations (docs/contract.md, "Admin API"):

    GET    /admin/v1/apps                                  {"backend", "apps": [manifest...]}
    GET    /admin/v1/apps/{id}                             the manifest
    GET    /admin/v1/apps/{id}/usage                       what remains of each of its limits
    PUT    /admin/v1/apps/{id}                             201 created / 200 replaced
    DELETE /admin/v1/apps/{id}                             204
    PUT    /admin/v1/communities/{community}/apps/{id}     200, installed
    DELETE /admin/v1/communities/{community}/apps/{id}     204, uninstalled

Manifests are returned as written except the secret: `{"env": NAME}` stays,
an inline string becomes "***". Writes need the redis backend; with the file
backend the files are the source of truth and every write answers 409.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..errors import InvalidJson, InvalidManifest, NotFound
from ..jsonsafe import UnsafeJson, dumps, loads
from ..observe.logs import get_logger
from ..pipeline.limits import usage_checks
from ..pipeline.steps import check_media_type
from ..registry.manifest import ManifestError, parse_manifest, redacted
from ..types import ValidationIssue
from ..web.middleware import Route, send_continue
from ..web.state import HUB

log = get_logger("apihub.admin")

def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


async def list_apps(request: web.Request) -> web.StreamResponse:
    registry = request.app[HUB].snapshot.registry
    manifests = await registry.manifests()
    return _json({"backend": registry.name, "apps": [redacted(m) for m in manifests]})


async def get_app(request: web.Request) -> web.StreamResponse:
    app_id = request.match_info["id"]
    manifest = await request.app[HUB].snapshot.registry.manifest(app_id)
    if manifest is None:
        raise NotFound(f"no app {app_id!r} in the registry")
    return _json(redacted(manifest))


async def app_usage(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    app_id = request.match_info["id"]
    app = await hub.snapshot.registry.app(app_id)
    if app is None:
        raise NotFound(f"no app {app_id!r} in the registry")
    usage: list[dict[str, Any]] = []
    if hub.limits is not None:
        labelled = usage_checks(hub.limits, app)
        outcomes = await hub.limits.limiter.peek([check for _, check in labelled]) if labelled else ()
        for (labels, check), outcome in zip(labelled, outcomes, strict=True):
            usage.append({**labels, "kind": check.kind, "limit": check.rate.count, "window": check.rate.window_s,
                          "used": check.rate.count - outcome.remaining, "remaining": outcome.remaining,
                          "resetSeconds": round(outcome.reset_s, 3)})
    return _json({"app": app_id, "backend": hub.limits.limiter.name if hub.limits else None, "limits": usage})


async def put_app(request: web.Request) -> web.StreamResponse:
    registry = request.app[HUB].snapshot.registry
    registry.check_writable()  # 409 before the body is even read
    app_id = request.match_info["id"]
    doc = await _manifest_body(request)
    if doc.get("id") != app_id:
        raise InvalidManifest(
            f"manifest field /id: does not match the app id in the URL ({app_id!r})",
            errors=[ValidationIssue("/id", "must equal the app id in the URL")])
    _validate(doc)
    try:
        outcome = await registry.put_app(doc)
    except ManifestError as exc:  # a token held by another app
        raise _invalid(exc) from None
    log.info("admin_app_put", app=app_id, outcome=outcome)
    return _json(redacted(doc), status=201 if outcome == "created" else 200)


async def delete_app(request: web.Request) -> web.StreamResponse:
    registry = request.app[HUB].snapshot.registry
    registry.check_writable()
    app_id = request.match_info["id"]
    if not await registry.delete_app(app_id):
        raise NotFound(f"no app {app_id!r} in the registry")
    log.info("admin_app_deleted", app=app_id)
    return web.Response(status=204)


async def install(request: web.Request) -> web.StreamResponse:
    return await _set_installed(request, True)


async def uninstall(request: web.Request) -> web.StreamResponse:
    return await _set_installed(request, False)


async def _set_installed(request: web.Request, installed: bool) -> web.StreamResponse:
    registry = request.app[HUB].snapshot.registry
    registry.check_writable()
    app_id, community = request.match_info["id"], request.match_info["community"]
    if not await registry.set_installed(community, app_id, installed):
        raise NotFound(f"no app {app_id!r} in the registry")
    log.info("admin_app_installed" if installed else "admin_app_uninstalled", app=app_id,
             community=community)
    if not installed:
        return web.Response(status=204)
    return _json({"community": community, "app": app_id, "installed": True})


async def _manifest_body(request: web.Request) -> dict[str, Any]:
    check_media_type(request.headers.get("Content-Type"))
    await send_continue(request, request.app[HUB].config.limits.max_request_bytes)
    raw = await request.read()
    try:
        # The JSON rules of a call's body (depth, exact numbers): a manifest is
        # stored and encoded again, and orjson refuses past 254 levels.
        doc = loads(raw, max_depth=request.app[HUB].config.limits.max_json_depth, unique_keys=False)
    except UnsafeJson as exc:
        raise InvalidJson(f"body: {exc.detail}", errors=exc.issues) from None
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest field /: a manifest must be a JSON object",
                              errors=[ValidationIssue("", "must be a JSON object")])
    return doc


def _validate(doc: dict[str, Any]) -> None:
    # The secret may name an environment variable that only the hub instances
    # have: it is checked for shape here and resolved by each instance.
    try:
        parse_manifest(doc, resolve_secret=False)
    except ManifestError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ManifestError) -> InvalidManifest:
    return InvalidManifest(f"manifest field {exc.field or '/'}: {exc.message}",
                           errors=[ValidationIssue(exc.field, exc.message)])


def routes() -> list[Route]:
    return [
        ("GET", "/admin/v1/apps", list_apps, "admin_apps"),
        ("GET", "/admin/v1/apps/{id}", get_app, "admin_app"),
        ("GET", "/admin/v1/apps/{id}/usage", app_usage, "admin_app_usage"),
        ("PUT", "/admin/v1/apps/{id}", put_app, "admin_app_put"),
        ("DELETE", "/admin/v1/apps/{id}", delete_app, "admin_app_delete"),
        ("PUT", "/admin/v1/communities/{community}/apps/{id}", install, "admin_install"),
        ("DELETE", "/admin/v1/communities/{community}/apps/{id}", uninstall, "admin_uninstall"),
    ]
