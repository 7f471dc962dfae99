"""Result webhooks: session transitions POSTed, signed, to the caller's own endpoints (docs/webhooks.md).

- :class:`WebhookOutbox` is the store's outbox hook: for a session about to be written in a new state it
  builds one record per subscribed endpoint, which the store writes in the same write (nothing is lost
  between the transition and its event, whichever code path or replica made it).
- :class:`WebhookDispatcher` claims due records (one attempt each, exclusive across replicas), POSTs them and
  records the outcome; failures are retried with exponential backoff and jitter for :data:`MAX_AGE`.
- Outbound safety: only https (http to loopback only in sandbox), no redirects, no proxies from the
  environment, no cookies, bounded time and response size, and every address a host resolves to is
  checked before any connection (:func:`address_refusal`): private, link-local and loopback addresses are
  refused unless the endpoint allows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import random
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from .clock import Clock
from .domain import AuthSession
from .outbox import DeliveryStatus, WebhookDelivery
from .secret import Secret
from .signing.webhook import SIGNATURE_HEADER, sign
from .store.base import SessionStore

log = logging.getLogger("realauth.webhooks")

#: Event types an endpoint may subscribe to: ``session.<state>`` for each state a caller acts on.
EVENT_TYPES = (
    "session.completed",
    "session.exchanged",
    "session.failed",
    "session.expired",
    "session.cancelled",
)
#: Failed deliveries are retried for this long after the event (then the record is ``failed``).
MAX_AGE = 3 * 86_400.0
#: Backoff between attempts: the first retry after about this long, doubling up to BACKOFF_MAX; ±25 % jitter.
BACKOFF_FIRST = 10.0
BACKOFF_MAX = 6 * 3_600.0
JITTER = 0.25
#: One attempt (connect, send, first bytes of the answer) may take this long.
ATTEMPT_TIMEOUT = 10.0
#: A claimed attempt is due again (as a new attempt) this long after its claim if its owner never reports.
CLAIM_SECONDS = ATTEMPT_TIMEOUT + 20.0
#: At most this much of an endpoint's answer is read (then the connection is dropped).
MAX_RESPONSE_BYTES = 4 * 1024
#: The dispatcher looks for due records this often (and at once when this replica writes one).
POLL_SECONDS = 1.0
#: Attempts in flight per replica.
CONCURRENCY = 8
USER_AGENT = "realauth-webhooks/1"

HEADER_EVENT_ID = "Realauth-Event-Id"
HEADER_EVENT_TYPE = "Realauth-Event-Type"
HEADER_DELIVERY_ID = "Realauth-Delivery-Id"
HEADER_ATTEMPT = "Realauth-Delivery-Attempt"


def event_type_for(state: str) -> str | None:
    """The event a transition into ``state`` produces (None: no event for it, e.g. pending)."""
    name = f"session.{state}"
    return name if name in EVENT_TYPES else None


@dataclass(frozen=True)
class WebhookEndpoint:
    """One of a tenant's endpoints, as configured (``[[tenants.NAME.webhooks]]``)."""

    tenant: str
    id: str
    url: str
    secret: Secret
    events: frozenset[str]
    allow_private: bool = False
    #: Loopback addresses (and plain http to them) are allowed: the server runs only sandbox providers.
    sandbox: bool = False


# --- outbound address policy ---------------------------------------------------------------------


class AddressRefused(OSError):
    """A webhook host resolved to an address the endpoint may not reach; no connection was made."""


