"""What every vendor emulator shares: fault injection, stats, the simulated H5 page, redirects.

Each emulator is an aiohttp application serving the vendor's own paths, so it can be mounted
under ``/sandbox/<vendor>/`` on realauth's HTTP side or run standalone on its own port (where a
vendor SDK pointed at it gets the answers the vendor would give).

Mounted in realauth, an emulator is reachable by anyone who can reach the HTTP side with the public
sandbox keys, so two options narrow it there: ``admin=False`` leaves out every ``/_emulator/`` route
(faults, stats, forced codes: they take no credential), and ``targets`` lists the only URL prefixes
(realauth's own landing and push routes) it may send a browser or a push to. Standalone it keeps the
defaults, as permissive as the vendor.
"""

from __future__ import annotations

import abc
import asyncio
import html
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from ..clock import Clock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths below this prefix control the emulator itself and are never faulted.
ADMIN_PREFIX = "/_emulator/"


@dataclass
class FaultPlan:
    """What to do to the next API requests (browser pages and admin paths are never faulted)."""

    latency: float = 0.0  # seconds added before answering
    status: int = 0  # answer with the vendor's own error for this HTTP status (e.g. 500, 503)
    rate_limit: bool = False  # answer with the vendor's rate-limit error
    malformed: bool = False  # answer 200 with a body that is not the vendor's JSON
    reset: bool = False  # drop the connection without an answer
    hang: bool = False  # never answer; the client must give up
    count: int = -1  # how many requests to affect; -1 = until cleared
    path: str = ""  # only requests whose path (or X-TC-Action / Action) contains this

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class EmulatorStats:
    requests: int = 0
    faulted: int = 0
    abandoned: int = 0  # requests whose client went away before the answer
    by_action: dict[str, int] = field(default_factory=dict)


class Emulator(abc.ABC):
    """Base of a vendor emulator. Subclasses add the vendor's routes in :meth:`add_routes`."""

    vendor: ClassVar[str]
    #: GET paths that are vendor API calls (faulted and counted); every other GET is a browser page.
    api_get_paths: ClassVar[tuple[str, ...]] = ()
    #: aiohttp request-handler options when the emulator runs standalone (e.g. a longer request line).
    handler_args: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        clock: Clock | None = None,
        public_url: str = "",
        *,
        admin: bool = True,
        targets: Iterable[str] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        #: Base URL at which browsers reach this emulator (its H5 pages live below it).
        self.public_url = public_url.rstrip("/")
        #: Whether the ``/_emulator/`` control routes exist (they take no credential).
        self.admin = admin
        #: URL prefixes redirects and pushes may go to; None: any URL the vendor would accept.
        self.targets: list[str] | None = None if targets is None else list(targets)
        self.fault: FaultPlan | None = None
        self.stats = EmulatorStats()

    # --- to implement ---------------------------------------------------------------------------

    @abc.abstractmethod
    def add_routes(self, app: web.Application) -> None: ...

    def add_admin_routes(self, app: web.Application) -> None:
        """The vendor's own test hooks under ``ADMIN_PREFIX``; only added when ``admin`` is on."""
        return None

    @abc.abstractmethod
    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        """The vendor's own error answer for an injected fault."""

    def action_of(self, request: web.Request) -> str:
        """Name of the vendor action a request calls (for stats and fault filters)."""
        return request.path

    def is_page(self, request: web.Request) -> bool:
        """Whether a request is a browser page (never faulted nor counted) rather than a vendor API call."""
        return request.method == "GET" and not request.path.endswith(self.api_get_paths)

    # --- the application ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._fault_middleware],
            client_max_size=16 * 1024 * 1024,
            handler_args=dict(self.handler_args) or None,
        )
        if self.admin:
            app.router.add_put(ADMIN_PREFIX + "faults", self._set_faults)
            app.router.add_delete(ADMIN_PREFIX + "faults", self._clear_faults)
            app.router.add_get(ADMIN_PREFIX + "stats", self._get_stats)
            self.add_admin_routes(app)
        self.add_routes(app)
        app.on_cleanup.append(lambda _app: self.aclose())
        return app

    async def aclose(self) -> None:
        """Stop the emulator's background work; runs when its app is cleaned up (a sub-app's too)."""
        return None

    def set_fault(self, plan: FaultPlan | None) -> None:
        self.fault = plan

    def _take_fault(self, request: web.Request, action: str) -> FaultPlan | None:
        plan = self.fault
        if plan is None or (plan.path and plan.path not in request.path and plan.path not in action):
            return None
        if plan.count == 0:
            return None
        if plan.count > 0:
            plan.count -= 1
        return plan

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Mounted as a sub-app, the path seen here still includes the mount prefix.
        is_page = self.is_page(request)
        if ADMIN_PREFIX in request.path:
            if not self.admin:  # also covers a catch-all vendor route that would match the path
                raise web.HTTPNotFound()
            return await handler(request)
        if is_page:
            return await handler(request)
        action = self.action_of(request)
        self.stats.requests += 1
        self.stats.by_action[action] = self.stats.by_action.get(action, 0) + 1
        plan = self._take_fault(request, action)
        try:
            if plan is not None:
                self.stats.faulted += 1
                if plan.hang:
                    await asyncio.sleep(3600)
                if plan.latency:
                    await asyncio.sleep(plan.latency)
                if plan.reset:
                    if request.transport is not None:
                        request.transport.abort()
                    raise web.HTTPInternalServerError()
                if plan.rate_limit:
                    return self.error_response(429, rate_limit=True)
                if plan.status:
                    return self.error_response(plan.status)
                if plan.malformed:
                    return web.Response(status=200, text="<html>upstream proxy error", content_type="text/html")
            return await handler(request)
        except asyncio.CancelledError:
            self.stats.abandoned += 1
            raise

    # --- where a browser or a push may be sent -------------------------------------------------------

    def may_send_to(self, url: str) -> bool:
        """Whether a redirect or push to ``url`` is allowed: anything standalone, only ``targets`` when embedded."""
        return self.targets is None or any(is_under(url, prefix) for prefix in self.targets)

    def redirect(self, url: str, params: dict[str, str]) -> web.StreamResponse:
        """302 to ``url`` with ``params``, or an error page when it is not an allowed target (never followed)."""
        if not self.may_send_to(url):
            return error_page(400, "This verification cannot return to that address.")
        raise web.HTTPFound(with_query(url, params))

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            self.fault = FaultPlan.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.fault))

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.fault = None
        return web.json_response({})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.stats))


