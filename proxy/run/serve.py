"""Running the hub: one worker process's event loop, signals, graceful drain.

SIGHUP reloads the catalogue; SIGTERM/SIGINT stop accepting, let the calls
in flight finish within `[server] shutdown_grace_s`, answer those still
running 503 `shutting_down` (each with its access line), then exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..admin.app import create_admin_app
from ..config import Config, ConfigError
from ..errors import CatalogueError
from ..observe.logs import get_logger
from ..web import heap
from ..web.answer import write_vectored
from ..web.app import create_app
from ..web.httpserver import HubRunner
from ..web.state import HUB, Loaded
from .exits import EXIT_OK, CannotListen, startup_failure
from .limits import raise_fd_limit

log = get_logger("apihub.server")

# aiohttp's own drain deadline trails the hub's cut by this much, so the calls
# still running at the end of the grace are answered by the hub (503 with an
# access line), not dropped by aiohttp's cancellation.
CUT_MARGIN_S = 0.5


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_OK)


def handle_stop_signals() -> None:
    """SIGINT and SIGTERM stop this process however it was started. A shell
    script's `apihub demo &` starts it with SIGINT ignored (SIG_IGN is
    inherited, and Python then installs no KeyboardInterrupt), so set both
    explicitly: until the event loop takes them over, either one exits
    cleanly (`finally` blocks run)."""
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)


def use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    write_vectored()
    return True


def run_worker(config: Config, *, sock: socket.socket | None = None, loaded: Loaded | None = None,
               on_started: Callable[[], Awaitable[None]] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (with the catalogue `loaded` before a fork,
    if given; `on_started` once listening). Returns the process exit code."""
    handle_stop_signals()
    raise_fd_limit()
    try:
        app = create_app(config, loaded=loaded)
    except (ConfigError, CatalogueError) as exc:
        return startup_failure(exc)
    app[HUB].freeze_heap = True
    heap.freeze()
    heap.collect_young_less_often()
    uvloop = use_uvloop()
    try:
        asyncio.run(serve_app(app, config, sock=sock, uvloop=uvloop, on_started=on_started))
    except CannotListen as exc:
        return startup_failure(exc)
    return EXIT_OK


def runner_for(app: web.Application, config: Config) -> web.AppRunner:
    server = config.server
    # HubRunner adds the header-read timeout and problem+json HTTP rejections.
    return HubRunner(
        app,
        handle_signals=False,
        access_log=None,  # one structured access line per call comes from the middleware
        shutdown_timeout=server.shutdown_grace_s + CUT_MARGIN_S,
        keepalive_timeout=server.keepalive_timeout_s,
        header_timeout_s=server.header_timeout_ms / 1000,
        max_header_bytes=server.max_header_bytes,
    )


async def start_admin(app: web.Application, config: Config) -> web.AppRunner | None:
    if not config.admin.enabled:
        return None
    hub = app[HUB]
    if not config.admin.token_sha256:
        log.warning("admin_token_missing", detail="every admin call will answer 401")
    runner = runner_for(create_admin_app(hub), config)
    await runner.setup()
    site = web.TCPSite(runner, config.admin.host, config.admin.port,
                       reuse_port=config.server.workers != 1)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CannotListen(config.admin.host, config.admin.port, exc) from None
    log.info("admin_listening", address=site.name)
    return runner


async def serve_app(
    app: web.Application,
    config: Config,
    *,
    sock: socket.socket | None = None,
    uvloop: bool = False,
    on_started: Callable[[], Awaitable[None]] | None = None,
) -> None:
    hub = app[HUB]
    runner = runner_for(app, config)
    await runner.setup()
    admin_runner: web.AppRunner | None = None
    try:
        if sock is not None:
            site: web.BaseSite = web.SockSite(runner, sock)
        else:
            site = web.TCPSite(
                runner, config.server.host, config.server.port,
                reuse_port=config.server.workers != 1, backlog=1024,
            )
        try:
            await site.start()
        except OSError as exc:
            raise CannotListen(config.server.host, config.server.port, exc) from None
        admin_runner = await start_admin(app, config)
        log.info(
            "listening", address=site.name, actions=len(hub.catalogue.actions),
            generation=hub.catalogue.generation, uvloop=uvloop,
        )
        stop = asyncio.Event()
        reloads: set[asyncio.Task[bool]] = set()
        loop = asyncio.get_running_loop()

        def on_hup() -> None:
            task = loop.create_task(hub.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        def on_stop(signame: str) -> None:
            log.info("stopping", signal=signame, graceSeconds=config.server.shutdown_grace_s)
            stop.set()

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        loop.add_signal_handler(signal.SIGTERM, on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, on_stop, "SIGINT")
        if on_started is not None:
            await on_started()
        await stop.wait()
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    finally:
        if admin_runner is not None:
            await admin_runner.cleanup()
        # Stops listening, waits for calls in flight (up to the grace period,
        # when `cut` answers the rest), then closes the client session in the
        # cleanup context.
        def cut() -> None:
            cut_off = hub.calls.cut()
            if cut_off:
                log.warning("calls_cut_at_shutdown", calls=cut_off,
                            graceSeconds=config.server.shutdown_grace_s)

        cutter = asyncio.get_running_loop().call_later(config.server.shutdown_grace_s, cut)
        try:
            await runner.cleanup()
        finally:
            cutter.cancel()
    log.info("stopped")
