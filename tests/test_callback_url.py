"""callback_url: what CreateAuthSession accepts is exactly what the landing redirects to (issue 8 §2).

Over real ports: the URLs that used to be accepted and then failed the landing with HTTP 500 are refused at create,
naming the field; valid IDN, IPv6-literal and port URLs land on their normal form. Offline: a bounded hypothesis
property that every accepted URL yields a Location header aiohttp/yarl build and read back unchanged.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import yarl
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from realauth.v1 import realauth_pb2 as pb
from realauth_server import errors as E
from realauth_server import urls as urls_module
from realauth_server.domain import AuthSession, SessionState
from realauth_server.service import caller_url, validate_short, validate_url
from realauth_server.urls import URLRejected, location, normalize_callback_url

from .conftest import ROOT, Harness
from .errors_util import decode

# --- refused at create, over real ports ------------------------------------------------------------------------

#: Each was accepted by the old validator and then made the landing fail (issue 8 §2), or is read differently by
#: a browser than by the validator.
REFUSED = [
    "https://x.example:99999/",  # port out of range
    "https://x.example:abc/",  # non-numeric port
    "https://x.example:0/",
    "https://a\\@b/",  # a browser goes to host "a"; urlsplit saw userinfo "a\"
    "https://x\u200b.example/",  # zero-width space in the host
    "https://x\uff0eexample%/",  # full-width dot and a percent sign in the host
    "https://x\uff0eexample/%zz",  # full-width dot and a bad escape in the path
    "https://user:pw@caller.example/done",  # userinfo
    "https://caller.example@evil.example/",
    "https://caller.example/done#frag",
    "https://2130706433/",  # a browser reads it as 127.0.0.1
    "https://0x7f.1/",
    "https://999.1.1.1/",
    "https://xn--zz.example/",  # not a valid A-label
    "https://a_b.example/",
    "https://-a.example/",
    "https://x..example/",
    "https://[fe80::1%25eth0]/",  # IPv6 zone
    "https://[::1]x/",
    "https://[v1.x]/",
    "https://caller.example/a/../admin",
    "https://caller.example/%2e%2e/admin",
    "https://caller.example/done\x85",  # C1 (NEL)
    "https://caller.example/\u202egnp.exe",  # bidi override
    "https://caller.example/a b",  # a space
    "https://caller.example/\u00a0",
    "https://caller.example/\ufeff",
    "https:caller.example/done",
    "https:///done",
    "ftp://caller.example/done",
]


async def test_unredirectable_callback_urls_are_refused_at_create(realauth: Harness) -> None:
    before = realauth.emulator("seedance").stats.requests
    for url in REFUSED:  # one server for all: each refusal is a cheap round trip
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await realauth.create(callback_url=url)
        d = decode(err.value)
        assert d.code == grpc.StatusCode.INVALID_ARGUMENT and d.reason == "InvalidParameter", (url, d)
        assert d.fields == ["callback_url"], (url, d)
        assert d.message.startswith("invalid callback_url: "), (url, d.message)
    assert realauth.emulator("seedance").stats.requests == before  # no vendor call


# --- accepted: the landing sends the browser to exactly the normal form, over real ports ---------------------------

ACCEPTED = [
    ("https://Bücher.Example:8443/zurück?q=ö&x=%2c", "https://xn--bcher-kva.example:8443/zur%C3%BCck?q=%C3%B6&x=%2C"),
    ("https://例え.テスト/完了", "https://xn--r8jz45g.xn--zckzah/%E5%AE%8C%E4%BA%86"),
    ("https://x\uff0eexample/done", "https://x.example/done"),  # UTS 46 maps the full-width dot, as browsers do
    ("https://[2001:DB8:0:0::1]:8443/cb", "https://[2001:db8::1]:8443/cb"),
    ("HTTP://Caller.Example:80/done?", "http://caller.example/done"),
    ("https://caller.example:443", "https://caller.example/"),
    ("http://127.0.0.1:9/cb?next=/a?b&c=%7e", "http://127.0.0.1:9/cb?next=/a?b&c=~"),
    ("https://caller.example/{id}|^`", "https://caller.example/%7Bid%7D%7C%5E%60"),
    ("https://caller.example/用户%201", "https://caller.example/%E7%94%A8%E6%88%B7%201"),
]


@pytest.mark.parametrize(("url", "normal"), ACCEPTED)
async def test_accepted_callback_url_lands_on_its_normal_form(realauth: Harness, url: str, normal: str) -> None:
    session = await realauth.create(callback_url=url)
    assert session.callback_url == normal  # stored and returned normalized
    done = await realauth.complete(session)
    assert done.status_code == 302, done.text
    sep = "&" if "?" in normal else "?"
    assert done.headers["location"] == f"{normal}{sep}session_id={session.session_id}&state=exchanged"
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.callback_url == normal


async def test_a_stored_unredirectable_url_gets_a_clear_page_not_a_crash(realauth: Harness) -> None:
    """A row stored before URLs were normalized: the result is recorded; the browser gets a page saying so."""
    session = await realauth.create()
    store = realauth.server.store
    stored = await store.get(session.session_id)
    assert stored is not None
    await store.update(stored.evolve(callback_url="https://x.example:99999/"))
    done = await realauth.complete(session)
    assert done.status_code == 500
    assert "address to return to is not valid" in done.text
    got = await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id=session.session_id))
    assert got.session.state == pb.AUTH_SESSION_STATE_EXCHANGED


# --- short string fields: C1, zero-width and other unsafe code points, over real ports ----------------------------

UNSAFE = ["\x85", "\x9f", "\x1b", "\x7f", "\u200b", "\u200d", "\u202e", "\u2066", "\ufeff", "\u00ad", "\u00a0",
          "\u3000", "\u2028", "\ue000", "\uffff", "\U0010fffe", "\U000e0041"]  # fmt: skip


@pytest.mark.parametrize("field", ["subject_id", "idempotency_key", "provider", "model", "locale"])
async def test_unsafe_code_points_in_short_fields_are_refused(realauth: Harness, field: str) -> None:
    value = {"provider": "seedance", "model": "doubao-seedance-2-0-260128", "locale": "en"}.get(field, "user-1")
    before = realauth.emulator("seedance").stats.requests
    for char in UNSAFE:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await realauth.create(**{field: value[:3] + char + value[3:]})
        d = decode(err.value)
        assert (d.code, d.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field]), (char, d)
        assert f"U+{ord(char):04X}" in d.message  # named in ASCII: the character itself may be invisible
    assert realauth.emulator("seedance").stats.requests == before


async def test_unsafe_code_points_in_session_id_and_token_are_refused(realauth: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.GetAuthSession(pb.GetAuthSessionRequest(session_id="ses_\u200b"))
    assert decode(err.value).fields == ["session_id"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await realauth.stub.ExchangeToken(pb.ExchangeTokenRequest(token="tok\x85en"))
    assert decode(err.value).fields == ["token"]


NOT_CHARACTERS = ["\ud800", "\udfff", "\ufdd0", "\ufffe", "\U0001ffff"]  # lone surrogates, noncharacters


@pytest.mark.parametrize("char", NOT_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_surrogates_and_noncharacters_are_refused(char: str) -> None:
    """Not expressible in a protobuf string (UTF-8), so checked on the function every caller goes through."""
    with pytest.raises(E.InvalidParameter) as err:
        validate_short("subject_id", f"a{char}b")
    assert err.value.field == "subject_id" and f"U+{ord(char):04X}" in str(err.value)
    with pytest.raises(E.InvalidParameter) as err:
        validate_url("callback_url", f"https://caller.example/{char}")
    assert err.value.field == "callback_url"


async def test_ordinary_text_in_short_fields_is_accepted(realauth: Harness) -> None:
    session = await realauth.create(subject_id="用户 1 (Zoë)", idempotency_key="order 42/é")
    assert session.subject_id == "用户 1 (Zoë)"


# --- the property: anything accepted yields a Location aiohttp/yarl build and read back unchanged -------------------

#: Characters a URL may carry once encoded, and tokens with more than one reading; UNSAFE_URL ones are always refused.
SAFE_URL = list("aZ09-._~!$&'()*+,;=:@/?%[]\"<>^`{|}\u00e9\u00df\u4e2d\uff0e\u3002\uff05\uff1a\u0661\u2168\U0001f600")
SAFE_URL += ["%2e", "%2E%2e", "..", ".", "%C3%A9", "%c3%a9", "%41", "%2F", "%zz", "%7", "%00", "%0A"]
UNSAFE_URL = [*"\\ #\t", "\u00a0", "\u0085", "\u200b", "\u202e", "\ufeff", "\ue000", "\uffff", "\uff0f"]


def _url(scheme: str, sep: str, user: str, host: str, port: str, path: str, query: str) -> str:
    return f"{scheme}{sep}{user}{host}{port}/{path}{query}"


def _urls(chars: st.SearchStrategy[str], *, hostile: bool) -> st.SearchStrategy[str]:
    """URLs built from parts; ``hostile`` adds the schemes, separators, userinfo and hosts that must be refused."""
    pieces = st.lists(chars, max_size=10).map("".join)
    good_labels = st.one_of(
        st.sampled_from(["caller", "example", "xn--bcher-kva", "B\u00fccher", "\u4f8b\u3048", "stra\u00dfe", "a-1"]),
        st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=8),
        st.text(alphabet="abc\u00e9\u00df\u4e2d\u2168\uff21", min_size=1, max_size=4),
    )
    bad_labels = st.sampled_from(["xn--zz", "a_b", "-a", "127", "0x7f", "", "a%41"]) | pieces
    labels = (good_labels | bad_labels) if hostile else good_labels
    dot = st.sampled_from([".", ".", "\uff0e", "\u3002"])
    hosts = st.one_of(
        st.tuples(st.lists(st.tuples(labels, dot).map("".join), max_size=3), labels).map(
            lambda t: "".join(t[0]) + t[1]
        ),
        st.sampled_from(["[::1]", "[2001:DB8::1]", "[::ffff:1.2.3.4]", "1.2.3.4", "127.0.0.1"]),
        st.integers(0, 2**36).map(lambda n: ".".join(str(n >> s & 0x1FF) for s in (0, 9, 18, 27))),
        st.sampled_from(["[fe80::1%25eth0]", "[v1.x]", "[::1", "[::1]x", "2130706433", "0x7f.1"] if hostile else [""]),
    )
    ports = st.one_of(
        st.sampled_from(["", ":", ":443", ":80", ":0080"]),
        st.integers(0 if hostile else 1, 100000 if hostile else 65535).map(lambda p: f":{p}"),
        st.sampled_from([":abc", ":\u0661\u0662", ": 80", ":8080:1", ":+80"] if hostile else [""]),
    )
    return st.builds(
        _url,
        st.sampled_from(["https", "http", "HTTPS", "hTTp"] + (["ftp", "javascript"] if hostile else [])),
        st.sampled_from(["://", ":/", ":", ":\\\\", "://\\"] if hostile else ["://"]),
        st.sampled_from(["", "", "", "user@", "u:p@", "a\\@", "@", "x%40y@"] if hostile else [""]),
        hosts,
        ports,
        pieces,
        st.one_of(st.just(""), pieces.map(lambda q: "?" + q)),
    )


safe_chars = st.sampled_from(SAFE_URL)
#: Mostly URLs that should be accepted (to exercise the normal form), and a share of hostile ones.
urls = _urls(safe_chars, hostile=False) | _urls(safe_chars | st.sampled_from(UNSAFE_URL), hostile=True)


def _landing_location(normal: str) -> tuple[str, str]:
    """Build the redirect exactly as the landing does: caller_url on a stored session, then HTTPFound(location())."""
    session = AuthSession(
        session_id="ses_0123456789abcdef",
        tenant="t",
        provider="seedance",
        provider_kind="seedance",
        state=SessionState.EXCHANGED,
        token="tok",
        verification_url="https://vendor.example/h5",
        callback_url=normal,
        create_time=0.0,
        expire_time=0.0,
        exchange_deadline=0.0,
        update_time=0.0,
    )
    target = caller_url(session)
    return target, web.HTTPFound(location(target)).headers["Location"]


def _check_accepted(value: str) -> None:
    try:
        normal = normalize_callback_url(value)
    except URLRejected:
        return  # refused at create: INVALID_ARGUMENT (any other exception fails the property)
    assert all("\x21" <= c <= "\x7e" for c in normal), normal  # printable ASCII: a header can carry it
    assert normalize_callback_url(normal) == normal  # one normal form: the landing's re-check is a no-op
    target, header = _landing_location(normal)
    assert header == target  # sent as stored
    # Both of yarl's readings (strict, as HTTPFound(str) would re-encode, and encoded) and urllib agree on where
    # the browser goes: no parser differential on scheme, host or port.
    strict, encoded, parts = yarl.URL(header), yarl.URL(header, encoded=True), urlsplit(header)
    assert strict.scheme == encoded.scheme == parts.scheme
    assert strict.raw_host == encoded.raw_host == parts.hostname
    assert strict.port == encoded.port == (parts.port or {"http": 80, "https": 443}[parts.scheme])
    assert strict.user is None and parts.username is None and not parts.fragment
    assert strict.query["session_id"] == "ses_0123456789abcdef" and strict.query["state"] == "exchanged"
    rebuilt = web.HTTPFound(header).headers["Location"]  # HTTPFound(str), re-encoding, accepts it too
    assert yarl.URL(rebuilt).raw_host == parts.hostname and yarl.URL(rebuilt).port == strict.port


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(urls)
@example("https://caller/??")  # found by this property: the appended parameters were glued to the query's last "?"
@example("https://caller/?a=1&")
def test_anything_accepted_yields_a_valid_location(value: str) -> None:
    _check_accepted(value)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40).map(lambda s: "https://" + s))
def test_arbitrary_text_after_the_scheme_never_crashes_the_validator(value: str) -> None:
    _check_accepted(value)


# --- the normal-form caches: the same answer as the full check, bounded, no refusals kept -----------------------


@contextlib.contextmanager
def _uncached() -> Iterator[None]:
    """normalize's full check with nothing remembered: the host cache and the plain-component shortcut off."""
    saved = urls_module._hostname, urls_module._ALL_KEPT
    urls_module._hostname = urls_module._hostname.__wrapped__  # type: ignore[assignment]
    urls_module._ALL_KEPT = re.compile(r"(?!)")  # matches nothing: every component goes through the encoding loop
    try:
        yield
    finally:
        urls_module._hostname, urls_module._ALL_KEPT = saved  # type: ignore[assignment]


