"""Sections of RESULTS.md that a script other than `make bench`'s report
writes: each between `<!-- NAME:start -->` and `<!-- NAME:end -->`, replaced
in place when written again, and kept as they are by a `make bench` run that
does not regenerate them (report.py)."""

from __future__ import annotations

import re
from pathlib import Path

_MARKED = re.compile(r"<!-- ([\w-]+):start -->\n.*?<!-- \1:end -->", re.S)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def marked(text: str) -> dict[str, str]:
    """Every marked section of `text`, markers included, by name."""
    return {m.group(1): m.group(0) for m in _MARKED.finditer(text)}


def put(results: Path, lines: list[str]) -> None:
    """Replace the marked section `lines` (markers first and last) in RESULTS.md, or add it at the end."""
    text = results.read_text() if results.exists() else ""
    section = "\n".join(lines)
    start, end = lines[0], lines[-1]
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    results.write_text(text)
