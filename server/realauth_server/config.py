"""Configuration: defaults, a TOML file, ``REALAUTH_…`` environment variables, then command-line flags
(docs/configuration.md), each overriding the one before.

With no ``[providers.*]`` table at all realauth runs in sandbox mode: one instance of every kind,
each pointed at its built-in emulator on realauth's own HTTP side.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config_env import EnvConfigError, apply_env, name_origin
from .credentials import TenantAccess
from .logs import LEVELS as LOG_LEVELS
from .providers.base import DEFAULT_MAX_CONNECTIONS, DEFAULT_PROVIDER_IN_FLIGHT, ProviderSettings
from .providers.breaker import BreakerSettings
from .secret import Secret, resolve_secret
from .store.retention import DAY, RESULT_RETENTION
from .vendors.registry import KINDS
from .webhooks import EVENT_TYPES, WebhookEndpoint, check_webhook_url, endpoint_id

MAX_RETENTION = 366 * DAY
#: A longer header timeout would let a slow-loris client hold a connection for minutes.
MAX_HEADER_TIMEOUT = 60.0

#: ``[providers.NAME]`` keys for the circuit breaker and the retry budget → BreakerSettings field, and whether the
#: value is a count (int) or a number of seconds / a ratio (float). Documented in docs/configuration.md.
BREAKER_KEYS: dict[str, tuple[str, type]] = {
    "breaker_window_seconds": ("window", float),
    "breaker_min_calls": ("min_calls", int),
    "breaker_failure_ratio": ("failure_ratio", float),
    "breaker_open_seconds": ("open_seconds", float),
    "retry_budget_ratio": ("retry_ratio", float),
    "retry_budget_min": ("retry_min", int),
}

COMMON_PROVIDER_KEYS = {
    "kind",
    "base_url",
    "sandbox",
    "exchange_window_seconds",
    "max_attempts",
    "default",
    *BREAKER_KEYS,
    "max_connections",
    "max_in_flight",
}
#: Upper bound of every count limit (connections, in-flight calls, watches, requests per second).
MAX_BOUND = 1_000_000


@dataclass
class WebhookSettings:
    """One ``[[tenants.NAME.webhooks]]`` entry: where a tenant's session events are POSTed (docs/webhooks.md)."""

    id: str
    url: str
    secret: Secret
    events: list[str] = field(default_factory=lambda: list(EVENT_TYPES))
    allow_private: bool = False


@dataclass
class TenantSettings:
    """A caller: its API keys, the mTLS client-certificate names that identify it, and what it may use."""

    name: str
    keys: list[Secret] = field(default_factory=list)
    client_cert_names: list[str] = field(default_factory=list)
    providers: list[str] | None = None  # None: every configured provider
    credentials: dict[str, dict[str, Secret]] = field(default_factory=dict)  # provider → key → secret
    #: Routed creates (no ``provider``) try these in order, failing over when one is unavailable.
    provider_order: list[str] = field(default_factory=list)
    #: Share of routed creates each provider gets first (the rest of the order stays the failover order).
    provider_weights: dict[str, float] = field(default_factory=dict)
    rate_limit: int | None = None  # requests per second; None: server.tenant_rate_limit; 0: unlimited
    max_watches: int | None = None  # open watches; None: server.max_watches_per_tenant
    webhooks: list[WebhookSettings] = field(default_factory=list)

    def webhook_endpoints(self, sandbox: bool) -> list[WebhookEndpoint]:
        return [
            WebhookEndpoint(self.name, w.id, w.url, w.secret, frozenset(w.events), w.allow_private, sandbox)
            for w in self.webhooks
        ]

    @property
    def access(self) -> TenantAccess:
        allowed = frozenset(self.providers) if self.providers is not None else None
        return TenantAccess(
            self.credentials or None, allowed, tuple(self.provider_order), tuple(self.provider_weights.items())
        )


@dataclass
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    require_client_cert: bool = False


