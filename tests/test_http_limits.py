"""HTTP limits over real loopback ports: long vendor landings are accepted (bounded), slow-loris connections closed."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from realauth.v1 import realauth_pb2 as pb
from realauth_server.http.limits import DEFAULT_MAX_URL, LANDING_PATH_ROOM, HeadTimeoutServer
from realauth_server.http.listen import bind_tcp, bound_port
from realauth_server.vendors.megvii.adapter import MAX_BIZ_EXTRA, MAX_GET_RETURN_QUERY

from .conftest import Harness, ServerFactory

HEADER_TIMEOUT = 1.0
#: How much later than the timeout a connection may be seen closed (timer, scheduling on a busy 2-core machine).
SLACK = 1.5


@pytest.fixture
async def limited(make_realauth: ServerFactory) -> Harness:
    """Sandbox (Megvii returns by GET there), a short header timeout, the browser return alone (no push)."""
    h = await make_realauth(http_header_timeout_seconds=HEADER_TIMEOUT)
    h.emulator("megvii").pusher.enabled = False
    return h


def browser() -> aiohttp.ClientSession:
    """A browser-like client: it reads the vendor's long ``Location`` (browsers take far longer URLs than 8 KiB)."""
    return aiohttp.ClientSession(max_line_size=2 * MAX_GET_RETURN_QUERY, max_field_size=2 * MAX_GET_RETURN_QUERY)


