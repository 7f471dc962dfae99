"""Result webhooks over real ports: signed events, retries until a receiver recovers, a restart mid-retries,
two replicas on one Redis, no redirects, and SSRF refusals made before any connection (docs/webhooks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.clock import Clock
from realauth_server.config import ConfigError, load_settings
from realauth_server.domain import AuthSession, SessionState
from realauth_server.outbox import DeliveryStatus, WebhookDelivery
from realauth_server.secret import Secret
from realauth_server.server import RealAuthServer
from realauth_server.signing.webhook import SIGNATURE_HEADER, SignatureError, sign, verify
from realauth_server.store.memory import MemoryStore
from realauth_server.webhooks import (
    CLAIM_SECONDS,
    EVENT_TYPES,
    MAX_AGE,
    WebhookDispatcher,
    WebhookEndpoint,
    WebhookOutbox,
    event_type_for,
)

from .conftest import ROOT, ServerFactory, on_loopback
from .proc_util import start_serve
from .redis_util import redis_server, redis_url  # noqa: F401  (fixtures)

SECRET = "whsec-test-0123456789abcdef"
KEY = "shop-key-0123456789abcdef"
MD = (("authorization", f"Bearer {KEY}"),)
OTHER_KEY = "other-key-0123456789abcdef"
S = pb.WebhookDeliveryStatus


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("webhook_receiver", ROOT / "examples" / "webhook_receiver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webhook_receiver"] = module
    spec.loader.exec_module(module)
    return module


def config(url: str, events: tuple[str, ...] = (), extra: str = "") -> str:
    listed = ", ".join(f'"{e}"' for e in events)
    return (
        f'[tenants.shop]\nkeys = ["{KEY}"]\n'
        f'[[tenants.shop.webhooks]]\nid = "main"\nurl = "{url}"\nsecret = "{SECRET}"\n'
        + (f"events = [{listed}]\n" if events else "")
        + f'[tenants.other]\nkeys = ["{OTHER_KEY}"]\n'
        + extra
    )


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes

    @property
    def attempt(self) -> int:
        return int(self.headers["Realauth-Delivery-Attempt"])

    @property
    def delivery(self) -> str:
        return self.headers["Realauth-Delivery-Id"]


@dataclass
class Receiver:
    """A caller's endpoint: fails while ``healthy`` is False (or hangs while ``hang``), else answers 204."""

    healthy: bool = True
    hang: bool = False
    fail_status: int = 500
    hits: list[Hit] = field(default_factory=list)
    redirected: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)  # ends every hanging answer

    def app(self) -> web.Application:
        async def hook(request: web.Request) -> web.StreamResponse:
            self.hits.append(Hit(dict(request.headers), await request.read()))
            if self.hang:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.released.wait(), 60)
            if request.path.endswith("/redirect"):
                return web.Response(status=302, headers={"Location": "/target"})
            return web.Response(status=204 if self.healthy else self.fail_status, text="" if self.healthy else "no")

        async def target(request: web.Request) -> web.Response:
            self.redirected += 1
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_post("/redirect", hook)
        app.router.add_post("/target", target)
        return app

    def attempts(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for h in self.hits:
            out.setdefault(h.delivery, []).append(h.attempt)
        return out


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def deliveries(stub: pb_grpc.RealAuthServiceStub, **fields: Any) -> list[pb.WebhookDelivery]:
    resp = await stub.ListWebhookDeliveries(pb.ListWebhookDeliveriesRequest(**fields), metadata=MD)
    return list(resp.deliveries)


async def until_listed(
    stub: pb_grpc.RealAuthServiceStub, check: Callable[[list[pb.WebhookDelivery]], bool], within: float = 10.0
) -> list[pb.WebhookDelivery]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await deliveries(stub)
        if check(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"deliveries never matched: {found}")
        await asyncio.sleep(0.05)


async def create(stub: pb_grpc.RealAuthServiceStub, **fields: Any) -> pb.AuthSession:
    fields.setdefault("callback_url", "https://caller.example/done")
    resp = await stub.CreateAuthSession(pb.CreateAuthSessionRequest(**fields), metadata=MD)
    return resp.session


# --- signing, end to end ------------------------------------------------------------------------------------------


async def test_events_are_signed_and_the_example_receiver_verifies_them(make_realauth: ServerFactory) -> None:
    example = load_example()
    clock = Clock()
    events: list[dict[str, Any]] = []
    app = example.make_app(SECRET.encode(), now=clock.now, on_event=events.append)
    async with on_loopback(lambda url: app) as (_app, url):
        h = await make_realauth(config(url + "/realauth"), clock=clock)
        session = await create(h.stub, provider="seedance", subject_id="user-42")
        await h.complete(session, "pass")
        await until(lambda: len(events) == 2)
        listed = await until_listed(h.stub, lambda ds: all(d.status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED for d in ds))
    events.sort(key=lambda e: e["sequence"])
    assert [(e["type"], e["sequence"]) for e in events] == [("session.completed", 1), ("session.exchanged", 2)]
    done = events[1]["session"]
    assert done["session_id"] == session.session_id and done["state"] == "exchanged"
    assert done["result"]["passed"] is True and done["result"]["group_id"] and done["subject_id"] == "user-42"
    raw = json.dumps(events)
    assert session.token not in raw and session.verification_url not in raw  # nothing the receiver should hold
    assert sorted((d.event_type, d.sequence, d.attempts, d.endpoint_id) for d in listed) == [
        ("session.completed", 1, 1, "main"),
        ("session.exchanged", 2, 1, "main"),
    ]
    assert all(d.delivered_time.seconds and not d.last_error for d in listed)
    # Another tenant sees none of them.
    other = await h.stub.ListWebhookDeliveries(
        pb.ListWebhookDeliveriesRequest(), metadata=(("authorization", f"Bearer {OTHER_KEY}"),)
    )
    assert list(other.deliveries) == []


def test_signature_verification_refuses_tampering_other_secrets_and_stale_timestamps() -> None:
    example = load_example()
    body = b'{"id":"evt_1","type":"session.exchanged"}'
    header = sign(SECRET.encode(), 1_800_000_000, body)
    assert re.fullmatch(r"t=1800000000,v1=[0-9a-f]{64}", header)
    assert verify(SECRET.encode(), header, body, now=1_800_000_100) == 1_800_000_000
    assert example.verify_signature(SECRET.encode(), header, body, 1_800_000_100)
    for bad_body, secret, now in (
        (body + b" ", SECRET, 1_800_000_000),  # tampered body
        (body, "another-secret-0123456789", 1_800_000_000),  # not this endpoint's secret
        (body, SECRET, 1_800_000_301),  # replayed after the 300 s tolerance
        (body, SECRET, 1_799_999_699),  # from the future
    ):
        with pytest.raises(SignatureError):
            verify(secret.encode(), header, bad_body, now=now)
        assert not example.verify_signature(secret.encode(), header, bad_body, now)
    for broken in ("", "t=1800000000", "v1=" + "0" * 64, "t=abc,v1=00"):
        with pytest.raises(SignatureError):
            verify(SECRET.encode(), broken, body, now=1_800_000_000)
    rotated = header + ",v1=" + "0" * 64  # several v1 while a secret is rotated: one matching is enough
    assert verify(SECRET.encode(), rotated, body, now=1_800_000_000)


# --- retries --------------------------------------------------------------------------------------------------------


async def test_a_failing_receiver_is_retried_with_backoff_until_it_recovers(make_realauth: ServerFactory) -> None:
    rx = Receiver(healthy=False)
    async with on_loopback(lambda url: rx.app()) as (_app, url):
        h = await make_realauth(config(url + "/hook", ("session.exchanged",)))
        assert h.server.webhooks is not None
        session = await create(h.stub, provider="seedance")
        await h.complete(session, "pass")
        await until(lambda: len(rx.hits) == 1)
        [first] = await until_listed(h.stub, lambda ds: len(ds) == 1 and ds[0].last_http_status == 500)
        assert first.status == S.WEBHOOK_DELIVERY_STATUS_PENDING and first.attempts == 1
        assert first.last_error == "HTTP 500"
        wait = first.next_attempt_time.ToNanoseconds() / 1e9 - h.clock.now()
        assert 5 < wait < 13  # ~10 s ± jitter
        await asyncio.sleep(1.2)  # nothing happens before it is due (a dispatcher poll has passed)
        assert len(rx.hits) == 1

        rx.fail_status = 503
        h.clock.advance(13)
        h.server.webhooks.wake()
        await until(lambda: len(rx.hits) == 2)
        [second] = await until_listed(h.stub, lambda ds: ds[0].attempts == 2 and ds[0].last_http_status == 503)
        assert 10 < second.next_attempt_time.ToNanoseconds() / 1e9 - h.clock.now() < 26  # ~20 s: doubled

        rx.healthy = True
        h.clock.advance(26)
        h.server.webhooks.wake()
        [done] = await until_listed(h.stub, lambda ds: ds[0].status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED)
        metrics = (await h.http.get(h.http_url + "/metrics")).text
    assert done.attempts == 3 and done.last_error == "" and done.last_http_status == 204
    assert [hit.attempt for hit in rx.hits] == [1, 2, 3]
    assert len({hit.headers["Realauth-Event-Id"] for hit in rx.hits}) == 1  # one event, three attempts
    for hit in rx.hits:  # every attempt signed afresh over the same body
        verify(SECRET.encode(), hit.headers[SIGNATURE_HEADER], hit.body, now=h.clock.now())
        assert hit.headers["Content-Type"] == "application/json" and hit.body == rx.hits[0].body
    assert re.search(r'realauth_webhook_attempts_total\{outcome="retrying"\} [1-9]', metrics)
    assert re.search(r'realauth_webhook_attempts_total\{outcome="delivered"\} [1-9]', metrics)
    assert "realauth_webhook_pending 0.0" in metrics


async def test_redirects_are_not_followed(make_realauth: ServerFactory) -> None:
    rx = Receiver()
    async with on_loopback(lambda url: rx.app()) as (_app, url):
        h = await make_realauth(config(url + "/redirect", ("session.exchanged",)))
        session = await create(h.stub, provider="seedance")
        await h.complete(session, "pass")
        [d] = await until_listed(h.stub, lambda ds: len(ds) == 1 and ds[0].attempts == 1 and ds[0].last_http_status > 0)
    assert d.status == S.WEBHOOK_DELIVERY_STATUS_PENDING and d.last_http_status == 302
    assert "redirects are not followed" in d.last_error
    assert rx.redirected == 0


async def test_expiry_events_give_up_after_three_days_and_can_be_redelivered(make_realauth: ServerFactory) -> None:
    rx = Receiver(healthy=False)
    async with on_loopback(lambda url: rx.app()) as (_app, url):
        h = await make_realauth(config(url + "/hook", ("session.expired",)))
        assert h.server.webhooks is not None
        session = await create(h.stub, provider="seedance")
        h.clock.advance(600)  # past every deadline: the read below expires it
        got = await h.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id), metadata=MD)
        assert got.session.state == pb.AUTH_SESSION_STATE_EXPIRED
        await until(lambda: len(rx.hits) == 1)
        assert json.loads(rx.hits[0].body)["type"] == "session.expired"
        await until_listed(h.stub, lambda ds: ds[0].attempts == 1 and ds[0].last_http_status == 500)

        h.clock.advance(MAX_AGE + 1)  # the retry window is over: the next failure is the last
        h.server.webhooks.wake()
        [gone] = await until_listed(h.stub, lambda ds: ds[0].status == S.WEBHOOK_DELIVERY_STATUS_FAILED)
        assert gone.attempts == 2 and gone.last_error == "HTTP 500"
        failed = await deliveries(h.stub, status=S.WEBHOOK_DELIVERY_STATUS_FAILED, session_id=session.session_id)
        assert [d.delivery_id for d in failed] == [gone.delivery_id]
        assert await deliveries(h.stub, status=S.WEBHOOK_DELIVERY_STATUS_DELIVERED) == []

        rx.healthy = True
        again = await h.stub.RedeliverWebhook(pb.RedeliverWebhookRequest(delivery_id=gone.delivery_id), metadata=MD)
        assert again.delivery.status == S.WEBHOOK_DELIVERY_STATUS_PENDING
        [done] = await until_listed(h.stub, lambda ds: ds[0].status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED)
        assert done.attempts == 3 and [hit.attempt for hit in rx.hits] == [1, 2, 3]

        for key, delivery_id in ((KEY, "whd_missing"), (OTHER_KEY, gone.delivery_id)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await h.stub.RedeliverWebhook(
                    pb.RedeliverWebhookRequest(delivery_id=delivery_id), metadata=(("authorization", f"Bearer {key}"),)
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        for request, name in (
            (pb.RedeliverWebhookRequest(), "delivery_id"),
            (pb.ListWebhookDeliveriesRequest(page_size=101), "page_size"),
            (pb.ListWebhookDeliveriesRequest(page_token="not-a-token"), "page_token"),
            (pb.ListWebhookDeliveriesRequest(status=99), "status"),  # type: ignore[arg-type]
        ):
            call = (
                h.stub.RedeliverWebhook
                if isinstance(request, pb.RedeliverWebhookRequest)
                else h.stub.ListWebhookDeliveries
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=MD)  # type: ignore[operator]
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and name in (err.value.details() or "")


async def test_list_pages_through_every_delivery(make_realauth: ServerFactory) -> None:
    rx = Receiver()
    async with on_loopback(lambda url: rx.app()) as (_app, url):
        h = await make_realauth(config(url + "/hook"))
        for _ in range(3):
            await h.complete(await create(h.stub, provider="seedance"), "pass")
        await until(lambda: len(rx.hits) == 6)
        seen: list[str] = []
        token = ""
        for _ in range(10):
            page = await h.stub.ListWebhookDeliveries(
                pb.ListWebhookDeliveriesRequest(page_size=4, page_token=token), metadata=MD
            )
            seen += [d.delivery_id for d in page.deliveries]
            token = page.next_page_token
            if not token:
                break
    assert sorted(seen) == sorted(rx.attempts()) and len(seen) == 6


# --- restart, replicas ---------------------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "realauth.toml"
    path.write_text(text)
    return path


@asynccontextmanager
async def serving(cfg: Path, store: str, clock: Clock) -> AsyncIterator[tuple[RealAuthServer, Any]]:
    """A server the test stops itself (the fixture's servers are stopped only at the end)."""
    settings = load_settings(str(cfg), store=store, host="127.0.0.1", http_host="127.0.0.1", port=0, http_port=0)
    server = RealAuthServer(settings, clock=clock)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        yield server, pb_grpc.RealAuthServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(grace=0.5)


async def press(http: httpx.AsyncClient, session: pb.AuthSession) -> None:
    first = await http.get(session.verification_url + "&outcome=pass")
    assert first.status_code == 302
    assert (await http.get(first.headers["location"])).status_code in (302, 303)


async def test_a_restart_in_the_middle_of_retries_loses_nothing_and_repeats_no_attempt(tmp_path: Path) -> None:
    rx = Receiver(healthy=False)
    clock = Clock()
    store = f"sqlite:///{tmp_path / 'webhooks.db'}"
    async with on_loopback(lambda url: rx.app()) as (_app, url), httpx.AsyncClient(timeout=30) as http:
        cfg = write_config(tmp_path, config(url + "/hook"))
        async with serving(cfg, store, clock) as (_a, stub):
            for _ in range(2):
                await press(http, await create(stub, provider="seedance"))
            await until(lambda: len(rx.hits) == 4)  # completed + exchanged, twice: every first attempt failed
            await until_listed(stub, lambda ds: len(ds) == 4 and all(d.last_http_status == 500 for d in ds))
        assert len(rx.hits) == 4  # stopped between attempts: the retries are only in the store now
        rx.healthy = True
        clock.advance(13)
        async with serving(cfg, store, clock) as (b, stub):
            assert b.webhooks is not None
            b.webhooks.wake()
            done = await until_listed(
                stub, lambda ds: len(ds) == 4 and all(d.status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED for d in ds)
            )
    attempts = rx.attempts()
    assert len(attempts) == 4 and all(seen == [1, 2] for seen in attempts.values())  # nothing lost, none twice
    assert all(d.attempts == 2 for d in done)
    pairs = [(hit.delivery, hit.attempt) for hit in rx.hits]
    assert len(pairs) == len(set(pairs))


async def test_an_attempt_in_flight_at_shutdown_is_retried_by_the_next_server(tmp_path: Path) -> None:
    rx = Receiver(hang=True)
    clock = Clock()
    store = f"sqlite:///{tmp_path / 'inflight.db'}"
    async with on_loopback(lambda url: rx.app()) as (_app, url), httpx.AsyncClient(timeout=30) as http:
        cfg = write_config(tmp_path, config(url + "/hook", ("session.exchanged",)))
        async with serving(cfg, store, clock) as (_a, stub):
            await press(http, await create(stub, provider="seedance"))
            await until(lambda: len(rx.hits) == 1)  # attempt 1 reached the receiver, which never answers
        rx.hang = False
        rx.released.set()
        async with serving(cfg, store, clock) as (_b, stub):
            [d] = await until_listed(stub, lambda ds: ds[0].status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED)
    assert [hit.attempt for hit in rx.hits] == [1, 2] and d.attempts == 2


async def test_two_replicas_on_one_redis_deliver_each_attempt_once(
    make_realauth: ServerFactory,
    redis_url: str,  # noqa: F811
) -> None:
    rx = Receiver(healthy=False)
    async with on_loopback(lambda url: rx.app()) as (_app, url):
        a = await make_realauth(config(url + "/hook", ("session.exchanged",)), store=redis_url)
        b = await make_realauth(config(url + "/hook", ("session.exchanged",)), store=redis_url, clock=a.clock)
        assert a.server.webhooks is not None and b.server.webhooks is not None
        for h in (a, b, a, b, a, b):
            await h.complete(await create(h.stub, provider="seedance"), "pass")
        await until(lambda: len(rx.hits) == 6)
        # Every first attempt recorded (a hit is counted before its outcome is): its retry is due after the jump.
        await until_listed(b.stub, lambda ds: len(ds) == 6 and all(d.last_http_status == 500 for d in ds))
        rx.healthy = True
        a.clock.advance(13)
        a.server.webhooks.wake()  # both replicas race for the same six due retries
        b.server.webhooks.wake()
        listed = await until_listed(
            b.stub, lambda ds: len(ds) == 6 and all(d.status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED for d in ds)
        )
        await asyncio.sleep(1.5)  # a poll of each replica later, still nothing more
    assert all(seen == [1, 2] for seen in rx.attempts().values()) and len(rx.hits) == 12
    assert all(d.attempts == 2 for d in listed)


# --- SSRF ----------------------------------------------------------------------------------------------------------

REAL_PROVIDER = (
    '[providers.seedance]\nkind = "seedance"\nbase_url = "https://ark.example/"\napi_key = "sk-ark-0123456789"\n'
)


@pytest.mark.parametrize(
    ("url", "real", "why"),
    [
        ("https://10.0.0.1/hook", False, "private"),
        ("https://192.168.1.10/hook", False, "private"),
        ("https://169.254.169.254/latest/meta-data/", False, "link-local"),
        ("https://[fd00::1]/hook", False, "private"),
        ("https://[fe80::1]/hook", False, "link-local"),
        ("https://[::ffff:10.0.0.1]/hook", False, "private"),
        ("https://0.0.0.0/hook", False, "non-unicast"),
        ("http://hooks.example.com/hook", False, "https"),
        ("ftp://hooks.example.com/hook", False, "https"),
        ("https://user:pw@hooks.example.com/hook", False, "credentials"),
        ("https://127.0.0.1/hook", True, "loopback"),
        ("https://[::1]/hook", True, "loopback"),
        ("https://localhost/hook", True, "loopback"),
        ("http://127.0.0.1:9/hook", True, "https"),
    ],
)
def test_unsafe_endpoints_are_refused_at_config_load(tmp_path: Path, url: str, real: bool, why: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text((REAL_PROVIDER if real else "") + config(url))
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert "tenants.shop.webhooks[0].url" in str(err.value) and why in str(err.value)


@pytest.mark.parametrize(
    ("url", "real", "extra"),
    [
        ("http://127.0.0.1:9/hook", False, ""),  # sandbox: plain http to loopback
        ("https://hooks.example.com/hook", True, ""),
        ("https://10.0.0.1/hook", True, "allow_private = true\n"),
    ],
)
def test_safe_endpoints_load(tmp_path: Path, url: str, real: bool, extra: str) -> None:
    path = tmp_path / "c.toml"
    text = (REAL_PROVIDER if real else "") + config(url)
    path.write_text(text.replace(f'secret = "{SECRET}"\n', f'secret = "{SECRET}"\n{extra}'))
    [hook] = load_settings(str(path)).tenants[0].webhooks
    assert hook.url == url and hook.id == "main" and hook.allow_private == bool(extra)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('url = "https://h.example/x"\n', "secret is required"),
        ('url = "https://h.example/x"\nsecret = "short"\n', "at least 16"),
        (f'url = "https://h.example/x"\nsecret = "{SECRET}"\nevents = ["session.created"]\n', "unknown event type"),
        (f'url = "https://h.example/x"\nsecret = "{SECRET}"\nevents = []\n', "non-empty list"),
        (f'url = "https://h.example/x"\nsecret = "{SECRET}"\nretries = 3\n', "unknown keys"),
        (f'url = "https://h.example/x"\nsecret = "{SECRET}"\nid = "a b"\n', ".id must be"),
        (f'secret = "{SECRET}"\n', "url is required"),
    ],
)
def test_bad_webhook_tables_name_the_field(tmp_path: Path, table: str, problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[tenants.shop]\nkeys = ["{KEY}"]\n[[tenants.shop.webhooks]]\n{table}')
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert "tenants.shop.webhooks[0]" in str(err.value) and problem in str(err.value)


class StaticResolver(AbstractResolver):
    """A DNS answer fixed by the test: names pointing at addresses that must never be connected to."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for ip in self.answers[host]
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("url", "answer", "sandbox", "why"),
    [
        ("https://hooks.example/h", ["10.0.0.1"], False, "private"),
        ("https://hooks.example/h", ["169.254.169.254"], False, "link-local"),
        ("https://hooks.example/h", ["127.0.0.1"], False, "loopback"),  # outside sandbox mode
        ("https://hooks.example/h", ["93.184.216.34", "10.0.0.1"], False, "private"),  # one bad answer is enough
        ("https://hooks.example/h", ["fd12::7"], True, "private"),  # sandbox allows loopback only
        ("https://10.0.0.1/h", [], True, "private"),  # a literal address, never resolved
        ("https://169.254.169.254/latest", [], False, "link-local"),
    ],
)
async def test_unsafe_addresses_are_refused_at_delivery_before_any_connection(
    monkeypatch: pytest.MonkeyPatch, url: str, answer: list[str], sandbox: bool, why: str
) -> None:
    loop = asyncio.get_running_loop()
    connections: list[Any] = []

    async def no_connection(*args: Any, **kwargs: Any) -> Any:
        connections.append(args)
        raise AssertionError("a webhook to a refused address opened a connection")

    monkeypatch.setattr(loop, "create_connection", no_connection)
    clock = Clock()
    store = MemoryStore()
    store.use_clock(clock)
    resolver = StaticResolver({"hooks.example": answer})
    endpoint = WebhookEndpoint("shop", "main", url, Secret(SECRET), frozenset({"session.exchanged"}), False, sandbox)
    now = clock.now()
    record = WebhookDelivery(
        delivery_id="whd_ssrf",
        event_id="evt_ssrf",
        tenant="shop",
        endpoint="main",
        session_id="ses_x",
        event_type="session.exchanged",
        sequence=2,
        body="{}",
        created=now,
        next_at=now,
        give_up_at=now + MAX_AGE,
    )
    store._webhooks[record.delivery_id] = record  # as the outbox would have written it
    dispatcher = WebhookDispatcher(store, [endpoint], clock, resolver=lambda: resolver)
    dispatcher.start()
    try:
        await until(lambda: record.attempts == 1 and record.owner == "", 5)
    finally:
        await dispatcher.stop(1.0)
    assert record.status is DeliveryStatus.PENDING and record.last_status == 0
    assert record.last_error.startswith("refused") and why in record.last_error
    assert "no connection was made" in record.last_error
    assert connections == []
    assert resolver.asked == (["hooks.example"] if answer else [])


async def test_a_killed_server_loses_no_event_and_its_attempt_is_taken_over(tmp_path: Path) -> None:
    """A real `realauth serve` is SIGKILLed with an attempt in flight: its claim runs out, the next server makes the
    next attempt (never the same attempt again) and the event is delivered."""
    rx = Receiver(hang=True)
    db = tmp_path / "killed.db"
    async with on_loopback(lambda url: rx.app()) as (_app, url), httpx.AsyncClient(timeout=30) as http:
        cfg = write_config(tmp_path, config(url + "/hook", ("session.exchanged",)))
        sp = await asyncio.to_thread(start_serve, tmp_path, "--config", str(cfg), "--store", f"sqlite:///{db}")
        try:
            async with grpc.aio.insecure_channel(sp.target) as channel:
                await press(http, await create(pb_grpc.RealAuthServiceStub(channel), provider="seedance"))
            await until(lambda: len(rx.hits) == 1, 20)  # attempt 1 is in flight: the receiver does not answer
        finally:
            await asyncio.to_thread(sp.stop, signal.SIGKILL)
        rx.hang = False
        rx.released.set()
        clock = Clock(offset=CLAIM_SECONDS + 1)  # the dead server's claim has run out
        async with serving(cfg, f"sqlite:///{db}", clock) as (_b, stub):
            [d] = await until_listed(stub, lambda ds: ds[0].status == S.WEBHOOK_DELIVERY_STATUS_DELIVERED)
    assert [hit.attempt for hit in rx.hits] == [1, 2] and d.attempts == 2
    assert len({hit.headers["Realauth-Event-Id"] for hit in rx.hits}) == 1


def test_each_state_maps_to_its_event_and_only_subscribed_endpoints_get_records() -> None:
    assert [event_type_for(s) for s in ("pending", "completed", "exchanged", "failed", "expired", "cancelled")] == [
        None,
        "session.completed",
        "session.exchanged",
        "session.failed",
        "session.expired",
        "session.cancelled",  # the state CancelAuthSession writes
    ]
    clock = Clock()
    hooks = [
        WebhookEndpoint("shop", "all", "https://a.example/h", Secret(SECRET), frozenset(EVENT_TYPES)),
        WebhookEndpoint("shop", "done", "https://b.example/h", Secret(SECRET), frozenset({"session.exchanged"})),
    ]
    outbox = WebhookOutbox(hooks, clock)
    now = clock.now()
    session = AuthSession(
        session_id="ses_1", tenant="shop", provider="seedance", provider_kind="seedance", state=SessionState.COMPLETED,
        token="vendor-token-secret", verification_url="https://vendor.example/h5?bytedToken=vendor-token-secret",
        callback_url="https://caller.example/done", create_time=now, expire_time=now + 120,
        exchange_deadline=now + 120, update_time=now, version=1,
    )  # fmt: skip
    [only] = outbox(session)
    assert (only.endpoint, only.event_type, only.sequence, only.tenant) == ("all", "session.completed", 1, "shop")
    both = outbox(session.evolve(state=SessionState.EXCHANGED, version=2))
    assert sorted(r.endpoint for r in both) == ["all", "done"] and len({r.event_id for r in both}) == 1
    assert "vendor-token-secret" not in both[0].body
    assert outbox(session.evolve(tenant="other")) == [] and outbox(session.evolve(state=SessionState.PENDING)) == []


async def test_stop_is_bounded_when_the_store_never_answers_a_claim() -> None:
    """A shutdown waits for the claim loop at most the grace (+ 1 s): a store call that never comes back (a sick
    Redis, a stuck connection) is cut instead of holding the process."""

    class StuckStore(MemoryStore):
        entered = asyncio.Event()

        async def claim_webhooks(self, owner: str, limit: int, lease: float) -> list[WebhookDelivery]:
            self.entered.set()
            await asyncio.Event().wait()  # never answers
            return []

    clock = Clock()
    store = StuckStore()
    store.use_clock(clock)
    endpoint = WebhookEndpoint(
        "shop", "main", "https://hooks.example/h", Secret(SECRET), frozenset({"x"}), False, False
    )
    dispatcher = WebhookDispatcher(store, [endpoint], clock)
    dispatcher.start()
    await asyncio.wait_for(store.entered.wait(), 5)
    await asyncio.wait_for(dispatcher.stop(0.5), 10)  # before: waited for the claim loop for ever
