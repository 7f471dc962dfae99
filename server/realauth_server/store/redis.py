"""Redis store (``redis://host:port/db``): shared by many replicas.

Keys (prefix ``realauth:``), all with the session's retention as TTL (retention.py):
- ``s:<session_id>``: hash ``v`` (version) and ``d`` (the session as JSON);
- ``t:<token>``: session id (token index); ``i:<sha256(tenant, key)>``: session id (idempotency);
- ``l:<name>``: a lease (owner id, ``SET NX PX``); ``m:<name>``: a marker (``SET PX``);
  ``secret:<name>``: shared secrets (no TTL);
- ``c:<sha256(kind, vendor token)>``: the session that claimed a vendor token (``SET NX``, TTL its retention);
- ``rl:<tenant>:<window>``: a tenant's request count in one rate-limit window (TTL two windows);
- ``x:<sha256(tenant)>``: the tenant's session ids scored by create_time (ListAuthSessions, newest first) and
  ``xr:<sha256(tenant)>``: the same ids scored by retain_until. Each insert drops ids past retention from both,
  and both keys live as long as their longest-retained session, so an idle tenant's index goes too;
- webhook outbox (outbox.py): ``w:d:<delivery_id>`` a record (hash of its fields), ``w:due`` the pending records
  by due time (a sorted set), ``w:t:<tenant>`` and ``w:s:<session_id>`` the records by creation, for listing; all
  with the outbox retention as TTL. Records are written by the same script as the session transition.
Writes are Lua scripts, so the version check, the indexes, the TTLs and the change notification
(``PUBLISH realauth:events <session JSON>``) happen atomically and in version order.

Redis Cluster (redis_cluster.py) subclasses this store: every key name above goes through a ``_*_key`` method
so that it can carry a hash tag there. New keys must too, and follow the tagging rule in that module's
docstring (per-session state tagged ``{session_id}``, per-tenant state ``{tenant}``); a script that touches
several keys must only touch keys sharing one tag, or it cannot run on a cluster.

``?wait=N`` (``wait_replicas``) makes the writes that matter durable against a primary failover: see
:meth:`RedisStore._write`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import math
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..domain import AuthSession
from ..outbox import WEBHOOK_RETENTION, DeliveryStatus, WebhookDelivery
from .base import (
    Cursor,
    IdempotencyClaim,
    Recorded,
    SessionFilter,
    SessionStore,
    StoreConflict,
    StoreUnavailable,
    idempotency_lease,
)
from .retention import Retention

log = logging.getLogger("realauth.store")

PREFIX = "realauth:"

# KEYS: session, token index, idempotency index, tenant list index, tenant retention index. ARGV: session id,
# version, json, ttl ms, has token, has idempotency key, channel, session key prefix, create_time,
# retain_until, now (the service's clock).
INSERT = """
if ARGV[6] == '1' then
  local existing = redis.call('GET', KEYS[3])
  if existing and redis.call('EXISTS', ARGV[8] .. existing) == 1 then
    return existing
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4]) end
if ARGV[6] == '1' then redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[4]) end
redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[10], ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[11], 'LIMIT', 0, 100)
for _, sid in ipairs(gone) do
  redis.call('ZREM', KEYS[4], sid)
  redis.call('ZREM', KEYS[5], sid)
end
for i = 4, 5 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
redis.call('PUBLISH', ARGV[7], ARGV[3])
return ARGV[1]
"""

# KEYS: session, token index, idempotency index. ARGV: expected version, new version, json,
# ttl ms, has token, has idempotency key, channel, session id.
UPDATE = """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[4]) end
if ARGV[6] == '1' then redis.call('SET', KEYS[3], ARGV[8], 'PX', ARGV[4]) end
redis.call('PUBLISH', ARGV[7], ARGV[3])
return 1
"""

# UPDATE, plus the webhook records of the transition (written only when the stored state differs).
# KEYS: session, token index, idempotency index, due set. ARGV: as UPDATE, then new state, outbox prefix,
# record ttl ms, retention seconds, then one JSON object of string fields per record.
# Returns 0 (conflict), 1 (written, same state: no records) or 2 (written with its records).
UPDATE_OUTBOX = """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
local old = cjson.decode(redis.call('HGET', KEYS[1], 'd'))['state']
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], ARGV[8], 'PX', ARGV[4]) end
if ARGV[6] == '1' then redis.call('SET', KEYS[3], ARGV[8], 'PX', ARGV[4]) end
redis.call('PUBLISH', ARGV[7], ARGV[3])
if old == ARGV[9] then
  return 1
