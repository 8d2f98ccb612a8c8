"""Bearer tokens: read from a header and hashed, in one place. Tokens are
stored and compared only as their SHA-256 (docs/contract.md, "App manifests")."""

from __future__ import annotations

import hashlib

TOKEN_PREFIX = "sha256:"


def bearer_token(header: str) -> str:
    """The token of an Authorization header; real clients also send it
    without the `Bearer ` prefix, so a bare value is the token itself."""
    scheme, _, rest = header.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header.strip()


def hash_token(token: str) -> str:
    # aiohttp decodes header bytes that are not UTF-8 as surrogates: hash the
    # bytes as sent (such a token matches nothing, and is simply unknown).
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