@pytest.mark.parametrize(
    "extra",
    [
        "中" * (MAX_BIZ_EXTRA // 3) + "x",  # 4096 bytes of (mostly) non-ASCII: a 12.3 KB data parameter
        "\x01" * MAX_BIZ_EXTRA,  # the worst case: each byte becomes \u0001 in JSON, %5Cu0001 in the URL
        '"' * MAX_BIZ_EXTRA,
    ],
    ids=["non-ascii", "control", "quotes"],
)
async def test_megvii_get_return_with_the_longest_biz_extra_data_lands(limited: Harness, extra: str) -> None:
    assert len(extra.encode()) == MAX_BIZ_EXTRA
    session = await limited.create(provider="megvii", megvii=pb.MegviiOptions(biz_extra_data=extra, biz_no="n" * 128))
    async with browser() as b:
        async with b.get(session.verification_url + "&outcome=pass", allow_redirects=False) as vendor:
            assert vendor.status == 302
            landing = vendor.headers["Location"]
        assert len(landing) > DEFAULT_MAX_URL  # what aiohttp refused with 400 before
        assert len(urlsplit(landing).query) <= MAX_GET_RETURN_QUERY
        async with b.get(URL(landing, encoded=True), allow_redirects=False) as done:
            assert done.status == 302, await done.text()
            assert parse_qs(urlsplit(done.headers["Location"]).query)["state"] == ["exchanged"]
    got = await limited.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXCHANGED


async def test_urls_beyond_the_bounds_are_refused(limited: Harness) -> None:
    async with aiohttp.ClientSession() as b:
        # The landing route takes long URLs, but only up to the longest legitimate landing.
        too_long = f"{limited.http_url}/v1/callback/ses_x/sig?data={'a' * (MAX_GET_RETURN_QUERY + LANDING_PATH_ROOM)}"
        async with b.get(URL(too_long, encoded=True)) as r:
            assert r.status == 400
        long_ok = f"{limited.http_url}/v1/callback/ses_x/sig?data={'a' * (MAX_GET_RETURN_QUERY - 100)}"
        async with b.get(URL(long_ok, encoded=True)) as r:
            assert r.status == 403  # reached the landing: the signature is checked (and wrong)
        # Every other route keeps the usual bound.
        async with b.get(URL(f"{limited.http_url}/healthz?pad={'a' * DEFAULT_MAX_URL}", encoded=True)) as r:
            assert r.status == 414
        async with b.get(URL(f"{limited.http_url}/sandbox/megvii/x?pad={'a' * DEFAULT_MAX_URL}", encoded=True)) as r:
            assert r.status == 414
        async with b.get(f"{limited.http_url}/healthz?pad={'a' * 4000}") as r:
            assert r.status == 200


async def closed_after(port: int, first: bytes, dribble: bytes, limit: float) -> float:
    """Send ``first``, then ``dribble`` a byte every 0.1 s (nothing if empty); seconds until the server closed the
    connection (``limit`` if it never did)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    try:
        writer.write(first)
        if not dribble:
            try:
                await asyncio.wait_for(reader.read(), limit)
            except TimeoutError:
                return limit
            return time.monotonic() - start
        for byte in dribble:
            try:
                if await asyncio.wait_for(reader.read(65536), 0.1) == b"" and reader.at_eof():
                    return time.monotonic() - start
            except TimeoutError:
                pass
            if time.monotonic() - start > limit:
                return limit
            writer.write(bytes([byte]))
            await writer.drain()
        return limit
    except ConnectionError:
        return time.monotonic() - start
    finally:
        writer.close()


async def test_slow_loris_connections_are_closed_while_normal_requests_work(limited: Harness) -> None:
    port, limit = limited.server.http_port, HEADER_TIMEOUT + 5
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
    dribblers = [asyncio.create_task(closed_after(port, head[:1], head[1:] + b"a" * 200, limit)) for _ in range(50)] + [
        asyncio.create_task(closed_after(port, b"", b"", limit))
    ]  # connects, never sends a byte
    await asyncio.sleep(0.2)
    for _ in range(3):
        ok = await limited.http.get(f"{limited.http_url}/healthz")
        assert ok.status_code == 200
    times = await asyncio.gather(*dribblers)
    assert max(times) <= HEADER_TIMEOUT + SLACK, sorted(times)[-5:]
    assert min(times) >= HEADER_TIMEOUT * 0.9, sorted(times)[:5]


async def test_idle_and_dribbling_keep_alive_connections_are_closed(limited: Harness) -> None:
    port = limited.server.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 5)
        assert answer.startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        # A second head, dribbled after the first response, is held to the same deadline.
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                if await asyncio.wait_for(reader.read(1), 0.1) == b"":
                    break
            except TimeoutError:
                pass
            writer.write(bytes([byte]))
            await writer.drain()
        assert time.monotonic() - start <= HEADER_TIMEOUT + SLACK
    except ConnectionError:
        assert time.monotonic() - start <= HEADER_TIMEOUT + SLACK
    finally:
        writer.close()
    # An idle keep-alive connection is closed too.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 5)
        start = time.monotonic()
        assert await asyncio.wait_for(reader.read(1), HEADER_TIMEOUT + SLACK) == b""
        assert time.monotonic() - start >= HEADER_TIMEOUT * 0.9
    finally:
        writer.close()


async def test_a_dribbled_body_is_cut_off_too(limited: Harness) -> None:
    """A quick head with a body sent a byte at a time: closed once the body's deadline passes (1 s + 1 KiB/64 KiB/s)."""
    head = b"POST /v1/push/ses_x/sig HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1024\r\n\r\n"
    taken = await closed_after(limited.server.http_port, head, b"a" * 1024, HEADER_TIMEOUT + 5)
    assert HEADER_TIMEOUT * 0.9 <= taken <= HEADER_TIMEOUT + SLACK, taken
    # A body that arrives in time is answered as usual (here: the push's wrong signature).
    ok = await limited.http.post(f"{limited.http_url}/v1/push/ses_x/sig", content=b"a" * 1024)
    assert ok.status_code == 403


async def test_the_head_deadline_holds_without_aiohttps_keep_alive_timer() -> None:
    """The handler's own deadline: aiohttp before 3.14 armed no timer before a connection's first request."""

    async def ok(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    server = HeadTimeoutServer(ok, header_timeout=HEADER_TIMEOUT, keepalive_timeout=3600, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    sock = bind_tcp("127.0.0.1", 0)
    await web.SockSite(runner, sock).start()
    try:
        port, head = bound_port(sock), b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        taken = await closed_after(port, head[:1], head[1:] + b"a" * 100, HEADER_TIMEOUT + 5)
        assert taken <= HEADER_TIMEOUT + SLACK, taken
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), 5)).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(HEADER_TIMEOUT + 0.5)  # past the head deadline: a connection that sent one stays open
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), 5)).startswith(b"HTTP/1.1 200")
        writer.close()
    finally:
        await runner.cleanup()
