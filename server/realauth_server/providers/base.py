"""The small interface every vendor adapter implements, and what they share.

An adapter is one module: settings parsing, request building and signing (through
``realauth_server.signing``), response parsing and its vendor error table. Adding a vendor is one
package under ``vendors/`` plus one line in ``vendors.registry`` (docs/providers.md).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import aiohttp

from .. import credentials, deadlines
from ..admission import InFlight
from ..clock import Clock
from ..domain import AuthSession, CreateParams, Landing, VendorSession, VerificationResult
from ..errors import (
    AccessDenied,
    InternalError,
    InvalidParameter,
    ProviderAuthFailed,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RealAuthError,
)
from ..secret import Secret, resolve_secret
from ..signing import Signer
from .breaker import BreakerSettings, BreakerState, CircuitBreaker, CircuitOpen
from .transport import (
    MAX_RESPONSE_BYTES,
    ResponseTooLarge,
    VendorRequest,
    VendorResponse,
    make_http_client,
    roundtrip,
    wire_url,
)

log = logging.getLogger("realauth.vendor")

T = TypeVar("T")

#: ``vendor_data`` key of a vendor token that a vendor-authenticated push bound to its session.
BOUND_TOKEN = "bound_token"


def vendor_origin(url: str) -> str:
    """``scheme://host[:port]`` of a vendor URL: names the endpoint that could not be reached (so a wrong or
    missing endpoint key is found without reading defaults) but never the path, query or user info, which may carry
    tokens or signatures."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: name the host only
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    shown = f":{port}" if port is not None and port != default else ""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}{shown}"


class PushRejected(Exception):
    """A vendor push that must change nothing: malformed, undecryptable, forged or for another session.

    ``status`` is the HTTP answer (400 or 403); ``message`` is plain text for the vendor, never a payload;
    ``reason`` a fixed word for the refusal metric.
    """

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or "bad_push"


@dataclass
class PushResult:
    """What a verified vendor push says: a final result, or (``result`` None) progress with nothing to record.

    ``token`` is the vendor token the push is about (read from the vendor-authenticated body): the service
    binds it to the session and claims it, so one vendor result completes one session only.
    """

    result: VerificationResult | None
    token: str = ""


@dataclass(frozen=True)
class VendorFault:
    """A vendor error read from a response body: its code and message (``key``: the error-table row to look up
    first, when it is more specific than the code)."""

    code: str
    message: str
    key: str = ""


@dataclass(frozen=True)
class VendorErrorRule:
    """One row of a vendor's error table: vendor code → neutral error (and retriability)."""

    vendor_code: str
    error: type[RealAuthError]
    retriable: bool
    http_status: int | None = None
    description: str = ""


class ErrorTable:
    """A vendor's error rows, looked up by exact code, then by the code's dotted prefix."""

    def __init__(self, rows: Sequence[VendorErrorRule]) -> None:
        self.rows = tuple(rows)
        self._by_code = {r.vendor_code: r for r in self.rows}

    def lookup(self, vendor_code: str) -> VendorErrorRule | None:
        code = vendor_code
        while code:
            rule = self._by_code.get(code)
            if rule is not None:
                return rule
            if "." not in code:
                return None
            code = code.rsplit(".", 1)[0]
        return None

    def error(
        self, vendor_code: str, message: str, *, provider: str, vendor_request_id: str = "", key: str = ""
    ) -> RealAuthError:
        """The neutral error for a vendor code (``key``: the row to look up when it is not the code itself)."""
        rule = (self.lookup(key) if key else None) or self.lookup(vendor_code)
        cls: type[RealAuthError] = rule.error if rule else ProviderError
        retriable = rule.retriable if rule else False
        text = f"{provider}: {message}" if message else f"{provider}: vendor error"
        if cls is InvalidParameter:
            return InvalidParameter(
                "provider_request",
                text,
                provider=provider,
                vendor_code=vendor_code,
                vendor_request_id=vendor_request_id,
            )
        return cls(
            text,
            provider=provider,
            vendor_code=vendor_code,
            vendor_request_id=vendor_request_id,
            retriable=retriable,
        )


