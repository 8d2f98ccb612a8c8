"""OpenAPI 3.0 action catalogues (catalogue/openapi/). Placeholder until the
importer lands: documents found here are reported, never silently skipped."""

from __future__ import annotations

from pathlib import Path

from .catalogue import ActionSpec, Problem


def read_folder(folder: Path) -> tuple[list[ActionSpec], list[Problem], list[Problem]]:
    problems = [
        Problem(str(path), "", "OpenAPI import is not available in this build")
        for path in sorted(folder.iterdir())
        if path.suffix in (".json", ".yaml", ".yml")
    ]
    return [], problems, []
