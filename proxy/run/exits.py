"""Process exit codes, one list for every command, and the one way a
start-up failure is reported."""

from __future__ import annotations

import sys

from ..config import ConfigError
from ..errors import CatalogueError

EXIT_OK = 0
EXIT_STARTUP = 1  # could not start: a port taken
EXIT_CATALOGUE = 2  # the catalogue or an app manifest does not load
EXIT_USAGE = 2  # a bad command line or config, as argparse exits
EXIT_FAILED = 1  # a command that ran and failed (apps push/rm)


class CannotListen(Exception):
    """A listener could not bind its address (a port taken, an address not
    of this host): said in one line, not with a traceback."""

    def __init__(self, host: str, port: int, error: OSError) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {error.strerror or error}")


def startup_failure(exc: ConfigError | CatalogueError | CannotListen) -> int:
    """Print why the hub cannot start (before logging exists) and the exit code."""
    if isinstance(exc, CatalogueError):
        for problem in exc.problems:
            print(f"apihub: catalogue error: {problem}", file=sys.stderr)
        return EXIT_CATALOGUE
    print(f"apihub: {exc}", file=sys.stderr)
    if isinstance(exc, CannotListen):
        return EXIT_STARTUP
    return EXIT_USAGE  # as main() answers every other ConfigError
