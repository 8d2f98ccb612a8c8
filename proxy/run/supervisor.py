"""Several worker processes on one port: `[server] workers = N` (0 = one per CPU).

The main process checks the config and the catalogue once (a broken
catalogue stops start-up with the file and reason, before any fork), then
forks N workers. Each worker is a whole hub (`serve.run_worker`) started on
the catalogue the main process loaded (shared copy-on-write: loaded once,
not N times); it binds the port with SO_REUSEPORT, so the kernel spreads new
connections across the workers. A replacement for a dead worker loads the
catalogue itself, since workers may have reloaded it since.

The main process serves nothing. It waits for signals and forwards them:

* SIGHUP → every worker reloads its catalogue;
* SIGTERM/SIGINT → every worker drains (`shutdown_grace_s`); the main
  process exits 0 once all have exited (workers still alive a few seconds
  after the grace period are killed, and the exit code is then 1);
* a worker that dies unexpectedly is replaced, with a back-off that grows
  while replacements keep dying young (logged as `worker_died` and
  `worker_started`).

The admin listener (`[admin]`) runs in worker slot 0 only: its counters
(conformance, per-worker metrics) are per worker, and one stable worker
answering them is easier to read than a random one per connection. When
slot 0 is replaced, its replacement opens the admin listener again.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import glob
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import multiprocess

from ..config import Config, ConfigError
from ..errors import CatalogueError
from ..observe.logs import get_logger
from ..observe.metrics import MULTIPROC_ENV, use_shared_values
from ..ratelimit.local import FILE_NAME as RATELIMIT_FILE
from ..registry import open_registry
from ..web.state import Loaded, load
from .exits import EXIT_STARTUP, CannotListen, startup_failure
from .serve import run_worker

log = get_logger("apihub.workers")

_FORWARDED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
_WATCHED = {*_FORWARDED, signal.SIGCHLD}

# A worker that lived at least this long resets its slot's back-off.
HEALTHY_AFTER_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# After the grace period, workers get this long before SIGKILL.
KILL_MARGIN_S = 5.0



def worker_count(configured: int) -> int:
    """`workers = 0` means one per CPU this process may run on."""
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)


@dataclass(slots=True)
class _Slot:
    index: int
    pid: int | None = None
    started: float = 0.0
    failures: int = 0  # consecutive deaths before HEALTHY_AFTER_S
    restart_at: float | None = None


@dataclass(slots=True)
class Supervisor:
    config: Config
    count: int
    slots: list[_Slot] = field(default_factory=list)
    # The catalogue loaded before the first forks; dropped once they are made.
    loaded: Loaded | None = None
    stopping: bool = False
    stop_deadline: float = 0.0
    killed: bool = False

    def __post_init__(self) -> None:
        self.slots = [_Slot(i) for i in range(self.count)]

    # ---- the workers -------------------------------------------------------

    def spawn(self, slot: _Slot) -> None:
        config = self.config
        if slot.index != 0 and config.admin.enabled:
            config = dataclasses.replace(config, admin=dataclasses.replace(config.admin, enabled=False))
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = EXIT_STARTUP
            try:
                for signum in _WATCHED:
                    signal.signal(signum, signal.SIG_DFL)
                # Until the worker's loop takes SIGHUP over, a reload request
                # must not kill it (it is loading the catalogue anyway).
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                _drain_when_orphaned(parent)
                use_shared_values()

                code = run_worker(config, loaded=self.loaded)
            except BaseException:  # noqa: BLE001 - a worker must never return into the supervisor
                log.exception("worker_crashed", slot=slot.index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        slot.pid, slot.started, slot.restart_at = pid, time.monotonic(), None
        log.info("worker_started", slot=slot.index, pid=pid)

    def signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            # Its counters stay (they must not go backwards); its live gauges go.
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                log.info("worker_exited", slot=slot.index, pid=pid, code=code)
                continue
            lived = time.monotonic() - slot.started
            slot.failures = 1 if lived >= HEALTHY_AFTER_S else slot.failures + 1
            delay = min(BACKOFF_FIRST_S * 2 ** (slot.failures - 1), BACKOFF_MAX_S)
            slot.restart_at = time.monotonic() + delay
            reason = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.error("worker_died", slot=slot.index, pid=pid, reason=reason,
                      livedSeconds=round(lived, 1), restartInSeconds=delay)

    # ---- the main loop -----------------------------------------------------

    def run(self) -> int:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        try:
            for slot in self.slots:
                self.spawn(slot)
            self.loaded = None  # replacements load afresh: workers may have reloaded since
            log.info("supervising", workers=self.count, pid=os.getpid())
            return self._loop()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _loop(self) -> int:
        grace = self.config.server.shutdown_grace_s
        while True:
            info = signal.sigtimedwait(_WATCHED, self._wait_s())
            if info is not None:
                signum = info.si_signo
                if signum == signal.SIGHUP and not self.stopping:
                    log.info("reloading_workers", workers=sum(s.pid is not None for s in self.slots))
                    self.signal_all(signal.SIGHUP)
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    if not self.stopping:
                        log.info("stopping", signal=signal.Signals(signum).name, graceSeconds=grace)
                        self.stopping = True
                        self.stop_deadline = time.monotonic() + grace + KILL_MARGIN_S
                    self.signal_all(signal.SIGTERM)
            self.reap()
            now = time.monotonic()
            if self.stopping:
                if all(s.pid is None for s in self.slots):
                    log.info("stopped", killed=self.killed)
                    return 1 if self.killed else 0
                if now >= self.stop_deadline and not self.killed:
                    log.error("workers_killed", detail="still running after the grace period")
                    self.killed = True
                    self.signal_all(signal.SIGKILL)
                continue
            for slot in self.slots:
                if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at:
                    self.spawn(slot)

    def _wait_s(self) -> float:
        now = time.monotonic()
        due = [s.restart_at - now for s in self.slots if s.pid is None and s.restart_at is not None]
        if self.stopping:
            due.append(self.stop_deadline - now)
        return max(0.01, min([1.0, *due]))


def _drain_when_orphaned(parent: int) -> None:
    """Linux: SIGTERM this worker if the main process dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the main process died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def port_available(config: Config) -> str | None:
    """Why the workers could not bind the public port or the admin's, or None (checked before forking)."""
    addresses = [(config.server.host, config.server.port)]
    if config.admin.enabled:
        addresses.append((config.admin.host, config.admin.port))
    for host, port in addresses:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                return str(CannotListen(host, port, exc))
    return None


def run(config: Config) -> int:
    """`apihub serve`: one worker in this process, or a supervisor of several."""
    if worker_count(config.server.workers) == 1:
        return run_worker(config)
    return supervise(config)


def supervise(config: Config) -> int:
    """Check the catalogue once, then run `worker_count` workers until SIGTERM."""
    try:
        # Reads the app files (file backend); nothing connects to Redis before the fork.
        loaded = load(config, open_registry(config))
    except (ConfigError, CatalogueError) as exc:
        return startup_failure(exc)
    port_problem = port_available(config)
    if port_problem is not None:
        print(f"apihub: {port_problem}", file=sys.stderr)
        return EXIT_STARTUP
    with shared_metrics_dir():
        return Supervisor(config, worker_count(config.server.workers), loaded=loaded).run()


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this run's workers (see observe/metrics.py);
    an operator's own is used as is, and emptied first as the library asks. The
    `local` limiter's counters live there too (ratelimit/local.py)."""
    given = os.environ.get(MULTIPROC_ENV)
    path = given or tempfile.mkdtemp(prefix="apihub-metrics-")
    for stale in [*glob.glob(os.path.join(path, "*.db")), os.path.join(path, RATELIMIT_FILE)]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(path, ignore_errors=True)
