"""Same-document references resolved (jsonpointer.resolve_local)."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.jsonpointer import resolve_local

DOC = {"a": [{"b~/c": 1}], "d%": {"": 2}}


@pytest.mark.parametrize(("ref", "found"), [
    ("#", DOC), ("#/a/0", {"b~/c": 1}), ("#/a/0/b~0~1c", 1), ("#/d%25", {"": 2}), ("#/d%25/", 2),
    ("#/a/1", None), ("#/a/²", None), ("#/a/-1", None), ("#/a/0x0", None), ("#/x", None),
    ("#anchor", None), ("other.json#/a", None),
])
def test_resolve_local(ref: str, found: Any) -> None:
    assert resolve_local(DOC, ref) == found
