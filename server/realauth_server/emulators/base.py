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
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote, urlsplit

from aiohttp import web

from ..clock import Clock
from ..http.pages import LANGS, UNAVAILABLE, Text, error_page, page, page_lang, text
from ..urls import with_query

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

    def redirect(self, url: str, params: dict[str, str], lng: str = "en") -> web.StreamResponse:
        """302 to ``url`` with ``params``, or an error page when it is not an allowed target (never followed)."""
        if not self.may_send_to(url):
            return error_page(400, "bad_target", lng)
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


# --- the simulated vendor pages: outcomes, languages ----------------------------------------------------------------


#: Outcome kinds. ``pass``/``fail``: the page finishes and the vendor reports that verdict. ``abandon``: the person
#: leaves; nothing is sent anywhere and the session later expires. ``expire``: the vendor's window runs out on the
#: page; what follows is each vendor's own (see its emulator).
PASS, FAIL, ABANDON, EXPIRE = "pass", "fail", "abandon", "expire"


@dataclass(frozen=True)
class Outcome:
    """One way a simulated vendor page can end, as the vendor documents it.

    ``name`` and ``aliases`` script it (``outcome=<name>``); so does ``code``, the vendor's own code, when no other
    outcome of the same vendor shares it. ``data`` is what the emulator needs to produce it (codes, statuses).
    """

    name: str
    code: str
    label: Text
    kind: str = FAIL
    aliases: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)


class Outcomes:
    """A vendor's outcomes in page order, looked up by name, alias or (unshared) vendor code, case-insensitively."""

    def __init__(self, items: Iterable[Outcome]) -> None:
        self.items = tuple(items)
        self._by_key: dict[str, Outcome] = {}
        for o in self.items:
            for key in dict.fromkeys(k.lower() for k in (o.name, *o.aliases)):
                if key in self._by_key:
                    raise ValueError(f"outcome key {key!r} is used twice")
                self._by_key[key] = o
            if set(o.label) != set(LANGS):
                raise ValueError(f"outcome {o.name!r} needs a label in each of {LANGS}")
        codes = [o.code.lower() for o in self.items if o.code]
        for o in self.items:
            if o.code and codes.count(o.code.lower()) == 1:
                self._by_key.setdefault(o.code.lower(), o)

    def __iter__(self) -> Iterator[Outcome]:
        return iter(self.items)

    def resolve(self, value: str) -> Outcome | None:
        return self._by_key.get(value.strip().lower())

    def __getitem__(self, name: str) -> Outcome:
        found = self.resolve(name)
        if found is None:
            raise KeyError(name)
        return found


CHROME: dict[str, Text] = {
    "title": {"zh": "真人认证(沙箱)", "zh-Hant": "真人認證(沙盒)", "en": "Liveness check (sandbox)"},
    "blurb": {
        "zh": "这是 realauth 的模拟认证页面,选择此次认证的结果:",
        "zh-Hant": "這是 realauth 的模擬認證頁面,選擇此次認證的結果:",
        "en": "This is realauth's simulated verification page. Choose how this verification ends:",
    },
    "footer": {
        "zh": "脚本:在链接后加 outcome=<名称或厂商代码>。这是模拟页面,不会进行真实认证。",
        "zh-Hant": "腳本:在連結後加上 outcome=<名稱或廠商代碼>。這是模擬頁面,不會進行真實認證。",
        "en": "Scripts: add outcome=<name or vendor code> to this link. This is a simulated page; nothing is really"
        " verified.",
    },
    "unavailable": UNAVAILABLE,
    "unknown_outcome": {
        "zh": "未知的结果「{value}」。可用的结果(名称或厂商代码):",
        "zh-Hant": "未知的結果「{value}」。可用的結果(名稱或廠商代碼):",
        "en": "Unknown outcome '{value}'. Valid outcomes (name or vendor code):",
    },
    "left_title": {"zh": "您已离开认证", "zh-Hant": "您已離開認證", "en": "You left the verification"},
    "left_body": {
        "zh": "沙箱:不会返回调用方,也不会通知;会话将在截止时间后过期。",
        "zh-Hant": "沙盒:不會返回呼叫方,也不會通知;工作階段將在截止時間後過期。",
        "en": "Sandbox: nothing is sent back or pushed; the session expires at its deadline.",
    },
}


def _button(o: Outcome, lng: str, base: str) -> str:
    href = html.escape(with_query(base, {"outcome": o.name}))
    code = f"{html.escape(o.name)}{' · ' + html.escape(o.code) if o.code else ''}"
    label = html.escape(text(lng, o.label))
    return f'<a class="btn {o.kind}" id="{html.escape(o.name)}" href="{href}">{label}<code>{code}</code></a>'


def h5_page(vendor: str, lng: str, base: str, outcomes: Outcomes, detail: Text) -> web.Response:
    """The simulated browser step: one button per outcome, each a plain link adding ``outcome=<name>`` (scriptable)."""
    lng = page_lang(lng)
    buttons = "\n".join(_button(o, lng, base) for o in outcomes)
    title = text(lng, CHROME["title"])
    body = (
        f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(text(lng, CHROME['blurb']))} <small>({html.escape(vendor)})"
        f"</small></p>\n<p>{buttons}</p>\n<p><small>{html.escape(text(lng, detail))}</small></p>\n"
        f"<footer>{html.escape(text(lng, CHROME['footer']))}</footer>"
    )
    return page(lng, f"{title} — {vendor}", body)


def outcome_error_page(lng: str, value: str, outcomes: Outcomes) -> web.Response:
    """400 for an ``outcome`` the vendor has not: lists every valid one (name, vendor code, label)."""
    lng = page_lang(lng)
    rows = "\n".join(
        f"<li><code>{html.escape(o.name)}</code>{' (<code>' + html.escape(o.code) + '</code>)' if o.code else ''}: "
        f"{html.escape(text(lng, o.label))}</li>"
        for o in outcomes
    )
    title = text(lng, CHROME["unavailable"])
    intro = text(lng, CHROME["unknown_outcome"]).format(value=value[:64])
    body = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(intro)}</p>\n<ul>\n{rows}\n</ul>"
    return page(lng, title, body, 400)


def left_page(lng: str) -> web.Response:
    """The ``abandon`` outcome: the person closed the page; the vendor sends nothing anywhere."""
    title = text(page_lang(lng), CHROME["left_title"])
    body = f"<h1>{html.escape(title)}</h1>\n<p>{html.escape(text(page_lang(lng), CHROME['left_body']))}</p>"
    return page(lng, title, body)
