"""Emulator of Megvii FaceID (https://faceid.com/document/faceid-guide-docs/adv_h5_get_token,
app_api_authentication), over real HTTP at the vendor's own paths.

v5 app flow: ``POST /faceid/v5/sdk/get_biz_token`` and ``POST /faceid/v5/sdk/verify`` (form-data,
``sign``/``sign_version=hmac_sha1`` checked as §4.3; biz_token valid 1 h). The app SDK's run is
simulated by ``PUT /_emulator/sdk_run`` ``{"biz_token": …, "outcome": "pass"|"fail"}``.

H5 "lite" flow: ``POST /faceid/lite/get_token`` (plain api_key/api_secret fields) → single-use
``token`` + ``biz_id``; ``GET /faceid/lite/do?token=…`` is the simulated page (a button per documented outcome,
or ``outcome=<name or code>``: ``LITE_OUTCOMES``) which returns to ``return_url`` with ``data`` +
``sign = sha1(secret + data)``, by POST (auto-submitting form) or GET (302) per ``action_http_method``, and
POSTs the same form to ``notify_url`` in the background (bounded, retried on non-2xx);
``GET /faceid/lite/get_result`` answers for one day, three calls per biz_id.

Errors are the documented ones (app_api_authentication): ``{"error": "CODE[: detail]", "request_id", "time_used"}``
with 400/403/404/500.
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

from ...emulators.base import (
    ABANDON,
    ADMIN_PREFIX,
    EXPIRE,
    FAIL,
    PASS,
    Emulator,
    Outcome,
    Outcomes,
    h5_page,
    left_page,
    outcome_error_page,
)
from ...emulators.expiring import Expiring
from ...emulators.push import Pusher
from ...http.pages import error_page, text
from ...signing.megvii import SIGN_VERSION, SignError, data_sign, verify_sign
from ...urls import is_http_url
from .spec import MAX_BIZ_EXTRA, MAX_BIZ_NO, MAX_WEB_TITLE, PROCEDURE_TYPES, SANDBOX_API_KEY, SANDBOX_API_SECRET

#: The published example key pair of §4.3 (public documentation), so the vector verifies here too.
DOC_API_KEY = "ICVvC_xUs6177WEtyUNwIH8J6NfGu50t"
DOC_API_SECRET = "UjYGdN9CBZKsDBLB5-5v3DykPXY6dw3q"

BIZ_TOKEN_TTL = 3600.0  # get_biz_token: valid 1 h by default (app_api_authentication)
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

#: get_token ``language`` (documented for the overseas edition, https://faceid.com/document/faceid-guide-docs/
#: oversea_h5_get_token): "0" English, "1" Chinese. Absent: the mainland page, Chinese.
LANGUAGES = ("0", "1")
PAGE_LANG = {"0": "en", "1": "zh"}


def _lite(
    name: str, status: str, zh: str, hant: str, en: str, kind: str = FAIL, extra: tuple[str, ...] = (), **data: Any
) -> Outcome:
    """An outcome whose code is the result_code the caller sees, else the status; the messages are aliases."""
    code = str(data.get("result_code", status))
    aliases = tuple(a for a in (data.get("message"), data.get("fail_reason")) if a and a != code) + extra
    return Outcome(name, code, {"zh": zh, "zh-Hant": hant, "en": en}, kind, aliases, {"status": status, **data})


#: The lite page's outcomes: ``status`` of the return/notify data (https://faceid.com/document/faceid-guide-docs/
#: h5_return_notify_url) and, for a finished flow, the result_code table (https://faceid.com/faceid-open-doc/docs/
#: idverify-api-verify.html). Interrupted flows (cancelled, timed out, no camera) carry no liveness_result.
LITE_OUTCOMES = Outcomes(
    [
        _lite("pass", "OK", "通过", "通過", "Pass", PASS, result_code=1000, message="SUCCESS", liveness="PASS"),
        _lite("not_same_person", "OK", "活体通过,但不是同一人", "活體通過,但不是同一人",
              "Live, but not the same person", result_code=2000, message="PASS_LIVING_NOT_THE_SAME",
              liveness="PASS", confidence=31.542),
        _lite("id_mismatch", "OK", "身份证号与姓名不匹配", "身分證號與姓名不相符", "ID number and name do not match",
              result_code=3000, message="ID_NUMBER_NAME_NOT_MATCH", liveness="PASS"),
        _lite("liveness_failed", "FAILED", "不通过:活体攻击", "不通過:活體攻擊",
              "Fail: liveness (face attack)", extra=("fail",), result_code=4100, message="FAIL_LIVING_FACE_ATTACK",
              liveness="FAILED"),
        _lite("no_face", "FAILED", "未检测到人脸", "未偵測到人臉", "No face detected", result_code=4200,
              message="UNDETECTED_FACE", liveness="FAILED"),
        _lite("action_error", "FAILED", "动作错误", "動作錯誤", "Wrong action", result_code=4200,
              message="ACTION_ERROR", liveness="FAILED"),
        _lite("camera_permission", "WEBRTC_UNSUPPORTED", "未授予摄像头权限", "未授予相機權限",
              "Camera permission denied", fail_reason="PERMISSIONS_ERROR"),
        _lite("webrtc_unsupported", "WEBRTC_UNSUPPORTED", "浏览器不支持 WebRTC", "瀏覽器不支援 WebRTC",
              "Browser without WebRTC", fail_reason="SUPPORT_ERROR"),
        _lite("cancel", "CANCELLED", "用户取消", "使用者取消", "The person cancelled"),
        _lite("timeout", "TIMEOUT", "流程超时", "流程逾時", "The flow timed out", EXPIRE),
        Outcome("abandon", "", {"zh": "离开页面", "zh-Hant": "離開頁面", "en": "Leave the page"}, ABANDON),
    ]
)  # fmt: skip
DETAIL = {
    "zh": "链接仅可使用一次;结果保留一天(get_result 最多三次)。",
    "zh-Hant": "連結僅可使用一次;結果保留一天(get_result 最多三次)。",
    "en": "The link is single use; the result is then kept for one day (three get_result calls).",
}
USED = {
    "zh": "此认证链接已使用(令牌仅可使用一次)。",
    "zh-Hant": "此認證連結已使用(權杖僅可使用一次)。",
    "en": "This verification link was already used (tokens are single use).",
}
TIMED_OUT = {
    "zh": "认证流程已超时。",
    "zh-Hant": "認證流程已逾時。",
    "en": "The verification timed out.",
}
CONTINUE = {"zh": "继续", "zh-Hant": "繼續", "en": "Continue"}


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
        self.lite: Expiring[str, _Lite] = Expiring()  # by token
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
        """AUTHORIZATION_ERROR reasons after a key is authenticated, in the documented order."""
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
    def _verdict(outcome: str, comparison: str, lite: Outcome | None = None) -> dict[str, Any]:
        """result_code/result_message (+ verification) for the v5 ``verify`` and the lite result."""
        ref = "idcard" if comparison == "1" else "ref1"
        if lite is not None and lite.name != "pass":
            out: dict[str, Any] = {"result_code": lite.data["result_code"], "result_message": lite.data["message"]}
            if "confidence" in lite.data:  # compared, below every threshold
                out["verification"] = {ref: {"confidence": lite.data["confidence"], "thresholds": THRESHOLDS}}
            return out
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
            if fields.get("language", "1") not in LANGUAGES:
                raise _Fail(400, "BAD_ARGUMENTS: language")
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
                "comparison_type", "language")  # fmt: skip
        entry = _Lite(api_key, token, biz_id, {k: fields[k] for k in keep if k in fields}, now)
        self.lite.add(token, entry, now)
        self.by_biz_id[biz_id] = entry
        self._forget_old(now)
        return self._reply(request, {"token": token, "biz_id": biz_id, "expired_time": int(now + LITE_TOKEN_TTL)})

    async def do(self, request: web.Request) -> web.StreamResponse:
        entry = self.lite.get(request.query.get("token", ""))
        lng = PAGE_LANG.get(entry.fields.get("language", ""), "zh") if entry is not None else "zh"
        if entry is None:
            return error_page(404, "invalid_link", lng)
        if self.clock.now() - entry.created > LITE_TOKEN_TTL:
            return error_page(410, "expired", lng)
        if entry.status not in ("NOT_STARTED", "PROCESSING"):
            return error_page(409, USED, lng)
        value = request.query.get("outcome", "")
        if not value:
            entry.status = "PROCESSING"
            return h5_page("Megvii FaceID", lng, str(request.url.relative()), LITE_OUTCOMES, DETAIL)
        outcome = LITE_OUTCOMES.resolve(value)
        if outcome is None:
            return outcome_error_page(lng, value, LITE_OUTCOMES)
        if outcome.kind == ABANDON:
            entry.status = "PROCESSING"
            return left_page(lng)  # the person closed the page: no return, no notification
        entry.status = outcome.data["status"]
        verdict: dict[str, Any] = {}
        if "result_code" in outcome.data:
            comparison = entry.fields.get("comparison_type", "1")
            verdict = self._verdict(outcome.name, comparison, outcome)
        entry.result = {
            "status": entry.status,
            "biz_info": {
                "biz_id": entry.biz_id,
                "biz_no": entry.fields.get("biz_no", ""),
                "biz_extra_data": entry.fields.get("biz_extra_data", ""),
            },
            **verdict,
        }
        if "liveness" in outcome.data:  # an interrupted flow has no liveness_result (callback doc)
            entry.result["liveness_result"] = {
                "result": outcome.data["liveness"],
                "procedure_type": entry.fields.get("procedure_type", "video"),
            }
        if "fail_reason" in outcome.data:
            entry.result["fail_reason"] = outcome.data["fail_reason"]
        data = json.dumps(entry.result, separators=(",", ":"), ensure_ascii=False)
        params = {"data": data, "sign": data_sign(self.credentials[entry.api_key], data)}
        # The vendor's server notifies too, independently of the browser (no ordering between the two).
        self.pusher.background(
            entry.fields["notify_url"], urlencode(params).encode(), "application/x-www-form-urlencoded"
        )
        if outcome.kind == EXPIRE:
            # "用户完成或取消验证后网页跳转": the browser returns on completion or cancelling, not on a timeout.
            return error_page(410, TIMED_OUT, lng)
        return_url = entry.fields["return_url"]
        if entry.fields.get("action_http_method", "POST") == "GET" or not self.may_send_to(return_url):
            return self.redirect(return_url, params, lng)  # an error page if the URL is not an allowed target
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
        )
        page = (
            f"<!doctype html><html lang='{lng}'><head><meta charset='utf-8'><title>FaceID</title></head>"
            "<body onload='document.forms[0].submit()'>"
            f'<form method="post" action="{html.escape(return_url)}">{inputs}'
            f"<noscript><button type='submit'>{html.escape(text(lng, CONTINUE))}</button></noscript></form>"
            "</body></html>"
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
        """Past 10,000 tokens, forget those whose result is no longer kept: oldest first, never a full scan."""
        if len(self.lite) > 10_000:
            for _, entry in self.lite.forget_older_than(now - RESULT_TTL):
                if self.by_biz_id.get(entry.biz_id) is entry:
                    del self.by_biz_id[entry.biz_id]