@dataclass
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    #: HTTP listen address; None follows ``host``, so ``--host 127.0.0.1`` keeps both sides on loopback.
    http_host: str | None = None
    http_port: int = 8080
    public_url: str = ""
    store: str = "sqlite:///var/realauth.db"
    region: str = "local"
    shutdown_grace: float = 10.0
    rpc_cap_seconds: float = 30.0
    #: How long a session is kept after its last usable moment (store/retention.py; docs/deployment.md).
    retention_seconds: float = RESULT_RETENTION
    #: An HTTP connection that has not sent a complete request head this long after opening (or after its
    #: previous response) is closed: slow-loris clients cannot hold connections (http/limits.py).
    http_header_timeout_seconds: float = 5.0

    #: Admission and caps (docs/reliability.md): unary realauth.v1 calls in progress in this process, open watches
    #: (in all, and per tenant), how long one watch may stay open, requests per second per tenant (0: no limit),
    #: and how often the store is pinged for the readiness status.
    max_in_flight: int = 8000
    max_watches: int = 10000
    max_watches_per_tenant: int = 1000
    watch_cap_seconds: float = 300.0
    tenant_rate_limit: int = 0
    readiness_interval_seconds: float = 2.0
    #: A port serving only grpc.health.v1 from its own threads (None: health is on the main port only).
    health_port: int | None = None
    log_level: str = "INFO"
    log_format: str = "auto"
    #: OpenTelemetry tracing (needs the ``otel`` extra); ``REALAUTH_OTEL`` and ``OTEL_SDK_DISABLED`` override it.
    otel: bool = False
    landing_secret: Secret | None = None
    providers: list[ProviderSettings] = field(default_factory=list)
    tenants: list[TenantSettings] = field(default_factory=list)
    tls: TlsSettings | None = None
    sandbox: bool = True
    #: The embedded emulators' control endpoints (``/sandbox/<kind>/_emulator/…``: faults, stats, forced codes).
    #: None: on exactly when every configured provider is a sandbox one. Never allowed next to a real provider.
    sandbox_admin: bool | None = None
    #: HTTP/2 keepalive: the server pings an idle connection this often and drops it when no answer comes within
    #: the timeout (dead peers behind NAT or a load balancer); clients may ping no more often than the interval.
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    keepalive_min_ping_interval_seconds: float = 10.0
    #: A connection older than this gets GOAWAY (0: never), so long-lived HTTP/2 connections spread over new
    #: replicas; in-flight calls then get the grace (None: ``rpc_cap_seconds``, the longest a call can run).
    max_connection_age_seconds: float = 300.0
    max_connection_age_grace_seconds: float | None = None
    config_file: Path | None = None

    @property
    def effective_http_host(self) -> str:
        return self.host if self.http_host is None else self.http_host

    @property
    def serves_real_providers(self) -> bool:
        return any(not p.sandbox for p in self.providers)

    @property
    def sandbox_admin_enabled(self) -> bool:
        """Whether the emulators' control endpoints are mounted; see :func:`check_sandbox_admin`."""
        if self.sandbox_admin is None:
            return not self.serves_real_providers
        return self.sandbox_admin

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.http_port}").rstrip("/")

    @property
    def emulator_url(self) -> str:
        return f"{self.effective_public_url}/sandbox"

    def with_http_port(self, port: int) -> Settings:
        """The settings once the HTTP socket is bound. With ``http_port = 0`` the URLs derived from the port (the
        default public URL, the sandbox providers' emulator URLs) must name the port the kernel picked."""
        if port == self.http_port:
            return self
        bound = replace(self, http_port=port)
        if not self.public_url:
            bound.providers = [_repoint(p, self.emulator_url, bound.emulator_url) for p in self.providers]
        return bound

    def provider(self, name: str) -> ProviderSettings | None:
        return next((p for p in self.providers if p.name == name), None)

    @property
    def effective_max_connection_age_grace(self) -> float:
        grace = self.max_connection_age_grace_seconds
        return self.rpc_cap_seconds if grace is None else grace

    def file_secrets(self) -> list[Secret]:
        """The ``file:`` secrets SIGHUP re-reads: tenant keys and credentials, provider credentials resolved so
        far. Not ``landing_secret``: the service holds its bytes, and changing it would void every landing URL
        handed out before the change."""
        found: list[Secret] = []
        for t in self.tenants:
            found += t.keys
            for keys in t.credentials.values():
                found += keys.values()
        for p in self.providers:
            found += p.resolved_secrets().values()
        unique = {id(x): x for x in found}
        return [x for x in unique.values() if x.reloadable]


class ConfigError(ValueError):
    """A configuration problem, reported at start-up with the offending key named."""


