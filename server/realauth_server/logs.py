"""Structured logging: one JSON object per line, with the record's ``extra`` fields.

No log level may carry a secret, a vendor token or a landing signature. realauth's own loggers (``realauth.*``) log
no payloads by design; the libraries under it (aiosqlite, aiohttp, grpc, redis, asyncio, ...) were not
written with that rule, so they get a defence in depth that does not depend on what each one prints:

1. a floor: a library record below WARNING never reaches the handler, whatever ``--log-level`` says (aiosqlite, for
   one, logs every SQL statement with its parameters at DEBUG);
2. a redacting filter on the handler: in every library record (message, arguments, extra fields) and in every
   traceback, quoted raw bytes, landing and push path signatures, query strings and every known secret value are
   replaced (aiohttp, for one, logs a malformed or over-long request line, landing URL and all, at ERROR).

Every record emitted inside a call (an RPC, a browser landing, a vendor push) carries that call's ``request_id``,
``trace_id``, ``tenant`` and ``provider`` (docs/operations.md, "Log fields"): the caller binds a context object
with :func:`bind_call`, the record factory below snapshots it into each record, and the formatters print it.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol

from .secret import remembered_count, remembered_values

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}

#: The per-call fields every record inside a call carries, in this order.
CALL_FIELDS = ("request_id", "trace_id", "tenant", "provider")


class CallFields(Protocol):
    """What a call's context exposes to logging (the RPC CallContext, or :class:`LogContext` on the HTTP side)."""

    request_id: str
    trace_id: str
    tenant: str
    provider: str


@dataclass
class LogContext:
    """The log fields of a call that is not an RPC (a browser landing, a vendor push)."""

    request_id: str
    trace_id: str = ""
    tenant: str = ""
    provider: str = ""


_BOUND: contextvars.ContextVar[CallFields | None] = contextvars.ContextVar("realauth_log_call", default=None)


def bind_call(fields: CallFields) -> contextvars.Token[CallFields | None]:
    """Records emitted from here on (in this task and the tasks it starts) carry ``fields``' current values."""
    return _BOUND.set(fields)


def unbind_call(token: contextvars.Token[CallFields | None]) -> None:
    _BOUND.reset(token)


def annotate(*, tenant: str = "", provider: str = "") -> None:
    """Name the call's tenant and provider once a lower layer knows them (a no-op outside a call)."""
    bound = _BOUND.get()
    if bound is None:
        return
    if tenant:
        bound.tenant = tenant
    if provider:
        bound.provider = provider


def bound_call() -> CallFields | None:
    return _BOUND.get()


_previous_factory = logging.getLogRecordFactory()


