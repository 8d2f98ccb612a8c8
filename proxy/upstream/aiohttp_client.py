"""The provider client on aiohttp's ClientSession (`[upstream] client = "aiohttp"`).

Every aiohttp/asyncio failure is mapped here into the hub's own errors, so
nothing above this module knows about aiohttp's client exceptions.

One ClientSession (and TCPConnector) per provider app, made on its first
call: a connection never carries another app's exchange, whatever host and
port the apps share. What aiohttp 3.x does not guard against, _Handler (its
ResponseHandler, which the connector makes per connection) does:

- aiohttp's handler parses whatever arrives, also on an idle pooled
  connection, and queues a complete answer there as the *next* request's
  response. Here a byte that arrives outside an exchange closes the
  connection, so the connector never hands it out again (`is_connected`).
- A second answer, or garbage, after a complete answer in the same exchange
  fails that call (invalid_provider_response) and closes the connection.
- Either makes the app's connections single-use for base.DISTRUST_S, the
  ones idle at that moment included.
- aiohttp releases a connection whose request body was still being written
  when the answer ended (the provider never read it); it is closed instead.
- Bytes aiohttp's parser refuses inside the body (bad chunk framing, or a
  compressed body that does not inflate) fail the call at once as
  invalid_provider_response: aiohttp closes the connection but may leave the
  body waiting (for the deadline), or report it as cut off.
- A reused idle connection the provider closed before any byte of an
  answer: the request is sent again once (base.NeverReceived); aiohttp
  retries that itself only for idempotent methods, never for POST.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import ContentEncodingError

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


class _Exchange:
    """What one request saw of its connection: reused or fresh, bytes
    received, bytes after the complete answer."""

    __slots__ = ("invalid", "received", "reused", "sent_at", "tail")

    def __init__(self) -> None:
        self.sent_at = 0.0
        self.reused = False
        self.received = 0
        self.tail = False
        self.invalid: str | None = None  # why aiohttp's parser refused the answer's body


# The exchange the current task is making; aiohttp calls
# set_response_params() from the caller's task, so the handler finds it here.
_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("apihub_exchange", default=None)


class _Handler(ResponseHandler):
    """aiohttp's per-connection protocol, closing where aiohttp would reuse."""

    def __init__(self, connector: _Connector, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connector = connector
        self._exchange: _Exchange | None = None  # None: idle in the pool
        self._uses = 0
        self._answer: Any = None  # the body (StreamReader) of the first of them
        self._feeding = False  # inside aiohttp's data_received

    def set_response_params(self, **kwargs: Any) -> None:
        super().set_response_params(**kwargs)
        exchange = _EXCHANGE.get() or _Exchange()
        exchange.reused = self._uses > 0
        exchange.sent_at = time.monotonic()
        self._uses += 1
        self._answer = None
        self._exchange = exchange

    def released(self) -> None:
        self._exchange = None

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if data and exchange is None:
            # Unasked bytes on an idle connection: aiohttp would queue them as
            # the next request's answer.
            self._connector.distrust()
            self.force_close()
            self.abort()
            return
        # Empty: aiohttp's own call, resuming decompression, not from the network.
        if exchange is not None:
            exchange.received += len(data)
        if data and self._answer is not None and self._answer.is_eof():
            assert exchange is not None
            exchange.tail = True  # bytes after the complete answer
            self._connector.distrust()
            self.force_close()
        self._feeding = True
        try:
            super().data_received(data)
        finally:
            self._feeding = False

    def set_exception(self, exc: BaseException, *cause: BaseException) -> None:
        exchange = self._exchange
        if self._feeding and exchange is not None and exchange.invalid is None:
            # aiohttp's parser refused what the provider sent.
            exchange.invalid = ("provider's compressed answer does not inflate"
                                if cause and isinstance(cause[0], ContentEncodingError)
                                else "provider's answer is not valid HTTP")
            answer = self._answer
            if answer is not None and answer.exception() is None:
                answer.set_exception(aiohttp.ClientPayloadError(exchange.invalid))
        super().set_exception(exc, *cause)

    def feed_data(self, data: Any, size: int = 0) -> None:
        message = data[0]
        if message.code >= 200:
            if self._answer is None:
                self._answer = data[1]
            elif self._exchange is not None:
                self._exchange.tail = True
                self._connector.distrust()
                self.force_close()
        super().feed_data(data, size)


class _Connector(aiohttp.TCPConnector):
    """One provider app's connections (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = lambda: _Handler(self, loop=self._loop)  # type: ignore[assignment]
        self._distrusted_until = 0.0

    def distrust(self) -> None:
        self._distrusted_until = time.monotonic() + DISTRUST_S
        for idle in self._conns.values():
            for protocol, _ in idle:
                protocol.close()  # no longer connected: the connector drops it instead of handing it out

    def _release(self, key: Any, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        if isinstance(protocol, _Handler):
            protocol.released()
        if self._distrusted_until and time.monotonic() < self._distrusted_until:
            should_close = True
        transport = protocol.transport
        if transport is not None and transport.get_write_buffer_size():
            should_close = True  # the answer came before the request was all written
        super()._release(key, protocol, should_close=should_close)


# The key of the session retries go through (no provider app id is empty).
_FRESH = ""


class AiohttpClient:
    """Owns one pooled keep-alive ClientSession per provider app."""

    name = "aiohttp"

    def __init__(self, upstream: UpstreamConfig, limits: LimitsConfig) -> None:
        self._upstream = upstream
        # Made on first use: aiohttp wants its sessions created inside the running loop.
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._max_bytes = limits.max_response_bytes
        connect_s = upstream.connect_timeout_ms / 1000
        # The overall deadline is enforced around the whole exchange (below);
        # aiohttp only bounds the TCP connect, so a dead host fails fast.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s)
        self._connect_ms = upstream.connect_timeout_ms
        self._deadlines = Deadlines()

    @staticmethod
    def make_session(upstream: UpstreamConfig, *, force_close: bool = False) -> aiohttp.ClientSession:
        # aiohttp refuses a keep-alive timeout together with force_close.
        keepalive = {"force_close": True} if force_close else {"keepalive_timeout": upstream.keepalive_timeout_s}
        connector = _Connector(
            limit=upstream.pool_size,
            limit_per_host=0,
            ttl_dns_cache=60,
            **keepalive,
            enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # Providers' bytes are relayed as they come; no cookie state between calls.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            raise_for_status=False,
            skip_auto_headers=("User-Agent",),
        )

    def _session(self, pool: str) -> aiohttp.ClientSession:
        # One per provider app the worker calls; the registry bounds how many.
        session = self._sessions.get(pool)
        if session is None:
            session = self._sessions[pool] = self.make_session(self._upstream, force_close=pool == _FRESH)
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
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
        return await within_deadline(
            lambda fresh: self._exchange(pool, url, body, secret, request_id, started, fresh, headers),
            deadline_s, retry_connect, self._deadlines)

    async def _exchange(self, pool: str, url: str, body: bytes, secret: str, request_id: str,
                        started: float, fresh: bool, extra: Sequence[tuple[str, str]]) -> Answer:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
            "X-Request-Id": request_id,
            "X-Hub-Signature": signature(secret, body, int(time.time())),
        }
        if extra:  # [tracing] traceparent/tracestate
            headers.update(extra)
        exchange = _Exchange()
        _EXCHANGE.set(exchange)
        try:
            # A retry never takes an idle connection: the fresh session's
            # connections serve one request each (force_close), so none is
            # ever shared between apps either.
            async with self._session(_FRESH if fresh else pool).post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False,
            ) as response:
                if not 200 <= response.status < 300:
                    response.close()
                    raise ProviderError(response.status)
                answer = await self._read(response)
                if exchange.tail:
                    raise InvalidProviderResponse("provider sent bytes after its complete answer")
                return Answer(answer, (time.perf_counter() - started) * 1000)
        except HubError:
            raise
        except aiohttp.ConnectionTimeoutError:
            # Not retried: a host that does not answer SYNs would double the wait.
            raise ProviderUnreachable(f"could not connect within {self._connect_ms} ms") from None
        except aiohttp.ClientConnectorDNSError:
            raise ProviderUnreachable("provider host name could not be resolved") from None
        except aiohttp.ClientConnectorError as exc:
            if too_many_files(exc.os_error):
                raise hub_out_of_files() from None
            # Nothing of the request was written: safe to send again.
            raise NeverReceived(f"connection failed: {exc.strerror or type(exc).__name__}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError) as exc:
            if exchange.reused and exchange.received == 0 and time.monotonic() - exchange.sent_at < IDLE_RACE_S:
                # A reused idle connection the provider closed (or reset) as
                # we sent on it, before any byte of an answer.
                raise NeverReceived("provider closed an idle connection as it was reused") from None
            if isinstance(exc, aiohttp.ServerDisconnectedError) and exchange.received == 0:
                # Nothing came back on a fresh connection: the provider may have
                # acted on the request, so only an idempotent call tries again.
                raise ConnectFailed("provider closed the connection before answering") from None
            raise ProviderUnreachable(f"connection to provider failed: {type(exc).__name__}") from None
        except aiohttp.ClientPayloadError as exc:
            if isinstance(exc.__cause__, ContentEncodingError):
                raise InvalidProviderResponse("provider's compressed answer does not inflate") from None
            if exchange.invalid is not None:
                raise InvalidProviderResponse(exchange.invalid) from None
            raise ProviderUnreachable("provider's answer was cut off before its last byte") from None
        except aiohttp.ClientResponseError:
            # Not the parser's message: it quotes the provider's bytes.
            raise InvalidProviderResponse("provider's answer is not valid HTTP") from None
        except aiohttp.InvalidURL:
            raise ProviderUnreachable("provider URL is invalid") from None
        except aiohttp.ClientError as exc:
            raise ProviderUnreachable(f"provider exchange failed: {type(exc).__name__}") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole answer, cut off as soon as it passes the size limit."""
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            response.close()
            raise _too_large(self._max_bytes)
        # Counted as it streams in, even with a Content-Length: a compressed
        # answer can inflate far past what it declared.
        chunks = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self._max_bytes:
                response.close()
                raise _too_large(self._max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(limit: int) -> InvalidProviderResponse:
    return InvalidProviderResponse(f"provider's answer is larger than the {limit}-byte limit")


