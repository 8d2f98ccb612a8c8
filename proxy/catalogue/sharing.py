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
        shapes: dict[int, int] = {}
        if isinstance(document, (dict, list)):
            self._shape(document, shapes)
        return self._take(document, shapes, set())

    def _shape(self, value: Any, shapes: dict[int, int]) -> int:
        """The number of `value`'s structure (an object or array): equal
        structures, equal numbers. Its key holds a string as itself, another
        scalar with its type (1, 1.0 and True are equal, but not the same
        JSON), an object or array by its number; one flat tuple per container
        (the collector and the allocator see few objects)."""
        parts: list[Any] = [type(value)]
        for name, item in value.items() if isinstance(value, dict) else enumerate(value):
            if parts[0] is dict:
                parts.append(name)
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, (dict, list)):
                parts.append(self._shape(item, shapes))
            else:
                parts.append((type(item), item))
        key = tuple(parts)
        number = self._shapes.get(key)
        if number is None:
            number = self._shapes[key] = len(self._shapes)
        shapes[id(value)] = number
        return number

    def _take(self, value: Any, shapes: dict[int, int], used: set[int]) -> Any:
        if isinstance(value, str):
            return self._strings.setdefault(value, value)
        if not isinstance(value, (dict, list)):
            return value
        shape = shapes[id(value)]
        held = self._held.setdefault(shape, [])
        for other in held:
            if _claim(other, used):
                return other
        if isinstance(value, dict):
            for name, item in value.items():
                value[name] = self._take(item, shapes, used)
        else:
            for index, item in enumerate(value):
                value[index] = self._take(item, shapes, used)
        used.add(id(value))
        held.append(value)
        return value


def _claim(value: Any, used: set[int]) -> bool:
    """Add the ids of `value`'s objects and arrays to `used`, unless one is there already."""
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
