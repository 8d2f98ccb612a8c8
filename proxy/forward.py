"""The one seam to providers: POST a body, get the answer's bytes or a HubError.

Every aiohttp/asyncio failure is mapped here into the hub's own errors, so
nothing above this module knows about aiohttp's client exceptions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from .config import LimitsConfig, UpstreamConfig
from .errors import (
    HubError,
    InvalidProviderResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
)

USER_AGENT = "apihub/0.1"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """X-Hub-Signature: HMAC-SHA256 over "<t>." + body, keyed with the provider's secret."""
    mac = hmac.new(secret.encode("utf-8"), b"%d." % timestamp, hashlib.sha256)
    mac.update(body)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    upstream_ms: float


class ProviderClient(Protocol):
    """What the pipeline calls: `Upstream` (aiohttp's client, the default) or
    `upstream_lean.LeanUpstream` (`[upstream] client = "lean"`). Both raise
    only HubErrors, the same ones for the same faults."""

    async def post(self, url: str, body: bytes, *, secret: str, request_id: str, deadline_s: float,
                   retry_connect: bool = False) -> Answer: ...


class Upstream:
    """Owns the pooled keep-alive ClientSession used for every provider."""

    def __init__(self, session: aiohttp.ClientSession, upstream: UpstreamConfig, limits: LimitsConfig) -> None:
        self._session = session
        self._max_bytes = limits.max_response_bytes
        connect_s = upstream.connect_timeout_ms / 1000
        # The overall deadline is enforced around the whole exchange (below);
        # aiohttp only bounds the TCP connect, so a dead host fails fast.
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s)
        self._connect_ms = upstream.connect_timeout_ms

    @staticmethod
    def make_session(upstream: UpstreamConfig) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=upstream.pool_size,
            limit_per_host=0,
            keepalive_timeout=upstream.keepalive_timeout_s,
            ttl_dns_cache=60,
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

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        secret: str,
        request_id: str,
        deadline_s: float,
        retry_connect: bool = False,
    ) -> Answer:
        started = time.perf_counter()
        return await within_deadline(
            lambda: self._exchange(url, body, secret, request_id, started), deadline_s, retry_connect)

    async def _exchange(self, url: str, body: bytes, secret: str, request_id: str, started: float) -> Answer:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
            "X-Request-Id": request_id,
            "X-Hub-Signature": signature(secret, body, int(time.time())),
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False,
            ) as response:
                if not 200 <= response.status < 300:
                    response.close()
                    raise ProviderError(
                        f"provider answered HTTP {response.status}",
                        extra={"providerStatus": response.status},
                    )
                answer = await self._read(response)
                return Answer(answer, (time.perf_counter() - started) * 1000)
        except HubError:
            raise
        except aiohttp.ConnectionTimeoutError:
            # Not retried: a host that does not answer SYNs would double the wait.
            raise ProviderUnreachable(f"could not connect within {self._connect_ms} ms") from None
        except aiohttp.ClientConnectorDNSError:
            raise ProviderUnreachable("provider host name could not be resolved") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(f"connection failed: {exc.strerror or type(exc).__name__}") from None
        except aiohttp.ServerDisconnectedError:
            # Nothing came back (often a pooled keep-alive connection the
            # provider had just closed): an idempotent call may try again.
            raise ConnectFailed("provider closed the connection before answering") from None
        except aiohttp.ClientPayloadError:
            raise ProviderUnreachable("provider's answer was cut off before its last byte") from None
        except aiohttp.ClientResponseError:
            # Not the parser's message: it quotes the provider's bytes.
            raise InvalidProviderResponse("provider's answer is not valid HTTP") from None
        except (aiohttp.ClientOSError, ConnectionError) as exc:
            raise ProviderUnreachable(f"connection to provider failed: {type(exc).__name__}") from None
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


async def within_deadline(exchange: Callable[[], Awaitable[Answer]], deadline_s: float,
                          retry_connect: bool) -> Answer:
    """The policy both provider clients share: the whole exchange within the
    deadline; one more try for idempotent actions when no answer came back
    (refused, reset or closed before answering), never after a timeout."""
    try:
        async with asyncio.timeout(deadline_s):
            try:
                return await exchange()
            except ConnectFailed:
                if not retry_connect:
                    raise
                return await exchange()
    except ConnectFailed as exc:
        raise ProviderUnreachable(str(exc)) from None
    except TimeoutError:
        raise ProviderTimeout(f"provider did not answer within {round(deadline_s * 1000)} ms") from None


class ConnectFailed(Exception):
    """No answer came back: an idempotent call may be retried once."""
