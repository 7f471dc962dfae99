"""Emulator of Megvii FaceID (seed 003, vendors.md §4), over real HTTP at the vendor's own paths.

v5 app flow: ``POST /faceid/v5/sdk/get_biz_token`` and ``POST /faceid/v5/sdk/verify`` (form-data,
``sign``/``sign_version=hmac_sha1`` checked as §4.3; biz_token valid 1 h). The app SDK's run is
simulated by ``PUT /_emulator/sdk_run`` ``{"biz_token": …, "outcome": "pass"|"fail"}``.

H5 "lite" flow: ``POST /faceid/lite/get_token`` (plain api_key/api_secret fields) → single-use
``token`` + ``biz_id``; ``GET /faceid/lite/do?token=…`` is the simulated page (Pass/Fail, or
``outcome=pass|fail``) which returns to ``return_url`` with ``data`` + ``sign = sha1(secret + data)``,
by POST (auto-submitting form) or GET (302) per ``action_http_method``, and POSTs the same form to
``notify_url`` in the background (bounded, retried on non-2xx); ``GET /faceid/lite/get_result`` answers
for one day, three calls per biz_id.

Errors are the seed's: ``{"error": "CODE[: detail]", "request_id", "time_used"}`` with 400/403/404/500.
Knobs for tests: ``discontinued``, ``denied``, ``no_kyc``, ``call_limits``, ``allowed_ips``.
"""

from __future__ import annotations

import html
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web

from ..providers.megvii import (
    MAX_BIZ_EXTRA,
    MAX_BIZ_NO,
    MAX_WEB_TITLE,
    PROCEDURE_TYPES,
    SANDBOX_API_KEY,
    SANDBOX_API_SECRET,
)
from ..signing.megvii import SIGN_VERSION, SignError, data_sign, verify_sign
from .base import ADMIN_PREFIX, Emulator, error_page, h5_page, is_http_url, with_query
from .push import Pusher

#: The published example key pair of §4.3 (public documentation), so the vector verifies here too.
DOC_API_KEY = "ICVvC_xUs6177WEtyUNwIH8J6NfGu50t"
DOC_API_SECRET = "UjYGdN9CBZKsDBLB5-5v3DykPXY6dw3q"

BIZ_TOKEN_TTL = 3600.0  # seed 003: biz_token valid 1 h by default
LITE_TOKEN_TTL = 3600.0  # not documented in our sources; see docs/providers/megvii.md
RESULT_TTL = 86_400.0  # get_result: kept one day
RESULT_CALLS = 3  # get_result: three calls
MAX_UUID = 128

GET_BIZ_TOKEN = "/faceid/v5/sdk/get_biz_token"
VERIFY = "/faceid/v5/sdk/verify"
GET_TOKEN = "/faceid/lite/get_token"
DO = "/faceid/lite/do"
GET_RESULT = "/faceid/lite/get_result"

_STARTED = web.RequestKey("megvii_started", float)

THRESHOLDS = {"1e-3": 62.169, "1e-4": 69.315, "1e-5": 74.399, "1e-6": 78.038}


@dataclass
class _BizToken:
    api_key: str
    liveness_id: str
    uuid: str
    created: float
    outcome: str = ""


@dataclass
class _Lite:
    api_key: str
    token: str
    biz_id: str
    fields: dict[str, str]
    created: float
    status: str = "NOT_STARTED"
    result: dict[str, Any] = field(default_factory=dict)
    result_calls: int = 0


