"""Callers' URLs: one parser and one normal form, for validating at create and for building the landing redirect.

``CreateAuthSession`` stores :func:`normalize_callback_url`'s output, and the landing appends its parameters to that
string with :func:`with_query` (which never re-parses it) and sends it as is (:func:`location`). The normal form is
printable ASCII that aiohttp/yarl and browsers' (WHATWG) parsers read as the same scheme, host and port, so what was
accepted at create is exactly where the browser is sent. Everything with more than one reading (userinfo, a
backslash, percent signs in the host, numeric hosts that browsers read as IPv4, dot segments) is refused rather than
guessed at.

Neutral: the service and the vendor emulators both import this module; it imports nothing of realauth but
:mod:`.text` and :mod:`.errors`. It also names realauth's own landing and push paths.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import urlencode, urlsplit

import idna
from yarl import URL

from .errors import InternalError
from .text import unsafe_char

MAX_URL = 2048
#: RFC 3986 unreserved characters: a ``%XX`` escape of one is equivalent to the character (§6.2.2.2), so decoded.
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
#: Printable ASCII left as is in a path or query (sub-delims, ':', '@', '/', '?'); the rest is percent-encoded.
_KEEP = UNRESERVED | frozenset("!$&'()*+,;=:@/?")
_HEX = frozenset("0123456789abcdefABCDEF")
_PORT = re.compile(r"[0-9]{1,5}")
_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
DEFAULT_PORTS = {"http": 80, "https": 443}


class URLRejected(ValueError):
    """A URL that is refused; ``reason`` completes "callback_url …" and never repeats the URL."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: How many distinct accepted URLs, and host names, keep their normal form in memory (least recently used go first).
#: Keyed by the exact string given, so a hit returns what the full check returned for that same string; refusals
#: are never kept (each is checked again), so hostile input can only cycle the entries, never grow them.
CACHE_URLS = 512
CACHE_HOSTS = 256


def normalize_callback_url(value: str) -> str:
    """The exact ASCII string the landing redirects to, or :class:`URLRejected` saying why there is none.

    Idempotent: the normal form of a normal form is itself. Callers send the same few callback URLs again and again,
    so accepted ones are remembered (:data:`CACHE_URLS`); the answer is the same as :func:`_normalize`'s.
    """
    if type(value) is not str:  # a str subclass could compare equal to a cached key and differ otherwise
        return _normalize(value)
    return _normalize_cached(value)


