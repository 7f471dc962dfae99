"""Emulator of Tencent Cloud FaceID Intl (faceid.intl.tencentcloudapi.com), over real HTTP.

``/`` takes every request form API 3.0 takes ("Request Structure", e.g.
https://intl.cloud.tencent.com/document/api/608/33031), each as the official SDK sends it:
- ``POST`` ``application/json``, TC3-HMAC-SHA256 (the action in ``X-TC-Action``): the default;
- ``GET`` TC3-HMAC-SHA256, the parameters form-urlencoded in the query (``HttpProfile(reqMethod="GET")``),
  the canonical request signing that query;
- signature v1 (``SignatureMethod`` HmacSHA1 / HmacSHA256, the SDK's ``signMethod``): every parameter, the
  common ones included, in the query (GET) or a form-urlencoded body (POST), verified here on its own
  ("Signature", e.g. https://www.tencentcloud.com/document/product/214/33794).
A GET is at most 32 KB and a v1 POST 1 MB (``RequestSizeLimitExceeded``). The signature is recomputed from
the raw bytes received (5 min skew), then the version, the region, the rate limit (20 requests/s per action)
and every documented field, type and range are checked; form values are read as the API's types
(``Config.CheckMode=2`` is the integer 2). Errors come as ``{"Response": {"Error": {"Code", "Message"},
"RequestId"}}`` with HTTP 200, which is what the official SDK parses. The simulated H5 page lives at
``/reflect/?token=<BizToken>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl

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
from ...http.pages import error_page
from ...signing.tc3 import TC3Failure, verify_tc3
from ...urls import is_http_url
from .spec import (
    APPLY,
    LANGUAGES,
    MAX_EXTRA,
    MAX_IMAGE_BASE64,
    REGIONS,
    RESULT,
    RESULT_WINDOW,
    SANDBOX_SECRET_ID,
    SANDBOX_SECRET_KEY,
    SERVICE,
    START_WINDOW,
    VENDOR_RATE_LIMIT,
    VERSION,
    VERSIONS,
)

APPLY_KEYS = ("RedirectURL", "CompareImageBase64", "Extra", "RuleId", "Config")
CONFIG_BOOLS = (
    "AutoSkipStartPage",
    "AutoSkip",
    "DisableCheckOcrWarnings",
    "SkipPrivacyPolicy",
    "IdCardCutReturn",
    "AllowExpiredDocument",
)
CONFIG_INTS = {
    "CheckMode": (1, 4),
    "SecurityLevel": (1, 4),
    "AutoDowngrade": (1, 2),
    "LivenessRetryLimit": (1, 99),
    "LivenessTimeout": (0, 600),
}
#: The SDK model spells it IDCardType; the API page's example (56227) writes IdCardType. Both are accepted.
CONFIG_STRINGS = ("IDCardType", "IdCardType", "ThemeColor", "Language", "ActionList", "SelectedWarningCodes", "Version")
#: Config.Language → page language; th and id pages are shown in English (the sandbox has no Thai or Indonesian).
PAGE_LANG = {"zh-cn": "zh", "zh-tc": "zh-Hant", "en": "en"}
#: Similarity the sandbox reports for a passed comparison (same person by default if >= 70).
PASS_SIMILARITY = 92.35


def _coded(name: str, code: int, msg: str, zh: str, hant: str, kind: str = FAIL, **data: Any) -> Outcome:
    label = {"zh": zh, "zh-Hant": hant, "en": msg}
    return Outcome(name, str(code), label, kind, data={"code": code, "msg": msg, **data})


#: GetWebVerificationResultIntl ``ErrorCode`` values a person's run can end with (Mobile HTML5 table,
#: https://www.tencentcloud.com/document/product/1061/55390; 1409 and 1410 from
#: https://www.tencentcloud.com/announce/detail/100989). ``stage``: which VerificationDetail field carries it.
OUTCOMES = Outcomes(
    [
        Outcome("pass", "0", {"zh": "通过", "zh-Hant": "通過", "en": "Pass"}, PASS, data={"code": 0, "msg": "Success"}),
        Outcome("liveness_failed", "1005", {"zh": "不通过:活体检测失败", "zh-Hant": "不通過:活體檢測失敗",
                "en": "Fail: liveness detection failed"}, FAIL, ("fail",),
                {"code": 1005, "msg": "Liveness detection failed", "stage": "liveness"}),
        _coded("spoofed", 1002, "Suspected spoofed recording", "疑似翻拍或合成", "疑似翻拍或合成", stage="liveness"),
        _coded("not_real_person", 1003, "Real person detection failed", "真人检测失败", "真人檢測失敗",
                stage="liveness"),
        _coded("no_face", 1004, "Face detection failed", "人脸检测失败", "人臉檢測失敗", stage="liveness"),
        _coded("too_dark", 1201, "The lighting is too dim", "光线太暗", "光線太暗", stage="liveness"),
        _coded("multiple_faces", 2012, "Multiple faces detected", "检测到多张人脸", "偵測到多張人臉",
                stage="liveness"),
        _coded("retry_limit", 16, "Retry limit has been reached", "已达重试次数上限", "已達重試次數上限"),
        _coded("timeout", 1409, "Verification process timed out", "认证流程超时", "認證流程逾時"),
        _coded("user_exit", 1410, "User exited voluntarily", "用户主动退出", "使用者主動退出"),
        Outcome("abandon", "", {"zh": "离开页面", "zh-Hant": "離開頁面", "en": "Leave the page"}, ABANDON),
        Outcome("expire", "15", {"zh": "10 分钟内未开始", "zh-Hant": "10 分鐘內未開始",
                "en": "Not started within 10 minutes"}, EXPIRE),
    ]
)  # fmt: skip
DETAIL = {
    "zh": "BizToken 须在 10 分钟内开始;结果可在 3 天内查询。",
    "zh-Hant": "BizToken 須在 10 分鐘內開始;結果可在 3 天內查詢。",
    "en": "The BizToken must be started within 10 minutes; the result stays retrievable for 3 days.",
}
NOT_STARTED = {
    "zh": "此认证链接已过期(须在 10 分钟内开始)。",
    "zh-Hant": "此認證連結已過期(須在 10 分鐘內開始)。",
    "en": "This verification link has expired (it must be started within 10 minutes).",
}
ALREADY_STARTED = {
    "zh": "此认证已经开始,不会再过期;请选择其他结果。",
    "zh-Hant": "此認證已經開始,不會再過期;請選擇其他結果。",
    "en": "This verification was already started, so it can no longer expire; choose another outcome.",
}
#: Request size ceilings of API 3.0 ("Request Structure"): a GET packet, a v1 POST, a TC3 POST.
MAX_GET_BYTES = 32 * 1024
MAX_V1_POST_BYTES = 1024 * 1024
MAX_TC3_POST_BYTES = 10 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"
FORM_INT = re.compile(r"^-?[0-9]{1,18}\Z")
FORM_UINT = re.compile(r"^[0-9]{1,20}\Z")
#: Signature v1: the digests it names, and the common parameters that are not the action's own.
V1_METHODS: dict[str, Callable[[], Any]] = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256}
V1_COMMON = (
    "Action", "Region", "Timestamp", "Nonce", "SecretId", "Signature", "Version", "SignatureMethod", "Token",
    "Language", "RequestClient",
)  # fmt: skip
#: Signature v1 and TC3 share the 5 minute window between Timestamp and the server's clock.
V1_MAX_SKEW = 300


@dataclass
class _Biz:
    redirect_url: str
    created: float
    extra: str
    compared: bool
    language: str
    outcome: str = ""  # "" until the page finished, then the outcome's name
    started: bool = False
    finished_at: float = 0.0
    result: Outcome | None = None
    expired: bool = False  # the "expire" outcome: as if not started within START_WINDOW


@dataclass
class _Forced:
    """An error code the next matching API requests answer with (test hook, /_emulator/tencent/errors)."""

    code: str
    message: str = "Error injected by the realauth emulator."
    count: int = 1
    action: str = ""


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Call:
    """A request whose signature holds: its action, region, and how to read its parameters (after the gateway)."""

    action: str
    region: str
    params: Callable[[], dict[str, Any]]


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)


class TencentEmulator(Emulator):
    vendor: ClassVar[str] = "tencent"
    #: A GET is up to 32 KB: a request line up to twice that still gets the vendor's own refusal (standalone;
    #: embedded, the realauth HTTP side's own 8 KB limit applies, and realauth's own adapter only POSTs).
    handler_args: ClassVar[dict[str, Any]] = {"max_line_size": 2 * MAX_GET_BYTES}

    def __init__(
        self,
        *args: Any,
        credentials: Mapping[str, str] | None = None,
        regions: tuple[str, ...] = REGIONS,
        rate_limit: int = VENDOR_RATE_LIMIT,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.credentials = dict(credentials or {SANDBOX_SECRET_ID: SANDBOX_SECRET_KEY})
        self.regions = regions
        self.rate_limit = rate_limit
        self.tokens: Expiring[str, _Biz] = Expiring()
        self.forced: list[_Forced] = []
        self.limited = 0  # requests refused with RequestLimitExceeded by the real limiter
        self.last_body: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, _Window] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/", self.api)
        app.router.add_get("/", self.api)  # API 3.0 takes GET too (query string, TC3 or v1)
        app.router.add_get("/reflect/", self.page)

    def add_admin_routes(self, app: web.Application) -> None:
        app.router.add_put(ADMIN_PREFIX + "tencent/errors", self._force_error)
        app.router.add_delete(ADMIN_PREFIX + "tencent/errors", self._clear_forced)

    def action_of(self, request: web.Request) -> str:
        # TC3 names it in a header; v1 in the parameters (a v1 POST's body is not read here).
        return request.headers.get("X-TC-Action", "") or request.query.get("Action", "")

    def is_page(self, request: web.Request) -> bool:
        # GET / is an API call (faulted and counted like a POST); only /reflect/ is the browser's page.
        return request.method == "GET" and request.match_info.handler != self.api

    # --- envelope -------------------------------------------------------------------------------

    @staticmethod
    def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
        # Exactly "application/json": the SDK only parses errors for that Content-Type.
        body = json.dumps({"Response": payload}).encode()
        return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})

    def _error(self, code: str, message: str, status: int = 200) -> web.Response:
        return self._json({"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}, status)

    def error_response(self, status: int, *, rate_limit: bool = False) -> web.Response:
        if rate_limit:
            return self._error("RequestLimitExceeded", "Your current request times equals to `20` in a second.")
        return self._error("InternalError", "An internal error has occurred. Retry your request.", status)

    # --- admin hook -----------------------------------------------------------------------------

    def force_error(self, code: str, *, count: int = 1, action: str = "", message: str = "") -> None:
        """Make the next ``count`` matching API calls answer ``code`` (after signature checks)."""
        self.forced.append(_Forced(code, message or f"Injected {code}.", count, action))

    async def _force_error(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            self.force_error(
                str(data["code"]),
                count=int(data.get("count", 1)),
                action=str(data.get("action", "")),
                message=str(data.get("message", "")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad forced error: {exc}"}, status=400)
        return web.json_response({"queued": len(self.forced)})

    async def _clear_forced(self, request: web.Request) -> web.Response:
        self.forced.clear()
        return web.json_response({})

    def _take_forced(self, action: str) -> _Forced | None:
        for f in self.forced:
            if f.count != 0 and (not f.action or f.action == action):
                f.count -= 1
                if f.count == 0:
                    self.forced.remove(f)
                return f
        return None

    # --- the API --------------------------------------------------------------------------------

    def _over_limit(self, action: str) -> bool:
        """Strict reading of "20 requests per second": at most 20 in any 1 s sliding window."""
        now = time.monotonic()
        window = self._windows.setdefault(action, _Window())
        while window.stamps and window.stamps[0] <= now - 1.0:
            window.stamps.popleft()
        if len(window.stamps) >= self.rate_limit:
            return True
        window.stamps.append(now)
        return False

    async def api(self, request: web.Request) -> web.Response:
        raw = await request.read()
        query = request.rel_url.raw_query_string
        try:
            if request.method == "GET" and len(request.rel_url.raw_path_qs) > MAX_GET_BYTES:
                raise _Refused("RequestSizeLimitExceeded", f"A GET request must not exceed {MAX_GET_BYTES} bytes.")
            if "Authorization" in request.headers or (request.method == "POST" and request.content_type != FORM):
                call = self._tc3(request, query, raw)
            else:
                call = self._v1(request, query, raw)
            if not call.region:
                raise _Refused("MissingParameter", "The request is missing a required parameter `Region`.")
            if call.region not in self.regions:
                raise _Refused("UnsupportedRegion", f"The action `{call.action}` is not supported in `{call.region}`.")
            if self._over_limit(call.action):
                self.limited += 1
                raise _Refused(
                    "RequestLimitExceeded", f"Your current request times equals to `{self.rate_limit}` in a second."
                )
            forced = self._take_forced(call.action)
            if forced is not None:
                raise _Refused(forced.code, forced.message)
            body = call.params()
            self.last_body[call.action] = body
            if call.action == APPLY:
                return self._apply(body)
            return self._result(body)
        except _Refused as exc:
            return self._error(exc.code, exc.message)

    @staticmethod
    def _check_action(action: str, version: str) -> None:
        if not action:
            raise _Refused("MissingParameter", "The request is missing a required parameter `Action`.")
        if action not in (APPLY, RESULT):
            raise _Refused("InvalidAction", f"The action `{action}` is not supported by faceid.")
        if not version:
            raise _Refused("MissingParameter", "The request is missing a required parameter `Version`.")
        if version != VERSION:
            raise _Refused("NoSuchVersion", f"The API version `{version}` does not exist.")

    def _tc3(self, request: web.Request, query: str, raw: bytes) -> _Call:
        """TC3-HMAC-SHA256: common parameters in X-TC-* headers; a JSON body (POST) or a form query (GET)."""
        action = request.headers.get("X-TC-Action", "")
        self._check_action(action, request.headers.get("X-TC-Version", ""))
        if request.method == "POST" and len(raw) > MAX_TC3_POST_BYTES:
            raise _Refused("RequestSizeLimitExceeded", f"A POST request must not exceed {MAX_TC3_POST_BYTES} bytes.")
        try:
            verify_tc3(
                request.method,
                request.rel_url.raw_path,
                query,  # the query exactly as sent: TC3 signs it for a GET
                request.headers,
                raw,
                secret_for=self.credentials.get,
                service=SERVICE,
                now=self.clock.now(),
            )
        except TC3Failure as exc:
            raise _Refused(exc.code, exc.message) from None
        region = request.headers.get("X-TC-Region", "")
        if request.method == "GET":
            return _Call(action, region, lambda: _typed(action, _form_pairs(query, "query string")))

        def from_json() -> dict[str, Any]:
            if request.content_type != "application/json":
                raise _Refused("UnsupportedProtocol", "POST requests must use Content-Type application/json.")
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise _Refused("InvalidParameter", "The request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise _Refused("InvalidParameter", "The request body must be a JSON object.")
            return body

        return _Call(action, region, from_json)

    def _v1(self, request: web.Request, query: str, raw: bytes) -> _Call:
        """Signature v1: every parameter in the query (GET) or a form body (POST), ``Signature`` among them."""
        if request.method == "POST":
            if len(raw) > MAX_V1_POST_BYTES:
                raise _Refused("RequestSizeLimitExceeded", f"A POST request must not exceed {MAX_V1_POST_BYTES} bytes.")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Refused("InvalidParameter", "The request body is not UTF-8.") from None
            pairs = _form_pairs(text, "request body")
        else:
            pairs = _form_pairs(query, "query string")
        action = pairs.get("Action", "")
        self._check_action(action, pairs.get("Version", ""))
        verify_v1(
            request.method,
            request.headers.get("Host", ""),
            request.rel_url.raw_path,
            pairs,
            secret_for=self.credentials.get,
            now=self.clock.now(),
        )
        own = {k: v for k, v in pairs.items() if k not in V1_COMMON}
        return _Call(action, pairs.get("Region", ""), lambda: _typed(action, own))

    def _apply(self, body: dict[str, Any]) -> web.Response:
        _known(body, APPLY_KEYS, "")
        redirect = _string(body, "RedirectURL", required=True)
        if not is_http_url(redirect):  # 56227: "including the protocol, hostname, and path"
            raise _Refused("InvalidParameterValue", "RedirectURL must include the protocol, hostname and path.")
        if not self.may_send_to(redirect):  # embedded: realauth's own landing only
            raise _Refused("InvalidParameterValue", "RedirectURL is not an allowed redirect target.")
        image = _string(body, "CompareImageBase64")
        if image:
            if image.lstrip().lower().startswith("data:"):
                raise _Refused("InvalidParameterValue", "CompareImageBase64 must not carry the Data URI scheme header.")
            if len(image) > MAX_IMAGE_BASE64:
                raise _Refused("FailedOperation.ImageSizeTooLarge", "The image exceeds 8 MB after Base64 encoding.")
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise _Refused("InvalidParameterValue", "CompareImageBase64 is not valid Base64.") from None
        extra = _string(body, "Extra")
        if len(extra) > MAX_EXTRA:
            raise _Refused("InvalidParameterValue", f"Extra is longer than {MAX_EXTRA} characters.")
        _string(body, "RuleId")
        config = body.get("Config", {})
        if not isinstance(config, dict):
            raise _Refused("InvalidParameter", "Config must be a WebVerificationConfigIntl object.")
        _known(config, (*CONFIG_BOOLS, *CONFIG_INTS, *CONFIG_STRINGS), "Config.")
        for key in CONFIG_BOOLS:
            if key in config and not isinstance(config[key], bool):
                raise _Refused("InvalidParameter", f"Config.{key} must be a Boolean.")
        for key, (low, high) in CONFIG_INTS.items():
            if key in config:
                value = config[key]
                if not isinstance(value, int) or isinstance(value, bool):
                    raise _Refused("InvalidParameter", f"Config.{key} must be an Integer.")
                if not low <= value <= high:
                    raise _Refused("InvalidParameterValue", f"Config.{key} must be in [{low}, {high}].")
        for key in CONFIG_STRINGS:
            if key in config and not isinstance(config[key], str):
                raise _Refused("InvalidParameter", f"Config.{key} must be a String.")
        language = config.get("Language", "en")
        if language not in LANGUAGES:
            raise _Refused("InvalidParameterValue", f"Config.Language must be one of {', '.join(LANGUAGES)}.")
        if "Version" in config and config["Version"] not in VERSIONS:
            raise _Refused("InvalidParameterValue", "Config.Version must be BASIC or PLUS.")
        token = str(uuid.uuid4()).upper()
        now = self.clock.now()
        compared = bool(image) or config.get("CheckMode") == 1
        self.tokens.add(token, _Biz(redirect, now, extra, compared, language), now)
        self._forget_old(now)
        return self._json(
            {
                "BizToken": token,
                "VerificationURL": f"{self.public_url}/reflect/?token={token}",
                "RequestId": str(uuid.uuid4()),
            }
        )

    def _result(self, body: dict[str, Any]) -> web.Response:
        _known(body, ("BizToken",), "")
        token = _string(body, "BizToken", required=True)
        biz = self.tokens.get(token)
        if biz is None:
            raise _Refused("InvalidParameterValue.BizTokenIllegal", "BizToken is illegal.")
        now = self.clock.now()
        if now - biz.created > RESULT_WINDOW:
            raise _Refused("InvalidParameterValue.BizTokenExpired", "BizToken has expired.")
        out: dict[str, Any] = {
            "ErrorCode": None,
            "ErrorMsg": None,
            "VerificationDetailList": [],
            "VideoBase64": None,
            "BestFrameBase64": None,
            "OCRResult": [],
            "Extra": biz.extra,
            "RequestId": str(uuid.uuid4()),
        }
        if biz.expired or (not biz.outcome and not biz.started and now - biz.created > START_WINDOW):
            out.update(ErrorCode=15, ErrorMsg="Token expired")
        elif biz.result is not None:
            o = biz.result
            passed = o.kind == PASS
            code, msg = o.data["code"], o.data["msg"]
            compared = passed and biz.compared
            details: list[dict[str, Any]] = []
            if passed or "stage" in o.data:  # process-level codes (16, 1409, 1410) have no attempt to detail
                details.append({
                    "ErrorCode": code,
                    "ErrorMsg": msg,
                    "LivenessErrorCode": code,
                    "LivenessErrorMsg": msg,
                    "CompareErrorCode": 0 if compared else None,
                    "CompareErrorMsg": "Success" if compared else None,
                    "ReqTimestamp": int(biz.finished_at * 1000),
                    "Similarity": PASS_SIMILARITY if compared else None,
                    "Seq": uuid.uuid4().hex,
                })  # fmt: skip
            out.update(ErrorCode=code, ErrorMsg=msg, VerificationDetailList=details)
            if passed:
                out["BestFrameBase64"] = base64.b64encode(b"sandbox-best-frame").decode()
        return self._json(out)

    # --- the H5 page ----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        biz = self.tokens.get(token)
        lng = PAGE_LANG.get(biz.language, "en") if biz is not None else "en"
        if biz is None:
            return error_page(404, "invalid_link", lng)
        now = self.clock.now()
        if biz.outcome:
            return error_page(409, "completed", lng)
        if biz.expired or (not biz.started and now - biz.created > START_WINDOW):
            return error_page(410, NOT_STARTED, lng)
        value = request.query.get("outcome", "")
        if not value:
            biz.started = True
            return h5_page("Tencent Cloud eKYC", lng, str(request.url.relative()), OUTCOMES, DETAIL)
        outcome = OUTCOMES.resolve(value)
        if outcome is None:
            return outcome_error_page(lng, value, OUTCOMES)
        if outcome.kind == EXPIRE:
            if biz.started:  # only a token nobody started can run out of its 10 minutes
                return error_page(409, ALREADY_STARTED, lng)
            biz.expired = True  # as if the 10 minutes had passed unopened: the result says 15
            return error_page(410, NOT_STARTED, lng)
        biz.started = True
        if outcome.kind == ABANDON:
            return left_page(lng)  # no redirect; the result stays unfinished (ErrorCode null)
        biz.outcome = outcome.name
        biz.result = outcome
        biz.finished_at = now
        return self.redirect(biz.redirect_url, {"token": token}, lng)

    def _forget_old(self, now: float) -> None:
        """Past 10,000 tokens, forget those whose result window is over: oldest first, never a full scan."""
        if len(self.tokens) > 10_000:
            self.tokens.forget_older_than(now - RESULT_WINDOW)


def _known(data: dict[str, Any], keys: tuple[str, ...], prefix: str) -> None:
    for key in data:
        if key not in keys:
            raise _Refused("UnknownParameter", f"The parameter `{prefix}{key}` is not recognized.")


def _string(data: dict[str, Any], key: str, *, required: bool = False) -> str:
    if key not in data or data[key] is None:
        if required:
            raise _Refused("MissingParameter", f"The request is missing a required parameter `{key}`.")
        return ""
    value = data[key]
    if not isinstance(value, str):
        raise _Refused("InvalidParameter", f"The parameter `{key}` must be a String.")
    if required and not value:
        raise _Refused("MissingParameter", f"The request is missing a required parameter `{key}`.")
    return value


# --- form parameters (GET and signature v1) ------------------------------------------------------------------


def _form_pairs(text: str, where: str) -> dict[str, str]:
    """A form-urlencoded string as name → value; a name given twice is refused (which one was signed?)."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _Refused("InvalidParameter", f"The {where} is not valid UTF-8 form encoding.") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise _Refused("InvalidParameter", f"The parameter `{name}` is given more than once.")
        out[name] = value
    return out


