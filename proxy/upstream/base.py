"""The provider-client seam: POST a body to a provider, get the answer's
bytes or a HubError. Each client maps every failure of its own library
into the hub's errors, so nothing above this package knows about them.

A client implements `ProviderClient`; clients.py names it. The policy both
clients share (deadline, one retry when the provider did not act on the
request, the signature) lives here, once.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from ..errors import HubOverloaded, ProviderTimeout, ProviderUnreachable
from ..observe.logs import get_logger
from ..types import Answer
from .deadlines import Deadlines

USER_AGENT = "apihub/0.1"

log = get_logger("apihub.upstream")


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """X-Hub-Signature: HMAC-SHA256 over "<t>." + body, keyed with the provider's secret."""
    inner, outer = _keyed(secret)
    inner = inner.copy()
    inner.update(b"%d." % timestamp)
    inner.update(body)
    outer = outer.copy()
    outer.update(inner.digest())
    return f"t={timestamp},v1={outer.hexdigest()}"


@functools.lru_cache(maxsize=4096)
def _keyed(secret: str) -> tuple[Any, Any]:
    """HMAC (RFC 2104) keyed once per provider secret: SHA-256 states that
    have absorbed the key XOR ipad and XOR opad. Each signature copies them
    instead of keying afresh, which hmac.digest does on every call through
    OpenSSL (half its cost on a small call). The secrets come from the
    registry, never from a request. Bounded: past 4,096 providers in use
    the oldest are keyed again when next called (a little dearer than
    hmac.digest); a rotated secret's state stays until pushed out, in the
    memory that held the secret itself."""
    key = secret.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class ProviderClient(Protocol):
    """What the pipeline calls. Raises only HubErrors, the same ones for the
    same faults whichever client is configured."""

    name: str

    async def post(self, url: str, body: bytes, *, pool: str, secret: str, request_id: str,
                   deadline_s: float, retry_connect: bool = False,
                   headers: Sequence[tuple[str, str]] = ()) -> Answer:
        """The provider's complete 2xx answer. `pool` names the provider app:
        connections are pooled per app and never serve another app's call,
        whatever host and port the two share. `headers`: sent besides the
        hub's own (the trace context, [tracing]); made by the hub, never a consumer's."""

    async def close(self) -> None:
        """Close every connection (the app's cleanup context calls it once)."""


async def within_deadline(exchange: Callable[[bool], Awaitable[Answer]], deadline_s: float,
                          retry_connect: bool, deadlines: Deadlines) -> Answer:
    """The policy both provider clients share: the whole exchange within the
    deadline; one more try, never after a timeout, when the provider provably
    never got the request (NeverReceived: any action) or, for an idempotent
    action, when no answer came back (refused, reset or closed before answering).
    `exchange(fresh)`: the retry goes on a new connection, never an idle one
    (the provider that closed one idle connection has likely closed the others).

    The deadline is asyncio.timeout's mechanism (cancel the task when it
    passes; a cancellation of ours becomes ProviderTimeout, anyone else's
    goes on) without its objects: on every call they cost ~6 % of a small
    call's CPU. The timer is the client's shared one (deadlines.py)."""
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    pending = deadlines.add(task.get_loop(), deadline_s, expire)
    taken_back = False
    try:
        try:
            return await exchange(False)
        except ConnectFailed as exc:
            if not (retry_connect or isinstance(exc, NeverReceived)):
                raise
            return await exchange(True)
    except ConnectFailed as exc:
        raise ProviderUnreachable(str(exc)) from None
    except asyncio.CancelledError:
        if expired:
            taken_back = True
            if task.uncancel() <= cancelling:
                raise ProviderTimeout(f"provider did not answer within {round(deadline_s * 1000)} ms") from None
        raise
    except TimeoutError:  # a client's own timer, past its own handling: still the provider's slowness
        raise ProviderTimeout(f"provider did not answer within {round(deadline_s * 1000)} ms") from None
    finally:
        pending.discard(expire)
        if expired and not taken_back:
            # Our cancellation was swallowed below (or the call ended as it
            # fired): taken back, so it surfaces nowhere later in the task.
            task.uncancel()


# A provider app that once wrote bytes nobody asked for (a late or second
# answer) gets a new connection per call for this long: on a reused
# connection its next late answer could be read as another call's answer.
DISTRUST_S = 60.0


class ConnectFailed(Exception):
    """No answer came back: an idempotent call may be retried once."""


# A reused connection closed this soon after the request was written, with no
# byte of an answer, was closed by the provider's idle timer as the request
# crossed it; a later close may come from a provider that read the request.
IDLE_RACE_S = 0.5


class NeverReceived(ConnectFailed):
    """The provider did not act on the request, so even a non-idempotent POST
    may be sent again (RFC 9110 §9.2.2, RFC 9112 §9.3.1): the connection failed
    before any byte of the request was written, or it was a reused idle
    connection the provider closed within IDLE_RACE_S of the write, before any
    byte of an answer came back."""


def too_many_files(error: OSError | None) -> bool:
    """The hub is out of file descriptors (its own resource, not the provider's fault)."""
    return error is not None and error.errno in (errno.EMFILE, errno.ENFILE)


def hub_out_of_files() -> HubOverloaded:
    log.warning("hub_overloaded", reason="file_descriptors",
                detail="no file descriptor left to connect to a provider")
    return HubOverloaded("the hub has no file descriptor left to reach the provider; retry shortly",
                         headers={"Retry-After": "1"})
