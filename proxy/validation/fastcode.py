"""fastjsonschema's generated source, trimmed to what deciding needs.

The hub reads only fastjsonschema's verdict: a rejection is explained by
another engine (explain.py), so the messages fastjsonschema builds are never
read. Its code still pays for them, and for bookkeeping the verdict does
not need:

- every call into a `$ref`'d function (one per item of an array of
  `$ref`'d objects) builds that item's path for messages, with
  `"...[{x}]".format(**locals())` on the success path: a dict of every
  local variable per item, a quarter of the validation time of a typical
  answer. Calls between generated functions pass no path here.
- every `raise` carries the message, the value, the path and, with
  detailed exceptions, a copy of the schema as a literal: most of the
  generated source, compiled and kept in memory for every schema of the
  catalogue. Every `raise` keeps its exception class, with no message.
- `required` builds a set from a list literal, then a difference, per
  object checked: here one superset test against a frozenset made once.
- an `enum` of strings is a chain of `isinstance(v, str) and v == 'a'`
  tests: here one set lookup.
- every object with `properties` copies its keys into a set and removes
  each known key from it, which only `additionalProperties` and
  `patternProperties` read afterwards. Where nothing else reads the set,
  membership is asked of the object itself and the set is never made;
  where `additionalProperties: false` alone reads it (`if keys: raise`),
  that becomes one subset test against the known keys, made once, and the
  set goes too.
- a value whose type a `raise` just checked has it checked again before
  its other keywords (`if isinstance(v, str):` after `if not
  isinstance(v, str): raise`): the second check goes, its body stays, and
  so does a flag (`data_is_dict`) nothing reads any more.
- each format's regex is looked up in a dict per value: here once.
- after the `required` test, `if 'k' in v:` for a required k is always
  true: its body stays, the test goes.
- an array's items are enumerated for their index, and its length taken,
  for messages and keywords the schema may not have: where nothing reads
  them, neither is made.

What is checked, and so every verdict, is unchanged
(tests/validation/test_fastcode.py, and the JSON Schema Test Suite).
"""

from __future__ import annotations

import ast
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Protocol

_STR = ast.dump(ast.Name("str", ast.Load()))


