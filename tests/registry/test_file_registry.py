"""The file registry's reload reads only the manifests that changed, and
keeps itself when none did."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from proxy.errors import CatalogueError
from proxy.registry.file import FileRegistry

from tests.support import consumer_manifest, provider_manifest, write_catalogue


def _bump(path: Path, **changes: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))
    info = path.stat()  # a new mtime even within the file system's clock tick
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))


async def test_reread_keeps_what_did_not_change(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path, [], [consumer_manifest(), provider_manifest("p", "http://127.0.0.1:1/x")])
    first = FileRegistry({}, folder=root / "apps", environ={}).reread()
    assert first.reread() is first  # nothing changed: the same indexes
    consumer, provider = await first.app("consumer-app"), await first.app("p")
    _bump(root / "apps" / "p.json", displayName="Provider, renamed")
    second = first.reread()
    assert second is not first
    assert await second.app("consumer-app") is consumer  # not parsed again
    renamed = await second.app("p")
    assert renamed is not provider and renamed is not None and renamed.display_name == "Provider, renamed"
    (root / "apps" / "p.json").unlink()
    third = second.reread()
    assert await third.app("p") is None and await third.app("consumer-app") is consumer
    assert third.reread() is third


def test_a_broken_manifest_rejects_the_reread(tmp_path: Path) -> None:
    root = write_catalogue(tmp_path, [], [consumer_manifest()])
    first = FileRegistry({}, folder=root / "apps", environ={}).reread()
    (root / "apps" / "bad.json").write_text("{")
    with pytest.raises(CatalogueError) as caught:
        first.reread()
    assert "bad.json" in str(caught.value)
    (root / "apps" / "bad.json").unlink()
    (root / "apps" / "dir.json").mkdir()
    with pytest.raises(CatalogueError) as caught:
        first.reread()
    assert "dir.json" in str(caught.value) and "cannot read" in str(caught.value)


def test_a_replaced_registry_is_freed_without_the_cyclic_collector(tmp_path: Path) -> None:
    """A reload counts on it (web/heap.py): frozen apps are freed by their
    reference counts alone, so no full collection is owed for them."""
    import gc

    root = write_catalogue(tmp_path, [], [consumer_manifest(), provider_manifest("p", "http://127.0.0.1:1/x")])
    gc.collect()
    registry = FileRegistry({}, folder=root / "apps", environ={}).reread()
    del registry
    assert gc.collect() == 0
