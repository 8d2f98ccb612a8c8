"""The JSON Schema Test Suite's required tests, draft-04 to 2020-12, through
the compiler the catalogue loader uses, on each engine: at least TARGET %
right verdicts per draft and engine, remote references refused at load with
nothing fetched. The table is printed at the end of the run
(`pytest tests/validation -q` shows it) and kept in benchmarks/RESULTS.md
(benchmarks/jsonschema_suite.py)."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.catalogue import compiler_for
from proxy.config import CatalogueConfig

from .suite import DRAFTS, REMOTE_HOST, REMOTE_PORT, TARGET, Compile, Score, run, table

ENGINES = ("fastjsonschema", "jsonschema-rs")
# The default engine where jsonschema-rs (an optional dependency) is not
# installed: its fallbacks go to jsonschema.
WITHOUT_RS = "fastjsonschema without jsonschema-rs"
SCORES = pytest.StashKey[dict[tuple[str, str], Score]]()


def hub_compiler(engine: str) -> Compile:
    """What the loader does with a schema: check, compile with the named
    engine (and fall back per schema where the hub does)."""
    compiler = compiler_for(CatalogueConfig(validator=engine))  # type: ignore[arg-type]

    def compile_schema(schema: Any) -> Any:
        return compiler.compile(schema).validate

    return compile_schema


@pytest.fixture(scope="module")
def remote_listener() -> Iterator[socket.socket | None]:
    """A socket where refRemote's schemas live (localhost:1234), when that
    port is free: after the run it must have no connection waiting."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((REMOTE_HOST, REMOTE_PORT))
    except OSError as exc:
        listener.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        yield None  # someone else's: the refusals are still checked
        return
    listener.listen(16)
    listener.setblocking(False)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def scores(request: pytest.FixtureRequest, remote_listener: socket.socket | None) -> dict[tuple[str, str], Score]:
    results: dict[tuple[str, str], Score] = {}
    for engine in ENGINES:
        if engine == "jsonschema-rs":
            pytest.importorskip("jsonschema_rs")
        compile_schema = hub_compiler(engine)
        for folder in DRAFTS:
            results[(engine, folder)] = run(folder, compile_schema)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "jsonschema_rs", None)  # import now fails
        compile_schema = hub_compiler("fastjsonschema")
        for folder in DRAFTS:
            results[(WITHOUT_RS, folder)] = run(folder, compile_schema)
    request.config.stash[SCORES] = results
    return results


@pytest.mark.parametrize("engine", [*ENGINES, WITHOUT_RS])
@pytest.mark.parametrize("folder", list(DRAFTS))
def test_pass_rate(scores: dict[tuple[str, str], Score], engine: str, folder: str) -> None:
    score = scores[(engine, folder)]
    worst = "\n".join(f"  {count} × {what}" for what, count in score.failures.most_common(20))
    assert score.rate >= TARGET, f"{engine} {folder}: {score.rate:.1f} % right verdicts\n{worst}"


def test_nothing_is_fetched(scores: dict[tuple[str, str], Score], remote_listener: socket.socket | None) -> None:
    if remote_listener is None:
        pytest.skip(f"{REMOTE_HOST}:{REMOTE_PORT} is in use by another program")
    with pytest.raises(BlockingIOError):
        remote_listener.accept()  # a connection attempt would be waiting here


def print_table(config: pytest.Config, write: Any) -> None:
    results = config.stash.get(SCORES, None)
    if results:
        engines = tuple(engine for engine in (*ENGINES, WITHOUT_RS) if (engine, "draft4") in results)
        write("JSON Schema Test Suite, required tests: right verdicts")
        for line in table(results, engines):
            write(line)
