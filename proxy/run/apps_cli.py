"""`apihub apps push DIR | list | rm ID`: the admin API's writes, straight
to the redis registry (same data model, same RegistryWriter), for deploy
scripts and operators at a shell."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..config import Config
from ..errors import CatalogueError
from ..registry.file import read_apps_folder
from ..registry.manifest import App, ManifestError, redacted
from ..registry.redis import (
    REDIS_FAILURES,
    Keys,
    RegistryWriter,
    connect,
    disconnect,
    redact,
    redact_url,
)
from .exits import EXIT_FAILED, EXIT_USAGE

T = TypeVar("T")


def _err(message: str) -> None:
    print(f"apihub: {message}", file=sys.stderr)


def _with_writer(config: Config, work: Callable[[RegistryWriter], Awaitable[T]]) -> T:
    async def run() -> T:
        client = connect(config.registry)
        try:
            return await work(RegistryWriter(client, Keys.for_prefix(config.registry.prefix)))
        finally:
            await disconnect(client)

    return asyncio.run(run())


def _needs_redis(config: Config) -> bool:
    if config.registry.backend == "redis":
        return True
    _err('apps commands need [registry] backend = "redis"; with the file backend the '
         "manifests in catalogue/apps/ are the registry")
    return False


def _unreachable(config: Config, exc: BaseException) -> int:
    reason = redact(f"{type(exc).__name__}: {exc}", config.registry.url)
    _err(f"cannot use the registry at {redact_url(config.registry.url)}: {reason}")
    return EXIT_FAILED


def read_manifests(folder: Path) -> tuple[list[tuple[Path, Mapping[str, Any]]], list[str]]:
    """Every *.json manifest in `folder`, checked as the file registry checks
    them (secrets are not resolved), or what is wrong with them."""
    parsed: dict[str, tuple[tuple[int, int], App]] = {}
    try:
        read_apps_folder(folder, resolve_secrets=False, parsed=parsed)
    except CatalogueError as exc:
        return [], [f"{p.source}: {p.pointer or '/'}: {p.message}" for p in exc.problems]
    return [(Path(source), app.manifest) for source, (_, app) in sorted(parsed.items())], []


def push(config: Config, folder: Path) -> int:
    if not _needs_redis(config):
        return EXIT_USAGE
    if not folder.is_dir():
        _err(f"{folder}: not a folder")
        return EXIT_USAGE
    manifests, problems = read_manifests(folder)
    if problems:
        for problem in problems:
            _err(problem)
        _err("nothing pushed")
        return EXIT_FAILED

    async def work(writer: RegistryWriter) -> int:
        failed = 0
        for path, doc in manifests:
            try:
                outcome = await writer.put_app(doc)
            except ManifestError as exc:
                _err(f"{path}: {exc.field}: {exc.message}")
                failed += 1
                continue
            print(f"{outcome:9} {doc['id']}")
        await writer.mark()  # Redis holds the registry again, even if nothing changed
        return failed

    try:
        failed = _with_writer(config, work)
    except REDIS_FAILURES as exc:
        return _unreachable(config, exc)
    print(f"{len(manifests) - failed} of {len(manifests)} manifests in the registry", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def list_apps(config: Config, *, as_json: bool) -> int:
    if not _needs_redis(config):
        return EXIT_USAGE
    try:
        manifests = _with_writer(config, lambda w: w.list_manifests())
    except REDIS_FAILURES as exc:
        return _unreachable(config, exc)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps([redacted(m) for m in manifests], option=orjson.OPT_INDENT_2))
        sys.stdout.write("\n")
        return 0
    for doc in manifests:
        print(f"{doc['id']}\t{doc.get('displayName', doc['id'])}\t"
              f"communities={','.join(doc.get('communities', [])) or '-'}\t"
              f"provides={','.join(doc.get('provides', {})) or '-'}\t"
              f"consumes={','.join(doc.get('consumes', [])) or '-'}\t"
              f"limits={declared_limits(doc) or '-'}")
    return 0


def declared_limits(doc: dict[str, Any]) -> str:
    """The manifest's limits in one field: `*=100/s;A=10/s+50000/day;A@provider=200/s`."""
    parts = []
    limits = doc.get("limits")
    if isinstance(limits, dict):
        for action, spec in limits.items():
            if isinstance(spec, dict):
                parts.append(f"{action}=" + "+".join(str(spec[k]) for k in ("rate", "quota") if k in spec))
    provides = doc.get("provides")
    if isinstance(provides, dict):
        for action, spec in provides.items():
            if isinstance(spec, dict) and "maxRate" in spec:
                parts.append(f"{action}@provider={spec['maxRate']}")
    return ";".join(parts)


def remove(config: Config, app_id: str) -> int:
    if not _needs_redis(config):
        return EXIT_USAGE
    try:
        removed = _with_writer(config, lambda w: w.delete_app(app_id))
    except REDIS_FAILURES as exc:
        return _unreachable(config, exc)
    if not removed:
        _err(f"no app {app_id!r} in the registry")
        return EXIT_FAILED
    print(f"removed   {app_id}")
    return 0
