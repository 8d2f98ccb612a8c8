"""Reading JSON so that what is validated is what travels (docs/contract.md
§5 "JSON rules"): numbers the hub cannot carry exactly, nesting deeper than
`[limits] max_json_depth` and (for provider answers) duplicate keys are
refused, with the JSON Pointer of the culprit.

orjson parses, then re-encodes what it read (C speed, about a tenth of
the parse); the checks ride on that and on a few byte passes, and fall back
to Python only where those say a problem is possible:

- depth: the value is encoded wrapped in `254 - max_depth` lists, so
  orjson's own nesting limit (254) refuses exactly what is too deep;
- an answer whose re-encoding is its very bytes, whitespace between tokens
  aside (what common encoders write), has no repeated key and only exact
  numbers: nothing more to check;
- duplicate keys: more `:` in the bytes than in the re-encoding of what
  orjson kept means a key was dropped (escaped colons counted in);
- numbers: only a run of 16+ digits or a 3-digit exponent can be inexact;
  each such run is checked on its own. An integer outside 64 bits (which
  orjson would read as a float, or refuse as infinite past 1e308) is carried
  exactly: the document is read again with Python's arbitrary-precision
  ints, and encoded back with the standard library (`dumps`). A decimal
  that no double holds is refused, and so is an integer of more than
  MAX_INT_DIGITS digits (Python's own guard: converting one costs time
  quadratic in its length).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .jsonpointer import pointer
from .types import ValidationIssue

INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # what orjson keeps as an int
MAX_INT_DIGITS = 4300  # sys.get_int_max_str_digits()'s default

_ORJSON_MAX_DEPTH = 254  # nesting orjson.dumps still encodes
_COUNT_BELOW = 4096
_WHITESPACE = b" \t\r\n"
_NUMBERISH = bytes.maketrans(bytes(range(256)), bytes(
    ord("0") if chr(b) in "0123456789." else ord("e") if chr(b) in "eE" else ord("+") if chr(b) in "+-"
    else ord(" ") for b in range(256)))
_LONG_MANTISSA, _BIG_EXPONENTS = b"0" * 16, (b"e000", b"e+000")
_ESCAPED_COLON = re.compile(rb"\\u003[aA]")
_BEFORE_NUMBER, _AFTER_NUMBER = frozenset(b" \t\r\n[:,"), frozenset(b" \t\r\n]},")
_NUMBER_TOKEN = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class UnsafeJson(ValueError):
    """Not JSON, or JSON the hub refuses; `issues` name the pointer when known."""

    def __init__(self, detail: str, issues: tuple[ValidationIssue, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.issues = issues


def loads(raw: bytes, *, max_depth: int, unique_keys: bool) -> Any:
    """`raw` parsed, or UnsafeJson. `unique_keys=False` lets the last value of
    a repeated key win (consumer bodies are re-encoded from that value)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" in exc.msg:
            # An integer past 1e308 (carried exactly), or a number no double
            # holds (refused with its pointer): nothing above checked depth.
            value = _slow_check(raw, unique_keys=unique_keys)
            # orjson stopped at the number: what follows was read by the standard
            # library alone, which takes an escaped lone surrogate orjson refuses.
            try:
                json.dumps(value, ensure_ascii=False).encode()
            except UnicodeEncodeError:
                raise UnsafeJson("not valid JSON: a string holds a lone surrogate") from None
            where = _too_deep_at(value, max_depth) if _may_nest(raw, max_depth) else None
            if where is not None:
                message = f"nested deeper than {max_depth} levels"
                raise UnsafeJson(message, (ValidationIssue(where, message),)) from None
            return value
        if "depth limit" in exc.msg or "ecursion" in exc.msg:
            raise UnsafeJson(f"nested deeper than {max_depth} levels") from None
        raise UnsafeJson(f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, (dict, list)):
        exact_value = _check_numbers(raw, unique_keys)
        return value if exact_value is None else exact_value
    # Fewer brackets than the limit cannot nest past it; counting them costs
    # more than the padding on large bodies, which are padded unasked.
    deep = len(raw) > _COUNT_BELOW or raw.count(b"[") + raw.count(b"{") > max_depth  # _may_nest, inline: hot
    pad = _ORJSON_MAX_DEPTH - max_depth if deep else 0
    wrapped: Any = value
    for _ in range(pad):
        wrapped = [wrapped]
    try:
        compact = orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        message = f"nested deeper than {max_depth} levels"
        where = _too_deep_at(value, max_depth)
        raise UnsafeJson(message, (ValidationIssue(where, message),) if where is not None else ()) from None
    if _same_tokens(raw, compact, pad):
        return value  # the same tokens: the same numbers, no key dropped
    if unique_keys:
        colons = raw.count(b":")
        if b"\\u" in raw:
            colons += len(_ESCAPED_COLON.findall(raw))
        if colons > compact.count(b":"):
            _slow_check(raw, unique_keys=True)
    exact_value = _check_numbers(raw, unique_keys)
    return value if exact_value is None else exact_value