end
for i = 13, #ARGV do
  local r = cjson.decode(ARGV[i])
  local key = ARGV[10] .. 'd:' .. r['delivery_id']
  local flat = {}
  for k, v in pairs(r) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', key, unpack(flat))
  redis.call('PEXPIRE', key, ARGV[11])
  redis.call('ZADD', KEYS[4], r['next_at'], r['delivery_id'])
  for _, index in ipairs({'t:' .. r['tenant'], 's:' .. r['session_id']}) do
    redis.call('ZADD', ARGV[10] .. index, r['created'], r['delivery_id'])
    redis.call('ZREMRANGEBYSCORE', ARGV[10] .. index, '-inf', tonumber(r['created']) - tonumber(ARGV[12]))
    redis.call('PEXPIRE', ARGV[10] .. index, ARGV[11])
  end
end
return 2
"""

# KEYS: due set. ARGV: now, limit, claim until, owner, record key prefix. Due records whose hash is gone (past
# retention) or is no longer pending leave the set; the others get one more attempt, owned by ARGV[4].
CLAIM_WEBHOOKS = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[5] .. id
  if redis.call('HGET', key, 'status') ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'owner', ARGV[4], 'next_at', ARGV[3], 'updated', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = id
  end
end
return out
"""

# KEYS: record, due set. ARGV: owner, attempts, status, next at, last error, last status, now, delivered at, id,
# record ttl ms (kept that long after this last change).
#: The record half of FINISH_WEBHOOK (redis_cluster.py runs it alone: its due entries live in another slot).
FINISH_RECORD = """
if ARGV[1] == '' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1]
   or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'next_at', ARGV[4], 'last_error', ARGV[5], 'last_status', ARGV[6],
  'updated', ARGV[7], 'owner', '')
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'delivered_at', ARGV[8]) end
redis.call('PEXPIRE', KEYS[1], ARGV[10])
"""
FINISH_WEBHOOK = (
    FINISH_RECORD
    + """if ARGV[3] == 'pending' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[9])
else
  redis.call('ZREM', KEYS[2], ARGV[9])
end
return 1
"""
)

# KEYS: record, due set. ARGV: now, give up at, id, record ttl ms.
#: The record half of REDELIVER_WEBHOOK (run alone by redis_cluster.py, as FINISH_RECORD).
REDELIVER_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'pending', 'next_at', ARGV[1], 'owner', '', 'give_up_at', ARGV[2],
  'updated', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
"""
REDELIVER_WEBHOOK = REDELIVER_RECORD + "redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])\nreturn 1\n"

#: Listing with a filter scans at most this many records of the index per call.
LIST_SCAN = 1000

# KEYS: claim. ARGV: session id, ttl ms. First writer wins; the owner's re-claim only lengthens the TTL.
CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ARGV[1]
end
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
"""

# A lease taken as acquire_lease takes it (SET NX PX, re-entrant for its owner: extended), as a local function for
# the scripts that take one: true when ``owner`` holds it now.
TAKE_LEASE = """
local function take_lease(key, owner, ttl)
  if redis.call('SET', key, owner, 'NX', 'PX', ttl) then
    return true
  end
  if redis.call('GET', key) ~= owner then
    return false
  end
  redis.call('PEXPIRE', key, ttl)
  return true
end
"""

# KEYS: lease, session. ARGV: owner, ttl ms. The lease (as acquire_lease: SET NX PX, re-entrant for its owner) and,
# when it was taken, the session's JSON as it stands under it ('' if gone); 0 when another owner holds the lease.
ACQUIRE_GET = (
    TAKE_LEASE
    + """
if not take_lease(KEYS[1], ARGV[1], ARGV[2]) then
  return 0
end
return {1, redis.call('HGET', KEYS[2], 'd') or ''}
"""
)


def _as_function(name: str, script: str) -> str:
    """A write script as a local Lua function of (K, A) instead of (KEYS, ARGV), to run inside another script."""
    body = script.replace("#ARGV", "#A").replace("KEYS[", "K[").replace("ARGV[", "A[")
    return f"local function {name}(K, A)\n{body}\nend\n"


