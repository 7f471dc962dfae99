"""The HTTP side (same process and event loop as gRPC): callback landing, vendor pushes, sandbox, metrics."""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import errors as E
from ..metrics import REGISTRY
from ..service import MAX_PUSH_BYTES, AuthService, LandingRefused
from ..urls import location
from .metrics import track_provider
from .pages import error_page


def build_http_app(service: AuthService, sandboxes: Mapping[str, web.Application]) -> web.Application:
    """The HTTP side; ``sandboxes`` are the embedded emulators' apps by kind (wired by server.py)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    for provider in service.providers.values():
        track_provider(provider)

    async def landing(request: web.Request) -> web.StreamResponse:
        query: dict[str, str] = dict(request.query)
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            query.update({k: v for k, v in form.items() if isinstance(v, str)})
        try:
            target = await service.land(request.match_info["session_id"], request.match_info["sig"], query)
        except LandingRefused as exc:
            return error_page(exc.status, exc.message)
        raise web.HTTPFound(location(target))  # the stored normal form as is: yarl must not re-encode it

    async def push(request: web.Request) -> web.Response:
        """A vendor's server-to-server result (plain-text answers: vendors log them, browsers never see them)."""
        if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
            return web.Response(status=400, text=f"push body larger than {MAX_PUSH_BYTES} bytes\n")
        body = bytearray()
        while len(body) <= MAX_PUSH_BYTES:
            chunk = await request.content.read(MAX_PUSH_BYTES + 1 - len(body))
            if not chunk:
                break
            body += chunk
        try:
            outcome = await service.push(
                request.match_info["session_id"], request.match_info["sig"], bytes(body), request.content_type
            )
        except LandingRefused as exc:
            return web.Response(status=exc.status, text=exc.message + "\n")
        except E.RealAuthError:
            # Busy (an exchange of this session is running) or the store is down: the vendor should retry.
            return web.Response(status=503, text="temporarily unavailable; retry\n")
        return web.Response(text=f"ok {outcome.state.value}\n")

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def index(request: web.Request) -> web.Response:
        """Anyone can open this page: it names only sandbox instances (emulators), never a real vendor's."""
        items = "".join(
            f"<li>{html.escape(p.name)} ({html.escape(p.kind)}, sandbox)</li>"
            for p in service.providers.values()
            if p.settings.sandbox
        )
        return web.Response(
            text=f"<!doctype html><title>realauth</title><h1>realauth</h1><p>Sandbox providers:</p><ul>{items}</ul>"
            "<p>gRPC API: realauth.v1.RealAuthService. Metrics: <a href='/metrics'>/metrics</a>.</p>",
            content_type="text/html",
        )

    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("GET", "/v1/callback/{session_id}/{sig}", landing)
    app.router.add_route("POST", "/v1/callback/{session_id}/{sig}", landing)
    app.router.add_post("/v1/push/{session_id}/{sig}", push)
    for vendor, sandbox in sandboxes.items():
        app.add_subapp(f"/sandbox/{vendor}/", sandbox)
    return app
