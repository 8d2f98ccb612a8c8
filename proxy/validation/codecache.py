"""Generated validator code kept on disk between runs (`[catalogue] cache_dir`).

Compiling a schema is most of a catalogue's load time: the checks, then
fastjsonschema writing Python source and Python compiling it (~5-9 ms per
schema, 20,000 schemas for 10,000 actions). The compiled code object of a
schema that passed every check is stored under a key made of the schema and
the versions of everything that judged it (apihub's checks, fastjsonschema,
Python); the next start or worker loads it in microseconds and skips both.

The folder holds code that the hub executes: it must be writable only by
the user the hub runs as, like the installed package itself. Off by default.
A file that cannot be read or decoded is a miss; a failed write is logged
once and otherwise ignored (the load goes on, just slower next time).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from .. import __version__
from ..observe.logs import get_logger

log = get_logger("apihub.catalogue")

# Bump when the checks in drafts.py change what they accept, or when the
# trimming of fastjsonschema's code (fastcode.py) changes.
CHECKS_VERSION = 7


class CodeCache:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._salt = f"{__version__}|{CHECKS_VERSION}|{fastjsonschema.VERSION}|{sys.version}|".encode()
        self._warned = False

    def _path(self, definition: Any) -> Path:
        digest = hashlib.sha256(self._salt + orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return self._folder / digest[:2] / f"{digest}.code"

    def load(self, definition: Any) -> types.CodeType | None:
        try:
            data = self._path(definition).read_bytes()
            code = marshal.loads(data)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        return code if isinstance(code, types.CodeType) else None

    def store(self, definition: Any, code: types.CodeType) -> None:
        path = self._path(definition)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(marshal.dumps(code))
            os.replace(tmp, path)  # readers see the whole file or none
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("code_cache_unwritable", folder=str(self._folder), reason=exc.strerror)