def _typed(action: str, flat: dict[str, str]) -> dict[str, Any]:
    """Form values as the action's own types: ``Config.CheckMode=2`` → ``{"Config": {"CheckMode": 2}}``.

    Names the action does not have are kept (as strings) so the body check answers ``UnknownParameter``.
    """
    body: dict[str, Any] = {}
    for name, value in flat.items():
        head, dot, rest = name.partition(".")
        if not dot:
            if name in body:  # "Config=..." next to "Config.X=...": not one object
                raise _Refused("InvalidParameter", f"The parameter `{name}` is given more than once.")
            body[name] = value
            continue
        if action != APPLY or head != "Config" or "." in rest:
            raise _Refused("UnknownParameter", f"The parameter `{name}` is not recognized.")
        config = body.setdefault("Config", {})
        if not isinstance(config, dict):
            raise _Refused("InvalidParameter", "Config must be a WebVerificationConfigIntl object.")
        config[rest] = _form_value(rest, value)
    return body


def _form_value(key: str, value: str) -> Any:
    if key in CONFIG_BOOLS:
        if value.lower() not in ("true", "false"):
            raise _Refused("InvalidParameter", f"Config.{key} must be a Boolean.")
        return value.lower() == "true"
    if key in CONFIG_INTS:
        if not FORM_INT.match(value):  # ASCII digits, bounded: int() never sees "--5" or 5000 digits
            raise _Refused("InvalidParameter", f"Config.{key} must be an Integer.")
        return int(value)
    return value


