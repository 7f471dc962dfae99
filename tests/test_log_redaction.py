"""No secret, vendor token or landing signature in the log at any level, library loggers included.

A real `realauth serve` at `--log-level DEBUG` on SQLite runs every vendor's sandbox flow; malformed and over-long
request lines to a real landing URL make aiohttp log its bad-request errors. Neither log may carry what the flow
handled. The values also join the suite's last leak check (tests/test_zz_no_secret_leaks.py).
"""

from __future__ import annotations

import base64
import logging
import socket
import sqlite3
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import grpc
import httpx
import pytest

from realauth.v1 import realauth_pb2 as pb
from realauth.v1 import realauth_pb2_grpc as pb_grpc
from realauth_server.config import ConfigError, load_settings
from realauth_server.logs import Redactor
from realauth_server.secret import Secret

from .conftest import NEVER_LOGGED
from .proc_util import start_serve

KINDS = ("seedance", "volcengine", "megvii", "tencent")


def _sensitive_values_of(session: pb.AuthSession, landing_url: str) -> dict[str, str]:
    """What one session's flow handled that no log may show: its token, subject id, every query value of its
    verification URL (Volcengine STS keys, Megvii and Tencent tokens, Seedance configId) and of its landing URL
    (the vendor's result, Megvii's sign), and the landing signature."""
    values = {"token": session.token, "subject_id": session.subject_id}
    for name, url in (("verification_url", session.verification_url), ("landing", landing_url)):
        for key, value in parse_qsl(urlsplit(url).query):
            if any(c.isdigit() for c in value) and value != session.session_id:  # not words like "real_time"
                values[f"{session.provider_kind} {name} {key}"] = value
    values[f"{session.provider_kind} landing signature"] = urlsplit(landing_url).path.rsplit("/", 1)[1]
    return {what: value for what, value in values.items() if len(value) >= 8}  # an unset subject id is ""


def _key_forms(key: bytes) -> dict[str, str]:
    """The landing secret as a library would print it: inside a bytes repr, hex, base64."""
    return {
        "landing secret repr": repr(key)[2:-1],
        "landing secret hex": key.hex(),
        "landing secret base64": base64.b64encode(key).decode().rstrip("="),
        "landing secret base64url": base64.urlsafe_b64encode(key).decode().rstrip("="),
    }


def _vendor_redirect(http: httpx.Client, session: pb.AuthSession) -> str:
    """Press Pass on the sandbox vendor page: the landing URL (with its signature) the vendor sends the browser to."""
    sep = "&" if "?" in session.verification_url else "?"
    vendor = http.get(f"{session.verification_url}{sep}outcome=pass")
    assert vendor.status_code == 302, vendor.text
    return str(vendor.headers["location"])


@pytest.mark.slow
def test_debug_log_of_every_vendor_flow_has_no_token_key_subject_or_signature(tmp_path: Path) -> None:
    db = tmp_path / "state" / "realauth.db"
    srv = start_serve(tmp_path, "--log-level", "DEBUG", "--store", f"sqlite:///{db}")
    sensitive: dict[str, str] = {}
    try:
        with grpc.insecure_channel(srv.target) as ch, httpx.Client(timeout=30) as http:
            stub = pb_grpc.RealAuthServiceStub(ch)
            for kind in KINDS:
                session = stub.CreateAuthSession(
                    pb.CreateAuthSessionRequest(
                        provider=kind,
                        callback_url="https://caller.example/done",
                        subject_id=f"subject-{kind}-{uuid.uuid4().hex[:12]}",
                    )
                ).session
                landing_url = _vendor_redirect(http, session)
                landed = http.get(landing_url)
                assert landed.status_code == 302 and landed.headers["location"].startswith("https://caller.example/")
                exchanged = stub.ExchangeToken(pb.ExchangeTokenRequest(token=session.token))
                assert exchanged.result.passed, kind
                sensitive |= _sensitive_values_of(session, landing_url)
    finally:
        assert srv.stop() == 0
    with sqlite3.connect(db) as conn:
        (key,) = conn.execute("SELECT value FROM secrets WHERE name = 'landing'").fetchone()
    sensitive |= _key_forms(bytes(key))
    NEVER_LOGGED.update(sensitive.values())

    log = srv.log()
    assert '"level": "debug"' in log, "the process did not log at DEBUG: the check would be vacuous"
    assert log.count('"msg": "session created"') == len(KINDS)
    leaked = sorted(what for what, value in sensitive.items() if value in log)
    assert not leaked, f"the DEBUG log carries: {leaked}"


