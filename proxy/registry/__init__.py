"""Which apps exist, who they are, where they are installed, what they serve.

One Protocol, two backends: `file` (manifests in catalogue/apps/, reloaded
with the catalogue) and `redis` (shared by every hub instance, cached in
process). The call pipeline only ever sees this Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .manifest import App, ManifestError, Provision, Secret, hash_token, parse_manifest

__all__ = [
    "App", "ManifestError", "Provision", "Registry", "Secret", "hash_token", "parse_manifest",
]


class Registry(Protocol):
    async def app_by_token(self, token_hash: str) -> App | None:
        """The app holding the token whose SHA-256 hex is `token_hash`."""

    async def app(self, app_id: str) -> App | None: ...

    async def providers(self, action: str, community: str) -> Sequence[App]:
        """Apps installed in `community` that serve `action`, sorted by id."""

    def health(self) -> dict[str, Any] | None:
        """What /healthz shows under `registry`; None when there is nothing to say."""
