"""2019-09 and 2020-12 keywords rewritten into those fastjsonschema runs.

fastjsonschema generates code for draft-04/06/07 only (its "2019" generator
is draft-07 with two more formats). Most 2019-09/2020-12 schemas say
nothing draft-07 cannot: `$ref` with siblings is an `allOf`,
`dependentRequired`/`dependentSchemas` are `dependencies`, `prefixItems`
plus `items` are the array form of `items` plus `additionalItems`, and
`format` and the `content*` keywords are annotations. `lower` rewrites one
schema object in place (its references already '#/…' pointers, its
identifiers gone) and returns what it could not rewrite: keywords whose
verdict depends on the dynamic scope or on what other subschemas evaluated
(`$recursiveRef`, `$dynamicRef`, `unevaluated*`) or that draft-07 lacks
(`minContains`, `maxContains`). A schema with any of those is validated by
another engine, and the load says so.
"""

from __future__ import annotations

from typing import Any

LOWERED_DRAFTS = frozenset({"2019-09", "2020-12"})
NOT_LOWERED = ("$recursiveRef", "$dynamicRef", "unevaluatedItems", "unevaluatedProperties",
               "minContains", "maxContains")
# The draft-07 generator would run these; in 2019-09/2020-12 they are
# annotations (content*), or no keyword at all.
_ANNOTATIONS = ("contentEncoding", "contentMediaType", "contentSchema")
_NOT_KEYWORDS = {"2019-09": ("dependencies",), "2020-12": ("dependencies", "additionalItems")}


def lower(node: dict[str, Any], draft: str, *, assert_formats: bool) -> tuple[list[str], list[str]]:
    """(keywords left that draft-07 cannot express, keys whose content moved)."""
    blockers = [keyword for keyword in NOT_LOWERED if keyword in node]
    moved = [key for key in (*_ANNOTATIONS, *_NOT_KEYWORDS[draft]) if node.pop(key, None) is not None]
    if not assert_formats:
        node.pop("format", None)
    if "$ref" in node and len(node) > 1:
        # draft-07 ignores the siblings of $ref; 2019-09 applies them all.
        node["allOf"] = [*node.get("allOf", ()), {"$ref": node.pop("$ref")}]
    dependencies: dict[str, Any] = {}
    dependencies.update(node.get("dependentSchemas", {}))
    for name, required in node.get("dependentRequired", {}).items():
        if name in dependencies:
            dependencies[name] = {"allOf": [dependencies[name], {"required": required}]}
        else:
            dependencies[name] = required
    if dependencies:
        node["dependencies"] = dependencies
    if draft == "2020-12" and "prefixItems" in node:
        if "items" in node:
            node["additionalItems"] = node.pop("items")
            moved.append("items")
        node["items"] = node["prefixItems"]
    return blockers, moved
