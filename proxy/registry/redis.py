"""The shared registry: apps in Redis, read through an in-process cache.

Every hub instance reads the same Redis; each keeps its own cache of
lookups so the hot path never waits on Redis when the cache is warm, and
listens on a pub/sub channel so a change made anywhere is seen everywhere
within a second.

Data model (all keys share one hash tag, `{prefix}`, so they live in one
Redis Cluster slot and a MULTI/EXEC may touch all of them):

    {P}:apps              set     every app id
    {P}:app:<id>          string  the manifest as written (JSON; the secret as
                                  written: {"env": NAME} or the string)
    {P}:token:<sha256>    string  app id holding the token with that hash
    {P}:community:<c>     set     ids of the apps installed in community c
    {P}:action:<a>        set     ids of the apps that provide action a
    {P}:changes           channel one JSON message per write:
                                  {"app": id, "tokens": [hashes old and new]}
    {P}:initialised       integer generation, bumped by every write (and by
                                  `apihub apps push`): its absence means Redis
                                  lost the data (restarted empty, FLUSHALL)

Writes go through `RegistryWriter` (admin API and CLI alike): WATCH the
keys read, MULTI, rewrite the app and its index entries, EXEC. A reader
therefore sees an app either whole before or whole after a write.

Cache rules (`[registry]` config):
- an entry younger than `cache_ttl_s` is served without touching Redis;
- an older one is refreshed; if Redis cannot be reached it is served
  stale up to `stale_max_s` after it was fetched;
- a lookup with nothing usable in the cache while Redis is unreachable
  raises `RegistryUnavailable` (503) within `timeout_ms`; never a 401/404;
- unknown tokens and apps are cached too (negative entries), in tables of
  their own, each bounded: a flood of random tokens evicts only other
  unknowns, never a known app;
- a change message drops the entries it names; a (re)subscription drops
  everything, since messages may have been missed while disconnected;
- when the marker key is gone (checked on every (re)subscription and every
  `MARKER_CHECK_S`), the registry reports status "empty" (the hub is
  degraded) and keeps answering from what it has cached: a lookup that Redis
  now answers "unknown" gets the last known app instead, until the marker is
  back (an operator pushed the apps again).

URLs: `redis://`, `rediss://`, `unix://` (redis-py's own), plus
`redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`
(`rediss+sentinel://` for TLS to the master) and
`redis+cluster://[[user]:password@]host:port` (`rediss+cluster://`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError

from ..config import Config, ConfigError, RegistryConfig
from ..errors import RegistryUnavailable
from ..jsonsafe import dumps
from ..observe.logs import get_logger
from ..tokens import TOKEN_PREFIX
from .base import PutOutcome, Registry
from .manifest import App, ManifestError, parse_manifest

log = get_logger("apihub.registry")

Client = Redis | RedisCluster
# Failures that mean "Redis cannot be used right now".
REDIS_FAILURES = (RedisError, OSError, TimeoutError)
# After a failed round trip, uncached lookups fail fast for this long instead of
# each paying a timeout; the subscriber clears it as soon as Redis is back.
FAIL_FAST_S = 0.25
RESUBSCRIBE_BACKOFF_S = (0.05, 1.0)
HEALTH_CHECK_INTERVAL_S = 10
# Entries per cache table: random unknown tokens must not grow memory without bound
# (the oldest entry goes first).
MAX_ENTRIES = 100_000
# How often the listener checks that Redis still holds the registry (one EXISTS).
MARKER_CHECK_S = 1.0

T = TypeVar("T")


# ---- keys and connections ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix; `{prefix}` is the Cluster hash tag."""

    tag: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Keys:
        return cls(prefix if "{" in prefix else "{" + prefix + "}")

    @property
    def apps(self) -> str:
        return f"{self.tag}:apps"

    @property
    def channel(self) -> str:
        return f"{self.tag}:changes"

    def app(self, app_id: str) -> str:
        return f"{self.tag}:app:{app_id}"

    def token(self, digest: str) -> str:
        return f"{self.tag}:token:{digest}"

    def community(self, community: str) -> str:
        return f"{self.tag}:community:{community}"

    def action(self, action: str) -> str:
        return f"{self.tag}:action:{action}"

    @property
    def marker(self) -> str:
        return f"{self.tag}:initialised"


