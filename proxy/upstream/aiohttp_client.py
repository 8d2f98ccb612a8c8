"""The provider client on aiohttp's ClientSession (`[upstream] client = "aiohttp"`).

Every aiohttp/asyncio failure is mapped here into the hub's own errors, so
nothing above this module knows about aiohttp's client exceptions.
"""

from __future__ import annotations

import time

import aiohttp

from ..config import LimitsConfig, UpstreamConfig
from ..errors import HubError, InvalidProviderResponse, ProviderError, ProviderUnreachable
from ..types import Answer
from .base import USER_AGENT, ConnectFailed, signature, within_deadline


class AiohttpClient:
    """Owns the pooled keep-alive ClientSession used for every provider."""

    name = "aiohttp"

    def __init__(self, upstream: UpstreamConfig, limits: LimitsConfig) -> None:
        self._upstream = upstream
        # Made on first use: aiohttp wants its session created inside the running loop.
        self._made: aiohttp.ClientSession | None = None
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

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._made is None:
            self._made = self.make_session(self._upstream)
        return self._made

    async def close(self) -> None:
        if self._made is not None:
            await self._made.close()

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
                    raise ProviderError(response.status)
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


