"""The catalogue reference (/docs) and the operator console (/admin/) driven
in a real Chromium (Debian's /usr/bin/chromium through Playwright), against
a hub and its admin listener on real sockets and real providers.

Skipped with a reason when chromium is missing, failed under CI (CI=true).
With APIHUB_SCREENSHOTS=1 the tests also rewrite docs/img/*.png.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.admin.app import create_admin_app
from proxy.web.app import create_app
from proxy.web.pages import CSP
from proxy.web.state import HUB
from tests.conftest import Provider
from tests.support import (
    ECHO,
    call_headers,
    consumer_manifest,
    echo_action,
    make_config,
    provider_manifest,
    write_catalogue,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "img"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ADMIN_TOKEN = "adm-console-9c1d2e3f4a"
ADMIN = {"token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
FAILURES = 2  # the breaker's threshold in these tests
WAIT_MS = 10_000  # the console polls every 3 s

async_playwright: Any
try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None


def _require_chromium() -> None:
    missing = ("playwright is not installed" if async_playwright is None
               else None if os.access(CHROMIUM, os.X_OK) else f"{CHROMIUM} is missing (apt-get install chromium)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the page tests must run under CI: {missing}")
        pytest.skip(missing)


@dataclass
class Browsing:
    """A page, every URL it asked for (the proof that nothing left 127.0.0.1),
    and its script errors and CSP refusals (none expected)."""

    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_local(self) -> None:
        assert self.requests
        outside = [u for u in self.requests if urlsplit(u).hostname != "127.0.0.1"]
        assert not outside, outside
        assert not self.errors, self.errors


@pytest.fixture
async def browse() -> AsyncIterator[Callable[..., Awaitable[Browsing]]]:
    _require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            async def open_page(viewport: dict[str, int] = LAPTOP) -> Browsing:
                page = await browser.new_page(viewport=viewport)
                seen = Browsing(page)
                page.on("request", lambda request: seen.requests.append(request.url))
                page.on("pageerror", lambda error: seen.errors.append(str(error)))
                page.on("console", lambda msg: seen.errors.append(msg.text)
                        if "Content Security Policy" in msg.text else None)
                page.set_default_timeout(WAIT_MS)
                return seen

            yield open_page
        finally:
            await browser.close()


@dataclass
class Hub:
    url: str
    admin_url: str
    root: Path
    server: TestServer

    async def call(self, provider: str) -> int:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self.url}/v1/services/call/{ECHO}/{provider}",
                                    json={"data": {"value": 1, "label": "x"}}, headers=call_headers()) as r:
                await r.read()
                return r.status


async def failing(request: web.Request, raw: bytes) -> web.StreamResponse:
    return web.Response(status=500, text="down")


@pytest.fixture
async def hub(tmp_path: Path, aiohttp_server: Any, provider: Provider,
              start_provider: Callable[..., Awaitable[Provider]]) -> Hub:
    """The shipped actions plus the test echo action; a good and a failing provider."""
    broken = await start_provider(failing)
    root = tmp_path / "catalogue"
    for folder in ("actions", "openapi"):
        shutil.copytree(REPO / "catalogue" / folder, root / folder)
    write_catalogue(root, [echo_action()], [
        provider_manifest("provider-app", provider.url),
        provider_manifest("flaky-erp", broken.url),
        consumer_manifest(),
    ])
    config = make_config(root, admin=ADMIN, breaker={"failure_threshold": FAILURES, "cooldown_ms": 600_000})
    server = await aiohttp_server(create_app(config))
    admin = await aiohttp_server(create_admin_app(server.app[HUB]))
    return Hub(str(server.make_url("")).rstrip("/"), str(admin.make_url("")).rstrip("/"), root, server)


async def screenshot(page: Any, name: str) -> None:
    if os.environ.get("APIHUB_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / name), full_page=True)


async def fits(page: Any, width: int) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth") <= width


async def login(page: Any, hub: Hub, token: str = ADMIN_TOKEN) -> None:
    await page.goto(f"{hub.admin_url}/admin/")
    await page.fill("#token", token)
    await page.keyboard.press("Enter")


# ---- /docs ----------------------------------------------------------------------------------

async def test_reference_lists_the_actions_expands_a_schema_and_follows_reloads(hub: Hub, browse: Any) -> None:
    seen = await browse()
    page = seen.page
    response = await page.goto(f"{hub.url}/docs")
    assert response.headers["content-security-policy"] == CSP
    names = sorted(hub.server.app[HUB].catalogue.actions)
    assert len(names) >= 4
    await page.wait_for_selector("details.action")
    assert sorted(await page.locator("details.action .aname").all_text_contents()) == names
    assert "generation 1" in await page.text_content("#generation")

    # Keyboard: focus the echo action's summary, open it with Enter, then open its `data` node.
    card = page.locator("details.action", has=page.locator(".aname", has_text=ECHO))
    await card.locator("summary").first.focus()
    await page.keyboard.press("Enter")
    assert await card.evaluate("d => d.open")
    assert f"/v1/services/call/{ECHO}/PROVIDER?version=2" in await card.locator(".curl pre").text_content()
    request_tree = card.locator("details.node", has=page.locator(".name", has_text="v2")).first
    assert await request_tree.evaluate("d => d.open")  # the newest version
    data = request_tree.locator("details.node", has=page.locator(".name", has_text="data")).first
    await data.locator("summary").first.focus()
    await page.keyboard.press("Enter")
    value = data.locator(".leaf", has=page.locator(".name", has_text="value")).first
    assert "integer" in await value.text_content()
    assert "minimum: 0" in await value.text_content()
    # Hub-owned fields are not what a consumer sends.
    assert await request_tree.locator(".name", has_text="secret").count() == 0
    assert "unknown_provider" in await card.locator("table.errors").text_content()
    await screenshot(page, "docs.png")

    # Filtering, and a phone's width.
    await page.fill("#filter", "payables")
    assert await page.locator("details.action:visible").count() == 1
    phone = await browse(PHONE)
    await phone.page.goto(f"{hub.url}/docs")
    await phone.page.wait_for_selector("details.action")
    await fits(phone.page, PHONE["width"])

    # The page polls the document: a reload shows up without reloading the page.
    write_catalogue(hub.root, [echo_action("@test:Later:added")], [])
    assert await hub.server.app[HUB].reload()
    await phone.page.locator(".aname", has_text="@test:Later:added").wait_for()
    assert "generation 2" in await phone.page.text_content("#generation")
    seen.assert_local()
    phone.assert_local()


async def test_hostile_catalogue_data_stays_data_on_the_reference(hub: Hub, browse: Any) -> None:
    """An action named to break out of the ready curl's quotes, and a `$ref`
    to a name that is no valid percent-encoding: the curl, pasted in a
    shell, only calls curl (with the reader's $TOKEN); the page renders."""
    import subprocess

    hostile = echo_action("@sh:x';touch$IFS$9PWNED;'", versions=(1,))
    request = hostile["versions"]["1"]["request"]
    request["definitions"]["a%zz"] = {"type": "object", "title": "odd name"}
    request["properties"]["data"] = {"$ref": "#/definitions/a%zz"}
    write_catalogue(hub.root, [hostile], [])
    assert await hub.server.app[HUB].reload()
    seen = await browse()
    await seen.page.goto(f"{hub.url}/docs")
    card = seen.page.locator("details.action", has=seen.page.locator(".aname", has_text="@sh:x"))
    await card.locator("summary").first.click()
    curl = await card.locator(".curl pre").text_content()
    assert curl is not None
    shell = subprocess.run(["bash", "-c", 'curl() { printf "%s\\n" "$@"; }; TOKEN=t0k COMMUNITY=c0m\n' + curl],
                           capture_output=True, text=True, cwd=hub.root, timeout=10)
    args = shell.stdout.splitlines()
    assert args[3].endswith("/v1/services/call/@sh:x';touch$IFS$9PWNED;'/PROVIDER?version=1"), args
    assert "Authorization: Bearer t0k" in args and "community-id: c0m" in args
    assert not (hub.root / "PWNED").exists()
    assert await card.locator(".name", has_text="data").count() >= 1
    # Each value isolated for bidirectional text: a right-to-left override in one cannot reorder the next.
    assert await card.locator(".aname").evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    seen.assert_local()  # no script error either


# ---- /admin/ --------------------------------------------------------------------------------

async def test_console_refuses_a_wrong_token_then_shows_a_breaker_opening(hub: Hub, browse: Any) -> None:
    seen = await browse()
    page = seen.page
    await login(page, hub, "not-the-token")
    await page.locator("#login-error", has_text="refused").wait_for()
    assert await page.is_hidden("#console")
    assert await page.evaluate("sessionStorage.length") == 0

    await page.fill("#token", ADMIN_TOKEN)
    await page.keyboard.press("Enter")
    row = page.locator('#providers tr[data-provider="flaky-erp"]')
    await row.locator(".badge", has_text="closed").wait_for()
    assert await hub.call("provider-app") == 200
    for _ in range(FAILURES):
        assert await hub.call("flaky-erp") == 502
    assert await hub.call("flaky-erp") == 503  # open: refused without a call
    await row.locator(".badge.open").wait_for(timeout=WAIT_MS)
    assert "provider_error × 2" in await row.text_content()
    assert "provider_overloaded × 1" in await row.text_content()
    conformance = page.locator("#conformance tr", has_text="flaky-erp")
    await conformance.first.wait_for()
    assert "ms" in await page.locator("#conformance tr", has_text="provider-app").text_content()
    assert hub.server.app[HUB].instance in await page.text_content("#instance")
    await page.locator("#p99-now", has_text="ms").wait_for(timeout=WAIT_MS)  # the chart has two samples
    if os.environ.get("APIHUB_SCREENSHOTS") == "1":
        for round_ in range(1, 6):  # a few more samples, so the picture shows a line
            for _ in range(3 * round_):
                await hub.call("provider-app")
            await page.locator("#window", has_text=f"last {3 * (round_ + 1)} s").wait_for(timeout=WAIT_MS)
    await screenshot(page, "console.png")
    phone = await browse(PHONE)
    await login(phone.page, hub)
    await phone.page.locator("#providers table").wait_for()
    await fits(phone.page, PHONE["width"])
    seen.assert_local()
    phone.assert_local()


async def test_reload_button_picks_up_a_changed_catalogue(hub: Hub, browse: Any) -> None:
    seen = await browse()
    page = seen.page
    await login(page, hub)
    await page.locator("#hub", has_text="generation 1").wait_for()
    write_catalogue(hub.root, [echo_action("@test:Later:added")], [])
    await page.click("#reload")
    await page.locator("#message", has_text="generation 2").wait_for()
    await page.locator("#actions", has_text="@test:Later:added").wait_for()

    (hub.root / "actions" / "broken.json").write_text("{not json")
    await page.click("#reload")
    await page.locator("#message", has_text="Reload refused").wait_for()
    assert "broken.json" in await page.text_content("#reload-error")
    assert hub.server.app[HUB].catalogue.generation == 2
    seen.assert_local()