class _Trim(ast.NodeTransformer):
    def __init__(self) -> None:
        self.constants: list[ast.stmt] = []
        self.matchers: dict[tuple[str, str], str] = {}  # (pattern name, method) -> module-level name
        self.required: dict[str, frozenset[str]] = {}  # _REQUIRED_n -> its keys

    def visit_Module(self, node: ast.Module) -> ast.AST:
        self.generic_visit(node)
        node.body[0:0] = self.constants
        if self.matchers:
            # After REGEX_PATTERNS is defined: the first statement assigning it.
            at = next(i for i, stmt in enumerate(node.body) if isinstance(stmt, ast.Assign)
                      and any(isinstance(t, ast.Name) and t.id == "REGEX_PATTERNS" for t in stmt.targets)) + 1
            node.body[at:at] = [
                ast.Assign([ast.Name(name, ast.Store())], ast.Attribute(
                    ast.Subscript(ast.Name("REGEX_PATTERNS", ast.Load()), ast.Constant(key), ast.Load()),
                    method, ast.Load()))
                for (key, method), name in self.matchers.items()]
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        _close_key_sets(node, self._frozenset)
        _drop_unread_key_sets(node)
        _drop_known_type_checks(node)
        loads = Counter(name.id for name in ast.walk(node)
                        if isinstance(name, ast.Name) and isinstance(name.ctx, ast.Load))
        _required_as_superset(node, loads)
        _drop_known_key_checks(node, self.required)
        _drop_unread_flags(node, loads)
        _drop_unread_indexes(node, loads)
        return node

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        # isinstance(v, str) and v == 'a' or isinstance(v, str) and v == 'b' ...: an enum of
        # strings, one set lookup (a str equals a str exactly when it hashes into the set as one)
        if not isinstance(node.op, ast.Or) or len(node.values) < 2:
            return node
        name: str | None = None
        strings: list[str] = []
        for value in node.values:
            if not (isinstance(value, ast.BoolOp) and isinstance(value.op, ast.And) and len(value.values) == 2):
                return node
            check, compare = value.values
            if not (isinstance(compare, ast.Compare) and len(compare.ops) == 1 and isinstance(compare.ops[0], ast.Eq)
                    and isinstance(compare.left, ast.Name) and isinstance(compare.comparators[0], ast.Constant)
                    and isinstance(compare.comparators[0].value, str)):
                return node
            if _type_check(check) != (compare.left.id, _STR) or compare.left.id != (name or compare.left.id):
                return node
            name = compare.left.id
            strings.append(compare.comparators[0].value)
        if name is None:
            return node
        constant = self._frozenset("_ENUM_", [ast.Constant(v) for v in strings])
        return ast.BoolOp(ast.And(), [
            ast.Call(ast.Name("isinstance", ast.Load()), [ast.Name(name, ast.Load()), ast.Name("str", ast.Load())], []),
            ast.Compare(ast.Name(name, ast.Load()), [ast.In()], [constant])])

    def _frozenset(self, prefix: str, items: list[ast.expr]) -> ast.Name:
        """A module-level frozenset of `items`, made once; its name."""
        name = f"{prefix}{len(self.constants)}"
        self.constants.append(ast.Assign([ast.Name(name, ast.Store())], ast.Call(
            ast.Name("frozenset", ast.Load()), [ast.Tuple(items, ast.Load())], [])))
        return ast.Name(name, ast.Load())

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        # REGEX_PATTERNS["date_re_pattern"].match: looked up once, not per value
        value = node.value
        if (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
                and value.value.id == "REGEX_PATTERNS" and isinstance(value.slice, ast.Constant)
                and isinstance(value.slice.value, str) and isinstance(node.ctx, ast.Load)):
            key = (value.slice.value, node.attr)
            name = self.matchers.setdefault(key, f"_REGEX_{len(self.matchers)}")
            return ast.Name(name, ast.Load())
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        # validate_x(data, custom_formats, name_prefix): the generated functions' calls to each other
        if isinstance(node.func, ast.Name) and node.func.id.startswith("validate") and len(node.args) == 3:
            node.args[2] = ast.Constant(None)
        return node

    def visit_Raise(self, node: ast.Raise) -> ast.AST:
        if isinstance(node.exc, ast.Call):
            node.exc = ast.Call(node.exc.func, [ast.Constant("")], [])
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        # set(['a', 'b']) - data.keys(): the required keys, made once
        left = node.left
        if (isinstance(node.op, ast.Sub) and isinstance(left, ast.Call) and isinstance(left.func, ast.Name)
                and left.func.id == "set" and len(left.args) == 1 and not left.keywords
                and isinstance(left.args[0], ast.List)
                and all(isinstance(e, ast.Constant) for e in left.args[0].elts)):
            node.left = self._frozenset("_REQUIRED_", left.args[0].elts)
            self.required[node.left.id] = frozenset(
                e.value for e in left.args[0].elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
        return node


def _keys_source(value: ast.expr) -> ast.Name | None:
    """X in `set(X.keys())`, where X is a local name."""
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "set"
            and len(value.args) == 1 and not value.keywords and isinstance(value.args[0], ast.Call)):
        inner = value.args[0]
        if (isinstance(inner.func, ast.Attribute) and inner.func.attr == "keys" and not inner.args
                and isinstance(inner.func.value, ast.Name)):
            return inner.func.value
    return None


