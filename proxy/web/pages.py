"""`GET /docs`: the catalogue as a browsable reference, and the one way the
hub serves its own HTML, scripts and styles (the admin console uses it too).

The page is a few KB of static files in proxy/web/static/ that render
`/v1/openapi.json` in the browser, so it follows reloads with no server-side
templating. Every answer carries a Content-Security-Policy that allows only
the hub's own origin and no inline script: a catalogue description can never
run code in a reader's browser, and the page makes no external request.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..errors import NotFound
from .middleware import Route

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The pages are small and change with the hub's version: revalidate rather than go stale.
    "Cache-Control": "no-cache",
}
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

STATIC = Path(__file__).parent / "static"


class StaticFiles:
    """The files of some folders, read once at startup: serving them never
    touches the disk, and a name outside the folder cannot be asked for."""

    def __init__(self, *folders: Path) -> None:
        self.files = {path.name: path.read_bytes() for folder in folders for path in sorted(folder.iterdir())
                      if path.suffix in _TYPES}

    def response(self, name: str) -> web.Response:
        body = self.files.get(name)
        if body is None:
            raise NotFound("no such page asset")
        return web.Response(body=body, content_type=_TYPES[Path(name).suffix],
                            charset="utf-8", headers=SECURITY_HEADERS)

    def routes(self, page_path: str, page_file: str, assets_prefix: str, route_prefix: str) -> list[Route]:
        """GET `page_path` → the HTML page; GET `assets_prefix`{name} → the other files."""
        async def page(request: web.Request) -> web.StreamResponse:
            return self.response(page_file)

        async def asset(request: web.Request) -> web.StreamResponse:
            return self.response(request.match_info["name"])

        return [
            ("GET", page_path, page, f"{route_prefix}_page"),
            ("GET", assets_prefix + "{name}", asset, f"{route_prefix}_asset"),
        ]


def routes() -> list[Route]:
    return StaticFiles(STATIC).routes("/docs", "docs.html", "/docs/static/", "docs")