@dataclass
class ProviderContext:
    """What the server hands every adapter: its clock and where its sandbox lives."""

    clock: Clock
    emulator_url: str  # base URL of the built-in emulators (sandbox mode)
    config_dir: Any = None
    #: Builds the provider's outbound session instead of :func:`make_http_client` (tests); called inside the loop.
    http_client_factory: Callable[[], aiohttp.ClientSession] | None = None


#: Pool size per provider instance. A vendor answering in 2 s then sustains 500 creates/s through one instance, above
#: the rate limits the vendors document for one account, so realauth is not the bottleneck (docs/reliability.md).
DEFAULT_MAX_CONNECTIONS = 1000
#: In-flight vendor operations per provider instance: 5,000 concurrent creates are admitted; a sick vendor can hold
#: no more than this many calls (the rest of the server keeps serving the other providers).
DEFAULT_PROVIDER_IN_FLIGHT = 5000


@dataclass
class ProviderSettings:
    """Settings every provider instance has, whatever its kind."""

    name: str
    kind: str
    base_url: str
    sandbox: bool
    exchange_window: float
    max_attempts: int = 3
    is_default: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    #: Vendor connections this instance may open at once (its own pool; docs/reliability.md).
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Vendor operations (create, exchange) in progress at once; past it a call is refused with Overloaded.
    max_in_flight: int = DEFAULT_PROVIDER_IN_FLIGHT
    #: Secrets resolved so far, one object per key, so a reload (SIGHUP) reaches every holder of it.
    _resolved: dict[str, Secret] = field(default_factory=dict, init=False, repr=False, compare=False)

    def secret(self, key: str, *, required: bool = True) -> Secret | None:
        if key in self._resolved:
            return self._resolved[key]
        spec = self.extra.get(key)
        if spec is None or spec == "":
            if required:
                raise ValueError(f"providers.{self.name}.{key} is required")
            return None
        if not isinstance(spec, str):
            raise ValueError(f"providers.{self.name}.{key} must be a string (env:NAME, file:/path or literal)")
        self._resolved[key] = resolved = resolve_secret(spec)
        return resolved

    def resolved_secrets(self) -> dict[str, Secret]:
        """Every secret :meth:`secret` has resolved, by key (for ``file:`` reloads)."""
        return dict(self._resolved)

    def string(self, key: str, default: str = "") -> str:
        value = self.extra.get(key, default)
        if not isinstance(value, str):
            raise ValueError(f"providers.{self.name}.{key} must be a string")
        return value


