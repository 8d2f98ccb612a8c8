"""The call route's direct dispatch (web/dispatch.py) picks what aiohttp's
router would, for every path and method, and leaves the rest to aiohttp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from proxy.web.app import create_app
from proxy.web.dispatch import CallDispatch
from tests.support import (
    CONSUMER_TOKEN,
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    problem,
    write_catalogue,
)

PATHS = [
    f"/v1/services/call/{ECHO}/provider-app",
    "/v1/services/call/%40test%3AEcho%3Arun/provider-app",
    "/v1/services/call/a%2Fb/provider-app",  # an encoded slash stays inside the segment
    "/v1/services/call/a/b/",
    "/v1/services/call/a/b/c",
    "/v1/services/call/a//b",
    "/v1/services/call//b",
    "/v1/services/call/a",
    "/v1/services/call/",
    "/v1/services/call/%7Ba%7D/b",
    "/v1/services/call/a/%20",
    "/v1/services/call/a/b?version=2&timeout=100",
    "/v1/services/discover/a",
    "/v1/services/CALL/a/b",
    "/healthz",
    "/docs",
    "/nothing/here",
]


def _app(tmp_path: Path) -> web.Application:
    root = write_catalogue(tmp_path / "catalogue", [echo_action()], [consumer_manifest()])
    return create_app(make_config(root))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["POST", "GET", "PUT"])
async def test_same_route_and_match_as_aiohttps_router(tmp_path: Path, path: str, method: str) -> None:
    app = _app(tmp_path)
    dispatch = app._handle
    assert isinstance(dispatch, CallDispatch)
    request = make_mocked_request(method, path, app=app)
    expected = await app.router.resolve(request)
    found = dispatch._match(request.rel_url.path_safe)  # noqa: SLF001
    if found is None or method != "POST":
        # Not taken by the direct path: aiohttp's own handling, whatever it answers.
        assert expected.route.name != "call" or method != "POST"
        return
    assert expected.route is dispatch._route  # noqa: SLF001
    assert dict(expected) == found


async def test_direct_and_aiohttp_paths_answer_alike(make_hub: Any) -> None:
    """The same call through the direct path and, with an Expect header,
    through aiohttp's router: the same answer; errors keep their shape."""
    hub: TestClient = await make_hub()
    body = {"data": {"value": 3, "label": "x"}}
    direct = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=body, headers=call_headers())
    routed = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=body,
                            headers=call_headers(Expect="100-continue"))
    assert direct.status == routed.status == 200
    assert await direct.json() == await routed.json()
    assert direct.headers["X-Request-Id"] and routed.headers["X-Request-Id"]

    # Percent-encoded action name: decoded alike.
    r = await hub.post("/v1/services/call/%40test%3AEcho%3Arun/provider-app", json=body, headers=call_headers())
    assert r.status == 200
    # Errors from the direct path are still the middleware's problem+json.
    r = await hub.post(f"/v1/services/call/{ECHO}/provider-app", json=body,
                       headers=call_headers(CONSUMER_TOKEN + "-wrong"))
    await problem(r, 401, "unauthenticated")
    r = await hub.post(f"/v1/services/call/{ECHO}/nobody", json=body, headers=call_headers())
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/problem+json")
    # Not the call route: aiohttp's router, the hub's 404 and 405.
    await problem(await hub.post("/v1/services/call/a/b/c", json=body, headers=call_headers()), 404, "not_found")
    r = await hub.put(f"/v1/services/call/{ECHO}/provider-app", json=body, headers=call_headers())
    await problem(r, 405, "method_not_allowed")
