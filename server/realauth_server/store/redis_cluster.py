"""Redis Cluster store (``redis+cluster://host:port,host:port,...``): many replicas, data sharded by slot.

Redis Cluster runs a Lua script or a MULTI only when every key it touches hashes to one slot, and a key's
slot is that of its *hash tag*, the part between the first ``{`` and the next ``}``. The tagging rule:

    A key is tagged by the identity its readers look it up by. Keys that must change together in one
    script share that identity; anything looked up by something else is a separate single-key write.

So (prefix ``realauth:``; same values and TTLs as the standalone layout in redis.py):

- per session, tag ``{<session_id>}``: the record ``s:{sid}``, the exchange lease ``l:exchange:{sid}``, its
  change notification (below), its webhook records ``w:d:{sid}:<delivery_id>`` and their listing ``w:s:{sid}``;
- per tenant, tag ``{sha256(tenant)}``: the session listing ``x:`` / ``xr:`` and the webhook listing ``w:t:``;
- per delivery, ``w:id:{<delivery_id>}``: the session id of the record (it is looked up by delivery id);
- the webhook due queue: 16 fixed shards ``w:due:{wq<k>}``, a record's being crc32(session id) mod 16;
- per ``(tenant, idempotency key)``, tag ``{sha256(tenant, key)}``: the index ``i:{h}``, the reservation lease
  ``l:idem:{h}`` and the unknown-outcome marker ``m:unknown:{h}`` (all already named by that digest);
- the token index ``t:{<token>}`` (read by token), the vendor-token claim ``c:{<sha256(kind, token)>}``;
- rate limits ``rl:{<tenant>}:<window>``; shared secrets ``secret:{secrets}:<name>`` (one fixed tag).

Only the session write needs more than one key at once in the standalone store (record + token index +
idempotency index + notification in one script). Here it is three single-slot steps, ordered so that the
record is the commit point: (1) the idempotency index (a script on its slot: take the key unless it names
another session that exists), (2) the token index, (3) the record, whose script checks the version, writes,
and ``SPUBLISH``-es the change. An index naming a session whose record does not exist is treated as absent
everywhere, so a replica dying between the steps leaves only an unreachable index that expires with its TTL.
The one difference from standalone: two creates with one idempotency key racing *without* the reservation
lease (it expired) may both store a session; the lease is what makes creates single-flight in both modes.

Listing and the webhook outbox follow the same "entries first, commit point last" order. A create writes the
tenant's listing (one script) before the record: a listed id without a record is skipped. A state-changing update
first writes each record's pointer, then its due entry and tenant listing entry, then the session script writes
the session *and* its records (one slot: a record exists exactly when its transition does). Entries naming a
record that never came (the script lost, or the replica died) are skipped by readers and dropped by claimers once
their pointer is MISSING_GRACE old. A claim takes due entries from one shard at a time with a script that hides
them until the claim runs out, then claims each record with a script in its slot: that one decides (pending and
due? owner, attempt), so attempts stay exclusive across replicas however stale an entry is, and its answer
corrects the entry. Finish and redeliver change the record first, then the entry, conditionally or so that a lost
second step only delays the record until its claim runs out.

Every RedisStore method that runs a multi-key script must be overridden here with single-slot steps (or
keep all its keys under one tag); inherited as is, it fails on a cluster with CROSSSLOT.

Changes are published with sharded pub/sub (Redis >= 7.0). A script may only ``SPUBLISH`` to a channel of
its own slot, so there is one channel per slot, ``ev:{<tag of slot n>}``, and every realauth replica
``SSUBSCRIBE``-s, on each primary, to the channels of the slots it serves (16384 in all). When a primary
fails or slots move, the subscription is rebuilt from ``CLUSTER SLOTS``; changes missed meanwhile reach
watchers through their periodic re-read (every 5 s), as in standalone mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import zlib
from collections.abc import Coroutine
from functools import cache
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, ResponseError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..domain import AuthSession
from ..outbox import WEBHOOK_RETENTION, DeliveryStatus, WebhookDelivery
from .base import IdempotencyClaim, Recorded, SessionStore, StoreConflict, in_steps
from .redis import (
    CONNECT_TIMEOUT,
    DEFAULT_WAIT_TIMEOUT,
    FINISH_RECORD,
    PREFIX,
    REDELIVER_RECORD,
    RedisStore,
    Wrote,
    _always,
    _bytes,
    _ms,
    _record,
    log,
)
from .retention import Retention

SLOTS = 16384
#: How often a replica compares the slot map it subscribed by with the cluster's (seconds).
TOPOLOGY_RECHECK = 5.0
#: How long one node may take to answer ``CLUSTER SLOTS`` before the next is asked.
TOPOLOGY_TIMEOUT = 1.0

# KEYS: the session record. ARGV: version, json, ttl ms, channel (of the record's slot).
RECORD_INSERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SPUBLISH', ARGV[4], ARGV[2])
return 1
"""