def new_id(n: int = 8) -> str:
    return secrets.token_hex(n).upper()


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host and no white space: what the vendors accept as a callback."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    port = parts.port  # ValueError on a bad port, handled by the caller
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def is_under(url: str, prefix: str) -> bool:
    """``url`` is at or below ``prefix``: same scheme, host and port, no user info, the path below the prefix's path
    with no dot segments (plain or percent-encoded) that a browser or HTTP client would resolve to somewhere else."""
    if any(c.isspace() or c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return False
    try:
        parts, want = urlsplit(url), urlsplit(prefix)
        if parts.username is not None or parts.password is not None or _origin(parts) != _origin(want):
            return False
    except ValueError:
        return False
    if any(seg in (".", "..") for seg in unquote(parts.path).split("/")):
        return False
    return parts.path.startswith(want.path)


def with_query(url: str, params: dict[str, str]) -> str:
    """Append params to a URL that may already have a query (as the vendors' redirects do)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


PAGE_TEXT = {
    "zh": ("真人认证(沙箱)", "通过", "不通过", "这是 realauth 的模拟认证页面。"),
    "zh-Hant": ("真人認證(沙盒)", "通過", "不通過", "這是 realauth 的模擬認證頁面。"),
    "en": ("Liveness check (sandbox)", "Pass", "Fail", "This is realauth's simulated verification page."),
}


def h5_page(vendor: str, lng: str, pass_url: str, fail_url: str, detail: str = "") -> web.Response:
    """The simulated browser step: a page with Pass and Fail, each a plain link (scriptable)."""
    title, ok, ko, blurb = PAGE_TEXT.get(lng, PAGE_TEXT["en"])
    body = f"""<!doctype html>
<html lang="{html.escape(lng)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} — {html.escape(vendor)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 28rem; margin: 3rem auto; padding: 0 1rem; }}
a.btn {{ display: inline-block; padding: .8rem 1.6rem; margin: .5rem .5rem 0 0; border-radius: .4rem;
        color: #fff; text-decoration: none; font-size: 1.1rem; }}
#pass {{ background: #1a7f37; }} #fail {{ background: #cf222e; }}
small {{ color: #666; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(blurb)} <small>({html.escape(vendor)})</small></p>
<p><a class="btn" id="pass" href="{html.escape(pass_url)}">{html.escape(ok)}</a>
<a class="btn" id="fail" href="{html.escape(fail_url)}">{html.escape(ko)}</a></p>
<p><small>{html.escape(detail)}</small></p>
</body></html>"""
    return web.Response(text=body, content_type="text/html")


def error_page(status: int, message: str) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Verification unavailable</title></head>"
        f"<body><h1>Verification unavailable</h1><p>{html.escape(message)}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")