def dumps(value: Any) -> bytes:
    """orjson's encoding; the standard library's for what orjson cannot write
    (integers outside 64 bits, which `loads` carries exactly)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _same_tokens(raw: bytes, compact: bytes, pad: int) -> bool:
    """Whether `raw` is `compact` (padded with `pad` brackets each side) up to
    whitespace between tokens. Whitespace inside strings is spaces alone (JSON
    escapes the rest) and the same in both, so dropping every space compares
    token for token."""
    if len(compact) == len(raw) + 2 * pad and compact.startswith(raw, pad):
        return True
    stripped, compact = raw.translate(None, _WHITESPACE), compact.translate(None, _WHITESPACE)
    return len(compact) == len(stripped) + 2 * pad and compact.startswith(stripped, pad)


def _may_nest(raw: bytes, max_depth: int) -> bool:
    """False when `raw` has too few brackets to nest past `max_depth`."""
    return raw.count(b"[") + raw.count(b"{") > max_depth


def _too_deep_at(value: Any, max_depth: int) -> str | None:
    """The pointer of the first container nested past `max_depth`. Only
    containers are visited: a body of a million numbers is one list."""
    if not isinstance(value, (dict, list)):
        return None
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) >= max_depth:
            return pointer(path)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        stack.extend(reversed([(child, (*path, key)) for key, child in items if isinstance(child, (dict, list))]))
    return None


def exact(token: str) -> bool:
    """Whether a JSON number token survives orjson with the value written
    (an integer beyond 64 bits does not, but `loads` reads it again exactly)."""
    if not any(c in token for c in ".eE"):
        try:
            return len(token) <= 21 and INT_MIN <= int(token) <= INT_MAX
        except ValueError:
            return False
    try:
        number = float(token)
        return math.isfinite(number) and Decimal(token) == Decimal(repr(number))
    except (ValueError, InvalidOperation):
        return False


def _check_numbers(raw: bytes, unique_keys: bool) -> Any:
    """None when every number survived orjson; else the document read again
    exactly (UnsafeJson for a number no double holds)."""
    image = raw.translate(_NUMBERISH)
    if _LONG_MANTISSA not in image and b"e000" not in image and b"e+000" not in image:
        return None
    # Each suspect run of number characters, checked alone; strings can hold
    # such runs too, so only an inexact one costs the exact second reading.
    at = 0
    while True:
        found = [i for i in (image.find(_LONG_MANTISSA, at), *(image.find(n, at) for n in _BIG_EXPONENTS))
                 if i >= 0]
        if not found:
            return None
        start = end = min(found)
        while start > 0 and image[start - 1] in b"0e+":
            start -= 1
        while end < len(image) and image[end] in b"0e+":
            end += 1
        token = raw[start:end].decode("ascii", "replace")
        # A run that is no number token, or not between the bytes that can
        # border a number, lies inside a string (a UUID, "file-2024", a long
        # id): nothing to check there.
        bordered = (start == 0 or raw[start - 1] in _BEFORE_NUMBER) and (end == len(raw) or raw[end] in _AFTER_NUMBER)
        if bordered and _NUMBER_TOKEN.fullmatch(token) and not exact(token):
            return _slow_check(raw, unique_keys=unique_keys)
        at = end


class _Inexact:
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


class _Repeated(dict[str, Any]):
    __slots__ = ("key",)
    key: str


def _slow_check(raw: bytes, *, unique_keys: bool) -> Any:
    """A second, exact reading (stdlib json with hooks): UnsafeJson naming the
    first inexact number or repeated key, else the value read exactly. The
    hooks mark what they refuse, and only then is the value walked for its
    pointer: a body that passes costs one reading."""
    refused = False

    def number(token: str) -> Any:
        nonlocal refused
        try:
            as_float = float(token)
        except ValueError:
            as_float = math.inf
        if exact(token):
            return as_float
        refused = True
        return _Inexact(token)

    def integer(token: str) -> Any:
        nonlocal refused
        if len(token.lstrip("-")) <= MAX_INT_DIGITS:
            return int(token)
        refused = True
        return _Inexact(token)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal refused
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                refused = True
                repeated = _Repeated(items)
                repeated.key = key
                return repeated
            seen.add(key)
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(name)

    try:
        # Integers of any size are exact in Python; decimals must be doubles' own.
        value = json.loads(raw, parse_int=integer, parse_float=number, parse_constant=constant,
                           object_pairs_hook=pairs if unique_keys else None)
    except (ValueError, RecursionError):
        raise UnsafeJson("not valid JSON") from None
    if not refused:
        return value
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Inexact):
            message = "number the hub cannot carry exactly"
            raise UnsafeJson(f"a {message} at {pointer(path) or '/'}", (ValidationIssue(pointer(path), message),))
        if isinstance(node, _Repeated):
            where = pointer((*path, node.key))
            raise UnsafeJson(f"duplicate key at {where}", (ValidationIssue(where, "duplicate key"),))
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        stack.extend(reversed([(child, (*path, key)) for key, child in items if isinstance(child, _MARKED)]))
    return value


_MARKED = (dict, list, _Inexact)  # what can hold, or be, what _slow_check refused
