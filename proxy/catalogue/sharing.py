"""Equal parts of different JSON documents held once.

Action files repeat one another: shared envelopes, the same definitions,
the same small schemas (`{"type": "string"}`) and strings. Decoded, each
file's copy was its own objects: at 10,000 actions the schemas were ~120 MB
of a worker's ~300 MB. A load hands every decoded action file to one
`Sharing`, which replaces each object or array that an earlier file of the
load already has, equal and in the same key order, by that file's object,
and each string by the first equal one.

Never twice within one document: code that copies a schema and edits the
copy in place (copy.deepcopy keeps an object reached twice as one object)
would edit it twice. So a document is a tree, as decoded; only different
documents share. Schemas are never edited in place (whoever edits one
edits a copy), which sharing across documents needs.
"""

from __future__ import annotations

import math
from typing import Any


class Sharing:
    """One load's table of what its documents hold; dropped with the load."""

    __slots__ = ("_shapes", "_held", "_strings")

    def __init__(self) -> None:
        self._shapes: dict[Any, int] = {}  # a value's structure -> its number
        # structure number -> objects or arrays of that structure: a document
        # holding it n times takes n of them
        self._held: dict[int, list[Any]] = {}
        self._strings: dict[str, str] = {}

    def share(self, document: Any) -> Any:
        """`document` (fresh from the decoder: edited in place), its parts
        that an earlier document has replaced by those."""
        if isinstance(document, str):
            return self._strings.setdefault(document, document)
        if not isinstance(document, (dict, list)):
            return document
        shapes: dict[int, int] = {}
        try:
            self._shape(document, shapes)
            return self._take(document, _Claims(shapes))
        except RecursionError:
            # Nested deeper than Python recurses (the decoder takes 1,024 levels):
            # kept as it is, or as far as it was taken, still a tree; whoever
            # reads it next says what is wrong with it.
            return document

    def _shape(self, value: dict[str, Any] | list[Any], shapes: dict[int, int]) -> int:
        """The number of `value`'s structure: equal structures, equal
        numbers. Its key holds a string as itself, another scalar with its
        type (1, 1.0 and True are equal, but not the same JSON), an object
        or array by its number; one flat tuple per object or array (the
        collector and the allocator see few objects)."""
        parts: list[Any]
        if isinstance(value, dict):
            parts = [dict]
            for name, item in value.items():
                parts.append(name)
                parts.append(self._part(item, shapes))
        else:
            parts = [list, *(self._part(item, shapes) for item in value)]
        key = tuple(parts)
        number = self._shapes.get(key)
        if number is None:
            number = self._shapes[key] = len(self._shapes)
        shapes[id(value)] = number
        return number

    def _part(self, item: Any, shapes: dict[int, int]) -> Any:
        if isinstance(item, str):
            return item
        if isinstance(item, (dict, list)):
            return self._shape(item, shapes)
        if isinstance(item, float):
            # -0.0 == 0.0, but a published schema must say what its file says.
            return (float, item, math.copysign(1.0, item))
        return (type(item), item)

    def _take(self, value: dict[str, Any] | list[Any], claims: _Claims) -> Any:
        shape = claims.shapes[id(value)]
        held = self._held.get(shape)
        if held is None:
            held = self._held[shape] = []
        else:
            # Those before the cursor are this document's already (or were refused).
            for index in range(claims.cursor.get(shape, 0), len(held)):
                if claims.claim(held[index]):
                    claims.cursor[shape] = index + 1
                    return held[index]
        strings = self._strings
        if isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, str):
                    value[name] = strings.setdefault(item, item)
                elif isinstance(item, (dict, list)):
                    value[name] = self._take(item, claims)
        else:
            for index, item in enumerate(value):
                if isinstance(item, str):
                    value[index] = strings.setdefault(item, item)
                elif isinstance(item, (dict, list)):
                    value[index] = self._take(item, claims)
        claims.used.add(id(value))
        held.append(value)
        claims.cursor[shape] = len(held)
        return value


class _Claims:
    """What one document holds so far."""

    __slots__ = ("shapes", "used", "cursor")

    def __init__(self, shapes: dict[int, int]) -> None:
        self.shapes = shapes  # id of each of its objects and arrays -> structure number
        self.used: set[int] = set()  # ids of the objects and arrays it holds
        self.cursor: dict[int, int] = {}  # structure number -> where to look for a free one of those held

    def claim(self, value: Any) -> bool:
        """Add the ids of `value`'s objects and arrays to `used`, unless one is there already."""
        used = self.used
        if id(value) in used:
            return False
        found: list[int] = []
        stack = [value]
        while stack:
            node = stack.pop()
            if id(node) in used:
                return False
            found.append(id(node))
            for item in node.values() if isinstance(node, dict) else node:
                if isinstance(item, (dict, list)):
                    stack.append(item)
        used.update(found)
        return True
