"""Action files: one catalogue/actions/*.json per action
(docs/contract.md, "Action files")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from ..errors import CatalogueError, Problem
from ..types import Mode
from .model import MODES, ActionSpec, VersionSpec
from .sharing import Sharing


def action_files(folder: Path) -> list[str]:
    """Every *.json under `folder` as Path.rglob finds them (not inside a
    linked folder), sorted: a reload lists 10,000 files, and Path objects
    cost more than the stat calls that follow."""
    found: list[str] = []
    folders = [str(folder)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.endswith(".json"):
                    found.append(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
    found.sort()
    return found


def read_action_file(path: Path, sharing: Sharing | None = None) -> ActionSpec:
    """One catalogue/actions/*.json file: {"action", "title", "versions": {...}};
    with `sharing`, parts equal to those of the load's other files are theirs."""
    source = str(path)
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CatalogueError([Problem(source, "", f"cannot read: {exc.strerror}")]) from None
    except orjson.JSONDecodeError as exc:
        raise CatalogueError([Problem(source, "", f"not valid JSON: {exc}")]) from None
    return parse_action(doc if sharing is None else sharing.share(doc), source)


_ACTION_KEYS = {"action", "title", "description", "versions", "idempotent", "$comment"}
_VERSION_KEYS = {"request", "response", "enforce", "$comment"}


def parse_action(doc: Any, source: str) -> ActionSpec:
    def fail(pointer: str, message: str) -> CatalogueError:
        return CatalogueError([Problem(source, pointer, message)])

    if not isinstance(doc, dict):
        raise fail("", "an action file must be a JSON object")
    for key in doc:
        if key not in _ACTION_KEYS:
            raise fail(f"/{key}", f"unknown key (expected {', '.join(sorted(_ACTION_KEYS))})")
    name = doc.get("action")
    if not isinstance(name, str) or not name.strip():
        raise fail("/action", "must be a non-empty string naming the action")
    if any(c in name for c in "/?#") or name != name.strip():
        raise fail("/action", "must not contain '/', '?', '#' or surrounding spaces")
    for key in ("title", "description"):
        if not isinstance(doc.get(key, ""), str):
            raise fail(f"/{key}", "must be a string")
    if not isinstance(doc.get("idempotent", False), bool):
        raise fail("/idempotent", "must be true or false")
    raw_versions = doc.get("versions")
    if not isinstance(raw_versions, dict) or not raw_versions:
        raise fail("/versions", "must be a non-empty object of version number -> {request, response}")
    versions: dict[int, VersionSpec] = {}
    for key, body in raw_versions.items():
        where = f"/versions/{key}"
        number = parse_version_key(key)
        if number is None:
            raise fail(where, "version keys must be positive integers")
        versions[number] = parse_version(body, fail, where)
    return ActionSpec(
        name=name,
        source=source,
        versions=versions,
        title=doc.get("title", ""),
        description=doc.get("description", ""),
        idempotent=doc.get("idempotent", False),
    )


def parse_version_key(key: str) -> int | None:
    if not key.isascii() or not key.isdigit() or key.startswith("0"):
        return None
    return int(key)


def parse_version(body: Any, fail: Any, where: str) -> VersionSpec:
    if not isinstance(body, dict):
        raise fail(where, "must be an object with 'request' and 'response' schemas")
    for key in body:
        if key not in _VERSION_KEYS:
            raise fail(f"{where}/{key}", f"unknown key (expected {', '.join(sorted(_VERSION_KEYS))})")
    for side in ("request", "response"):
        if side not in body:
            raise fail(f"{where}/{side}", "is required (a JSON Schema)")
    request_mode, response_mode = parse_enforce(body.get("enforce"), fail, f"{where}/enforce")
    return VersionSpec(
        request=body["request"],
        response=body["response"],
        enforce_request=request_mode,
        enforce_response=response_mode,
    )


def parse_enforce(value: Any, fail: Any, where: str) -> tuple[Mode, Mode]:
    if value is None:
        return "strict", "strict"
    if not isinstance(value, dict) or not set(value) <= {"request", "response"}:
        raise fail(where, "must be an object with 'request' and/or 'response'")
    modes = []
    for side in ("request", "response"):
        mode = value.get(side, "strict")
        if mode not in MODES:
            raise fail(f"{where}/{side}", "must be 'strict' or 'report'")
        modes.append(mode)
    return modes[0], modes[1]


