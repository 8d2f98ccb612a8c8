"""The provider-client seam: POST a body to a provider, get the answer's
bytes or a HubError. Each client maps every failure of its own library
into the hub's errors, so nothing above this package knows about them.

A client implements `ProviderClient`; clients.py names it. The policy both
clients share (deadline, one retry when the provider provably never got the
request, the signature) lives here, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..errors import ProviderTimeout, ProviderUnreachable
from ..types import Answer

USER_AGENT = "apihub/0.1"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """X-Hub-Signature: HMAC-SHA256 over "<t>." + body, keyed with the provider's secret."""
    mac = hmac.new(secret.encode("utf-8"), b"%d." % timestamp, hashlib.sha256)
    mac.update(body)
    return f"t={timestamp},v1={mac.hexdigest()}"


class ProviderClient(Protocol):
    """What the pipeline calls. Raises only HubErrors, the same ones for the
    same faults whichever client is configured."""

    name: str

    async def post(self, url: str, body: bytes, *, secret: str, request_id: str, deadline_s: float,
                   retry_connect: bool = False) -> Answer:
        """The provider's complete 2xx answer."""

    async def close(self) -> None:
        """Close every connection (the app's cleanup context calls it once)."""


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