def _raw_request(port: int, head: bytes) -> tuple[int, str, bytes]:
    """Send raw bytes as one HTTP request over a real socket; (status, content type, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    content_type = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in headers.split(b"\r\n")
            if line.lower().startswith(b"content-type:")
        ),
        "",
    )
    return int(status_line.split()[1]), content_type, body


@pytest.mark.slow
def test_malformed_or_over_long_landing_request_line_logs_no_signature(tmp_path: Path) -> None:
    srv = start_serve(tmp_path, "--store", "memory://")
    try:
        with grpc.insecure_channel(srv.target) as ch, httpx.Client(timeout=30) as http:
            session = (
                pb_grpc.RealAuthServiceStub(ch)
                .CreateAuthSession(pb.CreateAuthSessionRequest(callback_url="https://caller.example/done"))
                .session
            )
            landing_url = _vendor_redirect(http, session)
            landing = urlsplit(landing_url)
            target = f"{landing.path}?{landing.query}".encode()
            bad = {
                # Longer than any landing may be (the limit grows for Megvii GET returns, tests/test_http_limits.py).
                "64 KB query": b"GET " + target + b"&pad=" + b"a" * 64_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                "bad version": b"GET " + target + b" HTTP/9.Z\r\nHost: x\r\n\r\n",
                "control char": b"GET " + target + b"&x=\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
                "extra word": b"GET " + target + b" extra HTTP/1.1\r\nHost: x\r\n\r\n",
            }
            for what, head in bad.items():
                status, content_type, _ = _raw_request(srv.http_port, head)
                assert status in (400, 414), what
                assert content_type.startswith("text/plain"), (what, content_type)
            # The service is unaffected: the real landing still works.
            assert http.get(landing_url).status_code == 302
    finally:
        assert srv.stop() == 0
    sensitive = _sensitive_values_of(session, landing_url)
    NEVER_LOGGED.update(sensitive.values())
    log = srv.log()
    assert log.count('"logger": "aiohttp.server"') >= len(bad), "aiohttp logged no bad request: check is vacuous"
    leaked = sorted(what for what, value in sensitive.items() if value in log)
    assert not leaked, f"the log carries: {leaked}"


def _record(name: str, level: int, msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad request line b'GET {msg}'")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_library_records_are_floored_and_redacted_whatever_the_library_level() -> None:
    """The floor is on the handler's filter, so a library that turns its own logger up changes nothing."""
    redactor = Redactor()
    secret = Secret(f"configured-{uuid.uuid4().hex}")
    assert not redactor.filter(_record("aiosqlite", logging.DEBUG, "executing %r", ("token-1",)))
    assert not redactor.filter(_record("httpx", logging.INFO, "HTTP Request: GET http://x/?token=t"))
    own = _record("realauth.service", logging.DEBUG, "session created")
    assert redactor.filter(own) and own.getMessage() == "session created"

    record = _record("aiohttp.server", logging.ERROR, "/v1/callback/ses_1/SIGNATURE1?token=TOKEN1", exc=True)
    assert redactor.filter(record)
    assert record.getMessage() == "/v1/callback/ses_1/<sig redacted>?<redacted>"
    assert record.exc_text is not None and "SIGNATURE1" not in record.exc_text and "TOKEN1" not in record.exc_text

    record = _record("grpc._server", logging.WARNING, "key %s in %s", secret.reveal(), "x%2Fv1%2Fpush%2Fses_2%2FSIG2")
    assert redactor.filter(record)
    assert record.getMessage() == "key <redacted> in x%2Fv1%2Fpush%2Fses_2%2F<sig redacted>"

    record = _record("realauth.rpc", logging.INFO, "rpc")
    record.error = f"upstream said {secret.reveal()}"
    assert redactor.filter(record) and record.error == "upstream said <redacted>"