# KEYS: the session record. ARGV: expected version, new version, json, ttl ms, channel.
RECORD_UPDATE = """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SPUBLISH', ARGV[5], ARGV[3])
return 1
"""

# KEYS: an idempotency index. ARGV: session id, ttl ms, a stale owner to take over ('' for none).
# Returns the owner: ARGV[1] when taken, else the session that holds the key.
INDEX_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and owner ~= ARGV[3] then
  return owner
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: the tenant's listing by create_time, by retain_until. ARGV: session id, create_time, retain_until, now,
# ttl ms. As the standalone INSERT's listing part: ids past retention leave both.
LIST_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 100)
for _, sid in ipairs(gone) do
  redis.call('ZREM', KEYS[1], sid)
  redis.call('ZREM', KEYS[2], sid)
end
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
end
return 1
"""

# RECORD_UPDATE plus the transition's webhook records, all in the session's slot (written only when the stored
# state differs). KEYS: the session record, the session's webhook listing. ARGV: expected version, new version,
# json, ttl ms, channel, new state, record key prefix, record ttl ms, retention seconds, then one JSON object of
# string fields per record. Returns 0 (conflict), 1 (written, same state: no records) or 2 (with records).
RECORD_UPDATE_OUTBOX = """
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then
  return 0
end
local old = cjson.decode(redis.call('HGET', KEYS[1], 'd'))['state']
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SPUBLISH', ARGV[5], ARGV[3])
if old == ARGV[6] then
  return 1
end
for i = 10, #ARGV do
  local r = cjson.decode(ARGV[i])
  local key = ARGV[7] .. r['delivery_id']
  local flat = {}
  for k, v in pairs(r) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  redis.call('HSET', key, unpack(flat))
  redis.call('PEXPIRE', key, ARGV[8])
  redis.call('ZADD', KEYS[2], r['created'], r['delivery_id'])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(r['created']) - tonumber(ARGV[9]))
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
end
return 2
"""

# KEYS: the tenant's webhook listing. ARGV: ttl ms, retention seconds, then (created, delivery id) pairs.
WEBHOOK_LIST_ADD = """
for i = 3, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[i]) - tonumber(ARGV[2]))
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: a due shard. ARGV: now, limit, hold until. Takes the due entries (with their scores) for this caller by
# moving them to "hold until": no other replica sees them before then.
DUE_TAKE = """
local got = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #got, 2 do
  redis.call('ZADD', KEYS[1], ARGV[3], got[i])
end
return got
"""

# KEYS: a due shard. ARGV: delivery id, the score its taker left, the new score ('' to remove). Only when nobody
# touched the entry since (a redelivery re-scores it): so a fix-up never undoes a newer write.
DUE_SET = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""