# --- signature v1 (HmacSHA1 / HmacSHA256) ---------------------------------------------------------------------


def v1_string_to_sign(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD + host + path + "?" + k=v&...``: every parameter but Signature, sorted by name, values not encoded.

    A ``_`` in a name is read as ``.``, as the official SDK signs it (``_format_sign_string``).
    """
    named = {k.replace("_", "."): v for k, v in params.items() if k != "Signature"}
    return f"{method.upper()}{host}{path}?" + "&".join(f"{k}={named[k]}" for k in sorted(named))


def v1_signature(secret_key: str, text: str, method: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), V1_METHODS[method]).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_v1(
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    *,
    secret_for: Callable[[str], str | None],
    now: float,
    max_skew: float = V1_MAX_SKEW,
) -> None:
    """Check a signature v1 request the way the API does; raise :class:`_Refused` with Tencent's code if it fails."""
    for name in ("SecretId", "Timestamp", "Nonce", "Signature"):
        if not params.get(name):
            raise _Refused("MissingParameter", f"The request is missing a required parameter `{name}`.")
    sign_method = params.get("SignatureMethod", "HmacSHA1")  # the documented default
    if sign_method not in V1_METHODS:
        raise _Refused("InvalidParameterValue", "SignatureMethod must be HmacSHA1 or HmacSHA256.")
    stamp, nonce = params["Timestamp"], params["Nonce"]
    if not FORM_UINT.match(stamp):
        raise _Refused("InvalidParameter", "Timestamp must be a UNIX timestamp in seconds.")
    if not FORM_UINT.match(nonce):  # the SDK draws it from [1, sys.maxsize]: up to 19 digits
        raise _Refused("InvalidParameter", "Nonce must be a positive integer.")
    if abs(now - int(stamp)) > max_skew:
        raise _Refused(
            "AuthFailure.SignatureExpire",
            f"Signature expired. Timestamp {stamp} differs from the server time by more than {max_skew:.0f} s.",
        )
    secret_key = secret_for(params["SecretId"])
    if secret_key is None:
        raise _Refused("AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure it is correct.")
    expected = v1_signature(secret_key, v1_string_to_sign(method, host, path, params), sign_method)
    if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
        raise _Refused(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
