"""The registry seam: which apps exist, who they are, where they are
installed, what they serve — and the writes the admin API and CLI make.

A backend implements `Registry` whole; backends.py names it. The pipeline,
the admin API and the server only ever see this Protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from .manifest import App

PutOutcome = Literal["created", "updated", "unchanged"]


class Registry(Protocol):
    name: str  # the backend's name, as in `[registry] backend`

    # -- lookups (the hot path) --

    async def app_by_token(self, token_hash: str) -> App | None:
        """The app holding the token whose SHA-256 hex is `token_hash`."""

    async def app(self, app_id: str) -> App | None: ...

    async def providers(self, action: str, community: str) -> Sequence[App]:
        """Apps installed in `community` that serve `action`, sorted by id."""

    def health(self) -> dict[str, Any] | None:
        """What /healthz shows under `registry`; None when there is nothing to say."""

    # -- lifetime --

    async def start(self) -> None:
        """Open connections (the app's cleanup context calls it once)."""

    async def close(self) -> None: ...

    def reread(self) -> Registry:
        """The registry a catalogue reload (SIGHUP) swaps in with the new
        catalogue: a backend whose source of truth is the catalogue folder
        reads it again (raising CatalogueError); a shared one returns itself.
        Only the first registry is started and only the last one closed, so a
        registry returned in place of this one must hold no resources."""

    # -- the admin API and CLI --

    async def manifests(self) -> Sequence[Mapping[str, Any]]:
        """Every manifest as written (secrets as references), sorted by id."""

    async def manifest(self, app_id: str) -> Mapping[str, Any] | None: ...

    def check_writable(self) -> None:
        """RegistryReadOnly where this backend takes no writes; the admin API
        asks before it reads a write's body, so such writes are 409 whatever
        they carry."""

    async def put_app(self, doc: Mapping[str, Any]) -> PutOutcome:
        """Create or replace an app from a manifest the caller has validated;
        RegistryReadOnly where the backend's source of truth is elsewhere."""

    async def delete_app(self, app_id: str) -> bool:
        """False when there is no such app."""

    async def set_installed(self, community: str, app_id: str, installed: bool) -> bool:
        """False when there is no such app."""