_USERINFO = re.compile(r"(://)[^/@\s]*@")


def redact_url(url: str) -> str:
    """The URL with any user:password removed: safe for logs and messages."""
    return _USERINFO.sub(r"\1***@", url)


def redact(text: str, url: str) -> str:
    """`text` (an error message) without the URL's credentials."""
    password = urllib.parse.urlsplit(url.split(",")[0]).password if "@" in url else None
    text = _USERINFO.sub(r"\1***@", text)
    return text.replace(password, "***") if password else text


def connect(config: RegistryConfig) -> Client:
    """A client for `[registry] url`; no I/O happens until the first command."""
    timeout = config.timeout_ms / 1000
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # One immediate retry (a pooled connection may have died with a restart),
        # then fail: the cache, not the client, decides what to serve.
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
    url = config.url
    check_url(url)
    scheme, _, rest = url.partition("://")
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        return _sentinel_master(scheme, rest, options)
    if scheme in ("redis+cluster", "rediss+cluster"):
        options.pop("health_check_interval")
        return RedisCluster.from_url(scheme.removesuffix("+cluster") + "://" + rest, **options)
    return Redis.from_url(url, **options)


async def disconnect(client: Client) -> None:
    """Close a client from `connect`, with the Sentinel connections behind it."""
    await client.aclose()
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    if isinstance(manager, Sentinel):
        await manager.aclose()