# KEYS: vendor-token claim, lease, then the keys of UPDATE_OUTBOX. ARGV: session id, claim ttl ms, lease owner
# ('': release none), '1' when webhook records come (UPDATE_OUTBOX) else '0' (UPDATE), then that script's ARGV.
# The claim (as CLAIM), then only if this session owns the token the update, then the lease release: one script.
# Returns {0, owner} (the token is another session's: nothing written), {1} (claimed, the update conflicted) or
# {2, the update's result, 1 if the lease was released}.
RECORD = (
    _as_function("claim", CLAIM)
    + _as_function("update", UPDATE)
    + _as_function("update_outbox", UPDATE_OUTBOX)
    + """
local owner = claim({KEYS[1]}, {ARGV[1], ARGV[2]})
if owner ~= ARGV[1] then
  return {0, owner}
end
local K = {KEYS[3], KEYS[4], KEYS[5], KEYS[6]}
local A = {}
for i = 5, #ARGV do A[#A + 1] = ARGV[i] end
local got
if ARGV[4] == '1' then got = update_outbox(K, A) else got = update(K, A) end
if got == 0 then
  return {1}
end
local released = 0
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  released = redis.call('DEL', KEYS[2])
end
return {2, got, released}
"""
)

# KEYS: idempotency index, its reservation lease. ARGV: session key prefix, owner, ttl ms. {2, session JSON} when
# the key already stored a session that still exists; else the lease as ACQUIRE_GET takes it: {1} taken, {0} held
# by another owner (wait). Standalone only: the session's key is not one of KEYS (redis_cluster.py keeps the steps).
CLAIM_IDEMPOTENCY = (
    TAKE_LEASE
    + """
local sid = redis.call('GET', KEYS[1])
if sid then
  local data = redis.call('HGET', ARGV[1] .. sid, 'd')
  if data then
    return {2, data}
  end
end
if not take_lease(KEYS[2], ARGV[2], ARGV[3]) then
  return {0}
end
return {1}
"""
)

# KEYS: an index (token, idempotency). ARGV: session key prefix. The JSON of the session it names, or nil.
# Standalone only: the session's key is not one of KEYS (redis_cluster.py reads the index, then the session).
READ_INDEXED = """
local sid = redis.call('GET', KEYS[1])
if not sid then
  return false
end
return redis.call('HGET', ARGV[1] .. sid, 'd')
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: the window's counter. ARGV: its TTL in ms. One script, so a counter never outlives its window.
HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""
#: Ids a listing reads from the tenant's index per round trip.
LIST_BATCH = 200

#: How long open() waits for Redis and for the change subscription.
CONNECT_TIMEOUT = 5.0
#: How long a store command waits for a free connection when all of the pool's are in use (QueueingPool).
POOL_WAIT = 5.0
#: How long a durable write waits for its replicas (``?wait_timeout=`` seconds in the store URL).
DEFAULT_WAIT_TIMEOUT = 0.5


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


#: How a change notification starts: ``json.dumps(session.to_dict())``, whose first key is the session id.
_NOTICE_HEAD = b'{"session_id": "'


def notified_session(data: Any) -> str | None:
    """The session id of a change notification, read off its head without decoding the record (≈ 1 KiB of JSON a
    write, which every replica hears and mostly nobody watches); None when it does not have the plain shape
    (then the caller decodes it in full, as before)."""
    if not isinstance(data, bytes) or not data.startswith(_NOTICE_HEAD):
        return None
    end = data.find(b'"', len(_NOTICE_HEAD))
    sid = data[len(_NOTICE_HEAD) : end]
    if end < 0 or not sid or b"\\" in sid:  # an escaped character: only json.loads reads it right
        return None
    try:
        return sid.decode()
    except UnicodeDecodeError:
        return None


def _record(raw: dict[Any, Any]) -> WebhookDelivery | None:
    """A webhook record from its hash (None when it is gone or not complete)."""
    if not raw:
        return None
    fields = {_bytes(k).decode(): _bytes(v).decode() for k, v in raw.items()}
    try:
        return WebhookDelivery.from_dict(fields)
    except (TypeError, ValueError, KeyError):
        return None


#: Whether a write command's result means it changed something (and so must reach the replicas).
Wrote = Callable[[Any], bool]


def _always(result: Any) -> bool:
    return True


class QueueingPool(aioredis.ConnectionPool):
    """redis-py's connection pool, except that a command finding all ``max_connections`` in use waits for one to be
    released (up to :data:`POOL_WAIT` seconds) instead of failing at once with ``MaxConnectionsError``.

    A burst of calls (the process was starved of CPU for a moment, an open-loop client caught up) otherwise turns
    into UNAVAILABLE errors as soon as more than ``max_connections`` (redis-py's default: 100; ``?max_connections=N``
    in the store URL) store commands are in flight at once. The fast path (a connection free) is redis-py's own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns: collections.deque[asyncio.Future[None]] = collections.deque()

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self.can_get_connection():
            await self._wait_turn()
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    async def _wait_turn(self) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + POOL_WAIT
        first = False
        while not self.can_get_connection():
            left = ends - loop.time()
            if left <= 0:
                raise RedisConnectionError(f"no Redis connection free within {POOL_WAIT:g} s") from None
            turn: asyncio.Future[None] = loop.create_future()
            # A waiter woken whose connection another caller took first keeps its place at the front.
            (self._turns.appendleft if first else self._turns.append)(turn)
            first = True
            try:
                await asyncio.wait_for(turn, left)
            except TimeoutError:
                raise RedisConnectionError(f"no Redis connection free within {POOL_WAIT:g} s") from None
            finally:
                if not turn.done() or turn.cancelled():
                    with contextlib.suppress(ValueError):
                        self._turns.remove(turn)

    async def release(self, connection: Any) -> None:
        await super().release(connection)
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)
                return