def _outcome(value: str) -> tuple[str, str]:
    try:
        return "ok", normalize_callback_url(value)
    except URLRejected as exc:
        return "refused", exc.reason


def _reference(value: str) -> tuple[str, str]:
    with _uncached():
        try:
            return "ok", urls_module._normalize(value)
        except URLRejected as exc:
            return "refused", exc.reason


def test_cached_normal_forms_equal_the_full_check_for_the_known_cases() -> None:
    for value in [*REFUSED, *(url for url, _ in ACCEPTED), *(normal for _, normal in ACCEPTED)]:
        assert _outcome(value) == _outcome(value) == _reference(value), value  # the second call is a cache hit


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(urls, st.text(max_size=40).map(lambda s: "https://" + s)))
def test_cached_normal_forms_equal_the_full_check(value: str) -> None:
    assert _outcome(value) == _outcome(value) == _reference(value)


def test_the_normal_form_caches_are_bounded_and_keep_no_refusal() -> None:
    cached, hosts = urls_module._normalize_cached, urls_module._hostname
    cached.cache_clear()
    hosts.cache_clear()
    for i in range(urls_module.CACHE_URLS + 300):  # more distinct URLs and hosts than either cache holds
        assert normalize_callback_url(f"https://h{i}.example/p?o={i}") == f"https://h{i}.example/p?o={i}"
    assert cached.cache_info().currsize == cached.cache_info().maxsize == urls_module.CACHE_URLS
    assert hosts.cache_info().currsize == hosts.cache_info().maxsize == urls_module.CACHE_HOSTS
    cached.cache_clear()
    hosts.cache_clear()
    for i in range(100):  # a flood of distinct refused URLs (bad hosts, bad paths) leaves nothing behind
        for bad in (f"https://-h{i}.example/", f"https://h{i}.example/%zz", f"https://h{i}.example/a b"):
            with pytest.raises(URLRejected):
                normalize_callback_url(bad)
    assert cached.cache_info().currsize == 0
    assert hosts.cache_info().currsize == 100  # the valid hosts of the refused paths; the bad ones are not kept


