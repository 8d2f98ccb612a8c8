"""The embedded registry: app manifests in catalogue/apps/*.json.

Immutable once built; a reload builds a new one and swaps it in whole,
together with the catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..catalogue import CatalogueError, Problem
from .manifest import App, ManifestError, parse_manifest


class FileRegistry:
    def __init__(self, apps: Mapping[str, App]) -> None:
        self._apps = dict(apps)
        self._by_token = {digest: app for app in self._apps.values() for digest in app.token_hashes}
        index: dict[tuple[str, str], list[App]] = {}
        for app in sorted(self._apps.values(), key=lambda a: a.id):
            for action in app.provides:
                for community in app.communities:
                    index.setdefault((action, community), []).append(app)
        self._providers = {key: tuple(apps) for key, apps in index.items()}

    @property
    def apps(self) -> Mapping[str, App]:
        return self._apps

    async def app_by_token(self, token_hash: str) -> App | None:
        return self._by_token.get(token_hash)

    async def app(self, app_id: str) -> App | None:
        return self._apps.get(app_id)

    async def providers(self, action: str, community: str) -> Sequence[App]:
        return self._providers.get((action, community), ())

    def health(self) -> dict[str, Any] | None:
        return None


def read_apps_folder(
    folder: Path,
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
) -> dict[str, App]:
    """Every manifest in `folder`; raises CatalogueError naming each bad file.

    `resolve_secrets=False` checks a `{"env": ...}` secret's shape without
    reading the variable (`apihub catalogue check` needs no secrets)."""
    apps: dict[str, App] = {}
    sources: dict[str, str] = {}
    token_owner: dict[str, str] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return apps
    for path in sorted(folder.glob("*.json")):
        source = str(path)
        try:
            app = parse_manifest(orjson.loads(path.read_bytes()), environ=environ,
                                 resolve_secret=resolve_secrets)
        except OSError as exc:
            problems.append(Problem(source, "", f"cannot read: {exc.strerror}"))
            continue
        except orjson.JSONDecodeError as exc:
            problems.append(Problem(source, "", f"not valid JSON: {exc}"))
            continue
        except ManifestError as exc:
            problems.append(Problem(source, exc.field, exc.message))
            continue
        if app.id in apps:
            problems.append(Problem(source, "/id", f"app {app.id!r} is also defined in {sources[app.id]}"))
            continue
        for digest in app.token_hashes:
            if digest in token_owner:
                problems.append(Problem(source, "/tokens", f"a token is also held by app {token_owner[digest]!r}"))
            token_owner[digest] = app.id
        apps[app.id] = app
        sources[app.id] = source
    if problems:
        raise CatalogueError(problems)
    return apps