@pytest.mark.parametrize("level", ["nosuch", "verbose"])
def test_unknown_log_level_is_refused_by_name(level: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.log_level must be one of DEBUG, INFO"):
        load_settings(None, log_level=level)


@pytest.mark.parametrize("name", ["aiohttp.client", "aiohttp.internal"])
def test_megvii_query_secrets_are_masked_on_the_http_clients_own_loggers(name: str) -> None:
    """get_result carries api_key/api_secret in its query (vendor design). The transport is aiohttp, so its loggers
    carry the filter that masks them even in a process where realauth's handler is not installed."""
    from realauth_server.vendors.megvii import adapter

    assert name in adapter.CLIENT_LOGGERS
    logger = logging.getLogger(name)
    url = "https://api.megvii.com/faceid/lite/get_result?api_key=KEY123456&api_secret=SECRET123456&biz_id=b1"
    record = logger.makeRecord(name, logging.WARNING, __file__, 1, "request to %s failed", (url,), None)
    assert logger.filter(record)
    message = record.getMessage()
    assert "KEY123456" not in message and "SECRET123456" not in message and "biz_id=b1" in message


def test_own_records_quick_check_changes_exactly_what_the_full_pass_does() -> None:
    """realauth's own records skip the full pass only when it would change nothing (Redactor._own_untouched)."""
    redactor = Redactor()
    secret = Secret(f"configured-{uuid.uuid4().hex}").reveal()

    clean = _record("realauth.rpc", logging.INFO, "rpc %s", "OK")
    clean.tenant, clean.latency_ms, clean.ok, clean.none = "t1", 1.5, True, None
    before = dict(clean.__dict__)
    assert redactor.filter(clean) and clean.__dict__ == before  # untouched: msg and args kept as they were

    in_args = _record("realauth.rpc", logging.INFO, "error %s", f"upstream said {secret}")
    assert redactor.filter(in_args) and in_args.getMessage() == "error upstream said <redacted>"

    in_field = _record("realauth.rpc", logging.INFO, "rpc")
    in_field.tenant, in_field.error = "t1", f"x{secret}y"
    assert redactor.filter(in_field) and (in_field.tenant, in_field.error) == ("t1", "x<redacted>y")

    # A value that is not a string or a number is still written as its scrubbed str(), as the full pass does.
    listed = _record("realauth.rpc", logging.INFO, "rpc")
    listed.fields, listed.names = ["a", secret], ("b",)
    assert redactor.filter(listed) and (listed.fields, listed.names) == ("['a', '<redacted>']", "('b',)")

    # The quick check joins the values: a secret split across two of them is no secret, and is left as it was.
    half = len(secret) // 2
    split = _record("realauth.rpc", logging.INFO, "rpc")
    split.a, split.b = secret[:half], secret[half:]
    assert redactor.filter(split) and (split.a, split.b) == (secret[:half], secret[half:])

    # Library records and tracebacks never take the quick path.
    traced = _record("realauth.rpc", logging.ERROR, "unhandled error", exc=True)
    assert redactor.filter(traced) and traced.exc_text is not None and "<redacted>" in traced.exc_text


def test_json_timestamps_match_the_records_time_across_seconds() -> None:
    """The JSON formatter formats the seconds once per second; each line still carries its own record's time."""
    import json
    import time

    from realauth_server.logs import JsonFormatter

    formatter = JsonFormatter()
    for created in (1_700_000_000.9994, 1_700_000_001.0, 1_700_000_001.5, 1_700_000_000.25, 1_799_999_999.999):
        record = _record("realauth.rpc", logging.INFO, "rpc")
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        want = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(record.msecs):03d}Z"
        assert json.loads(formatter.format(record))["ts"] == want


def test_extra_field_names_cache_gives_the_same_fields_and_is_bounded() -> None:
    """logs.extra_keys remembers each record shape's extra names: same answer as the full scan, at most MAX_SHAPES."""
    from realauth_server import logs

    def reference(record: logging.LogRecord) -> list[str]:
        return [k for k in record.__dict__ if k not in logs._STD and not k.startswith("_")]

    logs._SHAPES.clear()
    for i in range(logs.MAX_SHAPES + 50):  # more distinct shapes than the cache keeps
        record = _record("realauth.rpc", logging.INFO, "rpc")
        record.first, record._private = "a", "hidden"
        setattr(record, f"field_{i}", i)
        record.message = "set by another formatter"  # a LogRecord attribute added late is still not an extra
        for _ in range(2):  # the second time from the cache (while it has room)
            assert list(logs.extra_keys(record)) == reference(record) == ["first", f"field_{i}"]
    assert len(logs._SHAPES) == logs.MAX_SHAPES
