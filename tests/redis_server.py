"""A private redis-server for a test: free port on 127.0.0.1, no persistence,
stopped (and restartable on the same port) by the test that started it.

Never the system Redis on 6379. Without the binary the tests that need it
are skipped with a reason, unless APIHUB_REQUIRE_REDIS=1 (set by .ci/run):
then they fail, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .support import free_port


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None)


def require_redis() -> str:
    binary = redis_binary()
    if binary is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("APIHUB_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, and APIHUB_REQUIRE_REDIS=1 forbids skipping")
        pytest.skip(reason)
    return binary


@dataclass
class RedisServer:
    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    password: str | None = None
    extra: tuple[str, ...] = ()
    # First argument when set (redis-server wants its config file first), e.g. a sentinel's.
    config_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        head = [str(self.config_file)] if self.config_file else []
        args = [self.binary, *head, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
                "--loglevel", "warning", *self.extra]
        if self.password:
            args += ["--requirepass", self.password]
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}; "
                                     f"see {self.workdir}/redis-{self.port}.log")
            if self.ping():
                return
            time.sleep(0.02)
        raise AssertionError(f"redis-server on port {self.port} did not answer within {timeout_s}s")

    def command(self, command: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            if self.password:
                s.sendall(b"AUTH " + self.password.encode() + b"\r\n")
                s.recv(64)
            s.sendall(command + b"\r\n")
            return s.recv(4096)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self, *, save: bool = False) -> None:
        """Stop the server; with `save`, snapshot first so a restart finds the data
        (persistence is off otherwise)."""
        if self.proc is not None and self.proc.poll() is None:
            if save:
                self.command(b"SAVE")
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def start_redis(workdir: Path, **options: object) -> RedisServer:
    server = RedisServer(require_redis(), workdir, **options)  # type: ignore[arg-type]
    server.start()
    return server


def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """The body of a `redis_server` fixture (each test module declares its own:
    importing a fixture by name trips the linters)."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = start_redis(workdir)
    try:
        yield server
    finally:
        server.stop()