def _normalize(value: str) -> str:
    if not value:
        raise URLRejected("is required")
    if len(value) > MAX_URL:
        raise URLRejected(f"is longer than {MAX_URL} characters")
    bad = unsafe_char(value, allow_space=False)
    if bad is not None:
        raise URLRejected(bad)
    if "\\" in value:
        raise URLRejected("must not contain a backslash (browsers read it as '/')")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise URLRejected("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not value[len(scheme) + 1 :].startswith("//") or not parts.netloc:
        raise URLRejected("must be an absolute http:// or https:// URL with a host")
    if "#" in value:
        raise URLRejected("must not have a #fragment (realauth adds session_id and state to the query)")
    if "@" in parts.netloc:
        raise URLRejected("must not contain a user name or password (userinfo before '@')")
    host, port = _split_authority(parts.netloc, scheme)
    path = _encode_component(parts.path, "path") or "/"
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise URLRejected("must not contain '.' or '..' path segments")
    query = _encode_component(parts.query, "query")
    out = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")
    if len(out) > MAX_URL:
        raise URLRejected(f"is longer than {MAX_URL} characters once percent-encoded")
    return out


_normalize_cached = functools.lru_cache(maxsize=CACHE_URLS)(_normalize)


def _split_authority(netloc: str, scheme: str) -> tuple[str, str]:
    """(normal host, ``:port`` or ``""``) of an authority without userinfo."""
    if netloc.startswith("["):
        literal, sep, rest = netloc[1:].partition("]")
        if not sep:
            raise URLRejected("has an unclosed '[' in its host")
        host = _ipv6(literal)
    else:
        name, colon, port_text = netloc.partition(":")
        rest = colon + port_text
        host = _hostname(name)
    if not rest:
        return host, ""
    if not rest.startswith(":"):
        raise URLRejected("has characters after its host that are not a :port")
    digits = rest[1:]
    if not digits:
        return host, ""
    if not _PORT.fullmatch(digits):
        raise URLRejected("has a port that is not a number from 1 to 65535")
    port = int(digits)
    if not 1 <= port <= 65535:
        raise URLRejected("has a port that is not a number from 1 to 65535")
    return host, "" if port == DEFAULT_PORTS[scheme] else f":{port}"


def _ipv6(literal: str) -> str:
    if "%" in literal:
        raise URLRejected("must not name an IPv6 zone (a '%' in the host)")
    try:
        return f"[{ipaddress.IPv6Address(literal).compressed}]"
    except ValueError:
        raise URLRejected("has a bracketed host that is not an IPv6 address") from None


@functools.lru_cache(maxsize=CACHE_HOSTS)
def _hostname(name: str) -> str:
    """A DNS name (IDNA-encoded to ASCII, lower case) or a dotted-quad IPv4 address.

    Remembered per exact name (:data:`CACHE_HOSTS`): URLs that differ in path or query mostly share a host, and the
    IDNA (UTS #46) pass is most of a URL's check. Refused names raise and are not remembered.
    """
    if not name:
        raise URLRejected("must name a host")
    if "%" in name:
        raise URLRejected("must not contain '%' in its host")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except (UnicodeError, ValueError):
        raise URLRejected("has a host that is not a valid (IDNA-encodable) domain name or IP address") from None
    labels = ascii_name.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Browsers read a host whose last label is a number as IPv4 ("2130706433", "0x7f.1", "127.1").
        try:
            address = ipaddress.IPv4Address(ascii_name)
        except ValueError:
            raise URLRejected("has a numeric host that is not a dotted-quad IPv4 address") from None
        return str(address)
    if len(ascii_name.removesuffix(".")) > 253 or not all(_LDH_LABEL.fullmatch(label) for label in labels):
        raise URLRejected("has a host that is not a valid (IDNA-encodable) domain name or IP address")
    return ascii_name


#: A path or query made only of characters kept as they are (no '%', nothing to encode): its own encoding.
_ALL_KEPT = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*")


def _encode_component(raw: str, what: str) -> str:
    """Percent-encode a path or query the one way (UTF-8, upper-case hex, unreserved escapes decoded)."""
    if _ALL_KEPT.fullmatch(raw):
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                raise URLRejected(f"has a '%' in its {what} that is not followed by two hex digits")
            decoded = chr(int(pair, 16))
            out.append(decoded if decoded in UNRESERVED else "%" + pair.upper())
            i += 3
            continue
        if c in _KEEP:
            out.append(c)
        else:
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8")))
        i += 1
    return "".join(out)


def with_query(url: str, params: dict[str, str]) -> str:
    """Append params to a URL's query (which it may already have), before any fragment; never re-parses the URL.

    Used on normal forms (the landing) and on URLs the emulators built themselves.
    """
    base, hash_mark, fragment = url.partition("#")
    _, question_mark, query = base.partition("?")
    sep = "?" if not question_mark else ("" if query == "" or query.endswith("&") else "&")
    return f"{base}{sep}{urlencode(params)}{hash_mark}{fragment}"


def location(url: str) -> URL:
    """The landing's redirect target: exactly ``url`` (a normal form with params), not re-encoded by yarl."""
    return URL(url, encoded=True)


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host and no white space: what the vendors accept as a callback."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


#: realauth's HTTP paths handed to vendors: the browser landing and the server-to-server push. Both end in
#: ``<session_id>/<signature>`` with the same signature, so an adapter derives one from the other.
LANDING_PATH = "/v1/callback/"
PUSH_PATH = "/v1/push/"


def push_url_for(landing_url: str) -> str:
    """The push URL of the session whose landing URL this is (same public URL, session and signature)."""
    head, sep, tail = landing_url.rpartition(LANDING_PATH)
    if not sep:
        raise InternalError("the landing URL has no landing path; cannot derive the push URL")
    return head + PUSH_PATH + tail