# --- layering: the service and the layers below it never import the sandbox ------------------------------------


def test_layers_below_the_top_do_not_import_the_emulators() -> None:
    pkg = ROOT / "server" / "realauth_server"
    below = [pkg / "service.py", pkg / "urls.py", pkg / "text.py", pkg / "domain.py", pkg / "errors.py"]
    for sub in ("api", "interceptors", "providers", "store", "signing"):
        below += sorted((pkg / sub).glob("*.py"))
    offenders = [str(p.relative_to(pkg)) for p in below if _imports_emulators(p)]
    assert offenders == []


def _imports_emulators(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and "emulators" in (node.module or "").split("."):
            return True
        if isinstance(node, ast.Import) and any("emulators" in a.name.split(".") for a in node.names):
            return True
    return False


# --- the browser's reading: WHATWG URL (node's, as browsers parse) agrees on where an accepted URL goes -----------

WHATWG = """
const values = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = values.map((v) => {
  try {
    const u = new URL(v);
    return {protocol: u.protocol, hostname: u.hostname, port: u.port, user: u.username + u.password, href: u.href};
  } catch (e) {
    return null;
  }
});
process.stdout.write(JSON.stringify(out));
"""


def _whatwg(values: list[str]) -> list[dict[str, str] | None]:
    """How a browser's URL parser reads each value (one node process for the whole batch)."""
    done = subprocess.run(
        ["node", "-e", WHATWG], input=json.dumps(values), capture_output=True, text=True, timeout=60, check=True
    )
    result: list[dict[str, str] | None] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(shutil.which("node") is None, reason="node (a WHATWG URL parser) not on this machine")
def test_browsers_read_accepted_urls_and_their_landing_location_as_going_to_the_same_place() -> None:
    seen: list[str] = []

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(urls)
    def collect(value: str) -> None:
        seen.append(value)

    collect()
    values = seen + [url for url, _ in ACCEPTED] + REFUSED
    accepted = []
    for value in values:
        with contextlib.suppress(URLRejected):
            accepted.append((value, normalize_callback_url(value)))
    assert len(accepted) > 30  # the generator must exercise the normal form, not only refusals
    locations = [_landing_location(normal)[1] for _, normal in accepted]
    readings = _whatwg([v for v, _ in accepted] + [n for _, n in accepted] + locations)
    raw, normal, landing = (readings[i * len(accepted) : (i + 1) * len(accepted)] for i in range(3))
    for (value, form), r, n, loc in zip(accepted, raw, normal, landing, strict=True):
        parts = urlsplit(form)
        host = parts.hostname or ""
        where = (parts.scheme + ":", f"[{host}]" if ":" in host else host, str(parts.port or ""), "")
        assert n is not None and loc is not None, (value, form)  # a browser can follow it
        assert (n["protocol"], n["hostname"], n["port"], n["user"]) == where, (value, form, n)
        assert (loc["protocol"], loc["hostname"], loc["port"], loc["user"]) == where, (value, form, loc)
        # What the caller typed, read by a browser, goes to the same place as the normal form realauth redirects to.
        assert r is not None and (r["protocol"], r["hostname"], r["port"], r["user"]) == where, (value, form, r)
