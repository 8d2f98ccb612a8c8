"""structlog set-up: JSON lines in production, a readable console in dev.

Configured once per process. The processors are few on purpose: this runs
once per call on the hot path. Exceptions are rendered as plain tracebacks,
never with local variables (they would hold tokens, secrets and bodies).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

import orjson
import structlog
import structlog.tracebacks

from ..config import LogConfig

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _orjson_dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=repr).decode()


def _orjson_bytes(event: Any, **_: Any) -> bytes:
    return orjson.dumps(event, default=repr)


# Where JSON lines go, for writers that build their own lines (access.py);
# None with the console format. Logging is set up once per process, like structlog.
_json_writer: list[Callable[[bytes], None] | None] = [None]


def json_writer() -> Callable[[bytes], None] | None:
    """Writes whole JSON lines (bytes) to the log stream; None unless the format is JSON."""
    return _json_writer[0]


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    # JSON lines go out as bytes, each line in one write(): no str round trip,
    # and lines of several worker processes sharing stdout never interleave.
    binary = config.format == "json" and hasattr(stream, "buffer")
    if config.format != "json":
        _json_writer[0] = None
    elif binary:
        _json_writer[0] = _binary_writer(stream)
    else:
        _json_writer[0] = _text_writer(stream)
    # Runs on every access line: no merge_contextvars (nothing binds any).
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if config.format == "json":
        no_locals = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        processors = [
            *shared,
            no_locals,
            structlog.processors.JSONRenderer(serializer=_orjson_bytes if binary else _orjson_dumps),
        ]
        library_renderer: list[Any] = [no_locals, structlog.processors.JSONRenderer(serializer=_orjson_dumps)]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(),
            exception_formatter=structlog.dev.plain_traceback,
        )
        processors = [*shared, renderer]
        library_renderer = [renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[config.level]),
        logger_factory=(structlog.BytesLoggerFactory(file=stream.buffer) if binary
                        else structlog.PrintLoggerFactory(file=stream)),
        cache_logger_on_first_use=True,
    )
    # Libraries that log through the stdlib (aiohttp, redis, asyncio) come out
    # as the same lines on the same stream, at warning and above.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *library_renderer],
    ))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def _binary_writer(stream: TextIO) -> Callable[[bytes], None]:
    out = stream.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    return write


def _text_writer(stream: TextIO) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stream.write(data.decode())
        stream.flush()

    return write