class TimedSend:
    """A connection mixin: the socket timeout of a command's write as ``asyncio.timeout`` instead of redis-py's
    ``asyncio.wait_for``, which on Python 3.11 wraps every write in a task of its own (≈ 15 µs of CPU per command,
    3 per exchange; 3.12's ``wait_for`` no longer does, and there this mixin steps aside). The errors are redis-py's:
    a write past ``socket_timeout`` is ``TimeoutError("Timeout writing to socket")``, an ``OSError`` a
    ``ConnectionError``, and the connection is dropped either way. Anything but the plain case (no timeout, not
    connected yet) is redis-py's own method."""

    socket_timeout: float | None
    is_connected: bool

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        timeout = self.socket_timeout
        if not timeout or not self.is_connected or sys.version_info >= (3, 12):
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        if check_health:
            await self.check_health()  # type: ignore[attr-defined]
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            async with asyncio.timeout(timeout):
                await self._send_packed_command(command)  # type: ignore[attr-defined]
        except TimeoutError:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            err_no, errmsg = ("UNKNOWN", exc.args[0]) if len(exc.args) == 1 else (exc.args[0], exc.args[1])
            raise RedisConnectionError(f"Error {err_no} while writing to socket. {errmsg}.") from exc
        except BaseException:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise


_timed: dict[type[Any], type[Any]] = {}


def timed_connection_class(cls: type[Any]) -> type[Any]:
    """``cls`` (redis-py's TCP, TLS or Unix-socket connection) with :class:`TimedSend` in front."""
    if issubclass(cls, TimedSend):
        return cls
    if cls not in _timed:
        _timed[cls] = type(f"Timed{cls.__name__}", (TimedSend, cls), {})
    return _timed[cls]


class ReplicationTimeout(RedisTimeoutError):
    """A write reached the primary but fewer replicas than ``wait`` acknowledged it in time (UNAVAILABLE)."""


#: How long closing the store waits for its change subscription to end after cancelling it.
LISTENER_STOP_SECONDS = 5.0


