"""Signed forwarding: a provider that verifies X-Hub-Signature accepts the
hub's calls and rejects a replay older than 5 minutes and a tampered body.
The README's 10-line example is executed and held to the same cases."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from proxy.run.example_provider import verify_signature
from proxy.upstream.base import signature

from tests.conftest import HubFactory, Provider
from tests.support import ECHO, PROVIDER_SECRET, ROOT, call_headers
from tests.support import problem

CALL = f"/v1/services/call/{ECHO}/provider-app"
GOOD = {"data": {"value": 3, "label": "x"}}


def readme_verify() -> Callable[..., bool]:
    """The `verify` function of README's "Verifying X-Hub-Signature" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Verifying X-Hub-Signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    assert len(code.group(1).strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 - our own README
    return namespace["verify"]  # type: ignore[no-any-return]


class Verifier:
    """A provider's check, with a clock the test can move."""

    def __init__(self) -> None:
        self.skew_s = 0.0
        self.rejected = 0

    async def behaviour(self, request: web.Request, raw: bytes) -> web.StreamResponse:
        now = time.time() + self.skew_s
        if not verify_signature(request.headers.get("X-Hub-Signature"), raw, PROVIDER_SECRET, now=now):
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"data": {"echo": 1}})


async def send_direct(provider: Provider, headers: Any, body: bytes) -> int:
    signed = {"Content-Type": "application/json", "X-Hub-Signature": headers["X-Hub-Signature"]}
    async with aiohttp.ClientSession() as session, session.post(provider.url, data=body, headers=signed) as r:
        return r.status


async def test_verifying_provider_accepts_hub_calls(make_hub: HubFactory, provider: Provider) -> None:
    verifier = Verifier()
    provider.behaviour = verifier.behaviour
    hub = await make_hub()
    for _ in range(3):
        r = await hub.post(CALL, json=GOOD, headers=call_headers())
        assert r.status == 200, await r.text()
    assert verifier.rejected == 0
    headers, raw = provider.received[-1]
    assert readme_verify()(headers["X-Hub-Signature"], raw, PROVIDER_SECRET)


async def test_replay_older_than_5_minutes_is_rejected(make_hub: HubFactory, provider: Provider) -> None:
    verifier = Verifier()
    provider.behaviour = verifier.behaviour
    hub = await make_hub()
    assert (await hub.post(CALL, json=GOOD, headers=call_headers())).status == 200
    headers, raw = provider.received[-1]
    # The same bytes, replayed straight to the provider, 5 min and 1 s later.
    verifier.skew_s = 301
    assert await send_direct(provider, headers, raw) == 401
    # A hub whose clock is that far off gets refused as well (relayed as 502).
    r = await hub.post(CALL, json=GOOD, headers=call_headers())
    doc = await problem(r, 502, "provider_error")
    assert "401" in doc["detail"]
    verify = readme_verify()
    t = int(headers["X-Hub-Signature"].split(",")[0][2:])
    assert verify(headers["X-Hub-Signature"], raw, PROVIDER_SECRET)
    real_time = time.time
    try:
        time.time = lambda: t + 301  # type: ignore[assignment]
        assert not verify(headers["X-Hub-Signature"], raw, PROVIDER_SECRET)
    finally:
        time.time = real_time  # type: ignore[assignment]


async def test_tampered_body_is_rejected(make_hub: HubFactory, provider: Provider) -> None:
    verifier = Verifier()
    provider.behaviour = verifier.behaviour
    hub = await make_hub()
    assert (await hub.post(CALL, json=GOOD, headers=call_headers())).status == 200
    headers, raw = provider.received[-1]
    tampered = raw.replace(b'"value":3', b'"value":4')
    assert tampered != raw
    assert await send_direct(provider, headers, tampered) == 401
    assert await send_direct(provider, headers, raw + b" ") == 401
    assert not readme_verify()(headers["X-Hub-Signature"], tampered, PROVIDER_SECRET)


async def test_wrong_secret_or_missing_or_garbled_header_is_rejected(
    make_hub: HubFactory, provider: Provider,
) -> None:
    hub = await make_hub()
    assert (await hub.post(CALL, json=GOOD, headers=call_headers())).status == 200
    headers, raw = provider.received[-1]
    verify = readme_verify()
    assert not verify(headers["X-Hub-Signature"], raw, PROVIDER_SECRET + "x")
    assert not verify_signature(None, raw, PROVIDER_SECRET)
    for garbled in ["", "t=abc,v1=00", "v1=00", "t=1", "nonsense", "t=1,v1=" + "0" * 64]:
        assert not verify(garbled, raw, PROVIDER_SECRET), garbled
        assert not verify_signature(garbled, raw, PROVIDER_SECRET), garbled


@pytest.mark.parametrize("secret", [
    *("k" * n for n in (0, 1, 31, 63, 64, 65, 127, 128, 300)),  # bytes around SHA-256's 64-byte block
    "é" * 32, "€" * 21 + "x", "sé€-" * 40,  # 64 and 64 bytes of UTF-8, and 280
])
def test_signature_is_hmac_sha256_for_every_key_length(secret: str) -> None:
    """The keyed-once SHA-256 states give what the standard library's HMAC
    gives, keys longer than a block (hashed first) and non-ASCII ones included."""
    for body in (b"", b'{"data":{}}', bytes(range(256)) * 9):
        expected = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
        assert signature(secret, body, 1_700_000_000) == f"t=1700000000,v1={expected}"
    # Keyed once, signed many times: each signature starts from the keyed state.
    assert signature(secret, b"a", 1) == signature(secret, b"a", 1)
