"""A lean keep-alive HTTP/1.1 client for provider calls (`[upstream] client = "lean"`).

The same seam as the aiohttp client (base.ProviderClient), built
for the one exchange the hub makes: a POST of a JSON body, a JSON answer read
whole. Per call it writes the request head and body with one
`transport.write`, and parses the answer with httptools (llhttp) callbacks,
keeping only the four headers it needs. No request/response objects, header
multidicts, writer task or per-call timers.

- Pool: idle connections per (provider app, scheme, host, port), most recent
  first (never shared between apps, whatever host and port they share), closed
  after `[upstream] keepalive_timeout_s` idle; at most `[upstream] pool_size`
  connections open at once (busy or idle), further calls wait for a slot.
- A connection goes back to the pool only after a complete 2xx answer that
  allows keep-alive; a cancelled, failed, non-2xx or cut exchange closes it,
  so does any byte that arrives outside an exchange (a late or unasked
  answer). Bytes after a complete answer fail that call, not the next one.
  Either makes the app's connections single-use for base.DISTRUST_S.
- A connection the provider closed while idle is dropped from the pool when
  its close arrives; if the close races the next request on it, the request
  is sent again on a new connection (base.NeverReceived).
- https: TLS through `loop.create_connection(ssl=..., server_hostname=...)`
  with the system's default verification.
- The hub asks for `Accept-Encoding: identity`; a provider that compresses
  anyway with gzip or deflate has its answer inflated as it arrives, the size
  limit counting the inflated bytes (a small bomb is cut at the limit); any
  other Content-Encoding, any Transfer-Encoding but chunked, and bytes after
  the compressed stream (but further gzip members) are refused as
  invalid_provider_response.
- Framing is bounded like the body: the head and a chunked answer's trailers
  at MAX_HEAD_BYTES each (httptools holds a header whole until it ends).
- An answer that came before the whole request was written (the provider
  never read the rest) does not leave its connection reusable.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

from ..config import LimitsConfig, UpstreamConfig
from ..errors import HubError, InvalidProviderResponse, ProviderError, ProviderUnreachable
from ..types import Answer
from .base import (
    DISTRUST_S,
    IDLE_RACE_S,
    USER_AGENT,
    ConnectFailed,
    NeverReceived,
    hub_out_of_files,
    signature,
    too_many_files,
    within_deadline,
)
from .deadlines import Deadlines

# The answer's head (status line and headers) may take this much on top of
# the body limit; llhttp itself puts no bound on it.
MAX_HEAD_BYTES = 64 * 1024
_URL_CACHE_MAX = 4096

# A pool key: provider app id, scheme, host, port.
_Key = tuple[str, str, str, int]


@dataclass(frozen=True, slots=True)
class _Target:
    key: tuple[str, str, int]  # scheme, host, port (the pool adds the app)
    host: str
    port: int
    tls: bool
    # "POST <path> HTTP/1.1\r\nHost: ...\r\n<fixed headers>" up to the per-call ones.
    head: bytes


class LeanClient:
    """The provider seam on a hand-rolled connection pool (see the module docstring)."""

    name = "lean"

    def __init__(self, upstream: UpstreamConfig, limits: LimitsConfig) -> None:
        self._max_bytes = limits.max_response_bytes
        self._connect_s = upstream.connect_timeout_ms / 1000
        self._connect_ms = upstream.connect_timeout_ms
        self._pool = _Pool(upstream.pool_size, upstream.keepalive_timeout_s)
        self._targets: dict[str, _Target] = {}
        self._ssl: ssl.SSLContext | None = None
        self._deadlines = Deadlines()

    async def close(self) -> None:
        self._pool.close()
        self._deadlines.close()

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        pool: str,
        secret: str,
        request_id: str,
        deadline_s: float,
        retry_connect: bool = False,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Answer:
        started = time.perf_counter()
        target = self._targets.get(url) or self._target(url)
        key = (pool, *target.key)
        # [tracing] traceparent/tracestate (printable ASCII, the propagator checked), encoded once for both tries
        extra = b"".join(b"%s: %s\r\n" % (k.encode("ascii"), v.encode("ascii")) for k, v in headers) if headers else b""
        return await within_deadline(
            lambda fresh: self._exchange(target, key, body, secret, request_id, started, fresh, extra),
            deadline_s, retry_connect, self._deadlines)

    def _target(self, url: str) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
        except ValueError:
            raise ProviderUnreachable("provider URL is invalid") from None
        if parts.scheme not in ("http", "https") or not host or any(c in url for c in "\r\n\t\0 "):
            raise ProviderUnreachable("provider URL is invalid")
        tls = parts.scheme == "https"
        default_port = 443 if tls else 80
        port = port or default_port
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~-._")
        if parts.query:
            path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~-._?")
        host_header = f"[{host}]" if ":" in host else host
        if port != default_port:
            host_header += f":{port}"
        head = (f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Accept-Encoding: identity\r\nUser-Agent: {USER_AGENT}\r\n").encode("ascii")
        target = _Target((parts.scheme, host, port), host, port, tls, head)
        if len(self._targets) >= _URL_CACHE_MAX:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def _exchange(self, target: _Target, key: _Key, body: bytes, secret: str, request_id: str,
                        started: float, fresh: bool, extra: bytes) -> Answer:
        conn = None if fresh else self._pool.take(key)
        if conn is None:
            conn = await self._connect(target, key)
        request = b"".join((
            target.head,
            b"X-Request-Id: ", request_id.encode("ascii"),
            b"\r\nX-Hub-Signature: ", signature(secret, body, int(time.time())).encode("ascii"),
            b"\r\nContent-Length: %d\r\n" % len(body),
            extra,
            b"\r\n",
            body,
        ))
        done = False
        try:
            answer = await conn.exchange(request)
            done = True
        finally:
            if not done:
                conn.abort()  # cancelled or failed: never reused
        self._pool.give_back(conn)
        return Answer(answer, (time.perf_counter() - started) * 1000)

    async def _connect(self, target: _Target, key: _Key) -> _Connection:
        handed = await self._pool.reserve(key)
        if handed is not None:
            return handed  # another call's connection to the same provider, freed while we waited
        loop = asyncio.get_running_loop()
        ssl_context = None
        if target.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ssl_context = self._ssl
        reserved = True
        try:
            try:
                async with asyncio.timeout(self._connect_s):
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self._pool, key, self._max_bytes, loop),
                        target.host, target.port, ssl=ssl_context,
                        server_hostname=target.host if target.tls else None,
                    )
            except TimeoutError:
                # Only this inner timeout lands here (the overall deadline
                # surfaces in post()). Not retried: a host that does not
                # answer SYNs would double the wait.
                raise ProviderUnreachable(f"could not connect within {self._connect_ms} ms") from None
            except socket.gaierror:
                raise ProviderUnreachable("provider host name could not be resolved") from None
            except ssl.SSLError as exc:
                raise ProviderUnreachable(f"TLS handshake with provider failed: {type(exc).__name__}") from None
            except OSError as exc:
                if too_many_files(exc):
                    raise hub_out_of_files() from None
                # Nothing of the request was written: safe to send again.
                raise NeverReceived(f"connection failed: {exc.strerror or type(exc).__name__}") from None
            if conn.closed:  # lost at once, before a byte was written: the slot is still ours to give back
                raise NeverReceived("provider closed the connection before the request was sent")
            conn.owns_slot = True
            reserved = False
            return conn
        finally:
            if reserved:
                self._pool.unreserve()


class _Pool:
    """Idle connections per (scheme, host, port) and a cap on open connections."""

    def __init__(self, size: int, keepalive_s: float) -> None:
        self._size = size
        self._keepalive_s = keepalive_s
        self._idle: dict[_Key, list[_Connection]] = {}
        self._open = 0
        # Calls waiting for a slot (None) or a freed connection to their key.
        self._waiters: collections.deque[tuple[_Key, asyncio.Future[_Connection | None]]] = (
            collections.deque())
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._distrusted: dict[str, float] = {}  # app -> until (monotonic)

    def take(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.abort()
        return None

    def distrust(self, app: str) -> None:
        """`app`'s provider wrote bytes outside an exchange: no reuse for a
        while, of the connections idle now too (each may hold a late answer
        that the next call on it would read as its own)."""
        self._distrusted[app] = time.monotonic() + DISTRUST_S
        for key in [key for key in self._idle if key[0] == app]:
            for conn in self._idle.pop(key):
                conn.abort()  # its connection_lost frees the slot

    def give_back(self, conn: _Connection) -> None:
        until = self._distrusted.get(conn.key[0]) if self._distrusted else None
        if until is not None and until < time.monotonic():
            del self._distrusted[conn.key[0]]
            until = None
        if not conn.reusable or self._closed or until is not None:
            conn.abort()
            return
        if self._waiters and self._hand_over(conn):
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._waiters:
            # Calls to other providers wait for a slot: free one.
            self._close_oldest_idle()
        if self._sweeper is None:
            self._schedule_sweep()

    async def reserve(self, key: _Key) -> _Connection | None:
        """A slot to open a connection in (None), or an idle connection to `key`
        that another call freed while this one waited for a slot."""
        if self._open < self._size:
            self._open += 1
            return None
        self._close_oldest_idle()  # its slot comes back through release()
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        entry = (key, waiter)
        self._waiters.append(entry)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()  # handed over just as we were cancelled: pass it on
                if handed is None:
                    self.release()
                else:
                    self.give_back(handed)
            elif entry in self._waiters:  # release() or a hand-over may have dropped it already
                self._waiters.remove(entry)
            raise

    def _hand_over(self, conn: _Connection) -> bool:
        for entry in self._waiters:
            key, waiter = entry
            if key == conn.key and not waiter.done():
                self._waiters.remove(entry)
                waiter.set_result(conn)
                return True
        return False

    def unreserve(self) -> None:
        self.release()

    def release(self) -> None:
        """A slot is free (a connection closed, or a reservation unused)."""
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter
                return
        self._open -= 1

    def forget(self, conn: _Connection) -> None:
        """A connection closed: drop it from the idle list and free its slot."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        self.release()

    def _close_oldest_idle(self) -> bool:
        oldest: _Connection | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest.idle_since):
                oldest = idle[0]
        if oldest is None:
            return False
        self._idle[oldest.key].remove(oldest)
        oldest.abort()  # its connection_lost, scheduled by the loop, releases the slot
        return True

    def _schedule_sweep(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(max(self._keepalive_s / 2, 0.05), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        deadline = time.monotonic() - self._keepalive_s
        left = False
        for key, idle in list(self._idle.items()):
            for conn in [c for c in idle if not c.usable or c.idle_since <= deadline]:
                conn.abort()
                if conn in idle:
                    idle.remove(conn)
            if idle:
                left = True
            else:
                del self._idle[key]
        if left and not self._closed:
            self._schedule_sweep()

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.abort()
        self._idle.clear()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, answers parsed by llhttp."""

    def __init__(self, pool: _Pool, key: _Key, max_bytes: int, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop  # asyncio.get_running_loop() makes a getpid() system call on Python 3.11
        self.key = key
        self._max_bytes = max_bytes
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[bytes] | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._received = 0
        self._status = 0
        self._headers_done = False
        self._framed = False  # a Content-Length or chunked answer (else: until EOF)
        self._complete = False
        self._tail = False  # bytes after the complete answer
        self._keep_alive = False
        self._encoding: bytes | None = None
        self._transfer: bytes | None = None  # a Transfer-Encoding other than chunked
        # Bytes received when the last chunk's size line was read, until its
        # first byte of data: what comes after the last (empty) chunk is its
        # trailers, which httptools holds whole, so they are bounded like a head.
        self._chunk_mark: int | None = None
        self._inflate: Any = None  # a zlib decompressor for a gzip/deflate answer
        self._sent_at = 0.0
        self._declared: int | None = None
        self.closed = False
        self.uses = 0
        self.idle_since = 0.0
        # Set once create_connection() returned it: from then on its close frees the pool slot.
        self.owns_slot = False

    # -- what the pool and the client see --

    @property
    def usable(self) -> bool:
        return not self.closed and self._waiter is None

    @property
    def reusable(self) -> bool:
        # Not after an answer that came before the whole request was written
        # (the provider never read the rest): the next request would follow it.
        return (not self.closed and self._complete and self._keep_alive
                and self._transport is not None and not self._transport.get_write_buffer_size())

    async def exchange(self, request: bytes) -> bytes:
        if self.closed or self._transport is None:
            raise NeverReceived("provider closed the connection before the request was sent")
        self.uses += 1
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        self._waiter = waiter
        self._chunks = []
        self._size = self._received = self._status = 0
        self._headers_done = self._framed = self._complete = self._keep_alive = self._tail = False
        self._encoding = self._declared = self._inflate = self._transfer = self._chunk_mark = None
        self._sent_at = time.monotonic()
        self._transport.write(request)
        try:
            return await waiter
        finally:
            self._waiter = None

    def abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()  # connection_lost follows at once (or on the next loop turn)
        self.closed = True

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        first = self._transport is not None
        self.closed = True
        self._transport = None
        if first and self.owns_slot:
            self._pool.forget(self)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._received == 0:
            if (self.uses > 1 and time.monotonic() - self._sent_at < IDLE_RACE_S
                    and (exc is None or isinstance(exc, ConnectionResetError))):
                # A reused idle connection the provider closed (its close
                # crossed our request): it never read the request as one to answer.
                waiter.set_exception(NeverReceived("provider closed an idle connection as it was reused"))
            else:
                # A fresh connection closed unanswered: the provider may have
                # acted on the request, so only an idempotent call tries again.
                waiter.set_exception(ConnectFailed("provider closed the connection before answering"))
        elif self._headers_done and not self._framed and exc is None:
            self._complete = True  # an answer delimited by the end of the connection
            self._resolve()
        else:
            waiter.set_exception(ProviderUnreachable("provider's answer was cut off before its last byte"))

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for (a late or unasked answer, or a tail that
            # came after the answer was handed on): they would be read as the
            # next call's answer, so the connection is never used again.
            self._pool.distrust(self.key[0])
            self.abort()
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(InvalidProviderResponse("provider's answer is not valid HTTP"))
        except httptools.HttpParserError:
            # Not the parser's message: it quotes the provider's bytes.
            if self._complete:
                self._tail = True
            else:
                self._fail(InvalidProviderResponse("provider's answer is not valid HTTP"))
        if waiter.done():
            return
        if self._complete:
            # Resolved only once all of this read is parsed, so a tail in it
            # fails this call rather than the next one on the connection.
            if self._tail:
                self._pool.distrust(self.key[0])
                self._fail(InvalidProviderResponse("provider sent bytes after its complete answer"))
            else:
                self._resolve()
        elif not self._headers_done and self._received > MAX_HEAD_BYTES:
            self._fail(InvalidProviderResponse("provider's answer head is too large"))
        elif self._chunk_mark is not None and self._received - self._chunk_mark > MAX_HEAD_BYTES:
            self._fail(InvalidProviderResponse("provider's answer trailers are too large"))

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        if self._complete:
            self._tail = True  # a second answer after the complete one

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._complete or self._headers_done:
            return  # a tail's, or a trailer: neither frames this answer
        lower = name.lower()
        if lower == b"content-length":
            self._framed = True
            try:
                self._declared = int(value)
            except ValueError:
                self._declared = None
        elif lower == b"transfer-encoding":
            self._framed = True
            if value.strip().lower() != b"chunked":
                self._transfer = value
        elif lower == b"content-encoding":
            self._encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        if self._complete:
            return  # the head of a tail: this call fails once the read is parsed
        self._status = status = self._parser.get_status_code()
        if status < 200:
            if status < 100:  # llhttp reads any three digits (and a body after them)
                self._fail(InvalidProviderResponse(f"provider's answer has no valid status ({status})"))
                return
            self._framed = False  # an interim answer (100 Continue...): the real one follows
            self._declared = self._encoding = self._transfer = None
            return
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()
        if not 200 <= status < 300:
            self._fail(ProviderError(status))
        elif self._transfer is not None:
            coding = self._transfer.decode("ascii", "replace")[:40]
            self._fail(InvalidProviderResponse(
                f"provider's answer has Transfer-Encoding {coding!r}, which the hub does not decode "
                "(only chunked)"))
        elif self._encoding in _INFLATED:
            # 47: zlib or gzip framing, whichever the provider sent.
            self._inflate = zlib.decompressobj(47)
        elif self._encoding not in (None, b"identity"):
            coding = self._encoding.decode("ascii", "replace")[:40] if self._encoding else ""
            self._fail(InvalidProviderResponse(
                f"provider's answer is compressed with {coding!r}, which the hub does not decode "
                "(it asks for identity; gzip and deflate are inflated)"))
        elif self._declared is not None and self._declared > self._max_bytes:
            self._fail(_too_large(self._max_bytes))

    def on_chunk_header(self) -> None:
        self._chunk_mark = self._received

    def on_body(self, body: bytes) -> None:
        if self._waiter is None or self._waiter.done() or self._complete or not self._headers_done:
            return
        self._chunk_mark = None
        if self._inflate is not None:
            try:
                body = self._inflated(body)
            except zlib.error:
                self._fail(InvalidProviderResponse("provider's compressed answer does not inflate"))
                return
        self._size += len(body)
        if self._size > self._max_bytes:
            self._fail(_too_large(self._max_bytes))
            return
        self._chunks.append(body)

    def _inflated(self, data: bytes) -> bytes:
        """`data` inflated, at most one byte past the limit (enough to know
        it is over). A gzip body may be several members in a row (RFC 1952
        §2.2), each inflated in turn; any other byte after a complete stream
        does not inflate (zlib.error), and is never dropped unread."""
        room = self._max_bytes - self._size + 1
        out: bytes = self._inflate.decompress(data, room)
        while self._inflate.eof and self._inflate.unused_data and len(out) < room:
            rest = self._inflate.unused_data
            self._inflate = zlib.decompressobj(31)  # gzip only: a zlib stream has no next member
            out += self._inflate.decompress(rest, room - len(out))
        return out

    def on_message_complete(self) -> None:
        if self._headers_done and self._waiter is not None and not self._waiter.done():
            self._complete = True

    # -- the end of an exchange --

    def _resolve(self) -> None:
        assert self._waiter is not None
        if self._inflate is not None and not self._inflate.eof:
            self._fail(InvalidProviderResponse("provider's compressed answer is cut off"))
            return
        chunks = self._chunks
        self._chunks = []
        self._waiter.set_result(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _fail(self, error: HubError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self._chunks = []
        self.abort()  # whatever is left of this answer is never read: never reused


_INFLATED = frozenset({b"gzip", b"x-gzip", b"deflate"})


def _too_large(limit: int) -> InvalidProviderResponse:
    return InvalidProviderResponse(f"provider's answer is larger than the {limit}-byte limit")