def _key_sets(function: ast.FunctionDef) -> dict[str, ast.Name]:
    """Each `s = set(X.keys())` of `function`: s -> X."""
    sources: dict[str, ast.Name] = {}
    twice: set[str] = set()
    for node in ast.walk(function):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and (source := _keys_source(node.value)) is not None):
            name = node.targets[0].id
            if name in sources:
                twice.add(name)
            sources[name] = source
    # Assigned twice (fastjsonschema never does): kept, rather than reason about which one a use reads.
    return {name: source for name, source in sources.items() if name not in twice}


def _in_or_remove_uses(function: ast.FunctionDef) -> tuple[set[int], Counter[str]]:
    """The ids of the names read by `'k' in s` or `s.remove(...)`, and how
    many removes each name has."""
    allowed: set[int] = set()
    removes: Counter[str] = Counter()
    for node in ast.walk(function):
        if (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.In)
                and isinstance(node.left, ast.Constant) and isinstance(node.comparators[0], ast.Name)):
            allowed.add(id(node.comparators[0]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "remove"
              and isinstance(node.func.value, ast.Name)):
            allowed.add(id(node.func.value))
            removes[node.func.value.id] += 1
    return allowed, removes


def _other_reads(function: ast.FunctionDef, names: dict[str, ast.Name], allowed: set[int]) -> dict[str, set[int]]:
    """For each of `names`, the ids of its reads other than by `'k' in s`
    and `s.remove('k')` (the `allowed` ones)."""
    reads: dict[str, set[int]] = {name: set() for name in names}
    for node in ast.walk(function):
        if (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in reads
                and id(node) not in allowed):
            reads[node.id].add(id(node))
    return reads


def _drop_unread_key_sets(function: ast.FunctionDef) -> None:
    sources = _key_sets(function)
    if not sources:
        return
    allowed, _ = _in_or_remove_uses(function)
    reads = _other_reads(function, sources, allowed)
    unread = {name: source for name, source in sources.items() if not reads[name]}
    if unread:
        _Unset(unread).visit(function)


def _close_key_sets(function: ast.FunctionDef, constant: Callable[[str, list[ast.expr]], ast.Name]) -> None:
    """`additionalProperties: false` beside `properties`: fastjsonschema makes
    the object's key set, removes each known key present, then raises if any
    key is left. In one block, that is: s = set(X.keys()); if 'k' in s:
    s.remove('k') ... (for each known k); if s: raise. Any key is left
    exactly when X has a key outside the known ones, so the raise becomes one
    subset test where s is made (`if not X.keys() <= KNOWN: raise`), and s,
    read by nothing else any more, goes with the unread sets. A set used in
    any other way, or its removes placed otherwise, is left as it is."""
    sources = _key_sets(function)
    if not sources:
        return
    allowed, removes = _in_or_remove_uses(function)
    reads = _other_reads(function, sources, allowed)
    blocks = list(_blocks(function))
    for name, source in sources.items():
        shape = _closing_shape(name, blocks, removes[name])
        if shape is None:
            continue
        block, made, final, known = shape
        if reads[name] != {id(final.test)}:  # read otherwise too: kept
            continue
        subset = ast.If(
            ast.UnaryOp(ast.Not(), ast.Compare(
                ast.Call(ast.Attribute(ast.Name(source.id, ast.Load()), "keys", ast.Load()), [], []),
                [ast.LtE()], [constant("_KNOWN_", [ast.Constant(k) for k in sorted(known)])])),
            [final.body[0]], [])
        at = next(i for i, stmt in enumerate(block) if stmt is made)
        block[at:at] = [subset]
        block.remove(final)


def _closing_shape(name: str, blocks: list[list[ast.stmt]], removes: int
                   ) -> tuple[list[ast.stmt], ast.stmt, ast.If, set[str]] | None:
    """(block, `s = set(X.keys())`, `if s: raise`, the known keys) when each
    of the `removes` removes of s is `if 'k' in s: s.remove('k') ...`
    between the two, in the block that makes s; else None."""
    for block in blocks:
        made = next((stmt for stmt in block if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                     and stmt.targets[0].id == name), None)
        if made is None:
            continue
        known: set[str] = set()
        guarded = 0
        for stmt in block[block.index(made) + 1:]:
            if (isinstance(stmt, ast.If) and not stmt.orelse and isinstance(stmt.test, ast.Name)
                    and stmt.test.id == name and len(stmt.body) == 1 and isinstance(stmt.body[0], ast.Raise)):
                return (block, made, stmt, known) if guarded == removes else None
            key = _guarded_remove(stmt, name)
            if key is not None:
                known.add(key)
                guarded += 1
        return None
    return None


def _guarded_remove(stmt: ast.stmt, name: str) -> str | None:
    """k for `if 'k' in s: s.remove('k'); ...` (no else), else None."""
    check = _key_check(stmt)
    if check is None or check[0] != name or not isinstance(stmt, ast.If):
        return None
    key = check[1]
    first = stmt.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
            and isinstance(first.value.func, ast.Attribute) and first.value.func.attr == "remove"
            and isinstance(first.value.func.value, ast.Name) and first.value.func.value.id == name
            and len(first.value.args) == 1 and isinstance(first.value.args[0], ast.Constant)
            and first.value.args[0].value == key):
        return key
    return None


