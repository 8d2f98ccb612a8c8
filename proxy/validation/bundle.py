"""References resolved at load, and one self-contained document for fastjsonschema.

A schema may name its parts by URI: embedded resources (`$id` inside the
schema), anchors (`$anchor`, draft-04/06/07 `"$id": "#name"`), absolute
URIs and `urn:` bases, relative references (`"node"`) resolved against an
`$id`, and the draft's own meta-schema. Every reference is resolved here,
with the `referencing` library, against the schema itself and the standard
meta-schemas shipped with `jsonschema_specifications`; anything else is a
remote reference and the schema is refused: nothing is ever fetched.

fastjsonschema resolves only `#/json/pointer` references within one
document that has no `$id` (a URN or `file:` root `$id` crashes it; nested
ones make it fetch). So `bundle` hands it a copy in which every reference
is such a pointer, every identifier is gone, and the meta-schemas it refers
to are copied into the root's `definitions` (`$defs` from 2019-09 on) as
`BUNDLED-<n>`, where the exported OpenAPI document (web/openapi.py) finds
them too. With `lower`, 2019-09 and
2020-12 schemas are also rewritten into the draft-07 keywords the
fastjsonschema generator runs (lower.py); what has no such rewrite is
listed in `Bundle.blockers` and that schema goes to another engine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import referencing.exceptions
import referencing.jsonschema
from jsonschema_specifications import REGISTRY as META_SCHEMAS
from referencing import Specification
from referencing._core import Resolver

from ..jsonpointer import pointer
from . import lower as lowering
from .base import SchemaError

# Where copies of the meta-schemas a schema refers to go, in the root.
BUNDLED = "$apihub-bundle"  # the prefix of the names the hub adds there

SPECIFICATIONS: dict[str, Specification[Any]] = {
    "draft-04": referencing.jsonschema.DRAFT4,
    "draft-06": referencing.jsonschema.DRAFT6,
    "draft-07": referencing.jsonschema.DRAFT7,
    "2019-09": referencing.jsonschema.DRAFT201909,
    "2020-12": referencing.jsonschema.DRAFT202012,
}
_DRAFT_OF_SPEC = {id(spec): name for name, spec in SPECIFICATIONS.items()}
_REF_KEYWORDS = ("$ref", "$recursiveRef", "$dynamicRef")
_IDENTIFIERS = ("$id", "id", "$anchor", "$dynamicAnchor", "$recursiveAnchor")

Path = tuple[str | int, ...]
Location = tuple[str, Path]  # ("" for the schema itself or a meta-schema's URI, pointer)


@dataclass
class Bundle:
    """A schema whose references all resolved without fetching anything."""

    schema: Any  # for fastjsonschema: one document, '#/…' references only, no identifiers
    # (pointer, keyword) that fastjsonschema cannot run: the schema needs another engine
    blockers: list[tuple[str, str]] = field(default_factory=list)


# Identifiers and references are strings: a property named "id" ("id":{...}) is not one.
_MARKERS = tuple(orjson.dumps(keyword) + b':"' for keyword in (*_IDENTIFIERS, *_REF_KEYWORDS))
# References as orjson writes them that need no bundling: '#' and '#/...'.
_PLAIN_REFS = (b'"$ref":"#/', b'"$ref":"#"')


def needs_bundling(schema: Any) -> bool:
    """Whether `bundle` has anything to do: some identifier, or a reference
    that is not a plain '#/…' pointer. Most schemas have neither, and skip it."""
    raw = orjson.dumps(schema)
    # A look at the bytes first (C speed): the walk below runs only when a
    # keyword it looks for appears at all, other than as plain '#' $refs.
    if not any(marker in raw for marker in _MARKERS if marker != b'"$ref":"') and (
            raw.count(b'"$ref":"') == sum(raw.count(plain) for plain in _PLAIN_REFS)):
        return False
    for node in _nodes(schema):
        for keyword in _IDENTIFIERS:
            if keyword in node and (keyword != "id" or isinstance(node[keyword], str)):
                return True
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if isinstance(ref, str) and not (ref == "#" or ref.startswith("#/")):
                return True
    return False


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a JSON document, data included: a cheap over-approximation."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_references(schema: Any, draft: str) -> None:
    """Raise SchemaError naming the first reference of `schema` (a `draft`
    schema that passed the meta-schema check) that would need a fetch."""
    if isinstance(schema, dict) and needs_bundling(schema):
        _Bundler(schema, SPECIFICATIONS[draft], lower=False, assert_formats=True).resolve()


def bundle(schema: Any, draft: str, *, lower: bool = False, assert_formats: bool = True) -> Bundle:
    """`check_references`, then the one-document copy for fastjsonschema;
    `schema` is left as it is."""
    root = orjson.loads(orjson.dumps(schema))  # private: edited in place below
    if not isinstance(root, dict):
        return Bundle(root)
    bundler = _Bundler(root, SPECIFICATIONS[draft], lower=lower, assert_formats=assert_formats)
    bundler.resolve()
    return Bundle(bundler.output(), bundler.blockers)


class _Bundler:
    def __init__(self, root: dict[str, Any], spec: Specification[Any], *, lower: bool,
                 assert_formats: bool) -> None:
        self.root = root
        self.spec = spec
        self.lower = lower
        self.assert_formats = assert_formats
        self.index = _index(root)
        self.visited: dict[Location, tuple[Any, Specification[Any]]] = {}
        self.refs: dict[tuple[Location, str], Location | bool] = {}
        self.externals: dict[str, int] = {}  # meta-schema URI -> n in its name BUNDLED-<n>
        self.defs = "definitions" if _DRAFT_OF_SPEC[id(spec)].startswith("draft-") else "$defs"
        own = root.get(self.defs)
        if isinstance(own, dict) and any(name.startswith(BUNDLED) for name in own):
            raise SchemaError(pointer((self.defs,)), f"names starting with {BUNDLED!r} are reserved by the hub")
        self.blockers: list[tuple[str, str]] = []
        self.moved: set[Location] = set()  # places the lowering rewrote
        self.entries: dict[str, str] = {}  # meta-schema URI -> the first reference to it from the schema

    def resolve(self) -> None:
        resource = self.spec.create_resource(self.root)
        base = resource.id() or ""
        try:
            registry = META_SCHEMAS.with_resource(base, resource).crawl()
        except (referencing.exceptions.Unresolvable, ValueError, TypeError) as exc:
            raise SchemaError("", f"identifiers cannot be resolved: {exc}") from None
        self.walk(self.root, ("", ()), registry.resolver(base), self.spec)

    # -- the walk: every schema location, then every reference's target

    def walk(self, start: Any, at: Location, resolver: Resolver[Any], spec: Specification[Any]) -> None:
        stack = [(start, at, resolver, spec)]
        while stack:
            node, loc, resolver, spec = stack.pop()
            if loc in self.visited or not isinstance(node, dict):
                continue
            self.visited[loc] = (node, spec)
            for keyword in _REF_KEYWORDS:
                ref = node.get(keyword)
                if isinstance(ref, str):
                    stack.extend(self.follow(ref, keyword, loc, resolver, spec))
            for child in spec.subresources_of(node):
                child_loc = self.locate(child, loc[0])
                if child_loc is None:
                    continue  # a boolean: nothing to resolve inside
                child_spec = _specification_of(child, spec, child_loc)
                stack.append((child, child_loc, resolver.in_subresource(child_spec.create_resource(child)),
                              child_spec))

    def follow(self, ref: str, keyword: str, loc: Location, resolver: Resolver[Any],
               spec: Specification[Any]) -> list[tuple[Any, Location, Resolver[Any], Specification[Any]]]:
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise SchemaError(
                pointer((*loc[1], keyword)),
                f"remote reference {ref!r} refused: it names nothing inside this schema or the standard "
                "meta-schemas, and nothing is fetched",
            ) from None
        target = resolved.contents
        if isinstance(target, bool):
            self.refs[(loc, keyword)] = target
            return []
        target_loc = self.locate(target, loc[0])
        if target_loc is None:
            raise SchemaError(pointer((*loc[1], keyword)), f"reference {ref!r} cannot be bundled")
        self.refs[(loc, keyword)] = target_loc
        if target_loc[0] and target_loc[0] not in self.externals:
            self.externals[target_loc[0]] = len(self.externals)
        if target_loc[0]:  # where the schema enters the meta-schemas, to name for blockers inside
            self.entries.setdefault(target_loc[0], self.entries[loc[0]] if loc[0] else pointer((*loc[1], keyword)))
        target_spec = spec
        if target_loc[0]:  # a meta-schema: its own draft
            target_spec = _specification_of(META_SCHEMAS.contents(target_loc[0]), spec, target_loc)
        return [(target, target_loc, resolved.resolver, target_spec)]

    def locate(self, node: Any, document: str) -> Location | None:
        if not isinstance(node, (dict, list)):
            return None
        if not document and id(node) in self.index:
            return ("", self.index[id(node)])
        return _meta_index().get(id(node))

    # -- the output

    def output(self) -> Any:
        copies = {uri: orjson.loads(orjson.dumps(META_SCHEMAS.contents(uri))) for uri in self.externals}
        # Deepest first: lowering an object may move or drop its children.
        for (document, path), (_, spec) in sorted(self.visited.items(), key=lambda item: -len(item[0][1])):
            node = _at(copies[document] if document else self.root, path)
            self.rewrite(node, (document, path), spec)
        if copies:
            bundled = self.root.setdefault(self.defs, {})
            bundled.update({f"{BUNDLED}-{self.externals[uri]}": doc for uri, doc in copies.items()})
        for ((document, path), keyword), target in self.refs.items():
            if isinstance(target, tuple) and any(
                    target[0] == moved[0] and target[1][:len(moved[1])] == moved[1] for moved in self.moved):
                where = self.entries[document] if document else pointer((*path, keyword))
                self.blockers.append((where, f"a {keyword} into a keyword that was rewritten"))
        self.blockers.sort()
        return self.root

    def rewrite(self, node: dict[str, Any], loc: Location, spec: Specification[Any]) -> None:
        for keyword in _REF_KEYWORDS:
            target = self.refs.get((loc, keyword))
            if target is None:
                continue
            if isinstance(target, bool):
                node[keyword] = self.constant(target)
            else:
                node[keyword] = "#" + self.pointer_to(target)
        for keyword in _IDENTIFIERS:
            if keyword in node and (keyword != "id" or isinstance(node[keyword], str)):
                del node[keyword]
        if loc != ("", ()):
            node.pop("$schema", None)
        draft = _DRAFT_OF_SPEC[id(spec)]
        if self.lower and draft != _DRAFT_OF_SPEC[id(self.spec)] and loc[0] == "":
            self.blockers.append((pointer(loc[1]), f"a {draft} resource inside a "
                                                    f"{_DRAFT_OF_SPEC[id(self.spec)]} schema"))
        if self.lower and draft in lowering.LOWERED_DRAFTS:
            blockers, moved = lowering.lower(node, draft, assert_formats=self.assert_formats)
            if loc[0]:
                self.blockers.extend((self.entries[loc[0]], f"keyword {keyword!r} of the meta-schema {loc[0]}")
                                     for keyword in blockers)
            else:
                self.blockers.extend((pointer(loc[1]), f"keyword {keyword!r}") for keyword in blockers)
            self.moved.update((loc[0], (*loc[1], key)) for key in moved)

    def constant(self, value: bool) -> str:
        """A reference to a boolean schema: to a copy of it beside the meta-schemas."""
        name = f"{BUNDLED}-{str(value).lower()}"
        self.root.setdefault(self.defs, {})[name] = value
        return "#" + pointer((self.defs, name))

    def pointer_to(self, loc: Location) -> str:
        document, path = loc
        if document:
            path = (self.defs, f"{BUNDLED}-{self.externals[document]}", *path)
        # fastjsonschema percent-decodes each token of the fragment
        return quote(pointer(path), safe="/~!$&'()*+,;=:@-._")


def _specification_of(schema: Any, default: Specification[Any], loc: Location) -> Specification[Any]:
    """The draft of an embedded resource: its own `$schema`, else its parent's."""
    dialect = schema.get("$schema") if isinstance(schema, dict) else None
    if not isinstance(dialect, str):
        return default
    try:
        return referencing.jsonschema.specification_with(dialect)
    except referencing.exceptions.CannotDetermineSpecification:
        raise SchemaError(pointer((*loc[1], "$schema")),
                          f"unknown meta-schema {dialect!r} (nothing is fetched)") from None


def _index(document: Any) -> dict[int, Path]:
    """Where each object and array of a document is, by identity."""
    found: dict[int, Path] = {}
    stack: list[tuple[Any, Path]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            found[id(value)] = path
            stack.extend((sub, (*path, key)) for key, sub in value.items())
        elif isinstance(value, list):
            found[id(value)] = path
            stack.extend((sub, (*path, index)) for index, sub in enumerate(value))
    return found


@functools.cache
def _meta_index() -> dict[int, Location]:
    """Every node of the shipped meta-schemas (kept alive by their registry)."""
    found: dict[int, Location] = {}
    for uri in sorted(META_SCHEMAS):
        for node_id, path in _index(META_SCHEMAS.contents(uri)).items():
            found.setdefault(node_id, (uri, path))
    return found


def _at(document: Any, path: Path) -> Any:
    for token in path:
        document = document[token]
    return document