def _record_with_call(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Snapshot the bound call's fields into ``_call`` (a private name: ``extra`` may still set the same keys)."""
    record = _previous_factory(*args, **kwargs)
    bound = _BOUND.get()
    if bound is not None:
        record._call = tuple((name, getattr(bound, name, "")) for name in CALL_FIELDS)
    return record


if not getattr(_previous_factory, "_realauth", False):
    _record_with_call._realauth = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(_record_with_call)


#: A record's attribute names (its "shape") → its ``extra`` field names in order. Records come from a fixed set of
#: call sites, so there are few shapes; past the bound a shape is just computed each time.
_SHAPES: dict[tuple[str, ...], tuple[str, ...]] = {}
MAX_SHAPES = 256


def extra_keys(record: logging.LogRecord) -> tuple[str, ...]:
    """The names of the record's ``extra`` fields (not LogRecord's own, not private), in the order they were set."""
    shape = tuple(record.__dict__)
    keys = _SHAPES.get(shape)
    if keys is None:
        keys = tuple(k for k in shape if k not in _STD and not k.startswith("_"))
        if len(_SHAPES) < MAX_SHAPES:
            _SHAPES[shape] = keys
    return keys


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's call fields (the ones ``extra`` did not set) followed by its ``extra`` fields."""
    out: dict[str, Any] = {}
    fields = record.__dict__
    for name, value in getattr(record, "_call", ()):
        if name not in fields:
            out[name] = value
    for key in extra_keys(record):
        out[key] = fields[key]
    return out


#: (the whole second last formatted, its "YYYY-MM-DDTHH:MM:SS"): one tuple, replaced whole, so a formatter in another
#: thread (each handler has its own lock) reads a matching pair.
_second: tuple[float, str] = (-1.0, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ``; the seconds part is formatted once per second, not once per record."""
    global _second
    second = math.floor(record.created)  # what time.gmtime does with a float
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(record.msecs):03d}Z"


#: Records of these loggers (and their children) are realauth's own: they pass at the configured level.
OWN_LOGGER = "realauth"
#: Library records below this level are dropped, at any ``--log-level``.
LIBRARY_FLOOR = logging.WARNING
#: Library loggers set to the floor explicitly (every other one inherits it from the root logger).
LIBRARY_LOGGERS = (
    "aiohttp",
    "aiosqlite",
    "asyncio",
    "grpc",
    "h2",
    "hpack",
    # Not used by realauth itself (its vendor calls are aiohttp's): floored for a process that embeds the server next
    # to an httpx client, as the test suite does; a name with no importable library costs nothing here.
    "httpcore",
    "httpx",
    "redis",
    "urllib3",
)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

SIG_REDACTED = "<sig redacted>"
REDACTED = "<redacted>"

# `/v1/callback/<session>/<sig>` and `/v1/push/<session>/<sig>`, raw or percent-encoded (inside another URL): the
# session id stays (realauth logs it itself), the signature goes. A truncated signature (a cut-off request line)
# still matches.
_PATH_SIG = re.compile(r"(/v1/(?:callback|push)/[^/\s?#]+/)[^/\s?#]+")
_PATH_SIG_ENCODED = re.compile(r"(%2Fv1%2F(?:callback|push)%2F[^%\s?#&]+%2F)[^%\s?#&]+", re.IGNORECASE)
# A query string after a URL-ish character, up to the next whitespace: vendor tokens, Volcengine STS keys and Megvii
# biz tokens all travel in query strings. Quotes and backslashes do not stop it, so an escaped or quoted character in
# a bytes repr cannot shield the rest of the query.
_QUERY = re.compile(r"(?<=[\w/.\-~%])\?\S+")
# A quoted bytes literal (``b'...'``): how libraries quote raw wire data, e.g. aiohttp's bad-request errors quote the
# request line or an over-long header (a cookie, an Authorization header), aiosqlite its SQL parameters.
_BYTES = re.compile(r"""(?<![\w'"])(b)('|")(?:[^\\]|\\.)*?\2""")


def _forms(value: str | bytes) -> set[str]:
    """The ways a library might print a value: as is, or for bytes its repr, hex and base64 forms."""
    if isinstance(value, str):
        return {value}
    forms = {repr(value)[2:-1], value.hex(), value.hex().upper()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(value).decode()
        forms |= {text, text.rstrip("=")}
    with contextlib.suppress(UnicodeDecodeError):
        forms.add(value.decode())
    return forms


class Redactor(logging.Filter):
    """Drops library records under the floor and redacts raw bytes, queries, signatures and known secrets in the rest.

    realauth's own records keep their message and fields (only known secret values are replaced there, and their
    tracebacks, which quote library messages, get the full treatment).
    """

    def __init__(self) -> None:
        super().__init__()
        self._extra: set[str] = set()
        self._seen = -1
        self._known: re.Pattern[str] | None = None

    def add(self, value: str | bytes) -> None:
        """Redact this value (and, for bytes, its printed forms) wherever it appears in a log record."""
        self._extra |= {f for f in _forms(value) if len(f) >= 6}
        self._seen = -1

    def _known_pattern(self) -> re.Pattern[str] | None:
        count = remembered_count() + len(self._extra)
        if count != self._seen:
            values = sorted(remembered_values() | self._extra, key=len, reverse=True)
            self._known = re.compile("|".join(map(re.escape, values))) if values else None
            self._seen = count
        return self._known

    def scrub(self, text: str, *, library: bool = True) -> str:
        """``text`` with known secrets replaced, and for library text (and tracebacks) also quoted bytes, query
        strings and path signatures."""
        known = self._known_pattern()
        if known is not None:
            text = known.sub(REDACTED, text)
        if library:  # queries before paths: the path rule's replacement ends in ">", which the query rule skips
            text = _BYTES.sub(rf"\1\2{REDACTED}\2", text)
            text = _QUERY.sub(f"?{REDACTED}", text)
            text = _PATH_SIG.sub(rf"\1{SIG_REDACTED}", text)
            text = _PATH_SIG_ENCODED.sub(rf"\1{SIG_REDACTED}", text)
        return text

    def _own_untouched(self, record: logging.LogRecord) -> bool:
        """Whether the full pass below would leave this realauth record as it is (the common case, checked cheaply).

        For a realauth record that pass only replaces known secret values in its message and string fields, and
        turns non-string field values into strings. So when every field is a string or a number, there is no
        traceback or stack, and one search of the known-secret pattern over the message and the fields joined
        finds nothing, nothing would change. (A match there that spans two joined values is only a false alarm:
        the full pass then runs and decides.)
        """
        if record.exc_info or record.exc_text or record.stack_info:
            return False
        try:
            texts = [record.getMessage()]
        except Exception:
            return False
        fields = record.__dict__
        for key in extra_keys(record):
            value = fields[key]
            if isinstance(value, str):
                texts.append(value)
            elif not isinstance(value, int | float | bool | None):
                return False
        known = self._known_pattern()
        return known is None or known.search("\0".join(texts)) is None

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == OWN_LOGGER or record.name.startswith(OWN_LOGGER + ".")
        if not own and record.levelno < LIBRARY_FLOOR:
            return False
        if own and self._own_untouched(record):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a library's bad format string: keep what can be shown safely
            message = f"{record.msg!s} (unformattable arguments)"
        scrubbed = self.scrub(message, library=not own)
        if not own or scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _STD or key.startswith("_") or isinstance(value, int | float | bool | None):
                continue
            text = value if isinstance(value, str) else str(value)
            cleaned = self.scrub(text, library=not own)
            if cleaned != text or not isinstance(value, str):
                setattr(record, key, cleaned)
        return True


#: The process's redactor: setup_logging puts it on the handler; server start-up adds the landing key to it.
REDACTOR = Redactor()


def redact_value(value: str | bytes) -> None:
    """Never log this value (a key realauth generated itself, such as the landing secret kept in the store)."""
    REDACTOR.add(value)


#: What ``json.dumps(out, ensure_ascii=False)`` builds on every call, built once.
_JSON = json.JSONEncoder(ensure_ascii=False)
#: Field values JSON takes as they are; anything else is written as its ``str()``.
_PLAIN = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # record_fields(record), inlined: one pass instead of building a dict to copy from.
        fields = record.__dict__
        for key, value in getattr(record, "_call", ()):
            if key not in fields:
                out[key] = value if isinstance(value, _PLAIN) else str(value)
        for key in extra_keys(record):
            value = fields[key]
            out[key] = value if isinstance(value, _PLAIN) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["error_type"] = record.exc_info[0].__name__
            # The redacting filter leaves the scrubbed traceback in exc_text: use it, never re-render exc_info.
            out["traceback"] = record.exc_text or self.formatException(record.exc_info)
        return _JSON.encode(out)


class TextFormatter(logging.Formatter):
    """For a terminal: UTC timestamp, level, logger, message, then ``key=value`` fields (empty ones left out)."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record_fields(record).items() if v != "")
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


class WorkerField(logging.Filter):
    """Stamps ``worker`` (1..N) on every record of a ``--workers N`` worker: N processes write to one stream."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


def setup_logging(level: str = "INFO", fmt: str = "auto", worker: int | None = None) -> None:
    """``auto``: readable text on a terminal (``make serve``), JSON lines otherwise (containers, files).

    ``level`` applies to realauth's own loggers; library loggers never go below :data:`LIBRARY_FLOOR`.
    ``worker``: this process is that worker of ``--workers N``; every line says so.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}")
    own_level = logging.getLevelNamesMapping()[name]
    library_level = max(own_level, LIBRARY_FLOOR)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    # No formatter here prints the caller's file and line, the thread or the process: skip computing them for every
    # record (the logging HOWTO's "Optimization" section; ~3 records per CreateAuthSession).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(REDACTOR)
    if worker is not None:
        handler.addFilter(WorkerField(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(library_level)
    logging.getLogger(OWN_LOGGER).setLevel(own_level)
    for library in LIBRARY_LOGGERS:
        logging.getLogger(library).setLevel(library_level)
    logging.getLogger(f"{OWN_LOGGER}.logs").debug(
        "debug logging on for realauth's own loggers; library loggers stay at WARNING or above",
        extra={"library_floor": logging.getLevelName(library_level)},
    )