class Provider(abc.ABC):
    """A vendor adapter. Instances are long-lived and shared by all concurrent calls."""

    kind: ClassVar[str]
    #: Name of this kind's field in CreateAuthSessionRequest's ``options`` oneof.
    options_field: ClassVar[str]
    error_table: ClassVar[ErrorTable]
    #: Vendor-documented time from creation to the last possible exchange, in seconds.
    default_exchange_window: ClassVar[float]
    #: Documentation of known configuration keys beyond the common ones (for docs and validation).
    config_keys: ClassVar[Mapping[str, str]] = {}
    #: Which of ``config_keys`` are secrets (resolved from ``env:``/``file:``; tenants may override).
    secret_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def required_secrets(cls, extra: Mapping[str, Any]) -> tuple[str, ...]:
        """The ``secret_keys`` a real (non-sandbox) instance with these settings cannot sign without; start-up
        refuses an instance missing one that no tenant supplies (config.py). Default: all of them."""
        return cls.secret_keys

    @classmethod
    def is_secret_key(cls, key: str) -> bool:
        """Whether a configuration key holds a secret (masked by ``--print-config``)."""
        return key in cls.secret_keys or "(secret)" in cls.config_keys.get(key, "")

    def __init__(self, settings: ProviderSettings, ctx: ProviderContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.name = settings.name
        self._http: aiohttp.ClientSession | None = None
        self.in_flight = InFlight("provider", settings.max_in_flight, name=settings.name, what="vendor calls")
        self.breaker = CircuitBreaker(
            self.name, settings.breaker, ctx.clock.now, lambda old, new, why: observe_breaker(self, old, new, why)
        )
        self._secrets: dict[str, Secret] = {}
        for key in self.secret_keys:
            secret = settings.secret(key, required=False)
            if secret is not None:
                self._secrets[key] = secret

    def credential(self, key: str) -> Secret:
        """The secret to sign this call with: the calling tenant's, else this provider's own.

        Every vendor call signs through here, so it is also where a tenant's provider list is enforced.
        """
        if not credentials.provider_allowed(self.name):
            raise AccessDenied(f"this caller may not use provider {self.name!r}", provider=self.name)
        profile = credentials.current_profile()
        if profile is not None:
            mine = profile.get(self.name)
            if mine is not None and key in mine:
                return mine[key]
        secret = self._secrets.get(key)
        if secret is None:
            raise ProviderAuthFailed(
                f"{self.name}: no {key} configured for this caller or provider", provider=self.name
            )
        return secret

    # --- construction -------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def sandbox_settings(cls, emulator_url: str) -> dict[str, Any]:
        """Config table that points an instance of this kind at the built-in emulator."""

    # --- the interface ------------------------------------------------------------------------

    @property
    def models(self) -> tuple[str, ...]:
        """Routing values this instance serves (only Seedance has any)."""
        return ()

    @property
    def max_landing_query(self) -> int:
        """Longest query string this vendor's browser return can legitimately carry (0: a short one).

        The HTTP side sizes its request-line limit for the landing route from this (http/limits.py).
        """
        return 0

    def validate(self, params: CreateParams) -> None:  # noqa: B027 - optional hook
        """Check kind-specific options before any vendor call; raise InvalidParameter."""

    @abc.abstractmethod
    async def create_session(self, params: CreateParams) -> VendorSession:
        """Call the vendor's start API. ``params.callback_url`` is realauth's landing URL."""

    @abc.abstractmethod
    def parse_landing(self, session: AuthSession, query: Mapping[str, str]) -> Landing:
        """Interpret the vendor's browser redirect parameters."""

    @abc.abstractmethod
    async def exchange(self, session: AuthSession) -> VerificationResult:
        """Fetch the verification outcome for a session, with :meth:`exchange_token` only."""

    def bound_token(self, session: AuthSession) -> str:
        """The vendor token realauth knows belongs to this session ("" while none is bound yet).

        Default: the token the vendor's start call returned. A landing's token must equal it.
        """
        return session.token

    def exchange_token(self, session: AuthSession) -> str:
        """The vendor token :meth:`exchange` fetches the result with ("" when there is none to use yet).

        Never a value only the browser supplied (unless the provider's documented opt-in says so): the
        service claims this token when it records the result, so it completes at most one session.
        """
        return self.bound_token(session)

    def parse_push(self, session: AuthSession, body: bytes, content_type: str) -> PushResult | None:
        """Verify and read a vendor's server-to-server result push for this session.

        None: this provider (or this configuration) takes no pushes. Raise :class:`PushRejected` for a
        body that must change nothing. Runs with the session tenant's credentials, like the landing.
        """
        return None

    @property
    def http(self) -> aiohttp.ClientSession:
        """This instance's outbound session (its own connection pool), made on first use: an aiohttp session
        belongs to the running event loop, and providers are also built outside one (configuration checks)."""
        if self._http is None:
            factory = self.ctx.http_client_factory
            self._http = factory() if factory else make_http_client(self.settings.max_connections)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            session, self._http = self._http, None
            await session.close()

    # --- shared plumbing ----------------------------------------------------------------------

    async def send(self, request: VendorRequest, *, action: str, signer: Signer | None = None) -> VendorResponse:
        """Sign and send one request within the call's budget; transport failures become neutral errors.

        ``signer`` runs here, per attempt, just before the bytes go out (a fresh clock; the client drives the flow).
        No redirect is followed: a 3xx is an answer like any other (``status_error`` reads it). The call is observed
        (metrics, its ``vendor call`` line) as an answer nobody has accepted yet; :meth:`call` observes after
        reading instead, so an accepted answer inside an RPC goes onto the ``rpc`` line.
        """
        response, seconds = await self._send(request, action, signer)
        observe_vendor_call(self, action, str(response.status_code), seconds)
        return response

    async def _send(self, request: VendorRequest, action: str, signer: Signer | None) -> tuple[VendorResponse, float]:
        """:meth:`send`'s work: the answer and how long it took. A call that got no answer (timeout, transport error)
        is observed here; one that got an answer is left to the caller to observe, once it knows whether it accepts
        the answer."""
        left = deadlines.require(0.05)
        self.breaker.before_call()  # an open breaker refuses here, before any vendor traffic
        _SENT.set(True)
        start = time.monotonic()
        outcome = "error"
        url = wire_url(request.url)
        answered = False
        try:
            async with asyncio.timeout(left):
                headers = signer(request.method, url, request.headers, request.body) if signer else request.headers
                response = await roundtrip(self.http, request.method, url, headers, request.body)
            answered = True
            return response, time.monotonic() - start
        except TimeoutError:  # the budget (aiohttp's own ServerTimeoutError is one too, though none is configured)
            outcome = "timeout"
            raise ProviderTimeout(
                f"{self.name}: {action} gave no answer within the call's deadline",
                provider=self.name,
                outcome_unknown=True,
            ) from None
        except ResponseTooLarge:
            outcome = "transport_error"
            raise ProviderError(
                f"{self.name}: {action} answered with a body over {MAX_RESPONSE_BYTES} bytes from {vendor_origin(url)}",
                provider=self.name,
                outcome_unknown=True,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            outcome = "transport_error"
            # Never connected (refused, DNS, TLS handshake, a URL aiohttp cannot use): the vendor saw nothing.
            # Anything else (reset, disconnected, a broken answer) came after sending: it may have acted on it.
            never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.InvalidURL)
            raise ProviderUnavailable(
                f"{self.name}: {action} failed to reach the vendor at {vendor_origin(url)} ({type(exc).__name__})",
                provider=self.name,
                outcome_unknown=not never_sent,
            ) from None
        finally:
            if not answered:
                observe_vendor_call(self, action, outcome, time.monotonic() - start)

    async def call(
        self,
        action: str,
        build: Callable[[], tuple[VendorRequest, Signer | None]],
        read: Callable[[VendorResponse, str], T],
    ) -> T:
        """The pipeline every vendor call goes through: pace → build (and sign) → send within the budget → read,
        retried.

        ``build`` is the adapter's hook for the request and its signer (called per attempt: credentials and
        timestamps are fresh); ``read`` turns the response into the adapter's result or raises the neutral error
        (usually through :meth:`read_envelope`). An error ``read`` raises is retried as :meth:`retry_answer` says.
        """
        repeats: dict[str, int] = {}

        async def attempt() -> T:
            async with self.pace(action):
                request, signer = build()
                response, seconds = await self._send(request, action, signer)
            status = response.status_code
            accepted = False  # observed once it is known whether the adapter read a result from the answer
            try:
                result = read(response, action)
                accepted = 200 <= status < 300
                return result
            except RealAuthError as exc:
                repeats[exc.vendor_code] = seen = repeats.get(exc.vendor_code, 0) + 1
                exc.is_retriable = self.retry_answer(exc, seen)
                raise
            finally:
                observe_vendor_call(self, action, str(status), seconds, accepted=accepted)

        return await self.with_retries(action, attempt)

    # --- hooks an adapter may supply (each has a default) -------------------------------------

    def pace(self, action: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hook: held around building and sending one attempt, e.g. a client-side rate limit (default: none)."""
        return contextlib.nullcontext()

    def retry_answer(self, error: RealAuthError, repeats: int) -> bool:
        """Hook: whether a vendor answer read as ``error`` may be retried, ``repeats`` being how often an answer
        with its vendor code came back in this call, this one included (default: the error's own retriability,
        from the error table)."""
        return error.is_retriable

    def envelope(self, response: VendorResponse, action: str) -> dict[str, Any]:
        """Hook: the JSON object holding the vendor's answer; raise the neutral error when the body has none
        (default: the whole body, which must be a JSON object)."""
        return json_body(response, provider=self.name, action=action)

    def vendor_error(self, data: dict[str, Any], action: str) -> VendorFault | None:
        """Hook: the vendor error this envelope carries, or None when it carries none (default: none)."""
        return None

    def vendor_request_id(self, data: dict[str, Any]) -> str:
        """Hook: the vendor's request id in this envelope ("" when it has none; default ``request_id``)."""
        return str(data.get("request_id", ""))

    def status_error(
        self, response: VendorResponse, action: str, data: dict[str, Any], fault: VendorFault | None, request_id: str
    ) -> RealAuthError | None:
        """Hook: the error for a non-200 HTTP answer, or None to let the envelope decide (default: the vendor
        error when the body has one, else ProviderError)."""
        if fault is not None:
            return None
        return ProviderError(
            f"{self.name}: {action} answered HTTP {response.status_code} without an error code",
            provider=self.name,
            vendor_request_id=request_id,
        )

    def read_envelope(self, response: VendorResponse, action: str) -> dict[str, Any]:
        """The answer's envelope (:meth:`envelope`) → itself; a non-200 status → :meth:`status_error`; a vendor
        error (:meth:`vendor_error`) → the error table's neutral error."""
        data = self.envelope(response, action)
        request_id = self.vendor_request_id(data)
        fault = self.vendor_error(data, action)
        if response.status_code != 200:
            error = self.status_error(response, action, data, fault, request_id)
            if error is not None:
                raise error
        if fault is not None:
            raise self.error_table.error(
                fault.code, fault.message, provider=self.name, vendor_request_id=request_id, key=fault.key
            )
        return data

    async def with_retries(self, action: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Retry retriable errors with jittered backoff, inside the call's budget and the provider's retry budget.

        Every attempt that reached the vendor is reported to the breaker (sick or healthy); an open breaker
        ends the loop at once. When any attempt may have been acted on by the vendor (no answer after the
        request went out), the final error says so (``outcome_unknown``) for the idempotency record.
        """
        delay = 0.2
        unknown = False
        self.breaker.note_call()
        for n in range(1, self.settings.max_attempts + 1):
            _SENT.set(False)
            try:
                result = await attempt()
            except CircuitOpen as exc:
                exc.outcome_unknown = exc.outcome_unknown or unknown
                raise
            except RealAuthError as exc:
                if _SENT.get():
                    self.breaker.record(failed=is_sickness(exc))
                unknown = unknown or exc.outcome_unknown
                exc.outcome_unknown = unknown
                wait = exc.retry_after if exc.retry_after is not None else delay * (0.5 + random.random())
                if not exc.is_retriable or n == self.settings.max_attempts or deadlines.remaining() < wait + 0.1:
                    raise
                if not self.breaker.allow_retry():
                    observe_retry(self, action, allowed=False)
                    raise
                observe_retry(self, action, allowed=True)
                log.info(
                    "vendor call retry",
                    extra={"provider": self.name, "action": action, "attempt": n, "error_code": exc.code},
                )
                await asyncio.sleep(wait)
                delay *= 2
            else:
                if _SENT.get():
                    self.breaker.record(failed=False)
                return result
        raise InternalError("unreachable retry state")  # pragma: no cover


#: Whether the current attempt got past the breaker and sent a request (set by ``send``, read by
#: ``with_retries``): an attempt that never reached the vendor says nothing about its health.
_SENT: contextvars.ContextVar[bool] = contextvars.ContextVar("realauth_vendor_sent", default=False)


def is_sickness(exc: RealAuthError) -> bool:
    """Errors that say the vendor is unwell (5xx, resets, timeouts, garbage), not that it said no."""
    return isinstance(exc, ProviderUnavailable | ProviderTimeout | ProviderError) and not isinstance(exc, CircuitOpen)


#: Hook set by the metrics module (keeps providers free of a metrics dependency).
_vendor_observers: list[Callable[[Provider, str, str, float], None]] = []


@dataclass(slots=True)
class VendorCalls:
    """The vendor calls one RPC made so far, for its ``rpc`` log line: how many, their total latency, the last
    one's outcome (docs/operations.md, "Logs")."""

    calls: int = 0
    seconds: float = 0.0
    outcome: str = ""


#: The running RPC's :class:`VendorCalls` (set by the RPC's observing interceptor; None outside an RPC: a landing,
#: a push, a webhook). A mutable object, so calls made in tasks the RPC starts count too.
RPC_VENDOR_CALLS: contextvars.ContextVar[VendorCalls | None] = contextvars.ContextVar(
    "realauth_rpc_vendor_calls", default=None
)


def observe_vendor_call(
    provider: Provider, action: str, outcome: str, seconds: float, *, accepted: bool = False
) -> None:
    """Metrics and the log for one vendor call.

    ``accepted``: the vendor answered 2xx and the adapter read a result from it. Inside an RPC such a call logs at
    DEBUG only, its facts being on the RPC's ``rpc`` line (one JSON record and write less per call); every other
    call (no answer, non-2xx, a vendor error code, one that is retried, or any call outside an RPC) logs its own
    INFO ``vendor call`` line, as operators alert on those.
    """
    for fn in _vendor_observers:
        fn(provider, action, outcome, seconds)
    level = logging.INFO
    tally = RPC_VENDOR_CALLS.get()
    if tally is not None:
        tally.calls += 1
        tally.seconds += seconds
        tally.outcome = outcome
        if accepted:
            level = logging.DEBUG  # its facts are on the RPC's own line
    if log.isEnabledFor(level):
        log.log(
            level,
            "vendor call",
            extra={
                "provider": provider.name,
                "kind": provider.kind,
                "action": action,
                "outcome": outcome,
                "latency_ms": round(seconds * 1000, 1),
            },
        )


def add_vendor_observer(fn: Callable[[Provider, str, str, float], None]) -> None:
    _vendor_observers.append(fn)


#: Breaker transitions (provider, from, to) and retry-budget decisions (provider, action, allowed).
_breaker_observers: list[Callable[[Provider, BreakerState, BreakerState], None]] = []
_retry_observers: list[Callable[[Provider, str, bool], None]] = []


def observe_breaker(provider: Provider, old: BreakerState, new: BreakerState, why: str) -> None:
    for fn in _breaker_observers:
        fn(provider, old, new)
    level = logging.WARNING if new is BreakerState.OPEN else logging.INFO
    log.log(
        level,
        "circuit breaker transition",
        extra={"provider": provider.name, "kind": provider.kind, "from": old.value, "to": new.value, "why": why},
    )


def add_breaker_observer(fn: Callable[[Provider, BreakerState, BreakerState], None]) -> None:
    _breaker_observers.append(fn)


def observe_retry(provider: Provider, action: str, *, allowed: bool) -> None:
    for fn in _retry_observers:
        fn(provider, action, allowed)
    if not allowed:
        log.info("vendor retry refused by the retry budget", extra={"provider": provider.name, "action": action})


def add_retry_observer(fn: Callable[[Provider, str, bool], None]) -> None:
    _retry_observers.append(fn)


def json_value(response: VendorResponse) -> Any:
    """The decoded JSON body, or None when the body is not JSON (for an :meth:`Provider.envelope` hook)."""
    try:
        return response.json()
    except ValueError:
        return None


def json_body(response: VendorResponse, *, provider: str, action: str) -> dict[str, Any]:
    """Parse a vendor JSON object body; anything else is a ProviderError (retriable)."""
    try:
        data = response.json()
    except ValueError:
        raise ProviderError(
            f"{provider}: {action} answered HTTP {response.status_code} with a body that is not JSON",
            provider=provider,
        ) from None
    if not isinstance(data, dict):
        raise ProviderError(f"{provider}: {action} answered with a non-object JSON body", provider=provider)
    return data
