"""JSON Pointers (RFC 6901), written in one place."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote


def escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(parts: Iterable[str | int]) -> str:
    """`["data", "a/b", 0]` → `/data/a~1b/0`."""
    return "".join("/" + escape(part) for part in parts)


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def resolve_local(document: Any, ref: str) -> Any:
    """The value a same-document reference (`#/a/b`, percent-decoded) names
    in `document`, or None when it names nothing."""
    path = unquote(ref[1:]) if ref.startswith("#") else None
    if path is None or (path and not path.startswith("/")):
        return None  # another document, or an anchor (`#name`)
    node = document
    for token in path.split("/")[1:] if path else ():
        token = unescape(token)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isascii() and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node
