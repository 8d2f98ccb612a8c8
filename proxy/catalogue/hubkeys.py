"""Request schemas that refuse the hub-owned keys.

The hub adds `context` (an object) and `secret` (a string) to every
forwarded body before validating it (docs/contract.md §1), so a request
schema that closes the object without them, or gives them another type,
refuses every call. Published catalogues have such schemas (a closed
`oneOf` of bodies, a field of their own named `context`): they load, with a
warning, and the hub's OpenAPI document says no request to them is valid.

Read from the schema alone (lazy compilation never runs for this), at the
top level: through `$ref`s within the document (not past an embedded
`$id`, which moves what `#` names; and beside a `$ref`, nothing else in
draft-04/06/07, which ignore its siblings), `allOf` (any member),
`anyOf`/`oneOf` (every branch). What it cannot decide (patterns, `not`,
`if`/`then`, `const` on the secret) it leaves alone: a warning is only
given where every call is certainly refused.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

from ..jsonpointer import resolve_local
from ..validation.drafts import draft_of

# The JSON Schema type of the hub's value for each key.
HUB_KEYS = {"context": "object", "secret": "string"}
_ARTICLE = {"object": "an", "string": "a"}


def refused_hub_key(schema: Any) -> str | None:
    """Why `schema` (one that passed check_schema) refuses every body carrying the hub-owned keys, or None."""
    try:
        follow = not (isinstance(schema, dict) and b'"$id":' in orjson.dumps(schema))
    except orjson.JSONEncodeError:  # an integer past 64 bits somewhere: cannot look, do not follow
        follow = False
    ref_alone = draft_of(schema).ref_alone
    for key, kind in HUB_KEYS.items():
        why = _refuses(schema, _Walk(schema, key, kind, follow, ref_alone), set())
        if why is not None:
            return f"refuses the hub-owned key `{key}` ({why})"
    return None


class _Walk(NamedTuple):
    root: Any
    key: str
    kind: str
    follow: bool  # $refs are followed (no embedded $id moves what they name)
    ref_alone: bool  # a $ref's siblings are ignored


def _refuses(node: Any, walk: _Walk, seen: set[str]) -> str | None:
    if node is False:
        return "a false schema"
    if not isinstance(node, dict):
        return None
    key, kind = walk.key, walk.kind
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = resolve_local(walk.root, ref) if walk.follow and ref not in seen else None
        why = _refuses(target, walk, seen | {ref}) if target is not None else None
        if why is not None or walk.ref_alone:
            return why
    properties = node.get("properties")
    if isinstance(properties, dict) and key in properties:
        why = _refuses_value(properties[key], kind)
        if why is not None:
            return why
    elif node.get("additionalProperties") is False and not _matched(node.get("patternProperties"), key):
        return "additionalProperties: false, and not among the properties"
    for member in _list(node.get("allOf")):
        why = _refuses(member, walk, seen)
        if why is not None:
            return why
    for keyword in ("anyOf", "oneOf"):
        branches = _list(node.get(keyword))
        reasons = [_refuses(branch, walk, seen) for branch in branches]
        if branches and all(reasons):
            return f"every {keyword} branch: {reasons[0]}"
    return None


def _refuses_value(schema: Any, kind: str) -> str | None:
    if schema is False:
        return "a false schema"
    if not isinstance(schema, dict):
        return None
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if isinstance(types, list) and types and kind not in types:
        return f"typed {'/'.join(map(str, types))}, where the hub sends {_ARTICLE[kind]} {kind}"
    return None


def _matched(patterns: Any, key: str) -> bool:
    if not isinstance(patterns, dict):
        return False
    for pattern in patterns:
        try:
            if re.search(pattern, key):
                return True
        except (re.error, TypeError):
            return True  # cannot tell: assume it admits the key
    return False


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
