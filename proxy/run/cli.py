"""`apihub`: the command line. Subcommands stay thin and call into modules."""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from ..config import Config, ConfigError, load_config
from ..observe.logs import configure_logging
from ..tokens import TOKEN_PREFIX, hash_token
from ..validation import engine_for
from . import apps_cli, example_provider
from .check import check
from .exits import EXIT_USAGE
from .serve import handle_stop_signals, run_worker
from .supervisor import run

DEFAULT_CONFIG = "config.toml"


def _config(path: str | None) -> Config:
    """The config named on the command line, or ./config.toml when present."""
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return load_config(path)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args.config)
    configure_logging(config.log)
    return run(config)


def cmd_token_new(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    print(f"token:    {token}")
    print(f'manifest: "tokens": ["{TOKEN_PREFIX}{hash_token(token)}"]')
    print("Give the token to the app's operator; only the hash goes into the manifest.", file=sys.stderr)
    return 0


def cmd_example_provider(args: argparse.Namespace) -> int:
    example_provider.run(args.host, args.port, secret_env=args.secret_env)
    return 0


def cmd_apps(args: argparse.Namespace) -> int:
    config = _config(args.config)
    if args.apps_command == "push":
        return apps_cli.push(config, Path(args.dir))
    if args.apps_command == "list":
        return apps_cli.list_apps(config, as_json=args.json)
    return apps_cli.remove(config, args.id)


def cmd_catalogue_check(args: argparse.Namespace) -> int:
    # The engine the config names, unless --validator says otherwise.
    name = args.validator or _config(args.config).catalogue.validator
    return check(Path(args.path), engine=engine_for(name))


def cmd_demo(args: argparse.Namespace) -> int:
    """`make run`: the example provider in a child process, the hub in this one."""
    config = _config(args.config)
    configure_logging(config.log)
    handle_stop_signals()  # before the child starts: Ctrl-C also reaches it, by default
    provider = subprocess.Popen(
        [sys.executable, "-m", "proxy", "example-provider", "--port", str(args.provider_port)],
        env=os.environ.copy(),
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{args.provider_port}/healthz", provider)
        except RuntimeError as exc:
            raise SystemExit(f"apihub: the example provider did not start: {exc}") from None
        host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::") else config.server.host
        url = f"http://{host}:{config.server.port}"
        print(DEMO_BANNER.format(url=url), file=sys.stderr, flush=True)

        async def listening() -> None:  # this hub, not whatever else answers on the port
            threading.Thread(target=_show_demo_call, args=(url,), name="demo-call", daemon=True).start()

        return run_worker(config, on_started=listening)
    finally:
        provider.terminate()
        provider.wait(timeout=10)


DEMO_BODY = '{"data": {"entity": {"type": "student", "id": "s-1042"}, "from": "2026-03-01", "to": "2026-03-31"}}'
DEMO_HEADERS = (("Authorization", "Bearer demo-grades-viewer-token"), ("community-id", "colegio-exemplo"),
                ("Content-Type", "application/json"))


def _show_demo_call(url: str) -> None:
    """The banner's call, made for real once the hub listens (with curl when
    installed, else the same request from Python), and its answer."""
    call_url = f"{url}/v1/services/call/@layers:Calendar:getRelated/erp-modelo"
    curl = shutil.which("curl")
    if curl is not None:
        argv = [curl, "-sS", "-i", "-X", "POST", call_url,
                *(a for k, v in DEMO_HEADERS for a in ("-H", f"{k}: {v}")), "-d", DEMO_BODY]
        shown = "curl -sS -i -X POST " + " ".join(shlex.quote(a) for a in argv[5:])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
        answer = done.stdout + done.stderr
    else:
        shown = f"POST {call_url} (curl is not installed: the same request from Python)"
        request = urllib.request.Request(call_url, data=DEMO_BODY.encode(), headers=dict(DEMO_HEADERS))
        try:
            with urllib.request.urlopen(request, timeout=15) as r:
                answer = f"HTTP {r.status}\n{r.read().decode()}"
        except urllib.error.HTTPError as exc:
            answer = f"HTTP {exc.code}\n{exc.read().decode()}"
        except OSError as exc:
            answer = f"failed: {exc}"
    print(f"\nA call through the hub:\n\n$ {shown}\n{answer.strip()}\n", file=sys.stderr, flush=True)


DEMO_BANNER = """
apihub demo: hub on {url}, example provider 'erp-modelo' on 127.0.0.1:9001.
Try, from another terminal (the token is the demo's, never use it in production):

  curl -sS -X POST '{url}/v1/services/call/@layers:Calendar:getRelated/erp-modelo' \\
    -H 'Authorization: Bearer demo-grades-viewer-token' \\
    -H 'community-id: colegio-exemplo' -H 'Content-Type: application/json' \\
    -d '{{"data": {{"entity": {{"type": "student", "id": "s-1042"}}, "from": "2026-03-01", "to": "2026-03-31"}}}}'

Ctrl-C stops both.
"""


def wait_http(url: str, child: subprocess.Popen[bytes] | None = None, timeout_s: float = 15.0) -> None:
    """Until `url` answers; RuntimeError if `child` exits or time runs out.
    (Before any event loop exists: a plain blocking wait.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {child.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f}s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apihub", description="An API hub for an ecosystem of apps.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub")
    serve.add_argument("--config", help=f"config file (default: ./{DEFAULT_CONFIG} if present)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run the hub with the example provider (make run)")
    demo.add_argument("--config")
    demo.add_argument("--provider-port", type=int, default=9001)
    demo.set_defaults(func=cmd_demo)

    token = sub.add_parser("token", help="consumer tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser("new", help="print a fresh token and the manifest line with its hash")
    new.set_defaults(func=cmd_token_new)

    example = sub.add_parser("example-provider", help="run the example provider app")
    example.add_argument("--host", default="127.0.0.1")
    example.add_argument("--port", type=int, default=9001)
    example.add_argument("--secret-env", default="ERP_MODELO_SECRET",
                         help="environment variable holding the secret the hub must send")
    example.set_defaults(func=cmd_example_provider)

    catalogue = sub.add_parser("catalogue", help="catalogue tools")
    catalogue_sub = catalogue.add_subparsers(dest="catalogue_command", required=True)
    check = catalogue_sub.add_parser("check", help="load and compile a catalogue as the server would")
    check.add_argument("path", nargs="?", default="catalogue")
    check.add_argument("--config", help=f"config file whose validator to use (default: ./{DEFAULT_CONFIG} if present)")
    check.add_argument("--validator", help="validation engine, overriding the config's [catalogue] validator")
    check.set_defaults(func=cmd_catalogue_check)

    apps = sub.add_parser("apps", help="apps in the shared (redis) registry")
    apps_sub = apps.add_subparsers(dest="apps_command", required=True)
    push = apps_sub.add_parser("push", help="write every manifest in DIR to the registry (idempotent)")
    push.add_argument("dir", metavar="DIR")
    listing = apps_sub.add_parser("list", help="list the apps in the registry")
    listing.add_argument("--json", action="store_true", help="the manifests as JSON (secrets masked)")
    rm = apps_sub.add_parser("rm", help="remove an app from the registry")
    rm.add_argument("id", metavar="ID")
    for command in (push, listing, rm):
        command.add_argument("--config", help=f"config file (default: ./{DEFAULT_CONFIG} if present)")
        command.set_defaults(func=cmd_apps)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"apihub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
