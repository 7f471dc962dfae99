"""The HTTP side (same process and event loop as gRPC): callback landing, vendor pushes, sandbox, metrics."""

from __future__ import annotations

import contextlib
import html
import uuid
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import errors as E
from ..logs import LogContext, bind_call, bound_call, unbind_call
from ..metrics import REGISTRY
from ..service import MAX_PUSH_BYTES, AuthService, LandingRefused
from ..tracecontext import Tracing, parse_traceparent
from ..urls import location
from .metrics import observe_landing, observe_push, track_provider
from .pages import error_page

MAX_REQUEST_ID = 128
#: The routes that are calls of their own (a landing, a push): each gets a request id, its log fields and a span.
CALL_PREFIXES = ("/v1/callback/", "/v1/push/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _request_id(value: str) -> str:
    if value and len(value) <= MAX_REQUEST_ID and all(c.isalnum() or c in "-_.:" for c in value):
        return value
    return uuid.uuid4().hex


def _provider() -> str:
    bound = bound_call()
    return bound.provider if bound is not None else ""


def build_http_app(
    service: AuthService, sandboxes: Mapping[str, web.Application], tracing: Tracing | None = None
) -> web.Application:
    """The HTTP side; ``sandboxes`` are the embedded emulators' apps by kind (wired by server.py)."""

    @web.middleware
    async def call_scope(request: web.Request, handler: Handler) -> web.StreamResponse:
        """A landing or push has no RPC around it: give it a request id (``x-request-id`` or new), the caller's
        trace (``traceparent``), log fields filled in by the service once it reads the session, and a span."""
        if not request.path.startswith(CALL_PREFIXES):
            return await handler(request)
        parent = parse_traceparent(request.headers.get("traceparent", ""))
        fields = LogContext(_request_id(request.headers.get("x-request-id", "")), parent.trace_id if parent else "")
        route = "landing" if request.path.startswith(CALL_PREFIXES[0]) else "push"
        with contextlib.ExitStack() as spans:
            span = None
            if tracing is not None:
                carrier = {k.lower(): v for k, v in request.headers.items()}
                span = spans.enter_context(tracing.server_span(f"{request.method} /v1/{route}", carrier, http=True))
                fields.trace_id = span.trace_id
            token = bind_call(fields)
            status = 500
            try:
                response = await handler(request)
                status = response.status
            except web.HTTPException as exc:
                status = exc.status
                exc.headers["x-request-id"] = fields.request_id
                raise
            finally:
                if span is not None:
                    span.set("http.request.method", request.method)
                    span.set("http.route", f"/v1/{route}/{{session_id}}/{{sig}}")
                    span.set("http.response.status_code", status)
                    span.set("realauth.request_id", fields.request_id)
                    span.set("realauth.tenant", fields.tenant)
                    span.set("realauth.provider", fields.provider)
                    span.finish(str(status), status >= 500)
                unbind_call(token)
        response.headers["x-request-id"] = fields.request_id
        return response

    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[call_scope])
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
            observe_landing(exc.provider, "refused")
            return error_page(exc.status, exc.message)
        except BaseException:
            observe_landing(_provider(), "error")
            raise
        observe_landing(_provider(), "redirected")
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
            observe_push(exc.provider, "refused")
            return web.Response(status=exc.status, text=exc.message + "\n")
        except E.RealAuthError:
            # Busy (an exchange of this session is running) or the store is down: the vendor should retry.
            observe_push(_provider(), "unavailable")
            return web.Response(status=503, text="temporarily unavailable; retry\n")
        observe_push(_provider(), "recorded" if outcome.recorded else "unchanged")
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