class _Unset(ast.NodeTransformer):
    """Asks the object instead of its key set, and drops the set and its removes."""

    def __init__(self, sources: dict[str, ast.Name]) -> None:
        self._sources = sources

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in self._sources and _keys_source(node.value) is not None:
            return None
        return self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        call = node.value
        if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "remove"
                and isinstance(call.func.value, ast.Name) and call.func.value.id in self._sources):
            return None
        return self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        right = node.comparators[0]
        if isinstance(node.ops[0], ast.In) and isinstance(right, ast.Name) and right.id in self._sources:
            node.comparators[0] = ast.Name(self._sources[right.id].id, ast.Load())
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and not body:
            body.append(ast.Pass())  # every statement of the block was a remove
        return node


def _type_check(test: ast.expr) -> tuple[str, str] | None:
    """(name, dump of the type) for `isinstance(name, T)`."""
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "isinstance"
            and len(test.args) == 2 and not test.keywords and isinstance(test.args[0], ast.Name)):
        return test.args[0].id, ast.dump(test.args[1])
    return None


def _assigned_names(root: ast.AST) -> dict[int, set[str]]:
    """Every node's id -> the names assigned anywhere inside it, in one pass
    (asking each statement again per name took seconds on wide schemas)."""
    names: dict[int, set[str]] = {}
    for node in reversed(list(ast.walk(root))):  # children before their parents
        inside = {node.id} if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load) else set()
        for child in ast.iter_child_nodes(node):
            inside |= names[id(child)]
        names[id(node)] = inside
    return names


def _drop_known_type_checks(function: ast.FunctionDef) -> None:
    """`if not isinstance(v, T): raise` makes a later `if isinstance(v, T):`
    in the same block (v not assigned in between) always true: its body
    takes its place. Likewise `v_is_dict = isinstance(v, dict)`, then
    `if v_is_dict:`."""
    assigned = _assigned_names(function)
    _rewrite_blocks(function, lambda block: _inline_known(block, assigned, _KnownTypes()))


def _blocks(function: ast.FunctionDef) -> Iterator[list[ast.stmt]]:
    """Every statement block of `function`: bodies and elses, outer first."""
    for node in ast.walk(function):
        for field in ("body", "orelse"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                yield block


def _rewrite_blocks(function: ast.FunctionDef, rewrite: Callable[[list[ast.stmt]], list[ast.stmt]]) -> None:
    """Every statement block of `function` replaced by `rewrite(block)`."""
    for block in _blocks(function):
        block[:] = rewrite(block)


def _inline_known(block: list[ast.stmt], assigned: dict[int, set[str]], facts: _Facts) -> list[ast.stmt]:
    """`block` with each `if` that `facts` know to be true replaced by its
    body (checked the same way); what a statement assigns is forgotten."""
    out: list[ast.stmt] = []
    pending = list(reversed(block))
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, ast.If) and not stmt.orelse and facts.holds(stmt):
            pending.extend(reversed(stmt.body))
            continue
        facts.forget(assigned[id(stmt)])
        facts.learn(stmt)
        out.append(stmt)
    return out