class _Fail(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


class MegviiEmulator(Emulator):
    vendor: ClassVar[str] = "megvii"
    api_get_paths: ClassVar[tuple[str, ...]] = (GET_RESULT,)

    def __init__(self, *args: Any, credentials: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.credentials = dict(credentials or {SANDBOX_API_KEY: SANDBOX_API_SECRET, DOC_API_KEY: DOC_API_SECRET})
        self.discontinued: set[str] = set()  # → AUTHORIZATION_ERROR: API_KEY_BE_DISCONTINUED
        self.denied: dict[str, set[str]] = {}  # api_key → API paths it may not call → DENIED
        self.no_kyc: set[str] = set()  # keys without comparison_type "1" permission → DENIED
        self.call_limits: dict[str, int] = {}  # test keys' total call quota → LIMIT_REACHED
        self.allowed_ips: dict[str, set[str]] = {}  # api_key → allowed client IPs → IP_NOT_ALLOWED
        self.calls: dict[str, int] = {}
        self.biz_tokens: dict[str, _BizToken] = {}
        self.lite: dict[str, _Lite] = {}  # by token
        self.by_biz_id: dict[str, _Lite] = {}
        self.pusher = Pusher([self.public_url], allow=self.may_send_to)  # notify_url deliveries

    async def aclose(self) -> None:
        await self.pusher.aclose()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(GET_BIZ_TOKEN, self.get_biz_token)
        app.router.add_post(VERIFY, self.verify)
        app.router.add_post(GET_TOKEN, self.get_token)
        app.router.add_get(DO, self.do)
        app.router.add_get(GET_RESULT, self.get_result)
        app.router.add_route("*", "/faceid/{tail:.*}", self.not_found)

    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_put(ADMIN_PREFIX + "sdk_run", self.sdk_run)

    def action_of(self, request: web.Request) -> str:
        for path, name in (
            (GET_BIZ_TOKEN, "GetBizToken"),
            (VERIFY, "Verify"),
            (GET_TOKEN, "GetToken"),
            (GET_RESULT, "GetResult"),
        ):
            if request.path.endswith(path):
                return name
        return request.path

    # --- envelope -------------------------------------------------------------------------------

    def _request_id(self) -> str:
        return f"{int(self.clock.now())},{uuid.uuid4()}"

    def _reply(self, request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
        started = request.get(_STARTED, time.monotonic())
        out = {"request_id": self._request_id(), "time_used": int((time.monotonic() - started) * 1000), **body}
        return web.json_response(out, status=status)

    def _error(self, request: web.Request, status: int, error: str) -> web.Response:
        return self._reply(request, {"error": error}, status)

    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        body = {"request_id": self._request_id(), "time_used": 0}
        if rate_limit:
            return web.json_response({"error": "CONCURRENCY_LIMIT_EXCEEDED", **body}, status=403)
        return web.json_response({"error": "INTERNAL_ERROR", **body}, status=status if status >= 500 else 500)

    async def not_found(self, request: web.Request) -> web.Response:
        return self._error(request, 404, "API_NOT_FOUND")

    # --- argument and key checks ----------------------------------------------------------------

    async def _form(self, request: web.Request) -> tuple[dict[str, str], dict[str, bytes]]:
        request[_STARTED] = time.monotonic()
        if request.method == "GET":
            return dict(request.query), {}
        form = await request.post()
        fields: dict[str, str] = {}
        files: dict[str, bytes] = {}
        for key, value in form.items():
            if isinstance(value, str):
                fields[key] = value
            elif isinstance(value, web.FileField):
                files[key] = value.file.read()
            else:  # bytes
                fields[key] = bytes(value).decode("utf-8", "replace")
        return fields, files

    @staticmethod
    def _need(fields: dict[str, str], *keys: str) -> None:
        for key in keys:
            if not fields.get(key):
                raise _Fail(400, f"MISSING_ARGUMENTS: {key}")

    def _authorize(self, request: web.Request, api_key: str, path: str) -> None:
        """AUTHORIZATION_ERROR reasons after a key is authenticated, in the seed's order."""
        if api_key in self.discontinued:
            raise _Fail(403, "AUTHORIZATION_ERROR: API_KEY_BE_DISCONTINUED")
        ips = self.allowed_ips.get(api_key)
        if ips is not None and (request.remote or "") not in ips:
            raise _Fail(403, "AUTHORIZATION_ERROR: IP_NOT_ALLOWED")
        if path in self.denied.get(api_key, set()):
            raise _Fail(403, "AUTHORIZATION_ERROR: DENIED")
        limit = self.call_limits.get(api_key)
        used = self.calls.get(api_key, 0)
        if limit is not None and used >= limit:
            raise _Fail(403, "AUTHORIZATION_ERROR: LIMIT_REACHED")
        self.calls[api_key] = used + 1

    def _signed(self, request: web.Request, fields: dict[str, str], path: str) -> str:
        self._need(fields, "sign", "sign_version")
        if fields["sign_version"] != SIGN_VERSION:
            raise _Fail(400, "BAD_ARGUMENTS: sign_version")
        try:
            signed = verify_sign(fields["sign"], self.credentials.get, now=self.clock.now())
        except SignError as exc:
            raise _Fail(403, exc.error) from None
        self._authorize(request, signed.api_key, path)
        return signed.api_key

    def _keyed(self, request: web.Request, fields: dict[str, str], path: str) -> str:
        self._need(fields, "api_key", "api_secret")
        secret = self.credentials.get(fields["api_key"])
        if secret is None or secret != fields["api_secret"]:
            raise _Fail(403, "AUTHENTICATION_ERROR")
        self._authorize(request, fields["api_key"], path)
        return fields["api_key"]

    # --- v5 app flow ----------------------------------------------------------------------------

    async def get_biz_token(self, request: web.Request) -> web.Response:
        try:
            fields, _ = await self._form(request)
            api_key = self._signed(request, fields, GET_BIZ_TOKEN)
            self._need(fields, "liveness_id")
            if len(fields.get("uuid", "").encode()) > MAX_UUID:
                raise _Fail(400, "BAD_ARGUMENTS: uuid")
        except _Fail as f:
            return self._error(request, f.status, f.error)
        now = self.clock.now()
        token = f"{int(now)},{uuid.uuid4()}"
        self.biz_tokens[token] = _BizToken(api_key, fields["liveness_id"], fields.get("uuid", ""), now)
        return self._reply(request, {"biz_token": token})

    async def sdk_run(self, request: web.Request) -> web.Response:
        """Stand-in for the MegLiveStill SDK finishing on a phone (no browser page exists for it)."""
        body = await request.json()
        t = self.biz_tokens.get(str(body.get("biz_token", "")))
        if t is None or body.get("outcome") not in ("pass", "fail"):
            return web.json_response({"error": "unknown biz_token or outcome not pass|fail"}, status=400)
        t.outcome = body["outcome"]
        return web.json_response({})

    async def verify(self, request: web.Request) -> web.Response:
        try:
            fields, files = await self._form(request)
            api_key = self._signed(request, fields, VERIFY)
            self._need(fields, "comparison_type", "data_type")
            comparison = fields["comparison_type"]
            if comparison not in ("0", "1"):
                raise _Fail(400, "BAD_ARGUMENTS: comparison_type")
            if fields["data_type"] != "0":
                raise _Fail(400, "BAD_ARGUMENTS: data_type")  # only SDK ≥ 5 data is emulated
            self._need(fields, "biz_token")
            if comparison == "1":
                if api_key in self.no_kyc:
                    raise _Fail(403, "AUTHORIZATION_ERROR: DENIED")
                self._need(fields, "idcard_name", "idcard_number")
            elif "image_ref1" not in files:
                raise _Fail(400, "MISSING_ARGUMENTS: image_ref1")
            if len(fields.get("biz_no", "").encode()) > MAX_BIZ_NO:
                raise _Fail(400, "BAD_ARGUMENTS: biz_no")
            t = self.biz_tokens.get(fields["biz_token"])
            if t is None or t.api_key != api_key:
                raise _Fail(400, "BAD_ARGUMENTS: biz_token")
        except _Fail as f:
            return self._error(request, f.status, f.error)
        if self.clock.now() - t.created > BIZ_TOKEN_TTL or not t.outcome:
            verdict = self._verdict("", comparison)  # expired, or the SDK never ran: BIZ_TOKEN_DENIED
        else:
            verdict = self._verdict(t.outcome, comparison)
        return self._reply(request, {"biz_no": fields.get("biz_no", ""), **verdict})

    @staticmethod
    def _verdict(outcome: str, comparison: str) -> dict[str, Any]:
        ref = "idcard" if comparison == "1" else "ref1"
        if outcome == "pass":
            return {
                "result_code": 1000,
                "result_message": "SUCCESS",
                "verification": {ref: {"confidence": 88.917, "thresholds": THRESHOLDS}},
            }
        if outcome == "fail":
            return {"result_code": 4100, "result_message": "FAIL_LIVING_FACE_ATTACK"}
        return {"result_code": 4200, "result_message": "BIZ_TOKEN_DENIED"}

    # --- H5 lite flow ---------------------------------------------------------------------------

    async def get_token(self, request: web.Request) -> web.Response:
        try:
            fields, files = await self._form(request)
            api_key = self._keyed(request, fields, GET_TOKEN)
            self._need(fields, "return_url", "notify_url", "biz_no")
            for key in ("return_url", "notify_url"):
                # Embedded, only realauth's own landing and push routes: never another port or host.
                if not is_http_url(fields[key]) or not self.may_send_to(fields[key]):
                    raise _Fail(400, f"BAD_ARGUMENTS: {key}")
            for key, limit in (("biz_no", MAX_BIZ_NO), ("biz_extra_data", MAX_BIZ_EXTRA), ("web_title", MAX_WEB_TITLE)):
                if len(fields.get(key, "").encode()) > limit:
                    raise _Fail(400, f"BAD_ARGUMENTS: {key}")
            if fields.get("procedure_type", "video") not in PROCEDURE_TYPES:
                raise _Fail(400, "BAD_ARGUMENTS: procedure_type")
            if fields.get("action_http_method", "POST") not in ("POST", "GET"):
                raise _Fail(400, "BAD_ARGUMENTS: action_http_method")
            self._need(fields, "comparison_type")
            comparison = fields["comparison_type"]
            if comparison not in ("0", "1"):
                raise _Fail(400, "BAD_ARGUMENTS: comparison_type")
            if comparison == "1":
                if api_key in self.no_kyc:
                    raise _Fail(403, "AUTHORIZATION_ERROR: DENIED")
                mode = fields.get("idcard_mode", "0")
                if mode not in ("0", "1", "2"):
                    raise _Fail(400, "BAD_ARGUMENTS: idcard_mode")
                if mode == "0":
                    self._need(fields, "idcard_name", "idcard_number")
            elif "image_ref1" not in files:
                raise _Fail(400, "MISSING_ARGUMENTS: image_ref1")
            elif not files["image_ref1"]:
                raise _Fail(400, "BAD_ARGUMENTS: image_ref1")
        except _Fail as f:
            return self._error(request, f.status, f.error)
        now = self.clock.now()
        token = uuid.uuid4().hex
        biz_id = f"{int(now)},{uuid.uuid4()}"
        keep = ("return_url", "notify_url", "biz_no", "biz_extra_data", "procedure_type", "action_http_method",
                "comparison_type")  # fmt: skip
        entry = _Lite(api_key, token, biz_id, {k: fields[k] for k in keep if k in fields}, now)
        self.lite[token] = entry
        self.by_biz_id[biz_id] = entry
        self._forget_old(now)
        return self._reply(request, {"token": token, "biz_id": biz_id, "expired_time": int(now + LITE_TOKEN_TTL)})

    async def do(self, request: web.Request) -> web.StreamResponse:
        entry = self.lite.get(request.query.get("token", ""))
        if entry is None:
            return error_page(404, "This verification link is not valid.")
        if self.clock.now() - entry.created > LITE_TOKEN_TTL:
            return error_page(410, "This verification link has expired.")
        if entry.status not in ("NOT_STARTED", "PROCESSING"):
            return error_page(409, "This verification link was already used (tokens are single use).")
        outcome = request.query.get("outcome", "")
        if outcome not in ("", "pass", "fail", "cancel"):
            return error_page(400, "outcome must be pass, fail or cancel.")
        if not outcome:
            entry.status = "PROCESSING"
            base = str(request.url.relative())
            return h5_page(
                "Megvii FaceID",
                "zh",
                with_query(base, {"outcome": "pass"}),
                with_query(base, {"outcome": "fail"}),
                "The link is single use; the result is then kept for one day (three get_result calls).",
            )
        comparison = entry.fields.get("comparison_type", "1")
        if outcome == "cancel":
            entry.status, verdict = "CANCELLED", {}
        else:
            entry.status = "OK" if outcome == "pass" else "FAILED"
            verdict = self._verdict(outcome, comparison)
        entry.result = {
            "status": entry.status,
            "biz_info": {
                "biz_id": entry.biz_id,
                "biz_no": entry.fields.get("biz_no", ""),
                "biz_extra_data": entry.fields.get("biz_extra_data", ""),
            },
            "liveness_result": {
                "result": "PASS" if outcome == "pass" else "FAILED",
                "procedure_type": entry.fields.get("procedure_type", "video"),
            },
            **verdict,
        }
        data = json.dumps(entry.result, separators=(",", ":"), ensure_ascii=False)
        params = {"data": data, "sign": data_sign(self.credentials[entry.api_key], data)}
        # The vendor's server notifies too, independently of the browser (no ordering between the two).
        self.pusher.background(
            entry.fields["notify_url"], urlencode(params).encode(), "application/x-www-form-urlencoded"
        )
        return_url = entry.fields["return_url"]
        if entry.fields.get("action_http_method", "POST") == "GET" or not self.may_send_to(return_url):
            return self.redirect(return_url, params)  # an error page if the URL is not an allowed target
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>FaceID</title></head>"
            "<body onload='document.forms[0].submit()'>"
            f'<form method="post" action="{html.escape(return_url)}">{inputs}'
            "<noscript><button type='submit'>Continue</button></noscript></form></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def get_result(self, request: web.Request) -> web.Response:
        try:
            fields, _ = await self._form(request)
            api_key = self._keyed(request, fields, GET_RESULT)
            self._need(fields, "biz_id")
            entry = self.by_biz_id.get(fields["biz_id"])
            if entry is None or entry.api_key != api_key:
                raise _Fail(400, "BAD_ARGUMENTS: biz_id")
            if self.clock.now() - entry.created > RESULT_TTL or entry.result_calls >= RESULT_CALLS:
                raise _Fail(400, "BAD_ARGUMENTS: biz_id")  # kept one day, three calls
        except _Fail as f:
            return self._error(request, f.status, f.error)
        entry.result_calls += 1
        if not entry.result:
            return self._reply(request, {"status": entry.status, "biz_info": {"biz_id": entry.biz_id}})
        return self._reply(request, entry.result)

    def _forget_old(self, now: float) -> None:
        if len(self.lite) > 10_000:
            for token, entry in list(self.lite.items()):
                if now - entry.created > RESULT_TTL:
                    del self.lite[token]
                    self.by_biz_id.pop(entry.biz_id, None)
