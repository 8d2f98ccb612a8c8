"""JSON Pointers (RFC 6901), written in one place."""

from __future__ import annotations

from collections.abc import Iterable


def escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(parts: Iterable[str | int]) -> str:
    """`["data", "a/b", 0]` → `/data/a~1b/0`."""
    return "".join("/" + escape(part) for part in parts)