class _Facts(Protocol):
    def holds(self, stmt: ast.If) -> bool:
        """Whether this `if`'s test is known to be true here."""

    def forget(self, changed: set[str]) -> None:
        """What depended on a name `changed` is no longer known."""

    def learn(self, stmt: ast.stmt) -> None:
        """What is known after `stmt` (a `raise` that did not happen)."""


class _KnownTypes:
    """`if not isinstance(v, T): raise`, then `if isinstance(v, T):` (or a
    flag `v_is_T = isinstance(v, T)`, then `if v_is_T:`)."""

    def __init__(self) -> None:
        self.known: set[tuple[str, str]] = set()
        self.aliases: dict[str, tuple[str, str]] = {}  # v_is_dict -> (v, dict)

    def holds(self, stmt: ast.If) -> bool:
        check = _type_check(stmt.test)
        if check is None and isinstance(stmt.test, ast.Name):
            check = self.aliases.get(stmt.test.id)
        return check is not None and check in self.known

    def forget(self, changed: set[str]) -> None:
        if self.known or self.aliases:
            self.known = {k for k in self.known if k[0] not in changed}
            self.aliases = {a: k for a, k in self.aliases.items() if a not in changed and k[0] not in changed}

    def learn(self, stmt: ast.stmt) -> None:
        if (isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1
                and isinstance(stmt.body[0], ast.Raise) and isinstance(stmt.test, ast.UnaryOp)
                and isinstance(stmt.test.op, ast.Not) and (negated := _type_check(stmt.test.operand))):
            self.known.add(negated)
        elif (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
              and (alias := _type_check(stmt.value))):
            self.aliases[stmt.targets[0].id] = alias


def _required_as_superset(function: ast.FunctionDef, loads: Counter[str]) -> None:
    """`m = _REQUIRED - v.keys()` then `if m: raise`, m read nowhere else:
    `if not v.keys() >= _REQUIRED: raise` (no set made per object)."""
    for node in ast.walk(function):
        block = getattr(node, "body", None)
        if not isinstance(block, list):
            continue
        i = 0
        while i + 1 < len(block):
            first, second = block[i], block[i + 1]
            if (isinstance(first, ast.Assign) and len(first.targets) == 1 and isinstance(first.targets[0], ast.Name)
                    and isinstance(first.value, ast.BinOp) and isinstance(first.value.op, ast.Sub)
                    and isinstance(first.value.left, ast.Name) and first.value.left.id.startswith("_REQUIRED_")
                    and isinstance(first.value.right, ast.Call) and not first.value.right.args
                    and isinstance(first.value.right.func, ast.Attribute) and first.value.right.func.attr == "keys"
                    and isinstance(second, ast.If) and not second.orelse and isinstance(second.test, ast.Name)
                    and second.test.id == first.targets[0].id and len(second.body) == 1
                    and isinstance(second.body[0], ast.Raise) and loads[second.test.id] == 1):
                second.test = ast.UnaryOp(ast.Not(), ast.Compare(first.value.right, [ast.GtE()], [first.value.left]))
                del block[i]
            i += 1


def _drop_known_key_checks(function: ast.FunctionDef, required: dict[str, frozenset[str]]) -> None:
    """`if not v.keys() >= _REQUIRED: raise` makes a later `if 'k' in v:` in
    the same block, k required and v not assigned in between, always true:
    its body takes its place (one lookup less per required property)."""
    if not required:
        return
    assigned = _assigned_names(function)
    _rewrite_blocks(function, lambda block: _inline_known(block, assigned, _KnownKeys(required)))