class RedisStore(SessionStore):
    def __init__(
        self,
        url: str,
        retention: Retention | None = None,
        prefix: str = PREFIX,
        *,
        wait_replicas: int = 0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> None:
        super().__init__(retention)
        self.url = url
        #: ``WAIT`` for this many replicas after the writes that matter (0: do not wait; Redis's default).
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = max(1, math.ceil(wait_timeout * 1000))
        self.prefix = prefix
        self.channel = prefix + "events"
        self._r: Any = None  # aioredis.Redis here, aioredis.RedisCluster in the cluster store
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @property
    def r(self) -> Any:
        if self._r is None:
            raise RuntimeError("RedisStore used before open()")
        return self._r

    def _where(self) -> str:
        """The URL without any password, for error messages."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}{parts.path}"

    def _client(self) -> Any:
        pool = QueueingPool.from_url(
            self.url, socket_connect_timeout=CONNECT_TIMEOUT, health_check_interval=30, decode_responses=False
        )
        pool.connection_class = timed_connection_class(pool.connection_class)
        return aioredis.Redis.from_pool(pool)  # the client closes the pool with itself

    def _register_scripts(self) -> None:
        self._insert = self.r.register_script(INSERT)
        self._update = self.r.register_script(UPDATE)
        self._release = self.r.register_script(RELEASE)
        self._claim = self.r.register_script(CLAIM)
        self._hit = self.r.register_script(HIT)
        self._update_outbox = self.r.register_script(UPDATE_OUTBOX)
        self._claim_webhooks = self.r.register_script(CLAIM_WEBHOOKS)
        self._finish_webhook = self.r.register_script(FINISH_WEBHOOK)
        self._redeliver_webhook = self.r.register_script(REDELIVER_WEBHOOK)
        self._acquire_get = self.r.register_script(ACQUIRE_GET)
        self._record_result = self.r.register_script(RECORD)
        self._claim_idempotency = self.r.register_script(CLAIM_IDEMPOTENCY)
        self._read_indexed = self.r.register_script(READ_INDEXED)

    async def open(self) -> None:
        self._r = self._client()
        try:
            await asyncio.wait_for(self._r.ping(), CONNECT_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            await self._r.aclose()
            self._r = None
            raise StoreUnavailable(f"cannot reach Redis at {self._where()}: {type(exc).__name__}") from None
        self._register_scripts()
        self._listener = asyncio.create_task(self._listen(), name="realauth-redis-events")
        try:
            await asyncio.wait_for(self._subscribed.wait(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise StoreUnavailable(f"cannot subscribe to {self.channel} at {self._where()}") from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            # Bounded: a subscription connection stuck in a read must not hold a shutdown (the task is cancelled
            # and dropped either way).
            _done, stuck = await asyncio.wait({self._listener}, timeout=LISTENER_STOP_SECONDS)
            if stuck:
                log.warning("change subscription did not stop in time; closing without it")
            self._listener = None
        if self._r is not None:
            await self._r.aclose()
            self._r = None

    async def _listen(self) -> None:
        """Relay change notifications from every replica to this process's watchers; reconnect on loss."""
        backoff = 0.1
        while True:
            pubsub = self.r.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=30.0)
                    if message is None or message.get("type") != "message":
                        continue
                    sid = notified_session(message["data"])
                    if sid is not None and not self.feed.listening(sid):
                        continue  # as below, without decoding the JSON of a session nobody here watches
                    try:
                        data = json.loads(message["data"])
                        if not self.feed.listening(data["session_id"]):
                            continue  # nobody here watches it: every replica hears every write, most unwatched
                        session = AuthSession.from_dict(data)
                    except (ValueError, TypeError, KeyError):
                        log.warning("ignoring a malformed change notification")
                        continue
                    self.feed.publish(session)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # Watchers resync from the store periodically, so a gap here only delays them.
                log.warning("change subscription lost; reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    # --- durable writes ---------------------------------------------------------------------------

    async def _eval(
        self, script: AsyncScript, slot_key: str, keys: list[str], args: list[Any], wrote: Wrote = _always
    ) -> Any:
        """Run a write script; with ``wait_replicas``, durable as :meth:`_write` says."""
        if not self.wait_replicas:
            return await script(keys=keys, args=args)
        return await self._write(slot_key, "EVAL", script.script, len(keys), *keys, *args, wrote=wrote)

    async def _write(self, slot_key: str, *command: Any, wrote: Wrote = _always) -> Any:
        """One write command, then (when asked) ``WAIT`` on the same connection for its replicas.

        Redis replicates asynchronously: a primary that dies right after acknowledging a write may take it
        along. ``WAIT n timeout`` blocks until ``n`` replicas have the connection's writes; when fewer did in
        time the write still stands on the primary but the caller gets UNAVAILABLE (and may retry: creates
        with an idempotency key return the same session, updates are versioned). ``wrote(result)`` says
        whether the command changed anything: a refused write (a version conflict, a lost race) needs no ack.
        """
        if not self.wait_replicas:
            return await self.r.execute_command(*command)
        pipe = self.r.pipeline(transaction=False)
        pipe.execute_command(*command)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        result, acked = await pipe.execute()
        if wrote(result):
            self._check_acked(int(acked))
        return result

    def _check_acked(self, acked: int) -> None:
        if acked < self.wait_replicas:
            log.warning("a write was not replicated in time", extra={"acked": acked, "wanted": self.wait_replicas})
            raise ReplicationTimeout(
                f"Redis: {acked} of {self.wait_replicas} replicas acknowledged a write within {self.wait_timeout_ms} ms"
            )

    # --- keys -----------------------------------------------------------------------------------

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def _token_key(self, token: str) -> str:
        return f"{self.prefix}t:{token}"

    def _idem_key(self, tenant: str, key: str) -> str:
        return f"{self.prefix}i:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()

    def _list_keys(self, tenant: str) -> tuple[str, str]:
        digest = hashlib.sha256(tenant.encode()).hexdigest()
        return f"{self.prefix}x:{digest}", f"{self.prefix}xr:{digest}"

    def _lease_key(self, name: str) -> str:
        return f"{self.prefix}l:{name}"

    def _marker_key(self, name: str) -> str:
        return f"{self.prefix}m:{name}"

    def _claim_key(self, key: str) -> str:
        return f"{self.prefix}c:{key}"

    def _rate_key(self, tenant: str, window: int) -> str:
        return f"{self.prefix}rl:{tenant}:{window}"

    def _secret_key(self, name: str) -> str:
        return f"{self.prefix}secret:{name}"

    def _ttl_ms(self, session: AuthSession) -> int:
        return max(1, math.ceil((self.retain_until(session) - self.clock.now()) * 1000))

    def _write_args(self, session: AuthSession) -> tuple[list[str], list[Any]]:
        keys = [
            self._session_key(session.session_id),
            self._token_key(session.token),
            self._idem_key(session.tenant, session.idempotency_key),
        ]
        args: list[Any] = [
            session.version,
            json.dumps(session.to_dict()),
            self._ttl_ms(session),
            "1" if session.token else "0",
            "1" if session.idempotency_key else "0",
            self.channel,
        ]
        return keys, args

    # --- SessionStore ---------------------------------------------------------------------------

    async def insert(self, session: AuthSession) -> AuthSession:
        keys, args = self._write_args(session)
        extra = [repr(session.create_time), repr(self.retain_until(session)), repr(self.clock.now())]
        sid_bytes = session.session_id.encode()
        got = await self._eval(
            self._insert,
            keys[0],
            [*keys, *self._list_keys(session.tenant)],
            [session.session_id, *args, self.prefix + "s:", *extra],
            wrote=lambda r: r is not None and _bytes(r) == sid_bytes,
        )
        if got is None:
            raise StoreConflict(session.session_id)
        sid = _bytes(got).decode()
        if sid == session.session_id:
            return session
        existing = await self.get(sid)
        if existing is None:  # expired between the script and this read: nothing to return it to
            raise StoreConflict(session.session_id)
        return existing

    async def get(self, session_id: str) -> AuthSession | None:
        data = await self.r.hget(self._session_key(session_id), "d")
        return AuthSession.from_dict(json.loads(data)) if data else None

    async def _get_indexed(self, key: str) -> AuthSession | None:
        """The session an index key names, in one script (one round trip instead of two)."""
        data = await self._read_indexed(keys=[key], args=[self.prefix + "s:"])
        return AuthSession.from_dict(json.loads(data)) if data else None

    async def get_by_token(self, token: str) -> AuthSession | None:
        return await self._get_indexed(self._token_key(token)) if token else None

    async def find_idempotent(self, tenant: str, key: str) -> AuthSession | None:
        return await self._get_indexed(self._idem_key(tenant, key)) if key else None

    async def scan_tenant(self, tenant: str, flt: SessionFilter, after: Cursor | None) -> AsyncIterator[AuthSession]:
        """Walk the tenant's create_time index downwards; ids whose session expired are skipped.

        Equal scores come in descending member order, as the (create_time, session_id) order wants; a run of
        equal scores longer than a batch is walked with an offset.
        """
        index, _ = self._list_keys(tenant)
        top = math.inf if after is None else after[0]
        if flt.create_time_end is not None:
            top = min(top, flt.create_time_end)
        bottom = "-inf" if flt.create_time_start is None else repr(flt.create_time_start)
        offset = 0
        while True:
            hi = "+inf" if top == math.inf else repr(top)
            got: list[Any] = await self.r.zrevrangebyscore(
                index, hi, bottom, start=offset, num=LIST_BATCH, withscores=True
            )  # [(member, score)] with withscores
            rows = [(_bytes(member).decode(), float(score)) for member, score in got]
            if not rows:
                return
            ids = [sid for sid, _score in rows]
            async with self.r.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.hget(self._session_key(sid), "d")
                datas = await pipe.execute()
            for (sid, score), data in zip(rows, datas, strict=True):
                if after is not None and (score, sid) >= after:
                    continue
                if data:
                    yield AuthSession.from_dict(json.loads(data))
            last = rows[-1][1]
            if last == top:
                offset += len(rows)
            else:
                top, offset = last, sum(1 for _sid, score in rows if score == last)
            if len(rows) < LIST_BATCH:
                return

    async def shared_secret(self, name: str) -> bytes:
        key = self._secret_key(name)
        # Durable (WAIT) when asked: every landing link handed out depends on this value.
        await self._write(key, "SET", key, secrets.token_bytes(32), "NX", wrote=bool)
        value = await self.r.get(key)
        if not value:
            raise StoreUnavailable(f"shared secret {name!r} vanished from Redis")
        return _bytes(value)

    def _update_args(self, session: AuthSession, new: AuthSession) -> tuple[bool, list[str], list[Any]]:
        """The keys and ARGV of UPDATE (no webhook records) or UPDATE_OUTBOX (the first item: which one)."""
        keys, args = self._write_args(new)
        records = self.outbox_for(new)
        if not records:
            return False, keys, [session.version, *args, new.session_id]
        return (
            True,
            [*keys, self._due_key],
            [
                session.version,
                *args,
                new.session_id,
                new.state.value,
                self._outbox_prefix,
                _ms(WEBHOOK_RETENTION),
                WEBHOOK_RETENTION,
                *(json.dumps(r.to_strings()) for r in records),
            ],
        )

    async def update(self, session: AuthSession) -> AuthSession:
        new = session.evolve(version=session.version + 1)
        outbox, keys, args = self._update_args(session, new)
        got = await self._eval(self._update_outbox if outbox else self._update, keys[0], keys, args, wrote=bool)
        if not got:
            raise StoreConflict(session.session_id)
        if outbox and int(got) == 2:
            self.enqueued()
        return new

    async def record_result(
        self, key: str, session: AuthSession, until: float, lease: tuple[str, str] | None = None
    ) -> Recorded:
        """The claim, the update and the lease release in one script (one round trip instead of three)."""
        new = session.evolve(version=session.version + 1)
        outbox, keys, args = self._update_args(session, new)
        if not outbox:
            keys.append(self._due_key)  # unused by UPDATE: keeps the update's keys at fixed positions
        claim = self._claim_key(key)
        lease_name, lease_owner = lease if lease is not None else ("", "")
        got = await self._eval(
            self._record_result,
            claim,
            [claim, self._lease_key(lease_name), *keys],
            [session.session_id, _ms(until - self.clock.now()), lease_owner, "1" if outbox else "0", *args],
            wrote=lambda r: int(r[0]) != 0,  # a claim taken (and maybe a write): must reach the replicas
        )
        code = int(got[0])
        if code == 0:
            return Recorded(_bytes(got[1]).decode(), None)
        if code == 1:
            raise StoreConflict(session.session_id)
        if outbox and int(got[1]) == 2:
            self.enqueued()
        return Recorded(session.session_id, new, released=bool(int(got[2])))

    # --- webhook outbox -------------------------------------------------------------------------

    @property
    def _outbox_prefix(self) -> str:
        return f"{self.prefix}w:"

    @property
    def _due_key(self) -> str:
        return f"{self.prefix}w:due"

    def _record_key(self, delivery_id: str) -> str:
        return f"{self.prefix}w:d:{delivery_id}"

    def _webhook_index(self, tenant: str, session_id: str) -> str:
        """The listing of one session's records (``session_id`` given) or else of the tenant's."""
        return self._outbox_prefix + (f"s:{session_id}" if session_id else f"t:{tenant}")

    async def get_webhook(self, delivery_id: str) -> WebhookDelivery | None:
        raw = await self.r.hgetall(self._record_key(delivery_id))  # type: ignore[misc]
        return _record(raw)

    async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
        now = self.clock.now()
        ids = await self._claim_webhooks(
            keys=[self._due_key], args=[repr(now), limit, repr(now + lease), owner, self._outbox_prefix + "d:"]
        )
        out = []
        for raw_id in ids:
            record = await self.get_webhook(_bytes(raw_id).decode())
            if record is not None and record.owner == owner:
                out.append(record)
        return sorted(out, key=lambda d: d.created)

    async def finish_webhook(
        self,
        claimed: WebhookDelivery,
        status: DeliveryStatus,
        next_at: float,
        last_error: str,
        last_status: int,
    ) -> bool:
        now = self.clock.now()
        ok = await self._finish_webhook(
            keys=[self._record_key(claimed.delivery_id), self._due_key],
            args=[
                claimed.owner,
                claimed.attempts,
                status.value,
                repr(next_at),
                last_error,
                last_status,
                repr(now),
                repr(now) if status is DeliveryStatus.DELIVERED else "",
                claimed.delivery_id,
                _ms(WEBHOOK_RETENTION),
            ],
        )
        return bool(ok)

    async def list_webhooks(
        self, tenant: str, session_id: str, status: DeliveryStatus | None, offset: int, limit: int
    ) -> tuple[list[WebhookDelivery], int | None]:
        index = self._webhook_index(tenant, session_id)
        out: list[WebhookDelivery] = []
        position, scanned = offset, 0
        while len(out) < limit and scanned < LIST_SCAN:
            chunk = min(limit * 2, LIST_SCAN - scanned)
            ids: list[bytes] = list(await self.r.zrevrange(index, position, position + chunk - 1))  # type: ignore[arg-type]
            if not ids:
                return out, None
            for raw_id in ids:
                position += 1
                scanned += 1
                record = await self.get_webhook(_bytes(raw_id).decode())
                if record is not None and record.tenant == tenant and status in (None, record.status):
                    out.append(record)
                    if len(out) == limit:
                        break
        more = await self.r.zcard(index) > position
        return out, (position if more else None)

    async def redeliver_webhook(self, delivery_id: str, give_up_at: float) -> WebhookDelivery | None:
        now = self.clock.now()
        ok = await self._redeliver_webhook(
            keys=[self._record_key(delivery_id), self._due_key],
            args=[repr(now), repr(give_up_at), delivery_id, _ms(WEBHOOK_RETENTION)],
        )
        if not ok:
            return None
        self.enqueued()
        return await self.get_webhook(delivery_id)

    async def pending_webhooks(self) -> int:
        return int(await self.r.zcard(self._due_key))

    async def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        key = self._lease_key(name)
        ms = _ms(seconds)
        if await self.r.set(key, owner, nx=True, px=ms):
            return True
        # Re-entrant for the same owner (a retry of the same attempt): extend.
        current = await self.r.get(key)
        if current is not None and _bytes(current).decode() == owner:
            await self.r.pexpire(key, ms)
            return True
        return False

    async def acquire_lease_get(
        self, name: str, owner: str, seconds: float, session_id: str
    ) -> tuple[bool, AuthSession | None]:
        """The lease and the session in one script (one round trip instead of two)."""
        got = await self._acquire_get(
            keys=[self._lease_key(name), self._session_key(session_id)], args=[owner, _ms(seconds)]
        )
        if not got:
            return False, None
        data = got[1]
        return True, AuthSession.from_dict(json.loads(data)) if data else None

    async def claim_idempotency(self, tenant: str, key: str, owner: str, seconds: float) -> IdempotencyClaim:
        """The look-up and the reservation in one script (one round trip instead of up to five)."""
        if not key:
            return await super().claim_idempotency(tenant, key, owner, seconds)
        got = await self._claim_idempotency(
            keys=[self._idem_key(tenant, key), self._lease_key(idempotency_lease(tenant, key))],
            args=[self.prefix + "s:", owner, _ms(seconds)],
        )
        code = int(got[0])
        if code == 2:
            return IdempotencyClaim(session=AuthSession.from_dict(json.loads(got[1])))
        return IdempotencyClaim(claimed=code == 1)

    async def release_lease(self, name: str, owner: str) -> None:
        await self._release(keys=[self._lease_key(name)], args=[owner])

    async def claim_vendor_token(self, key: str, session_id: str, until: float) -> str:
        ms = max(1, math.ceil((until - self.clock.now()) * 1000))
        claim = self._claim_key(key)
        # Durable when asked: a claim lost in a failover would let the token complete a second session.
        mine = session_id.encode()
        owner = await self._eval(self._claim, claim, [claim], [session_id, ms], wrote=lambda r: _bytes(r) == mine)
        return _bytes(owner).decode()

    async def vendor_token_owner(self, key: str) -> str | None:
        owner = await self.r.get(self._claim_key(key))
        return _bytes(owner).decode() if owner else None

    async def put_marker(self, name: str, seconds: float) -> None:
        await self.r.set(self._marker_key(name), b"1", px=max(1, math.ceil(seconds * 1000)))

    async def has_marker(self, name: str) -> bool:
        return bool(await self.r.exists(self._marker_key(name)))

    async def ping(self) -> None:
        await self.r.ping()

    async def count_hit(self, key: str, window_seconds: float) -> tuple[int, float]:
        """Shared by every replica: one counter per key and window (``rl:<key>:<window index>``), INCR + PEXPIRE."""
        now = time.time()
        index = int(now // window_seconds)
        ttl_ms = max(1, math.ceil(window_seconds * 2000))
        hits = await self._hit(keys=[self._rate_key(key, index)], args=[ttl_ms])
        return int(hits), (index + 1) * window_seconds - now