# KEYS: a webhook record. ARGV: now, claim until, owner. The record decides: {'claimed'}, {'missing'},
# {'done'} (not pending) or {'later', next_at} (pending, not due yet).
RECORD_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return {'missing'}
end
if status ~= 'pending' then
  return {'done'}
end
local next_at = redis.call('HGET', KEYS[1], 'next_at')
if tonumber(next_at) > tonumber(ARGV[1]) then
  return {'later', next_at}
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'next_at', ARGV[2], 'updated', ARGV[1])
return {'claimed'}
"""

# FINISH_WEBHOOK and REDELIVER_WEBHOOK of redis.py without the due set (another slot here). KEYS: record.
RECORD_FINISH = FINISH_RECORD + "return 1\n"
RECORD_REDELIVER = REDELIVER_RECORD + "return 1\n"

#: Fixed due-queue shards ``w:due:{wq<k>}``; a record's shard is crc32(session id) mod this.
DUE_SHARDS = 16
#: A due entry whose record is missing is dropped once its pointer is this old (seconds): a write between its
#: steps takes milliseconds, so by then the record was never written (a lost race or a crash) or has expired.
MISSING_GRACE = 60.0
#: ...and until then it is looked at again this much later.
MISSING_RETRY = 5.0


async def _until_one_fails(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run them all until one ends or raises; then cancel the rest and re-raise its error (if any)."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@cache
def slot_tags() -> tuple[str, ...]:
    """A short string hashing to each slot (the hash tag of that slot's change channel); ~0.2 s, once."""
    tags: list[str | None] = [None] * SLOTS
    left = SLOTS
    for i in itertools.count():
        tag = format(i, "x")
        slot = key_slot(tag.encode())
        if tags[slot] is None:
            tags[slot] = tag
            left -= 1
            if not left:
                break
    return tuple(t for t in tags if t is not None)


class RedisClusterStore(RedisStore):
    def __init__(
        self,
        nodes: list[tuple[str, int]],
        retention: Retention | None = None,
        prefix: str = PREFIX,
        *,
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    ) -> None:
        super().__init__("", retention, prefix, wait_replicas=wait_replicas, wait_timeout=wait_timeout)
        self.nodes = list(nodes)
        self._auth: dict[str, Any] = {"username": username, "password": password}
        self._ssl = ssl
        self.channel = prefix + "ev:{<slot>}"
        self._next_shard = 0  # where this replica's next claim starts (round-robin over the due shards)

    def _where(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.nodes)

    def _client(self) -> Any:
        return aioredis.RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self.nodes],
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
            decode_responses=False,
            ssl=self._ssl,
            **self._auth,
        )

    def _register_scripts(self) -> None:
        super()._register_scripts()
        self._record_insert = self.r.register_script(RECORD_INSERT)
        self._record_update = self.r.register_script(RECORD_UPDATE)
        self._index_claim = self.r.register_script(INDEX_CLAIM)
        self._list_add = self.r.register_script(LIST_ADD)
        self._record_update_outbox = self.r.register_script(RECORD_UPDATE_OUTBOX)
        self._webhook_list_add = self.r.register_script(WEBHOOK_LIST_ADD)
        self._due_take = self.r.register_script(DUE_TAKE)
        self._due_set = self.r.register_script(DUE_SET)
        self._record_claim = self.r.register_script(RECORD_CLAIM)
        self._record_finish = self.r.register_script(RECORD_FINISH)
        self._record_redeliver = self.r.register_script(RECORD_REDELIVER)

    async def _write(self, slot_key: str, *command: Any, wrote: Wrote = _always) -> Any:
        """As in standalone, but the WAIT must run on the connection that took the write, on the slot's primary.

        So both go out together on one connection of that node (not through the cluster client's retries:
        a write it re-sent elsewhere after a redirect would be "confirmed" by a WAIT on another connection).
        A redirect means the write did not happen: refresh the slot map and try once more.
        """
        if not self.wait_replicas:
            return await self.r.execute_command(*command)
        for _ in range(2):
            node = self.r.get_node_from_key(slot_key)
            conn = node.acquire_connection()
            try:
                await conn.send_packed_command(
                    conn.pack_commands([command, ("WAIT", self.wait_replicas, self.wait_timeout_ms)])
                )
                error: ResponseError | None = None
                try:
                    result = await node.parse_response(conn, str(command[0]))
                except ResponseError as exc:
                    error = exc
                acked = await node.parse_response(conn, "WAIT")  # read even after an error: keep the connection in step
            except (RedisConnectionError, RedisTimeoutError, OSError):
                await conn.disconnect()
                with contextlib.suppress(RedisError, OSError):
                    await self.r.nodes_manager.initialize()
                raise
            finally:
                node.release(conn)
            if error is None:
                if wrote(result):
                    self._check_acked(int(acked))
                return result
            if not isinstance(error, MovedError | AskError | TryAgainError | ClusterDownError):
                raise error
            await self.r.nodes_manager.initialize()
        raise ClusterDownError("the slot kept moving while writing")

    # --- keys: see the module docstring for the tagging rule -------------------------------------

    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}s:{{{session_id}}}"

    def _token_key(self, token: str) -> str:
        return f"{self.prefix}t:{{{token}}}"

    def _idem_key(self, tenant: str, key: str) -> str:
        digest = hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
        return f"{self.prefix}i:{{{digest}}}"

    def _named_key(self, kind: str, name: str) -> str:
        """``purpose:identity`` names (``exchange:<sid>``, ``idem:<h>``, ``unknown:<h>``) are tagged by identity."""
        purpose, _, identity = name.partition(":")
        return f"{self.prefix}{kind}:{purpose}:{{{identity}}}" if identity else f"{self.prefix}{kind}:{{{name}}}"

    def _lease_key(self, name: str) -> str:
        return self._named_key("l", name)

    def _marker_key(self, name: str) -> str:
        return self._named_key("m", name)

    def _claim_key(self, key: str) -> str:
        return f"{self.prefix}c:{{{key}}}"

    def _rate_key(self, tenant: str, window: int) -> str:
        return f"{self.prefix}rl:{{{tenant}}}:{window}"

    def _secret_key(self, name: str) -> str:
        return f"{self.prefix}secret:{{secrets}}:{name}"

    def _tenant_tag(self, tenant: str) -> str:
        """A tenant's hash tag: its digest (a tenant name may hold ``{`` or ``}``)."""
        return hashlib.sha256(tenant.encode()).hexdigest()

    def _list_keys(self, tenant: str) -> tuple[str, str]:
        tag = self._tenant_tag(tenant)
        return f"{self.prefix}x:{{{tag}}}", f"{self.prefix}xr:{{{tag}}}"

    def _webhook_key(self, session_id: str, delivery_id: str) -> str:
        """A webhook record lives in its session's slot: it is written by the session's script."""
        return f"{self.prefix}w:d:{{{session_id}}}:{delivery_id}"

    def _webhook_pointer(self, delivery_id: str) -> str:
        """delivery id -> session id: records are looked up by delivery id but stored by session."""
        return f"{self.prefix}w:id:{{{delivery_id}}}"

    def _webhook_index(self, tenant: str, session_id: str) -> str:
        if session_id:
            return f"{self.prefix}w:s:{{{session_id}}}"
        return f"{self.prefix}w:t:{{{self._tenant_tag(tenant)}}}"

    def _due_shard(self, k: int) -> str:
        return f"{self.prefix}w:due:{{wq{k}}}"

    def _shard_of(self, session_id: str) -> str:
        return self._due_shard(zlib.crc32(session_id.encode()) % DUE_SHARDS)

    def slot_channel(self, slot: int) -> str:
        return f"{self.prefix}ev:{{{slot_tags()[slot]}}}"

    def _channel_of(self, key: str) -> str:
        return self.slot_channel(key_slot(key.encode()))

    # --- session writes: three single-slot steps, the record last ---------------------------------

    async def _write_indexes(self, session: AuthSession, ttl_ms: int) -> None:
        writes = []
        if session.token:
            key = self._token_key(session.token)
            writes.append(self._write(key, "SET", key, session.session_id, "PX", ttl_ms))
        if session.idempotency_key:
            key = self._idem_key(session.tenant, session.idempotency_key)
            writes.append(self._write(key, "SET", key, session.session_id, "PX", ttl_ms))
        await asyncio.gather(*writes)

    async def insert(self, session: AuthSession) -> AuthSession:
        sid = session.session_id
        ttl_ms = self._ttl_ms(session)
        if session.idempotency_key:
            idem = self._idem_key(session.tenant, session.idempotency_key)
            stale = ""
            for _ in range(3):
                got = await self._eval(
                    self._index_claim, idem, [idem], [sid, ttl_ms, stale], wrote=lambda r: _bytes(r) == sid.encode()
                )
                owner = _bytes(got).decode()
                if owner == sid:
                    break
                existing = await self.get(owner)
                if existing is not None:
                    return existing
                stale = owner  # its record was never written (or expired): take the key over
            else:
                raise StoreConflict(sid)
        if session.token:
            token = self._token_key(session.token)
            await self._write(token, "SET", token, sid, "PX", ttl_ms)
        listed, by_retention = self._list_keys(session.tenant)  # before the record: an id without one is skipped
        extra = [repr(session.create_time), repr(self.retain_until(session)), repr(self.clock.now()), ttl_ms]
        await self._eval(self._list_add, listed, [listed, by_retention], [sid, *extra])
        record = self._session_key(sid)
        data = json.dumps(session.to_dict())
        args = [session.version, data, ttl_ms, self._channel_of(record)]
        if not await self._eval(self._record_insert, record, [record], args, wrote=bool):
            raise StoreConflict(sid)
        return session

    @in_steps  # timed by the operations it calls
    async def acquire_lease_get(
        self, name: str, owner: str, seconds: float, session_id: str
    ) -> tuple[bool, AuthSession | None]:
        """One script when the lease shares the session's slot (``l:exchange:{sid}`` and ``s:{sid}`` do), else the
        two steps."""
        if key_slot(self._lease_key(name).encode()) == key_slot(self._session_key(session_id).encode()):
            return await super().acquire_lease_get(name, owner, seconds, session_id)
        return await SessionStore.acquire_lease_get(self, name, owner, seconds, session_id)

    async def _get_indexed(self, key: str) -> AuthSession | None:
        """Two reads: the index lives in its own slot (``t:{token}``, ``i:{h}``), the session in its own."""
        sid = await self.r.get(key)
        return await self.get(_bytes(sid).decode()) if sid else None

    @in_steps
    async def claim_idempotency(self, tenant: str, key: str, owner: str, seconds: float) -> IdempotencyClaim:
        """The separate steps: the index and the lease share a slot, but the session they point to does not."""
        return await SessionStore.claim_idempotency(self, tenant, key, owner, seconds)

    @in_steps
    async def record_result(
        self, key: str, session: AuthSession, until: float, lease: tuple[str, str] | None = None
    ) -> Recorded:
        """The separate steps (claim, then update; the caller releases the lease): the vendor-token claim lives in
        the token's slot, the session in its own, so no one script can do both here."""
        return await SessionStore.record_result(self, key, session, until, lease)

    async def update(self, session: AuthSession) -> AuthSession:
        new = session.evolve(version=session.version + 1)
        records = self.outbox_for(new)
        if records:  # staged only for a write that will change the state: no stray entries for the others
            stored = await self.get(session.session_id)
            if stored is None or stored.version != session.version:
                raise StoreConflict(session.session_id)
            if stored.state == new.state:
                records = []
        ttl_ms = self._ttl_ms(new)
        await self._write_indexes(new, ttl_ms)  # the same values with a fresh TTL: harmless if the update loses
        record = self._session_key(new.session_id)
        args = [session.version, new.version, json.dumps(new.to_dict()), ttl_ms, self._channel_of(record)]
        if not records:
            if not await self._eval(self._record_update, record, [record], args, wrote=bool):
                raise StoreConflict(session.session_id)
            return new
        await self._stage_webhooks(records)
        got = await self._eval(
            self._record_update_outbox,
            record,
            [record, self._webhook_index("", new.session_id)],
            [
                *args,
                new.state.value,
                self._webhook_key(new.session_id, ""),
                _ms(WEBHOOK_RETENTION),
                WEBHOOK_RETENTION,
                *(json.dumps(r.to_strings()) for r in records),
            ],
            wrote=bool,
        )
        if not got:
            raise StoreConflict(session.session_id)
        if int(got) == 2:
            self.enqueued()
        return new

    # --- webhook outbox: records in the session's slot, found through the due shards --------------

    async def _stage_webhooks(self, records: list[WebhookDelivery]) -> None:
        """Before the session's script: the pointers, the due entries and the tenant listing (other slots).

        Each names a record that does not exist yet; should the script then lose (or the replica die) they
        name one that never will, which every reader skips and the claimers drop after MISSING_GRACE.
        """
        ttl = _ms(WEBHOOK_RETENTION)
        sid, tenant = records[0].session_id, records[0].tenant
        pointers = [self._webhook_pointer(r.delivery_id) for r in records]
        await asyncio.gather(*(self._write(p, "SET", p, sid, "PX", ttl) for p in pointers))  # before any entry
        writes = []
        shard = self._shard_of(sid)
        writes.append(
            self._write(shard, "ZADD", shard, *itertools.chain(*((repr(r.next_at), r.delivery_id) for r in records)))
        )
        listing = self._webhook_index(tenant, "")
        pairs = itertools.chain(*((repr(r.created), r.delivery_id) for r in records))
        writes.append(self._eval(self._webhook_list_add, listing, [listing], [ttl, WEBHOOK_RETENTION, *pairs]))
        await asyncio.gather(*writes)

    async def _locate(self, delivery_id: str) -> str | None:
        """The record's key (through its pointer), or None when there is none."""
        sid = await self.r.get(self._webhook_pointer(delivery_id))
        return self._webhook_key(_bytes(sid).decode(), delivery_id) if sid else None

    async def get_webhook(self, delivery_id: str) -> WebhookDelivery | None:
        key = await self._locate(delivery_id)
        return _record(await self.r.hgetall(key)) if key else None

    async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
        """Take due entries shard by shard (round-robin start), then claim each record in its own slot.

        Taking an entry hides it from other replicas until the claim runs out; the record's script is what
        makes the attempt exclusive (owner + attempts), and its answer corrects the entry when it was stale.
        """
        now = self.clock.now()
        hold = repr(now + lease)
        out: list[WebhookDelivery] = []
        start, self._next_shard = self._next_shard, (self._next_shard + 1) % DUE_SHARDS
        for i in range(DUE_SHARDS):
            if len(out) >= limit:
                break
            shard = self._due_shard((start + i) % DUE_SHARDS)
            got = await self._due_take(keys=[shard], args=[repr(now), limit - len(out), hold])
            for j in range(0, len(got), 2):
                record = await self._claim_one(shard, _bytes(got[j]).decode(), now, hold, owner)
                if record is not None:
                    out.append(record)
        return sorted(out, key=lambda d: d.created)

    async def _claim_one(
        self, shard: str, delivery_id: str, now: float, hold: str, owner: str
    ) -> WebhookDelivery | None:
        key = await self._locate(delivery_id)
        verdict = await self._record_claim(keys=[key], args=[repr(now), hold, owner]) if key else [b"missing"]
        kind = _bytes(verdict[0])
        if kind == b"claimed":
            assert key is not None
            record = _record(await self.r.hgetall(key))
            return record if record is not None and record.owner == owner else None
        if kind == b"done":
            new = ""
        elif kind == b"later":
            new = _bytes(verdict[1]).decode()
        elif key is None:  # no pointer: past retention (a pointer is written before any entry naming it)
            new = ""
        else:  # not written yet (its writer is between steps), never (the write lost), or expired
            left = await self.r.pttl(self._webhook_pointer(delivery_id))
            staged = WEBHOOK_RETENTION - left / 1000  # seconds since the pointer was written or last refreshed
            new = repr(now + MISSING_RETRY) if left > 0 and staged < MISSING_GRACE else ""
        await self._due_set(keys=[shard], args=[delivery_id, hold, new])
        return None

    async def finish_webhook(
        self,
        claimed: WebhookDelivery,
        status: DeliveryStatus,
        next_at: float,
        last_error: str,
        last_status: int,
    ) -> bool:
        now = self.clock.now()
        ok = await self._record_finish(
            keys=[self._webhook_key(claimed.session_id, claimed.delivery_id)],
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
        if not ok:
            return False
        await self.r.pexpire(self._webhook_pointer(claimed.delivery_id), _ms(WEBHOOK_RETENTION))  # as the record's
        # The entry still holds the claim's score: move it (or drop it) unless someone re-scored it since. If
        # this step is lost, the entry comes due when the claim runs out and the record's answer corrects it.
        new = repr(next_at) if status is DeliveryStatus.PENDING else ""
        await self._due_set(
            keys=[self._shard_of(claimed.session_id)], args=[claimed.delivery_id, repr(claimed.next_at), new]
        )
        return True

    async def redeliver_webhook(self, delivery_id: str, give_up_at: float) -> WebhookDelivery | None:
        key = await self._locate(delivery_id)
        if key is None:
            return None
        now = self.clock.now()
        ok = await self._record_redeliver(
            keys=[key], args=[repr(now), repr(give_up_at), delivery_id, _ms(WEBHOOK_RETENTION)]
        )
        if not ok:
            return None
        await self.r.pexpire(self._webhook_pointer(delivery_id), _ms(WEBHOOK_RETENTION))
        record = await self.get_webhook(delivery_id)
        if record is not None:  # the record first, then its entry: a claimer that read it as done keeps it now
            shard = self._shard_of(record.session_id)
            await self.r.zadd(shard, {delivery_id: now})
        self.enqueued()
        return record

    async def pending_webhooks(self) -> int:
        """Entries in all due shards (a staged entry whose write lost counts until it is dropped)."""
        counts = await asyncio.gather(*(self.r.zcard(self._due_shard(k)) for k in range(DUE_SHARDS)))
        return sum(int(c) for c in counts)

    # --- change notifications: sharded pub/sub on every primary --------------------------------------

    async def _topology(self) -> list[tuple[str, int, list[int]]]:
        """Each primary and the slots it serves, from the first node that answers ``CLUSTER SLOTS``."""
        known = list(dict.fromkeys([*self._known_nodes(), *self.nodes]))
        last: Exception | None = None
        for host, port in known:
            client = aioredis.Redis(
                host=host,
                port=port,
                socket_connect_timeout=TOPOLOGY_TIMEOUT,
                socket_timeout=TOPOLOGY_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # a dead node: ask the next one now, not after backoff
                ssl=self._ssl,
                **self._auth,
            )
            try:
                reply = await client.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                last = exc
                continue
            finally:
                await client.aclose()
            primaries: dict[tuple[str, int], list[int]] = {}
            for start, end, primary, *_ in reply:
                addr = (_bytes(primary[0]).decode() or host, int(primary[1]))
                primaries.setdefault(addr, []).extend(range(int(start), int(end) + 1))
            return [(h, p, slots) for (h, p), slots in primaries.items()]
        raise last or RedisError("no cluster node answered")

    def _known_nodes(self) -> list[tuple[str, int]]:
        try:
            return [(n.host, int(n.port)) for n in self.r.get_nodes()]
        except Exception:  # not initialised yet
            return []

    async def _listen(self) -> None:
        """Relay every replica's changes to this process's watchers; rebuild on any failure or slot move."""
        backoff = 0.1
        while True:
            connections: list[Connection] = []
            try:
                topology = await self._topology()
                for host, port, slots in topology:
                    conn = (SSLConnection if self._ssl else Connection)(
                        host=host,
                        port=port,
                        socket_connect_timeout=CONNECT_TIMEOUT,
                        protocol=2,  # RESP2: shard messages are plain replies here, not push frames
                        retry=Retry(NoBackoff(), 0),
                        **self._auth,
                    )
                    connections.append(conn)
                    await conn.connect()  # type: ignore[no-untyped-call]
                    await conn.send_packed_command(
                        conn.pack_commands(("SSUBSCRIBE", self.slot_channel(s)) for s in slots)
                    )
                confirmed = await asyncio.gather(
                    *(self._confirm(c, len(slots)) for c, (_, _, slots) in zip(connections, topology, strict=True)),
                    return_exceptions=True,
                )
                for outcome in confirmed:
                    if isinstance(outcome, BaseException):
                        raise outcome
                if not all(confirmed):
                    raise RedisError("a shard subscription was refused")
                self._subscribed.set()
                backoff = 0.1
                await _until_one_fails([*(self._relay(c) for c in connections), self._recheck(topology)])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("change subscription lost; reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)  # a failover takes about node-timeout: retry often
            finally:
                for conn in connections:
                    with contextlib.suppress(Exception):
                        await conn.disconnect()

    async def _recheck(self, topology: list[tuple[str, int, list[int]]]) -> None:
        """Rebuild when the slot map changed without our connections noticing (a promotion elsewhere)."""
        subscribed = sorted((h, p, s[0], len(s)) for h, p, s in topology)
        while True:
            await asyncio.sleep(TOPOLOGY_RECHECK)
            now = sorted((h, p, s[0], len(s)) for h, p, s in await self._topology())
            if now != subscribed:
                raise RedisError("the cluster's slot map changed")

    async def _confirm(self, conn: Connection, n: int) -> bool:
        """Read the ``n`` ``ssubscribe`` confirmations (anything else is refused: e.g. a slot just moved)."""
        async with asyncio.timeout(CONNECT_TIMEOUT):  # one deadline for all: a timer per reply costs 20 %
            for _ in range(n):
                reply = await conn.read_response()
                if not isinstance(reply, list) or _bytes(reply[0]) != b"ssubscribe":
                    return False
        return True

    async def _relay(self, conn: Connection) -> None:
        """Messages from one primary until it fails or takes a slot away (``sunsubscribe``: rebuild)."""
        quiet = 0
        while True:
            try:
                reply = await conn.read_response(timeout=30.0)
            except (RedisTimeoutError, TimeoutError):
                quiet += 1
                if quiet > 1:  # a PING went unanswered for 30 s: the node is gone without a reset
                    raise RedisError("shard subscription went silent") from None
                await conn.send_command("PING")
                continue
            quiet = 0
            if not isinstance(reply, list) or not reply:
                continue
            kind = _bytes(reply[0])
            if kind == b"sunsubscribe":
                raise RedisError("the cluster moved a slot")
            if kind != b"smessage":
                continue  # a pong
            try:
                data = json.loads(reply[2])
                if not self.feed.listening(data["session_id"]):
                    continue  # nobody here watches it (as in standalone: no decoding for nothing)
                session = AuthSession.from_dict(data)
            except (ValueError, TypeError, KeyError, IndexError):
                log.warning("ignoring a malformed change notification")
                continue
            self.feed.publish(session)
