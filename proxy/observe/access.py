"""The access line: one JSON line per call, off the hot path.

structlog's processor chain costs tens of µs a line, and the access line is
written on every call: with JSON logs it is built here as a dict, encoded by
orjson and written in batches, once per turn of the event loop, in chunks of
at most PIPE_BUF bytes that end on a line (so the lines of several worker
processes sharing one stdout pipe never interleave). Lines are flushed
before the app closes and at interpreter exit, so a shutdown loses none. The
console format (development) goes through structlog, line by line.
"""

from __future__ import annotations

import asyncio
import atexit
import select
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..clock import MicroStamps
from .logs import get_logger, json_writer

# The most bytes one write() to a pipe delivers without interleaving with another writer's.
_ATOMIC = getattr(select, "PIPE_BUF", 4096)
_MAX_PENDING = 512  # lines: past this, flushed at once rather than at the end of the loop's turn


class AccessLog:
    def __init__(self, *, debug: bool) -> None:
        # (write bytes, level threshold) when logs are JSON lines; None for the console.
        self._write: Callable[[bytes], None] | None = json_writer()
        self._debug = debug  # [log] level = "debug": polled routes' lines are written too
        self._pending: list[bytes] = []
        self._scheduled = False
        self._structlog = get_logger("apihub.access")
        self._stamps = MicroStamps()
        atexit.register(self.flush)

    def line(self, quiet: bool, fields: dict[str, Any]) -> None:
        """`fields`: the line's, `event` first; the dict becomes the line's.
        `quiet`: a probe or a scrape, logged at debug level only."""
        if quiet and not self._debug:
            return
        write = self._write
        if write is None:
            event = fields.pop("event", "access")
            (self._structlog.debug if quiet else self._structlog.info)(event, **fields)
            return
        # The caller's dict, finished in place (a copy per call showed in the profile).
        fields["level"] = "debug" if quiet else "info"
        fields["timestamp"] = self._stamps(time.time())
        self._pending.append(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE, default=repr))
        if len(self._pending) >= _MAX_PENDING:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a test's direct call): now
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        if not pending or self._write is None:
            return
        chunk: list[bytes] = []
        size = 0
        for line in pending:
            if chunk and size + len(line) > _ATOMIC:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        self._write(b"".join(chunk))

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)