def address_refusal(ip: str, *, allow_private: bool, allow_loopback: bool) -> str | None:
    """Why a webhook may not connect to ``ip`` (None: it may). Unspecified and multicast never may."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified or addr.is_multicast:
        return "non-unicast"
    if addr.is_loopback:
        return None if allow_loopback or allow_private else "loopback"
    if addr.is_link_local:
        return None if allow_private else "link-local"
    if not addr.is_global:
        return None if allow_private else "private"
    return None


def literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def is_loopback_name(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def check_webhook_url(url: str, *, allow_private: bool, sandbox: bool) -> str:
    """The URL if an endpoint may use it, else ValueError saying why (checked again after DNS at delivery)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("https", "http"):
        raise ValueError("must be an https:// URL")
    if not host:
        raise ValueError("names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if port == 0:
        raise ValueError("port 0 is not a port")
    ip = literal_ip(host)
    loopback = is_loopback_name(host) or (ip is not None and ipaddress.ip_address(ip).is_loopback)
    if scheme == "http" and not (sandbox and loopback):
        raise ValueError("must be https:// (http:// only to a loopback address in sandbox mode)")
    if ip is not None:
        reason = address_refusal(ip, allow_private=allow_private, allow_loopback=sandbox)
        if reason:
            raise ValueError(f"is a {reason} address (set allow_private = true to allow it)")
    elif loopback and not (sandbox or allow_private):
        raise ValueError("is a loopback address (set allow_private = true to allow it)")
    return url


class VettingResolver(AbstractResolver):
    """Resolves like any resolver, then refuses the lot if any address may not be reached.

    The connector connects only to addresses this returned, so no DNS answer can slip a private address
    in between the check and the connection.
    """

    def __init__(self, *, allow_private: bool, allow_loopback: bool, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or aiohttp.ThreadedResolver()
        self._allow_private = allow_private
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for info in found:
            reason = address_refusal(
                info["host"], allow_private=self._allow_private, allow_loopback=self._allow_loopback
            )
            if reason:
                raise AddressRefused(f"the host resolves to a {reason} address; no connection was made")
        if not found:
            raise OSError("the host resolves to no address")
        return found

    async def close(self) -> None:
        await self._inner.close()


# --- events ----------------------------------------------------------------------------------------


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def session_view(s: AuthSession) -> dict[str, Any]:
    """What an event says about a session: what GetAuthSession gives the caller, minus the vendor token and
    verification URL (nothing a receiver needs, and nothing it should hold)."""
    view: dict[str, Any] = {
        "session_id": s.session_id,
        "state": s.state.value,
        "provider": s.provider,
        "provider_kind": s.provider_kind,
        "model": s.model,
        "subject_id": s.subject_id,
        "locale": s.locale,
        "callback_url": s.callback_url,
        "create_time": _rfc3339(s.create_time),
        "update_time": _rfc3339(s.update_time),
        "expire_time": _rfc3339(s.expire_time),
        "exchange_deadline": _rfc3339(s.exchange_deadline),
        "result": None,
    }
    r = s.result
    if r is not None:
        view["result"] = {
            "passed": r.passed,
            "group_id": r.group_id,
            "score": r.score,
            "vendor_result_code": r.vendor_result_code,
            "vendor_result_message": r.vendor_result_message,
            "vendor_request_id": r.vendor_request_id,
            "complete_time": _rfc3339(r.complete_time) if r.complete_time else None,
        }
    return view


def event_body(session: AuthSession, event_id: str, event_type: str, created: float) -> str:
    return json.dumps(
        {
            "id": event_id,
            "type": event_type,
            "created": int(created),
            "sequence": session.version,
            "session": session_view(session),
        },
        separators=(",", ":"),
    )


class WebhookOutbox:
    """The store's outbox hook: the records a session's new state produces (cheap; no I/O)."""

    def __init__(self, endpoints: Iterable[WebhookEndpoint], clock: Clock) -> None:
        self.clock = clock
        self.by_tenant: dict[str, list[WebhookEndpoint]] = {}
        for e in endpoints:
            self.by_tenant.setdefault(e.tenant, []).append(e)

    def __call__(self, session: AuthSession) -> list[WebhookDelivery]:
        kind = event_type_for(session.state.value)
        if kind is None:
            return []
        targets = [e for e in self.by_tenant.get(session.tenant, ()) if kind in e.events]
        if not targets:
            return []
        now = self.clock.now()
        event_id = "evt_" + secrets.token_hex(12)
        body = event_body(session, event_id, kind, now)
        return [
            WebhookDelivery(
                delivery_id="whd_" + secrets.token_hex(12),
                event_id=event_id,
                tenant=session.tenant,
                endpoint=e.id,
                session_id=session.session_id,
                event_type=kind,
                sequence=session.version,
                body=body,
                created=now,
                next_at=now,
                give_up_at=now + MAX_AGE,
                updated=now,
            )
            for e in targets
        ]


# --- delivery ---------------------------------------------------------------------------------------

#: Hooks set by the metrics module (this layer never imports http/): an attempt's outcome (delivered,
#: retrying, failed) and the number of pending records.
_outcome_observers: list[Callable[[str], None]] = []
_pending_observers: list[Callable[[int], None]] = []


def add_webhook_observer(outcome: Callable[[str], None], pending: Callable[[int], None]) -> None:
    _outcome_observers.append(outcome)
    _pending_observers.append(pending)


def backoff(attempts: int) -> float:
    """Seconds before the retry that follows attempt number ``attempts`` (1-based)."""
    delay = min(BACKOFF_FIRST * 2.0 ** min(attempts - 1, 30), BACKOFF_MAX)
    return delay * random.uniform(1 - JITTER, 1 + JITTER)


class WebhookDispatcher:
    """Delivers this store's due webhook records; one per replica, all replicas share the work."""

    def __init__(
        self,
        store: SessionStore,
        endpoints: Iterable[WebhookEndpoint],
        clock: Clock,
        *,
        resolver: Callable[[], AbstractResolver] | None = None,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.endpoints: Mapping[tuple[str, str], WebhookEndpoint] = {(e.tenant, e.id): e for e in endpoints}
        self.owner = "whw_" + secrets.token_hex(8)
        self.poll = poll
        self._resolver = resolver
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._clients: dict[tuple[bool, bool], aiohttp.ClientSession] = {}

    def start(self) -> None:
        self.store.on_enqueue = self.wake
        self._task = asyncio.create_task(self._run(), name="realauth-webhooks")

    def wake(self) -> None:
        """Look for due records now (a record was written, or a test moved the clock)."""
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Claim nothing more; let attempts in flight finish within ``grace``, then interrupt them (each is
        recorded as a failed attempt, due again at once for another replica)."""
        self._stopping = True
        self.store.on_enqueue = None
        self._wake.set()
        if self._task is not None:
            # The claim loop ends at its next turn; a store call that does not come back within the grace is cut, so
            # a shutdown never waits on a sick store for longer than it was given.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=max(grace, 0.0) + 1.0)
            except TimeoutError:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            _done, pending = await asyncio.wait(set(self._inflight), timeout=max(grace, 0.0))
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                free = CONCURRENCY - len(self._inflight)
                batch = await self.store.claim_webhooks(self.owner, free, CLAIM_SECONDS) if free > 0 else []
                for record in batch:
                    task = asyncio.create_task(self._attempt(record))
                    self._inflight.add(task)
                    task.add_done_callback(self._done)
                pending = await self.store.pending_webhooks()
                for fn in _pending_observers:
                    fn(pending)
                failures = 0
                if len(batch) == free and free > 0:
                    continue  # maybe more are due
            except Exception as exc:  # the store is down: retry later, never end the loop
                failures += 1
                log.warning("webhook dispatcher cannot reach the store", extra={"error": type(exc).__name__})
            wait = self.poll * min(2**failures, 30)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not self._stopping:
            self._wake.set()  # a slot is free

    async def _attempt(self, record: WebhookDelivery) -> None:
        endpoint = self.endpoints.get((record.tenant, record.endpoint))
        if endpoint is None:
            await self._finish(record, DeliveryStatus.FAILED, 0.0, "the endpoint is no longer configured", 0)
            return
        try:
            status, error = await self._post(endpoint, record)
        except asyncio.CancelledError:
            await asyncio.shield(
                self._finish(record, DeliveryStatus.PENDING, self.clock.now(), "interrupted: the server stopped", 0)
            )
            raise
        now = self.clock.now()
        if 200 <= status < 300:
            await self._finish(record, DeliveryStatus.DELIVERED, 0.0, "", status)
        elif now >= record.give_up_at:
            await self._finish(record, DeliveryStatus.FAILED, 0.0, error, status)
        else:
            retry = min(now + backoff(record.attempts), record.give_up_at)
            await self._finish(record, DeliveryStatus.PENDING, retry, error, status)

    async def _finish(
        self, record: WebhookDelivery, status: DeliveryStatus, next_at: float, error: str, http_status: int
    ) -> None:
        try:
            ok = await self.store.finish_webhook(record, status, next_at, error, http_status)
        except Exception as exc:  # the claim runs out and the record is due again: at least once still holds
            log.warning("could not record a webhook attempt", extra={"error": type(exc).__name__})
            return
        outcome = {DeliveryStatus.DELIVERED: "delivered", DeliveryStatus.FAILED: "failed"}.get(status, "retrying")
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": record.delivery_id,
                "event_type": record.event_type,
                "tenant": record.tenant,
                "attempt": record.attempts,
                "outcome": outcome if ok else "claim_lost",
                "http_status": http_status,
                "error": error,
            },
        )
        if ok:
            for fn in _outcome_observers:
                fn(outcome)

    def _client(self, endpoint: WebhookEndpoint) -> aiohttp.ClientSession:
        key = (endpoint.allow_private, endpoint.sandbox)
        client = self._clients.get(key)
        if client is None:
            resolver = VettingResolver(
                allow_private=endpoint.allow_private,
                allow_loopback=endpoint.sandbox,
                inner=self._resolver() if self._resolver else None,
            )
            client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=CONCURRENCY),
                trust_env=False,  # no proxy from the environment
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
            self._clients[key] = client
        return client

    async def _post(self, endpoint: WebhookEndpoint, record: WebhookDelivery) -> tuple[int, str]:
        """One attempt: (HTTP status or 0, a short error for the record; never the answer's body)."""
        host = urlsplit(endpoint.url).hostname or ""
        ip = literal_ip(host)
        if ip is not None:  # the connector does not resolve literal addresses: check them here
            reason = address_refusal(ip, allow_private=endpoint.allow_private, allow_loopback=endpoint.sandbox)
            if reason:
                return 0, f"refused: a {reason} address; no connection was made"
        body = record.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(endpoint.secret.reveal_bytes(), int(self.clock.now()), body),
            HEADER_EVENT_ID: record.event_id,
            HEADER_EVENT_TYPE: record.event_type,
            HEADER_DELIVERY_ID: record.delivery_id,
            HEADER_ATTEMPT: str(record.attempts),
        }
        try:
            async with self._client(endpoint).post(
                endpoint.url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=ATTEMPT_TIMEOUT),
            ) as resp:
                await resp.content.read(MAX_RESPONSE_BYTES)
                status = resp.status
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return 0, f"refused: {exc.os_error}"
            return 0, "the host name does not resolve"
        except TimeoutError:
            return 0, f"no answer within {ATTEMPT_TIMEOUT:.0f} s"
        except aiohttp.ClientError as exc:
            return 0, f"connection failed ({type(exc).__name__})"
        if 200 <= status < 300:
            return status, ""
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed"
        return status, f"HTTP {status}"


def endpoint_id(url: str) -> str:
    """A stable id for an endpoint configured without one (its records name it)."""
    return "ep_" + hashlib.sha256(url.encode()).hexdigest()[:12]