def _get(table: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    value = table[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key} has the wrong type ({type(value).__name__})")
    return value


def load_settings(
    config_file: str | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Read the TOML file (if any), overlay the ``REALAUTH_…`` variables of ``environ`` (the CLI passes
    ``os.environ``; None: no overlay), then apply non-None CLI overrides."""
    origins: dict[str, str] = {}
    try:
        return _load_settings(config_file, environ, overrides, origins)
    except ConfigError as exc:
        flags = {f"server.{k}" for k, v in overrides.items() if v is not None}  # a flag beat the variable
        raise ConfigError(name_origin(str(exc), {k: v for k, v in origins.items() if k not in flags})) from None


def _load_settings(
    config_file: str | None, environ: Mapping[str, str] | None, overrides: dict[str, Any], origins: dict[str, str]
) -> Settings:
    s = Settings()
    data: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config {path}: {exc}") from None
        s.config_file = path
    if environ is not None:
        try:
            data = apply_env(data, environ, origins)
        except EnvConfigError as exc:
            raise ConfigError(str(exc)) from None
    unknown = set(data) - {"server", "providers", "tenants", "tls"}
    if unknown:
        raise ConfigError(f"unknown configuration tables: {sorted(unknown)}")
    server = data.get("server", {})
    fields = {
        "host": str,
        "port": int,
        "http_host": str,
        "http_port": int,
        "public_url": str,
        "store": str,
        "region": str,
        "shutdown_grace": float,
        "rpc_cap_seconds": float,
        "retention_seconds": float,
        "http_header_timeout_seconds": float,
        "max_in_flight": int,
        "max_watches": int,
        "max_watches_per_tenant": int,
        "watch_cap_seconds": float,
        "tenant_rate_limit": int,
        "readiness_interval_seconds": float,
        "health_port": int,
        "log_level": str,
        "log_format": str,
        "sandbox_admin": bool,
        "keepalive_time_seconds": float,
        "keepalive_timeout_seconds": float,
        "keepalive_min_ping_interval_seconds": float,
        "max_connection_age_seconds": float,
        "max_connection_age_grace_seconds": float,
        "otel": bool,
    }
    for key in server:
        if key == "landing_secret":
            continue
        if key not in fields:
            raise ConfigError(f"unknown key server.{key}")
        setattr(s, key, _get(server, key, fields[key], "server"))
    if "landing_secret" in server:
        try:
            s.landing_secret = resolve_secret(_get(server, "landing_secret", str, "server"))
        except ValueError as exc:
            raise ConfigError(f"server.landing_secret: {exc}") from None
    for key, value in overrides.items():
        if value is not None:
            setattr(s, key, value)
    if s.log_format not in ("auto", "json", "text"):
        raise ConfigError("server.log_format must be auto, json or text")
    if s.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"server.log_level must be one of {', '.join(LOG_LEVELS)}")
    if not 0 < s.retention_seconds <= MAX_RETENTION:
        raise ConfigError(f"server.retention_seconds must be in (0, {MAX_RETENTION:.0f}] (a year)")
    for key in ("host", "http_host"):
        value = getattr(s, key)
        if value is not None and (not value.strip() or value != value.strip()):
            raise ConfigError(f"server.{key} must be an address such as 127.0.0.1, 0.0.0.0 or ::")
    if not 0 < s.http_header_timeout_seconds <= MAX_HEADER_TIMEOUT:
        raise ConfigError(f"server.http_header_timeout_seconds must be in (0, {MAX_HEADER_TIMEOUT:.0f}]")
    for key in ("port", "http_port", "health_port"):
        if getattr(s, key) is not None and not 0 <= getattr(s, key) <= 65535:
            raise ConfigError(f"server.{key} must be in [0, 65535] (0 picks a free port)")
    for key in ("max_in_flight", "max_watches", "max_watches_per_tenant"):
        _check_count(getattr(s, key), f"server.{key}", 1)
    _check_count(s.tenant_rate_limit, "server.tenant_rate_limit", 0)
    for key in ("watch_cap_seconds", "readiness_interval_seconds"):
        if not 0 < getattr(s, key) <= DAY:
            raise ConfigError(f"server.{key} must be in (0, 86400] seconds")
    check_connection_options(s)

    providers = data.get("providers")
    if providers:
        s.sandbox = False
        s.providers = [_provider(name, table, s) for name, table in providers.items()]
    else:
        s.providers = [_provider(kind, {"kind": kind, "sandbox": True}, s) for kind in KINDS]
    defaults = [p for p in s.providers if p.is_default]
    if len(defaults) > 1:
        raise ConfigError("more than one provider has default = true")
    if not defaults and s.providers:
        s.providers[0].is_default = True
    check_sandbox_admin(s)
    tenants = data.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError("tenants must be a table of tables")
    s.tenants = [_tenant(name, table, s) for name, table in tenants.items()]
    if "tls" in data:
        s.tls = _tls(data["tls"], s.config_file)
    check_credentials(s)
    return s


#: gRPC takes these in whole milliseconds, as a C int.
_MAX_DURATION_SECONDS = 2**31 // 1000 - 1


def check_connection_options(s: Settings) -> None:
    """Keepalive and connection-age values gRPC can take (positive, or zero where zero means off)."""
    positive = ("keepalive_time_seconds", "keepalive_timeout_seconds", "keepalive_min_ping_interval_seconds")
    for key in (*positive, "max_connection_age_seconds", "max_connection_age_grace_seconds"):
        value = getattr(s, key)
        if value is None:
            continue
        low_ok = value > 0 if key in positive else value >= 0
        if not (low_ok and value <= _MAX_DURATION_SECONDS):
            low = "(0" if key in positive else "[0"
            raise ConfigError(f"server.{key} must be in {low}, {_MAX_DURATION_SECONDS}] seconds")


def check_credentials(s: Settings) -> None:
    """A real provider that cannot sign fails every call; refuse it at start-up instead.

    Each required key (``Provider.required_secrets``) must be configured on the provider, or else supplied by
    every tenant that may use it (``[tenants.T.credentials.P]``); without tenants the provider's own is the only
    one. A provider no tenant may use needs nothing.
    """
    for p in s.providers:
        if p.sandbox:
            continue
        missing = [k for k in KINDS[p.kind].required_secrets(p.extra) if p.extra.get(k) in (None, "")]
        if not missing:
            continue
        if not s.tenants:
            raise ConfigError(
                f"providers.{p.name}.{missing[0]} is required: a {p.kind} provider cannot sign without "
                f"{', '.join(missing)}"
            )
        for t in s.tenants:
            if t.providers is not None and p.name not in t.providers:
                continue
            own = t.credentials.get(p.name, {})
            for key in missing:
                if key not in own:
                    raise ConfigError(
                        f"providers.{p.name}.{key} is required: tenant {t.name!r} may use {p.name!r} and has no "
                        f"tenants.{t.name}.credentials.{p.name}.{key}"
                    )


def check_sandbox_admin(s: Settings) -> None:
    """The emulators' fault and stats endpoints take no credential: they may only exist on a server whose every
    provider is a sandbox one, where nothing real can be slowed, broken or observed through them."""
    if s.sandbox_admin and s.serves_real_providers:
        real = ", ".join(p.name for p in s.providers if not p.sandbox)
        raise ConfigError(
            "server.sandbox_admin (--sandbox-admin) cannot be enabled while real providers are configured "
            f"({real}): the emulator fault and stats endpoints take no credential"
        )


def _check_count(value: Any, where: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_BOUND:
        raise ConfigError(f"{where} must be an integer in [{low}, {MAX_BOUND}]")
    return value


def _secret(spec: Any, where: str) -> Secret:
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"{where} must be a non-empty string (env:NAME, file:/path or a literal)")
    try:
        return resolve_secret(spec)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _tenant(name: str, table: Any, s: Settings) -> TenantSettings:
    where = f"tenants.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    known = {"keys", "client_cert_names", "providers", "credentials", "provider_order", "provider_weights", "webhooks"}
    unknown = set(table) - known - {"rate_limit", "max_watches"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    t = TenantSettings(name=name)
    if "rate_limit" in table:
        t.rate_limit = _check_count(table["rate_limit"], f"{where}.rate_limit", 0)
    if "max_watches" in table:
        t.max_watches = _check_count(table["max_watches"], f"{where}.max_watches", 1)
    keys = table.get("keys", [])
    if not isinstance(keys, list):
        raise ConfigError(f"{where}.keys must be a list")
    t.keys = [_secret(k, f"{where}.keys[{i}]") for i, k in enumerate(keys)]
    names = table.get("client_cert_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}.client_cert_names must be a list of names")
    t.client_cert_names = list(names)
    if not t.keys and not t.client_cert_names:
        raise ConfigError(f"{where} needs keys or client_cert_names")
    configured = {p.name: p for p in s.providers}
    if "providers" in table:
        allowed = table["providers"]
        if not isinstance(allowed, list) or not all(isinstance(p, str) for p in allowed):
            raise ConfigError(f"{where}.providers must be a list of provider names")
        for p in allowed:
            if p not in configured:
                raise ConfigError(f"{where}.providers: unknown provider {p!r}")
        t.providers = list(allowed)
    if "provider_order" in table:
        order = table["provider_order"]
        if not isinstance(order, list) or not all(isinstance(p, str) for p in order):
            raise ConfigError(f"{where}.provider_order must be a list of provider names")
        for p in order:
            if p not in configured:
                raise ConfigError(f"{where}.provider_order: unknown provider {p!r}")
            if t.providers is not None and p not in t.providers:
                raise ConfigError(f"{where}.provider_order: {p!r} is not in {where}.providers")
        if len(set(order)) != len(order):
            raise ConfigError(f"{where}.provider_order names a provider twice")
        t.provider_order = list(order)
    if "provider_weights" in table:
        weights = table["provider_weights"]
        ww = f"{where}.provider_weights"
        if not isinstance(weights, dict) or not weights:
            raise ConfigError(f"{ww} must be a table of provider = weight")
        for p, w in weights.items():
            if p not in configured:
                raise ConfigError(f"{ww}: unknown provider {p!r}")
            if t.providers is not None and p not in t.providers:
                raise ConfigError(f"{ww}: {p!r} is not in {where}.providers")
            if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
                raise ConfigError(f"{ww}.{p} must be a number >= 0")
        if not any(weights.values()):
            raise ConfigError(f"{ww}: at least one weight must be above 0")
        if not t.provider_order:  # the weighted providers, in configuration order, are the failover order too
            t.provider_order = [p for p in configured if p in weights]
        t.provider_weights = {p: float(w) for p, w in weights.items()}
    creds = table.get("credentials", {})
    if not isinstance(creds, dict):
        raise ConfigError(f"{where}.credentials must be a table of provider tables")
    for provider, keys_table in creds.items():
        pw = f"{where}.credentials.{provider}"
        if provider not in configured:
            raise ConfigError(f"{pw}: unknown provider {provider!r}")
        if not isinstance(keys_table, dict):
            raise ConfigError(f"{pw} must be a table")
        allowed_keys = set(KINDS[configured[provider].kind].secret_keys)
        bad = set(keys_table) - allowed_keys
        if bad:
            raise ConfigError(f"{pw}: unknown keys {sorted(bad)}; this kind takes {sorted(allowed_keys)}")
        t.credentials[provider] = {k: _secret(v, f"{pw}.{k}") for k, v in keys_table.items()}
    hooks = table.get("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(f"{where}.webhooks must be an array of tables ([[{where}.webhooks]])")
    t.webhooks = [_webhook(hook, f"{where}.webhooks[{i}]", not s.serves_real_providers) for i, hook in enumerate(hooks)]
    ids = [w.id for w in t.webhooks]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}.webhooks: two endpoints have the same id (or the same url and no id)")
    return t


WEBHOOK_KEYS = {"id", "url", "secret", "events", "allow_private"}


def _webhook(table: Any, where: str, sandbox: bool) -> WebhookSettings:
    """A webhook endpoint; its URL is checked here (scheme, literal addresses) and again after DNS at delivery."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(table) - WEBHOOK_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(WEBHOOK_KEYS)}")
    if "url" not in table or not isinstance(table["url"], str):
        raise ConfigError(f"{where}.url is required (an https:// URL)")
    allow_private = table.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise ConfigError(f"{where}.allow_private must be true or false")
    try:
        url = check_webhook_url(table["url"], allow_private=allow_private, sandbox=sandbox)
    except ValueError as exc:
        raise ConfigError(f"{where}.url {exc}") from None
    if "secret" not in table:
        raise ConfigError(f"{where}.secret is required (env:NAME, file:/path or a literal; at least 16 characters)")
    secret = _secret(table["secret"], f"{where}.secret")
    if len(secret.reveal()) < 16:
        raise ConfigError(f"{where}.secret must be at least 16 characters")
    events = table.get("events", list(EVENT_TYPES))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ConfigError(f"{where}.events must be a non-empty list of event types: {', '.join(EVENT_TYPES)}")
    for e in events:
        if e not in EVENT_TYPES:
            raise ConfigError(f"{where}.events: unknown event type {e!r}; known: {', '.join(EVENT_TYPES)}")
    wid = table.get("id", endpoint_id(url))
    if not isinstance(wid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", wid):
        raise ConfigError(f"{where}.id must be 1-64 letters, digits, '-' or '_'")
    return WebhookSettings(
        id=wid, url=url, secret=secret, events=list(dict.fromkeys(events)), allow_private=allow_private
    )


def _tls(table: Any, config_file: Path | None) -> TlsSettings:
    if not isinstance(table, dict):
        raise ConfigError("tls must be a table")
    unknown = set(table) - {"cert_file", "key_file", "client_ca_file", "require_client_cert"}
    if unknown:
        raise ConfigError(f"tls: unknown keys {sorted(unknown)}")
    base = config_file.parent if config_file else Path.cwd()

    def path(key: str, required: bool) -> Path | None:
        value = table.get(key)
        if value is None:
            if required:
                raise ConfigError(f"tls.{key} is required")
            return None
        if not isinstance(value, str):
            raise ConfigError(f"tls.{key} must be a path")
        p = (base / value) if not Path(value).is_absolute() else Path(value)
        if not p.is_file():
            raise ConfigError(f"tls.{key}: no such file {p}")
        return p

    cert, key = path("cert_file", True), path("key_file", True)
    assert cert is not None and key is not None
    require = table.get("require_client_cert", False)
    if not isinstance(require, bool):
        raise ConfigError("tls.require_client_cert must be true or false")
    ca = path("client_ca_file", require)
    return TlsSettings(cert, key, ca, require)


def _repoint(p: ProviderSettings, old_url: str, new_url: str) -> ProviderSettings:
    """Sandbox defaults that were derived from ``old_url`` now derive from ``new_url``; explicit values stay."""
    if not p.sandbox:
        return p
    old = KINDS[p.kind].sandbox_settings(old_url)
    new = KINDS[p.kind].sandbox_settings(new_url)
    extra = {k: new[k] if k in old and v == old[k] else v for k, v in p.extra.items()}
    base_url = new["base_url"] if p.base_url == old.get("base_url") else p.base_url
    return replace(p, base_url=base_url, extra=extra)


def _provider(name: str, table: Any, s: Settings) -> ProviderSettings:
    where = f"providers.{name}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    kind = table.get("kind", name)
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    cls = KINDS[kind]
    sandbox = bool(table.get("sandbox", False))
    merged = dict(table)
    if sandbox:
        for key, value in cls.sandbox_settings(s.emulator_url).items():
            merged.setdefault(key, value)
    extra = {k: v for k, v in merged.items() if k not in COMMON_PROVIDER_KEYS}
    unknown = set(extra) - set(cls.config_keys) - {"api_key"} - {k for k in cls.sandbox_settings(s.emulator_url)}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    base_url = merged.get("base_url")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}.base_url must be an http(s) URL (or set sandbox = true)")
    window = merged.get("exchange_window_seconds", cls.default_exchange_window)
    if not isinstance(window, int | float) or isinstance(window, bool) or window <= 0:
        raise ConfigError(f"{where}.exchange_window_seconds must be a positive number")
    attempts = merged.get("max_attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        raise ConfigError(f"{where}.max_attempts must be an integer in [1, 10]")
    return ProviderSettings(
        breaker=_breaker(merged, where),
        max_connections=_check_count(
            merged.get("max_connections", DEFAULT_MAX_CONNECTIONS), f"{where}.max_connections", 1
        ),
        max_in_flight=_check_count(
            merged.get("max_in_flight", DEFAULT_PROVIDER_IN_FLIGHT), f"{where}.max_in_flight", 1
        ),
        name=name,
        kind=kind,
        base_url=base_url,
        sandbox=sandbox,
        exchange_window=float(window),
        max_attempts=attempts,
        is_default=bool(merged.get("default", False)),
        extra=extra,
    )


def _breaker(table: dict[str, Any], where: str) -> BreakerSettings:
    """The provider's circuit breaker and retry budget knobs (defaults in providers/breaker.py)."""
    values: dict[str, Any] = {}
    for key, (attr, typ) in BREAKER_KEYS.items():
        if key not in table:
            continue
        value = _get(table, key, typ, where)
        low_ok = key == "retry_budget_min" and value == 0  # ratio only: no floor
        if (value <= 0 and not low_ok) or (key == "breaker_failure_ratio" and value > 1):
            bound = "in (0, 1]" if key == "breaker_failure_ratio" else "positive"
            raise ConfigError(f"{where}.{key} must be {bound}")
        values[attr] = value
    return BreakerSettings(**values)