def _required_keys(stmt: ast.stmt, required: dict[str, frozenset[str]]) -> tuple[str, frozenset[str]] | None:
    """(v, keys) for `if not v.keys() >= _REQUIRED_n: raise`."""
    if not (isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1
            and isinstance(stmt.body[0], ast.Raise) and isinstance(stmt.test, ast.UnaryOp)
            and isinstance(stmt.test.op, ast.Not) and isinstance(stmt.test.operand, ast.Compare)):
        return None
    compare = stmt.test.operand
    call, right = compare.left, compare.comparators[0]
    if (len(compare.ops) == 1 and isinstance(compare.ops[0], ast.GtE) and isinstance(right, ast.Name)
            and right.id in required and isinstance(call, ast.Call) and not call.args
            and isinstance(call.func, ast.Attribute) and call.func.attr == "keys"
            and isinstance(call.func.value, ast.Name)):
        return call.func.value.id, required[right.id]
    return None


def _key_check(stmt: ast.stmt) -> tuple[str, str] | None:
    """(v, k) for `if 'k' in v:` without else."""
    if not (isinstance(stmt, ast.If) and not stmt.orelse and isinstance(stmt.test, ast.Compare)):
        return None
    test = stmt.test
    if (len(test.ops) == 1 and isinstance(test.ops[0], ast.In) and isinstance(test.left, ast.Constant)
            and isinstance(test.left.value, str) and isinstance(test.comparators[0], ast.Name)):
        return test.comparators[0].id, test.left.value
    return None


class _KnownKeys:
    """`if not v.keys() >= _REQUIRED_n: raise`, then `if 'k' in v:` for a
    required k."""

    def __init__(self, required: dict[str, frozenset[str]]) -> None:
        self.required = required
        self.present: dict[str, frozenset[str]] = {}  # v -> keys v is known to hold

    def holds(self, stmt: ast.If) -> bool:
        check = _key_check(stmt)
        return check is not None and check[1] in self.present.get(check[0], ())

    def forget(self, changed: set[str]) -> None:
        if self.present:
            self.present = {v: keys for v, keys in self.present.items() if v not in changed}

    def learn(self, stmt: ast.stmt) -> None:
        if (found := _required_keys(stmt, self.required)) is not None:
            self.present[found[0]] = self.present.get(found[0], frozenset()) | found[1]


def _drop_unread_flags(function: ast.FunctionDef, loads: Counter[str]) -> None:
    """`v_is_dict = isinstance(v, dict)` and `v_len = len(v)` (made after v's
    type test, so it cannot raise) that nothing reads any more."""
    for node in ast.walk(function):
        block = getattr(node, "body", None)
        if isinstance(block, list):
            block[:] = [stmt for stmt in block if not (
                isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and (_type_check(stmt.value) is not None or _length_of_name(stmt.value))
                and not loads[stmt.targets[0].id])] or [ast.Pass()]


def _length_of_name(value: ast.expr) -> bool:
    return (isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "len"
            and len(value.args) == 1 and not value.keywords and isinstance(value.args[0], ast.Name))


def _drop_unread_indexes(function: ast.FunctionDef, loads: Counter[str]) -> None:
    """`for i, item in enumerate(items):` where nothing reads i (it named the
    item in messages): `for item in items:`."""
    for node in ast.walk(function):
        if (isinstance(node, ast.For) and isinstance(node.target, ast.Tuple) and len(node.target.elts) == 2
                and all(isinstance(e, ast.Name) for e in node.target.elts)
                and isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Name)
                and node.iter.func.id == "enumerate" and len(node.iter.args) == 1 and not node.iter.keywords):
            index, item = node.target.elts
            if isinstance(index, ast.Name) and not loads[index.id]:
                node.target = item
                node.iter = node.iter.args[0]


def compile_trimmed(source: str, filename: str = "<apihub schema>") -> types.CodeType:
    """The code object of fastjsonschema's `source`, trimmed."""
    tree = _Trim().visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")
