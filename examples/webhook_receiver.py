"""A small realauth webhook receiver: verifies the signature, refuses replays, handles each event once.

Run it (it needs only aiohttp) and point an endpoint at it:

    REALAUTH_WEBHOOK_SECRET=... python examples/webhook_receiver.py --port 9000

    # realauth.toml (sandbox mode: http to loopback is allowed; anywhere else use https)
    [[tenants.shop.webhooks]]
    url = "http://127.0.0.1:9000/realauth"
    secret = "env:REALAUTH_WEBHOOK_SECRET"

The checks, in order (docs/webhooks.md): the ``Realauth-Signature`` header is ``t=<unix seconds>,v1=<hex>``;
``v1`` must equal HMAC-SHA256(secret, "<t>.<raw body>") (compared in constant time, over the bytes received,
before parsing any JSON); ``t`` must be within 5 minutes of this clock; an event id already handled is
acknowledged again and not handled twice (deliveries are at least once). Answer 2xx quickly; anything else
(or no answer within 10 s) is retried with backoff for 3 days.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

TOLERANCE = 300  # seconds; the value realauth documents


def verify_signature(secret: bytes, header: str, body: bytes, now: float, tolerance: float = TOLERANCE) -> bool:
    """Whether ``header`` is a valid realauth signature of ``body`` at time ``now``."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures or abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


def make_app(
    secret: bytes,
    *,
    now: Callable[[], float] = time.time,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    path: str = "/realauth",
) -> web.Application:
    """The receiver. ``on_event`` gets each verified event once (by id); ``now`` is its clock."""
    seen: set[str] = set()  # a real receiver keeps this in its database, for longer than the 3-day retry window

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: the signature covers exactly these
        if not verify_signature(secret, request.headers.get("Realauth-Signature", ""), body, now()):
            return web.Response(status=400, text="bad signature")
        event = json.loads(body)
        if event["id"] not in seen:
            seen.add(event["id"])
            if on_event is not None:
                on_event(event)
            else:
                session = event["session"]
                result = session.get("result") or {}
                print(event["type"], session["session_id"], "passed" if result.get("passed") else "-", flush=True)
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post(path, receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    secret = os.environ["REALAUTH_WEBHOOK_SECRET"].encode()
    web.run_app(make_app(secret), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
