"""HTTP connection and request-line limits: slow-loris connections are closed, long URLs only reach the landing.

aiohttp bounds the request target per server (``max_line_size``), not per route, and has no deadline for a
request head: its keep-alive timer covers the time between requests, but in older releases not the time from
accepting a connection to its first complete head. So the server is built here with a request handler that
closes a connection whose first head is not complete within ``header_timeout`` seconds, and the keep-alive
timeout is the same value (an idle or dribbling connection after a response is closed by it).
The request-line limit is raised just enough for the longest legitimate landing (a vendor's GET return,
``Provider.max_landing_query``); every other route keeps the usual 8 KiB bound (414 from a middleware), and a
request body must arrive in bounded time too (the same middleware).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..urls import LANDING_PATH

#: aiohttp's own default request-target bound, kept for every route but the landing.
DEFAULT_MAX_URL = 8190
#: Room for the landing path itself: ``/v1/callback/<session id>/<signature>?``.
LANDING_PATH_ROOM = 256
#: The slowest body upload accepted, bytes per second, on top of the header timeout (8 MB: two minutes more).
MIN_BODY_RATE = 64 * 1024
#: A body without Content-Length (chunked) is given the time of one this large.
MAX_UNSIZED_BODY = 1024 * 1024


def max_url_for(landing_queries: Iterable[int]) -> int:
    """The request-target bound for this server: the default, or the longest legitimate landing if longer."""
    return max([DEFAULT_MAX_URL, *(q + LANDING_PATH_ROOM for q in landing_queries if q > 0)])


class HeadTimeoutHandler(RequestHandler):
    """An aiohttp request handler that closes its connection when no complete request head came in time."""

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = asyncio.get_running_loop().call_later(self._header_timeout, self.force_close)

    def head_arrived(self) -> None:
        """A request head was parsed (its handler is starting): the deadline for the first head is met."""
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self.head_arrived()
        super().connection_lost(exc)


class HeadTimeoutServer(web.Server):
    """A ``web.Server`` whose connections use :class:`HeadTimeoutHandler`; its handler marks each head's arrival."""

    def __init__(self, handler: Any, *, header_timeout: float, **kwargs: Any) -> None:
        async def marked(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            if isinstance(protocol, HeadTimeoutHandler):
                protocol.head_arrived()
            response: web.StreamResponse = await handler(request)
            return response

        super().__init__(marked, **kwargs)
        server_only = ("request_factory", "handler_cancellation", "loop")
        self._handler_kwargs = {k: v for k, v in kwargs.items() if k not in server_only}
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        return HeadTimeoutHandler(
            self, loop=asyncio.get_running_loop(), header_timeout=self._header_timeout, **self._handler_kwargs
        )


class LimitedAppRunner(web.AppRunner):
    """An AppRunner with a head deadline, the same keep-alive timeout, and a request-line limit of ``max_url``.

    ``server_kwargs`` are what ``web.AppRunner`` would pass on to ``web.Server`` (``access_log``,
    ``handler_cancellation``, …).
    """

    def __init__(self, app: web.Application, *, header_timeout: float, max_url: int, **server_kwargs: Any) -> None:
        server_kwargs.update(keepalive_timeout=header_timeout, max_line_size=max_url)
        super().__init__(app, **server_kwargs)
        self._header_timeout = header_timeout
        self._server_kwargs = server_kwargs
        app.middlewares.append(bounded_requests(header_timeout))

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()  # runs the app's start-up hooks and freezes it
        return HeadTimeoutServer(
            built.request_handler,
            request_factory=built.request_factory,
            loop=asyncio.get_running_loop(),
            header_timeout=self._header_timeout,
            **self._server_kwargs,
        )


def bounded_requests(header_timeout: float) -> Any:
    """Middleware: the usual URL bound outside the landing, and a deadline for the request body.

    Only the landing route needs long URLs (a vendor's GET return). A body must have arrived within
    ``header_timeout`` plus its length at :data:`MIN_BODY_RATE` after the head, or the connection is closed: a
    client dribbling a body cannot hold a connection (nor a handler waiting for it) any more than one
    dribbling a head.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if len(request.raw_path) > DEFAULT_MAX_URL and not request.path.startswith(LANDING_PATH):
            return web.Response(status=414, text=f"request target longer than {DEFAULT_MAX_URL} bytes\n")
        timer: asyncio.TimerHandle | None = None
        if request.body_exists and not request.content.is_eof():
            length = request.content_length if request.content_length is not None else MAX_UNSIZED_BODY
            timer = asyncio.get_running_loop().call_later(
                header_timeout + length / MIN_BODY_RATE, _close_if_body_missing, request
            )
        try:
            response: web.StreamResponse = await handler(request)
        finally:
            if timer is not None:
                timer.cancel()
        return response

    return middleware


def _close_if_body_missing(request: web.Request) -> None:
    if not request.content.is_eof() and request.transport is not None:
        request.transport.close()
