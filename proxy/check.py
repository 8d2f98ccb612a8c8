"""`apihub catalogue check`: load and compile a catalogue exactly as the
server does (the same read_sources/build_actions path), print a line per
action and every problem, and exit non-zero on errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from .catalogue import CatalogueError, SchemaCompiler, load_catalogue, summary
from .registry.file import read_apps_folder


def check(root: Path, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    errors = []
    try:
        catalogue = load_catalogue(root, compiler=SchemaCompiler())
    except CatalogueError as exc:
        errors.extend(exc.problems)
        catalogue = None
    if catalogue is not None:
        for row in summary(catalogue):
            versions = ",".join(map(str, row["versions"]))
            print(f"{row['action']}\tv{versions}\t{row['source']}", file=out)
        for warning in catalogue.warnings:
            print(f"warning: {warning}", file=out)
    try:
        apps = read_apps_folder(root / "apps")
        print(f"{len(apps)} app manifest(s) in {root / 'apps'}", file=out)
    except CatalogueError as exc:
        errors.extend(exc.problems)
    for problem in errors:
        print(f"error: {problem}", file=out)
    if errors:
        print(f"{len(errors)} error(s)", file=out)
        return 1
    return 0