def check_url(url: str) -> None:
    """Raise ValueError (without the password) if `url` is not one we can use."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise ValueError(f"[registry] url: unsupported scheme {scheme!r} "
                         f"(expected {', '.join(s + '://' for s in _SCHEMES)})")
    if scheme.endswith("+sentinel"):
        hosts, _, path = rest.rpartition("@")[2].partition("/")
        if not hosts or not path.partition("/")[0]:
            raise ValueError("[registry] url: expected redis+sentinel://host:port[,host:port...]/service[/db]")


_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster",
            "rediss+cluster")


def _sentinel_master(scheme: str, rest: str, options: dict[str, Any]) -> Redis:
    userinfo, _, hostpart = rest.rpartition("@")
    hosts, _, path = hostpart.partition("/")
    service, _, db = path.partition("/")
    if not hosts or not service:
        raise ValueError("[registry] url: expected redis+sentinel://host:port[,host:port...]/service[/db]")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        sentinels.append((name or host, int(port or 26379)))
    user, _, password = userinfo.partition(":")
    master_options = dict(options)
    if user:
        master_options["username"] = urllib.parse.unquote(user)
    if password:
        master_options["password"] = urllib.parse.unquote(password)
    if db:
        master_options["db"] = int(db.strip("/") or 0)
    if scheme.startswith("rediss"):
        master_options["ssl"] = True
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8 on
        sentinels, socket_timeout=options["socket_timeout"],
        socket_connect_timeout=options["socket_connect_timeout"])
    master: Redis = sentinel.master_for(urllib.parse.unquote(service), redis_class=Redis, **master_options)
    return master


# ---- writes ------------------------------------------------------------------

def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Change:
    """What one write touched: an app and the token hashes it held or holds."""

    app: str
    tokens: frozenset[str]

    def message(self) -> bytes:
        return orjson.dumps({"app": self.app, "tokens": sorted(self.tokens)})




def _index_of(doc: Mapping[str, Any] | None) -> tuple[set[str], set[str], set[str]]:
    """(token hashes, communities, actions) that a stored manifest is indexed under."""
    if not doc:
        return set(), set(), set()
    tokens = {t.removeprefix(TOKEN_PREFIX) for t in doc.get("tokens", ()) if isinstance(t, str)}
    return tokens, set(doc.get("communities", ())), set(doc.get("provides", {}))


class RegistryWriter:
    """Atomic writes (and uncached reads) of the data model; used by the admin
    API and the CLI. Manifests must be validated by the caller (parse_manifest)."""

    def __init__(self, client: Client, keys: Keys,
                 on_change: Callable[[Change], None] | None = None) -> None:
        self._client = client
        self._keys = keys
        self._on_change = on_change

    async def mark(self) -> None:
        """Bump the marker that says Redis holds the registry (after a push
        of apps that were all unchanged, nothing else would write it)."""
        await self._client.incr(self._keys.marker)

    async def list_manifests(self) -> list[dict[str, Any]]:
        ids = sorted(_text(m) for m in await self._client.smembers(self._keys.apps))
        if not ids:
            return []
        raws = await self._client.mget([self._keys.app(i) for i in ids])
        return [orjson.loads(raw) for raw in raws if raw is not None]

    async def get_manifest(self, app_id: str) -> dict[str, Any] | None:
        raw = await self._client.get(self._keys.app(app_id))
        return None if raw is None else orjson.loads(raw)

    async def put_app(self, doc: Mapping[str, Any]) -> PutOutcome:
        """Create or replace an app. Raises ManifestError if one of its tokens
        is held by another app."""
        app_id = doc["id"]
        new_tokens, new_communities, new_actions = _index_of(doc)
        token_list = sorted(new_tokens)
        raw = dumps(doc)  # jsonsafe's: an integer past 64 bits, which the admin API reads exactly, too

        async def write(pipe: Any) -> tuple[PutOutcome, Change | None]:
            keys = self._keys
            old_raw = await pipe.get(keys.app(app_id))
            if token_list:
                # One GET each: a cluster pipeline refuses MGET (and an app has few tokens).
                owners = [await pipe.get(keys.token(t)) for t in token_list]
                for digest, owner in zip(token_list, owners, strict=True):
                    if owner is not None and _text(owner) != app_id:
                        index = [t.removeprefix(TOKEN_PREFIX) for t in doc["tokens"]].index(digest)
                        raise ManifestError(f"/tokens/{index}",
                                            f"this token is already held by app {_text(owner)!r}")
            if old_raw is not None and orjson.loads(old_raw) == doc:
                return "unchanged", None
            old_tokens, old_communities, old_actions = _index_of(
                orjson.loads(old_raw) if old_raw is not None else None)
            pipe.multi()
            for digest in old_tokens - new_tokens:
                pipe.delete(keys.token(digest))
            for community in old_communities - new_communities:
                pipe.srem(keys.community(community), app_id)
            for action in old_actions - new_actions:
                pipe.srem(keys.action(action), app_id)
            for digest in new_tokens:
                pipe.set(keys.token(digest), app_id)
            for community in new_communities:
                pipe.sadd(keys.community(community), app_id)
            for action in new_actions:
                pipe.sadd(keys.action(action), app_id)
            pipe.set(keys.app(app_id), raw)
            pipe.sadd(keys.apps, app_id)
            return ("updated" if old_raw is not None else "created"), Change(app_id, frozenset(old_tokens | new_tokens))

        watched = [self._keys.app(app_id), *(self._keys.token(t) for t in token_list)]
        return await self._transaction(watched, write, default="unchanged")

    async def delete_app(self, app_id: str) -> bool:
        async def write(pipe: Any) -> tuple[bool, Change | None]:
            keys = self._keys
            old_raw = await pipe.get(keys.app(app_id))
            if old_raw is None:
                return False, None
            tokens, communities, actions = _index_of(orjson.loads(old_raw))
            pipe.multi()
            for digest in tokens:
                pipe.delete(keys.token(digest))
            for community in communities:
                pipe.srem(keys.community(community), app_id)
            for action in actions:
                pipe.srem(keys.action(action), app_id)
            pipe.delete(keys.app(app_id))
            pipe.srem(keys.apps, app_id)
            return True, Change(app_id, frozenset(tokens))

        return await self._transaction([self._keys.app(app_id)], write, default=False)

    async def set_installed(self, community: str, app_id: str, installed: bool) -> bool:
        """Install (or uninstall) an app in a community. False if there is no such app."""

        async def write(pipe: Any) -> tuple[bool, Change | None]:
            keys = self._keys
            old_raw = await pipe.get(keys.app(app_id))
            if old_raw is None:
                return False, None
            doc = orjson.loads(old_raw)
            communities = list(doc.get("communities", []))
            if (community in communities) == installed:
                return True, None
            if installed:
                communities.append(community)
            else:
                communities.remove(community)
            doc["communities"] = communities
            pipe.multi()
            pipe.set(keys.app(app_id), dumps(doc))
            if installed:
                pipe.sadd(keys.community(community), app_id)
            else:
                pipe.srem(keys.community(community), app_id)
            tokens, _, _ = _index_of(doc)
            return True, Change(app_id, frozenset(tokens))

        return await self._transaction([self._keys.app(app_id)], write, default=True)

    async def _transaction(self, watched: Sequence[str],
                           write: Callable[[Any], Awaitable[tuple[T, Change | None]]],
                           *, default: T) -> T:
        """WATCH `watched`, let `write` read and queue commands after MULTI, EXEC;
        retried when a concurrent write touched a watched key. Then announce."""
        result, change = default, None
        for _ in range(20):
            async with self._client.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*watched)
                    result, change = await write(pipe)
                    if change is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8 on
                        break
                    pipe.incr(self._keys.marker)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        else:
            raise RedisError("registry write kept conflicting with concurrent writes")
        if change is not None:
            if self._on_change is not None:
                self._on_change(change)
            try:
                await self._client.publish(self._keys.channel, change.message())
            except REDIS_FAILURES as exc:
                # The write is done; instances that miss the message re-read on
                # re-subscription (which flushes) or when their TTL runs out.
                log.warning("registry_publish_failed", app=change.app, error=type(exc).__name__)
        return result


# ---- reads, cached -----------------------------------------------------------

@dataclass(slots=True)
class _Entry:
    value: Any
    at: float


class _Table:
    """One lookup's cache: known values and unknowns (None, or no providers)
    in separate dicts, each bounded to `max_entries` (the oldest goes first),
    so unknowns only ever evict unknowns. `last_known` keeps the known
    values of the last full flush: what a Redis that came back empty can no
    longer tell."""

    __slots__ = ("known", "last_known", "max_entries", "unknown")

    def __init__(self, max_entries: int) -> None:
        self.known: dict[Any, _Entry] = {}
        self.unknown: dict[Any, _Entry] = {}
        self.last_known: dict[Any, _Entry] = {}
        self.max_entries = max_entries

    def get(self, key: Any) -> _Entry | None:
        entry = self.known.get(key)
        return entry if entry is not None else self.unknown.get(key)

    def put(self, key: Any, value: Any, at: float) -> None:
        into, other = (self.known, self.unknown) if value else (self.unknown, self.known)
        other.pop(key, None)
        if key not in into and len(into) >= self.max_entries:
            del into[next(iter(into))]
        into[key] = _Entry(value, at)

    def remembered(self, key: Any) -> _Entry | None:
        entry = self.known.get(key)
        return entry if entry is not None else self.last_known.get(key)

    def pop(self, key: Any) -> None:
        self.known.pop(key, None)
        self.unknown.pop(key, None)
        self.last_known.pop(key, None)

    def clear(self, *, forget: bool = False) -> None:
        if self.known:
            self.last_known = self.known
        if forget:
            self.last_known = {}
        self.known = {}
        self.unknown.clear()


class RedisRegistry:
    """The Registry Protocol over Redis, with the cache described above."""

    name = "redis"

    def __init__(self, config: RegistryConfig, *, environ: Mapping[str, str] | None = None,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._config = config
        self._keys = Keys.for_prefix(config.prefix)
        self._environ = os.environ if environ is None else environ
        self._ttl = config.cache_ttl_s
        self._stale_max = max(config.stale_max_s, config.cache_ttl_s)
        self._timeout = config.timeout_ms / 1000
        self._client: Client | None = None
        self._writer: RegistryWriter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._tokens = _Table(max_entries)
        self._apps = _Table(max_entries)
        self._providers = _Table(max_entries)
        self._inflight: dict[tuple[int, Any], asyncio.Future[Any]] = {}
        # Bumped by every invalidation: a fetch that started before one is not cached.
        self._epoch = 0
        self._fail_until = 0.0
        self._available = False
        self._subscribed = False
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        # Redis answers but no longer holds the registry (marker key gone).
        self._empty = False
        self._next_marker_check = 0.0
        self._subscribed_once = asyncio.Event()

    # -- lifetime (aiohttp cleanup_ctx) --

    async def start(self) -> None:
        self._client = connect(self._config)
        self._writer = RegistryWriter(self._client, self._keys, on_change=self.invalidate)
        try:
            async with asyncio.timeout(self._timeout):
                await self._client.ping()
            self._available = True
        except REDIS_FAILURES as exc:
            self._failed(exc)
            log.warning("registry_unavailable_at_start", error=self._last_error)
        self._subscribed_once = asyncio.Event()  # this start's, on this loop
        self._listener = asyncio.get_running_loop().create_task(self._listen(), name="registry-listener")
        if self._available:
            # Serving before the subscription is confirmed would cache lookups that
            # the subscription's own flush then drops (and miss changes meanwhile).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await self._subscribed_once.wait()
        log.info("registry_started", backend="redis", url=redact_url(self._config.url),
                 prefix=self._config.prefix)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            try:
                await self._listener
            except asyncio.CancelledError:
                pass
            self._listener = None
        if self._client is not None:
            await disconnect(self._client)
            self._client = None

    @property
    def writer(self) -> RegistryWriter:
        if self._writer is None:
            raise RuntimeError("the redis registry is not started")
        return self._writer

    async def call(self, operation: Callable[[RegistryWriter], Awaitable[T]]) -> T:
        """Run an uncached operation (admin API), Redis failures as RegistryUnavailable."""
        return await self._round_trip(lambda: operation(self.writer), fail_fast=False,
                                      timeout_s=max(2.0, 4 * self._timeout))

    @classmethod
    def open(cls, config: Config, environ: Mapping[str, str] | None = None) -> RedisRegistry:
        try:
            check_url(config.registry.url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return cls(config.registry, environ=environ)

    def reread(self) -> Registry:
        return self  # shared: changes arrive over pub/sub, not with the catalogue

    async def manifests(self) -> Sequence[Mapping[str, Any]]:
        return await self.call(lambda w: w.list_manifests())

    async def manifest(self, app_id: str) -> Mapping[str, Any] | None:
        return await self.call(lambda w: w.get_manifest(app_id))

    def check_writable(self) -> None:
        return None

    async def put_app(self, doc: Mapping[str, Any]) -> PutOutcome:
        return await self.call(lambda w: w.put_app(doc))

    async def delete_app(self, app_id: str) -> bool:
        return await self.call(lambda w: w.delete_app(app_id))

    async def set_installed(self, community: str, app_id: str, installed: bool) -> bool:
        return await self.call(lambda w: w.set_installed(community, app_id, installed))

    # -- lookups --

    async def app_by_token(self, token_hash: str) -> App | None:
        entry = self._tokens.get(token_hash)
        if entry is not None and time.monotonic() - entry.at < self._ttl:
            return entry.value  # type: ignore[no-any-return]
        return await self._lookup(self._tokens, token_hash, entry, self._fetch_token)  # type: ignore[no-any-return]

    async def app(self, app_id: str) -> App | None:
        entry = self._apps.get(app_id)
        if entry is not None and time.monotonic() - entry.at < self._ttl:
            return entry.value  # type: ignore[no-any-return]
        return await self._lookup(self._apps, app_id, entry, self._fetch_app)  # type: ignore[no-any-return]

    async def providers(self, action: str, community: str) -> Sequence[App]:
        key = (action, community)
        entry = self._providers.get(key)
        if entry is not None and time.monotonic() - entry.at < self._ttl:
            return entry.value  # type: ignore[no-any-return]
        return await self._lookup(self._providers, key, entry, self._fetch_providers)  # type: ignore[no-any-return]

    def health(self) -> dict[str, Any]:
        status = "unavailable" if not self._available else "empty" if self._empty else "ok"
        return {
            "backend": "redis",
            "status": status,
            "subscribed": self._subscribed,
            "lastError": self._last_error,
            "lastErrorAt": self._last_error_at,
            "cached": {"tokens": len(self._tokens.known), "apps": len(self._apps.known),
                       "providers": len(self._providers.known)},
            "cachedUnknown": {"tokens": len(self._tokens.unknown), "apps": len(self._apps.unknown),
                              "providers": len(self._providers.unknown)},
        }

    # -- invalidation --

    def invalidate(self, change: Change | None = None, *, forget: bool = False) -> None:
        """Drop what `change` touched; None drops everything (the known
        values are remembered for an emptied Redis unless `forget`)."""
        self._epoch += 1
        if change is None:
            for table in (self._tokens, self._apps, self._providers):
                table.clear(forget=forget)
            return
        for digest in change.tokens:
            self._tokens.pop(digest)
        for remembered in (self._tokens.known, self._tokens.last_known):
            for digest in [d for d, e in remembered.items() if e.value.id == change.app]:
                del remembered[digest]
        self._apps.pop(change.app)
        self._providers.clear()

    def _on_message(self, data: Any) -> None:
        try:
            doc = orjson.loads(data)
            change = Change(str(doc["app"]), frozenset(map(str, doc.get("tokens", ()))))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            change = None
        self.invalidate(change)

    async def _listen(self) -> None:
        """Subscribe, apply messages; on failure reconnect with backoff. Every
        (re)subscription flushes the cache: messages may have been missed."""
        assert self._client is not None
        backoff = RESUBSCRIBE_BACKOFF_S[0]
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._keys.channel)
                while True:
                    message = await pubsub.get_message(timeout=MARKER_CHECK_S)
                    if self._subscribed and time.monotonic() >= self._next_marker_check:
                        await self._check_marker()
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Also seen when redis-py reconnects the pubsub by itself.
                        # Redis may have come back empty: checked right after.
                        self.invalidate()
                        self._next_marker_check = 0.0
                        self._subscribed = True
                        self._subscribed_once.set()
                        self._available = True
                        self._fail_until = 0.0
                        backoff = RESUBSCRIBE_BACKOFF_S[0]
                        log.info("registry_subscribed", channel=self._keys.channel)
                    elif message["type"] == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a redis failure or a bug: keep listening
                self._failed(exc)
                # One warning when the subscription is lost, not one per retry.
                report = log.warning if self._subscribed else log.debug
                self._subscribed = False
                report("registry_subscriber_lost", error=self._last_error, retryInSeconds=backoff)
            finally:
                with contextlib.suppress(*REDIS_FAILURES):  # the connection may be broken already
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8 on
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESUBSCRIBE_BACKOFF_S[1])

    async def _check_marker(self) -> bool:
        """Whether Redis still holds the registry (the marker, or any app for
        data written before the marker existed); updates the "empty" state."""
        self._next_marker_check = time.monotonic() + MARKER_CHECK_S
        client = self._client
        if client is None:
            return not self._empty
        try:
            present = await self._round_trip(lambda: client.exists(self._keys.marker, self._keys.apps),
                                             fail_fast=False) > 0
        except RegistryUnavailable:
            return not self._empty
        if present and self._empty:
            self._empty = False
            self.invalidate(forget=True)  # the apps were pushed again: re-read them
            log.info("registry_restored", marker=self._keys.marker)
        elif not present and not self._empty:
            self._empty = True
            self._last_error = (f"Redis holds no registry (key {self._keys.marker} is missing: restarted "
                                "without persistence, or flushed); serving the apps cached here until "
                                "they are pushed again")
            self._last_error_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.error("registry_empty", marker=self._keys.marker, detail=self._last_error)
        return present

    # -- lookups --

    async def _lookup(self, table: _Table, key: Any, entry: _Entry | None,
                      fetch: Callable[[Any], Awaitable[Any]]) -> Any:
        """Refresh one entry (one fetch per key at a time); stale or 503 when Redis fails."""
        flight_key = (id(table), key)
        future = self._inflight.get(flight_key)
        if future is None:
            epoch = self._epoch

            async def fetch_checked() -> Any:
                value = await fetch(key)
                if not value and table.remembered(key) is not None and not self._empty:
                    # A known app turned unknown: deleted, or Redis lost everything?
                    await self._check_marker()
                return value

            future = asyncio.ensure_future(self._round_trip(fetch_checked))
            self._inflight[flight_key] = future

            def done(f: asyncio.Future[Any]) -> None:
                self._inflight.pop(flight_key, None)
                if f.cancelled() or f.exception() is not None or self._epoch != epoch:
                    return
                value = f.result()
                remembered = table.remembered(key)
                if not value and remembered is not None:
                    if not self._empty:
                        # A known app read as unknown before the marker check could
                        # say why (Redis still coming back): not cached, asked again.
                        return
                    value = remembered.value  # the last known value serves on
                table.put(key, value, time.monotonic())

            future.add_done_callback(done)
        try:
            value = await asyncio.shield(future)
        except RegistryUnavailable:
            if entry is not None and time.monotonic() - entry.at < self._stale_max:
                return entry.value
            raise
        if not value and self._empty:
            remembered = table.remembered(key)
            if remembered is not None:
                return remembered.value
        return value

    async def _round_trip(self, operation: Callable[[], Awaitable[T]], *, fail_fast: bool = True,
                          timeout_s: float | None = None) -> T:
        if self._client is None:
            raise RegistryUnavailable("the shared registry is not started")
        if fail_fast and time.monotonic() < self._fail_until:
            raise RegistryUnavailable(
                "the shared registry cannot be reached and this lookup is not cached here")
        try:
            async with asyncio.timeout(timeout_s or self._timeout):
                result = await operation()
        except REDIS_FAILURES as exc:
            self._failed(exc)
            self._fail_until = time.monotonic() + FAIL_FAST_S
            raise RegistryUnavailable(
                "the shared registry cannot be reached and this lookup is not cached here") from None
        self._available = True
        return result

    def _failed(self, exc: BaseException) -> None:
        self._available = False
        self._last_error = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
                                   self._config.url)
        self._last_error_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def _parse(self, raw: bytes | str) -> App:
        doc = orjson.loads(raw)
        try:
            return parse_manifest(doc, environ=self._environ)
        except ManifestError as exc:
            # e.g. {"env": NAME} with NAME unset on this instance: the app exists,
            # this instance cannot serve it.
            log.error("registry_app_unusable", app=doc.get("id"), field=exc.field, reason=exc.message)
            raise RegistryUnavailable(
                f"app {doc.get('id')!r} cannot be used by this hub instance "
                f"({exc.field}: {exc.message})") from None

    async def _fetch_token(self, digest: str) -> App | None:
        assert self._client is not None
        owner = await self._client.get(self._keys.token(digest))
        if owner is None:
            return None
        raw = await self._client.get(self._keys.app(_text(owner)))
        if raw is None:
            return None
        app = self._parse(raw)
        return app if digest in app.token_hashes else None

    async def _fetch_app(self, app_id: str) -> App | None:
        assert self._client is not None
        raw = await self._client.get(self._keys.app(app_id))
        return None if raw is None else self._parse(raw)

    async def _fetch_providers(self, key: tuple[str, str]) -> tuple[App, ...]:
        assert self._client is not None
        action, community = key
        ids = sorted(_text(m) for m in await self._client.sinter(
            [self._keys.action(action), self._keys.community(community)]))
        if not ids:
            return ()
        found = []
        for raw in await self._client.mget([self._keys.app(i) for i in ids]):
            if raw is None:
                continue
            try:
                app = self._parse(raw)
            except RegistryUnavailable:
                continue  # logged; the other providers are still listed
            if action in app.provides and community in app.communities:
                found.append(app)
        return tuple(found)
