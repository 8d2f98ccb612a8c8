"""`apihub catalogue check [PATH]`: load and compile a catalogue with the
functions the server's start-up and reload use (`read_sources`, then
`build_actions` with a fresh compiler; the app manifests with
`read_apps_folder`), print one line per action and every warning and
error with its file and JSON Pointer, and exit 1 on errors.

Unlike the server it keeps going after the first failing stage, so one run
shows every problem: sources that fail to read are reported and the rest
are still compiled. Secrets are not needed: `{"env": ...}` secrets are
checked for shape only. It also cross-checks the manifests against the
catalogue (warnings: an app providing or consuming an action, or a version,
the catalogue lacks).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from ..catalogue import Action, ActionSpec, SchemaCompiler, build_actions, read_sources
from ..errors import CatalogueError, Problem
from ..jsonpointer import escape
from ..registry import App
from ..registry.file import read_apps_folder
from ..validation import Engine

OK, FAILED = 0, 1


def check(root: Path, out: TextIO | None = None, *, engine: Engine | None = None) -> int:
    out = out or sys.stdout
    specs, errors, warnings = read_sources(root)
    compiler = SchemaCompiler(engine)
    try:
        actions, fallbacks = build_actions(specs, compiler)
        compiled = actions
    except CatalogueError as exc:
        errors.extend(exc.problems)
        actions, compiled, fallbacks = {}, {}, []
        for spec in specs:  # which engine validates what, for the actions that do compile
            try:
                one, more = build_actions([spec], compiler)
            except CatalogueError:
                continue
            compiled.update(one)
            fallbacks.extend(more)
    warnings.extend(fallbacks)
    apps: dict[str, App] = {}
    apps_dir = root / "apps"
    parsed: dict[str, tuple[tuple[int, int], App]] = {}
    try:
        apps = read_apps_folder(apps_dir, resolve_secrets=False, parsed=parsed)
    except CatalogueError as exc:
        errors.extend(exc.problems)
    files = {app.id: source for source, (_, app) in parsed.items()}
    warnings.extend(cross_check(apps, actions, specs, files, apps_dir))

    print_table(specs, compiled, errors, out)
    if apps_dir.is_dir():
        print(f"\n{len(apps)} app manifest(s) in {apps_dir}", file=out)
    if warnings or errors:
        print(file=out)
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    for error in errors:
        print(f"error: {error}", file=out)
    verdict = "catalogue rejected" if errors else "ok"
    print(f"\n{len(specs)} action(s), {len(warnings)} warning(s), {len(errors)} error(s): {verdict}", file=out)
    return FAILED if errors else OK


def print_table(specs: Sequence[ActionSpec], actions: Mapping[str, Action], errors: Sequence[Problem],
                out: TextIO) -> None:
    """ACTION, VERSIONS, STATUS, ENGINE, SOURCE; an action is 'error' when a
    problem names its source."""
    rows = [("ACTION", "VERSIONS", "STATUS", "ENGINE", "SOURCE")]
    for spec in sorted(specs, key=lambda s: s.name):
        named = any(p.source == spec.source or spec.source in p.message for p in errors)
        status = "error" if named else "ok"
        action = actions.get(spec.name)
        rows.append((spec.name, ",".join(map(str, sorted(spec.versions))), status,
                     engines(action) if action else "-", spec.source))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        print(f"{cells}  {row[4]}", file=out)


def engines(action: Action) -> str:
    """Which engine validates each side of each version, as short as it can
    be said: `fastjsonschema`, or `v2 request: jsonschema-rs; …`."""
    said = {}
    for number, version in sorted(action.versions.items()):
        request, response = version.engines
        if not response:
            said[number] = f"request: {request}, answer: not described"
        elif request == response:
            said[number] = request
        else:
            said[number] = f"request: {request}, response: {response}"
    if len(set(said.values())) == 1:
        return next(iter(said.values()))
    return "; ".join(f"v{number} {text}" for number, text in said.items())


def cross_check(apps: Mapping[str, App], actions: Mapping[str, Action], specs: Sequence[ActionSpec],
                files: Mapping[str, str], apps_dir: Path) -> list[Problem]:
    """Manifests that name actions or versions the catalogue does not have
    (`files`: app id -> its manifest file)."""
    known = {spec.name: set(spec.versions) for spec in specs}
    if actions:
        known = {name: set(action.versions) for name, action in actions.items()}
    warnings = []
    for app in sorted(apps.values(), key=lambda a: a.id):
        source = files.get(app.id, str(apps_dir))
        for name, provision in sorted(app.provides.items()):
            where = "/provides/" + escape(name)
            if name not in known:
                warnings.append(Problem(source, where, f"provides {name!r}, which the catalogue lacks"))
            elif missing := sorted(provision.versions - known[name]):
                warnings.append(Problem(source, f"{where}/versions", (
                    f"version(s) {', '.join(map(str, missing))} of {name!r} are not in the catalogue")))
        for index, name in enumerate(app.manifest.get("consumes", [])):
            if name not in known:
                warnings.append(Problem(source, f"/consumes/{index}",
                                        f"consumes {name!r}, which the catalogue lacks"))
    return warnings
